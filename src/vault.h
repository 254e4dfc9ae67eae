/*-------------------------------------------------------------------------
 *
 * vault.h
 *	  The credential vault: exchange API secrets encrypted under the key
 *	  ring, revealed or used to sign requests inside the server.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TG_VAULT_H
#define TG_VAULT_H

extern void tg_vault_init(void);
extern void tg_vault_report_signatures(void);

#endif							/* TG_VAULT_H */
