/*-------------------------------------------------------------------------
 *
 * redact.h
 *	  Keeping credentials out of logs: redaction of credential function
 *	  calls in log lines, refusal of literal secrets in SQL text, and
 *	  mask_sensitive(jsonb).
 *
 *-------------------------------------------------------------------------
 */
#ifndef TG_REDACT_H
#define TG_REDACT_H

/* GUC: refuse API keys and secrets written as literals in SQL text */
extern bool tg_reject_literal_secrets;

extern void tg_redact_init(void);

#endif							/* TG_REDACT_H */
