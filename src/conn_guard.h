/*-------------------------------------------------------------------------
 *
 * conn_guard.h
 *	  The connection guard: which connections are let in (TLS, TLS version,
 *	  allowlist, client certificates, bans), and a record of every refusal.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TG_CONN_GUARD_H
#define TG_CONN_GUARD_H

typedef enum TgConnPolicy
{
	TG_POLICY_OFF,
	TG_POLICY_LOG,
	TG_POLICY_ENFORCE
} TgConnPolicy;

extern void tg_conn_guard_init(void);

#endif							/* TG_CONN_GUARD_H */
