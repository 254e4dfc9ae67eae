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

/* GUCs */
extern int	tg_connection_policy;
extern int	tg_ssl_min_protocol;
extern bool tg_allow_local;
extern char *tg_rules;
extern int	tg_max_auth_failures;
extern int	tg_failure_window;
extern int	tg_ban_time;

extern void tg_conn_guard_init(void);

#endif							/* TG_CONN_GUARD_H */
