/*-------------------------------------------------------------------------
 *
 * conn_guard.c
 *	  The connection guard: a ClientAuthentication_hook that refuses TCP
 *	  connections without TLS, with TLS older than a minimum, from addresses
 *	  no rule allows for the role, without a client certificate a rule asks
 *	  for, or from banned addresses; and an emit_log_hook that records the
 *	  logins PostgreSQL itself refuses before the hook would run.
 *
 * An openssl_tls_init_hook installs a ClientHello callback that refuses
 * banned addresses and addresses no rule admits in the TLS handshake, before
 * any password is exchanged.  Everything else (plaintext, role-level rules,
 * cert rules, the TLS version) can only be decided once PostgreSQL's own
 * authentication (pg_hba.conf, password, certificate) has run, so
 * pg_hba.conf hostssl lines remain the first defence: by the time we refuse
 * a plaintext connection its password has crossed the wire.  The log hook
 * makes every failed TCP login look like the guard's refusal (and, when
 * log_min_messages = panic keeps FATALs from it, the authentication hook
 * refuses failed authentications itself), so that the answer to a wrong
 * password says nothing about the allowlist.  A client that hangs up during
 * authentication is never counted, so bans do not tell the allowlist either.
 *
 * The hooks exist only when the library is preloaded.
 *
 * Settings are PGC_SIGHUP.  trading_guard.rules is parsed by its check hook
 * (src/conn_rules.c), once per reload in each process; backends inherit the
 * postmaster's parsed copy when they fork.  A malformed value is refused by
 * the check hook, so on reload the previous rules stay in force; at server
 * start there are no previous rules, so TCP connections are refused (reason
 * rules_invalid) until a valid value is loaded.  Neither fails open.
 *
 * Messages: the client sees only a generic refusal (SQLSTATE 28000); the
 * reason, the rule and the address go to the server log via errdetail_log.
 *
 * What is recorded and counted lives in src/conn_state.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <openssl/ssl.h>

#include "catalog/pg_authid.h"
#include "libpq/auth.h"
#include "libpq/hba.h"
#include "libpq/libpq-be.h"
#include "miscadmin.h"
#include "postmaster/postmaster.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "conn_guard.h"
#include "conn_rules.h"
#include "conn_state.h"
#include "shmem.h"

/* trading_guard.ssl_min_protocol: ordinals, so that "older" is "<" */
enum
{
	TG_TLS_UNKNOWN = 0,
	TG_TLS_V1,
	TG_TLS_V1_1,
	TG_TLS_V1_2,
	TG_TLS_V1_3
};

static const struct config_enum_entry policy_options[] = {
	{"off", TG_POLICY_OFF, false},
	{"log", TG_POLICY_LOG, false},
	{"enforce", TG_POLICY_ENFORCE, false},
	{NULL, 0, false}
};

static const struct config_enum_entry tls_options[] = {
	{"TLSv1", TG_TLS_V1, false},
	{"TLSv1.1", TG_TLS_V1_1, false},
	{"TLSv1.2", TG_TLS_V1_2, false},
	{"TLSv1.3", TG_TLS_V1_3, false},
	{NULL, 0, false}
};

/* GUCs */
static int	tg_connection_policy = TG_POLICY_ENFORCE;
static int	tg_ssl_min_protocol = TG_TLS_V1_2;
static bool tg_allow_local = true;
static char *tg_rules = NULL;
static int	tg_max_auth_failures = 5;
static int	tg_failure_window = 60;
static int	tg_ban_time = 600;

/* The parsed trading_guard.rules (the GUC's extra); never NULL once defined */
static TgRuleSet *current_rules = NULL;

/* True while _PG_init defines trading_guard.rules */
static bool defining_rules = false;

/* The value in force at server start was malformed and none has replaced it */
static bool rules_invalid = false;

/* Set just before our own FATAL, so that the log hook does not record it again */
static bool refusing = false;

/*
 * PostgreSQL logged that the client certificate failed pg_hba.conf's
 * clientcert=verify-full check; the FATAL that follows only names the
 * authentication method, so remember why.
 */
static bool cert_check_failed = false;

/*
 * The TLS handshake's ClientHello callback refused this connection (and
 * recorded it); the handshake failure PostgreSQL logs next is ours.
 */
static bool hello_refused = false;

static void refuse(Port *port, bool no_tls, const char *detail) pg_attribute_noreturn();

static ClientAuthentication_hook_type prev_client_auth_hook = NULL;
static openssl_tls_init_hook_typ prev_tls_init_hook = NULL;
static emit_log_hook_type prev_emit_log_hook = NULL;

static bool
rules_check(char **newval, void **extra, GucSource source)
{
	char	   *error = NULL;
	TgRuleSet  *set = tg_rules_parse(*newval, &error);

	if (set == NULL)
	{
		if (error == NULL)
		{
			GUC_check_errcode(ERRCODE_OUT_OF_MEMORY);
			GUC_check_errdetail("Out of memory while parsing the rules.");
		}
		else
			GUC_check_errdetail("%c%s.", pg_toupper((unsigned char) error[0]), error + 1);
		if (defining_rules)
			rules_invalid = true;
		return false;
	}
	*extra = set;
	return true;
}

static void
rules_assign(const char *newval, void *extra)
{
	current_rules = (TgRuleSet *) extra;
	rules_invalid = false;
}

static int
tls_ordinal(const char *version)
{
	if (version == NULL)
		return TG_TLS_UNKNOWN;
	if (strcmp(version, "TLSv1.3") == 0)
		return TG_TLS_V1_3;
	if (strcmp(version, "TLSv1.2") == 0)
		return TG_TLS_V1_2;
	if (strcmp(version, "TLSv1.1") == 0)
		return TG_TLS_V1_1;
	if (strcmp(version, "TLSv1") == 0)
		return TG_TLS_V1;
	return TG_TLS_UNKNOWN;
}

static const char *
tls_name(int ordinal)
{
	for (const struct config_enum_entry *e = tls_options; e->name; e++)
	{
		if (e->val == ordinal)
			return e->name;
	}
	return "?";
}

/* Does one of the rule's roles name this role (role may be InvalidOid)? */
static bool
rule_matches_role(const TgRuleSet *set, const TgConnRule *rule,
				  const char *user, Oid *roleid, bool *roleid_known)
{
	for (int i = 0; i < rule->nroles; i++)
	{
		const TgRoleRef *ref = &set->roles[rule->first_role + i];

		switch (ref->kind)
		{
			case TG_ROLE_ANY:
				return true;
			case TG_ROLE_NAME:
				if (strcmp(ref->name, user) == 0)
					return true;
				break;
			case TG_ROLE_GROUP:
				{
					Oid			groupid;

					if (!*roleid_known)
					{
						*roleid = get_role_oid(user, true);
						*roleid_known = true;
					}
					groupid = get_role_oid(ref->name, true);
					if (OidIsValid(*roleid) && OidIsValid(groupid) &&
						is_member_of_role_nosuper(*roleid, groupid))
						return true;
				}
				break;
		}
	}
	return false;
}

/*
 * Will PostgreSQL let this role log in once we let it through?  A role that
 * does not exist or lacks LOGIN is refused right after us (and that refusal
 * recorded by the log hook), so we do not record it as allowed first.
 */
static bool
role_can_login(const char *user)
{
	HeapTuple	tuple = SearchSysCache1(AUTHNAME, PointerGetDatum(user));
	bool		result;

	if (!HeapTupleIsValid(tuple))
		return false;
	result = ((Form_pg_authid) GETSTRUCT(tuple))->rolcanlogin;
	ReleaseSysCache(tuple);
	return result;
}

/* Fill in what the port says about the connection */
static void
describe_port(Port *port, TgConnAttempt *a)
{
	memset(a, 0, sizeof(*a));
	(void) tg_addr_from_sockaddr(&port->raddr.addr, &a->addr);
	a->role = port->user_name;
	a->database = port->database_name;
	a->application = port->application_name;
	a->tls = port->ssl_in_use;
	if (port->ssl_in_use)
	{
		a->ssl_version = be_tls_get_version(port);
		a->ssl_cipher = be_tls_get_cipher(port);
		a->client_cert = port->peer_cert_valid;
	}
}

/*
 * Decide about an authenticated connection.  Sets a->decision/reason/rule;
 * for a refusal, *detail says why (for the server log only).
 */
static void
decide(Port *port, TgConnAttempt *a, char **detail, bool *can_login)
{
	char		addrbuf[64];
	TimestampTz until;
	Oid			roleid = InvalidOid;
	bool		roleid_known = false;
	int			version;

	*detail = NULL;
	a->decision = TG_CONN_ALLOWED;
	tg_addr_format(&a->addr, addrbuf, sizeof(addrbuf));

	if (a->addr.family == 0)
	{
		a->reason = tg_allow_local ? TG_REASON_LOCAL : TG_REASON_LOCAL_NOT_ALLOWED;
		if (!tg_allow_local)
			*detail = psprintf("Unix-socket connections are refused (trading_guard.allow_local is off)");
	}
	else if (tg_conn_banned(&a->addr, &until))
	{
		a->reason = TG_REASON_BANNED;
		*detail = psprintf("address %s is banned until %s", addrbuf,
						   timestamptz_to_str(until));
	}
	else if (rules_invalid)
	{
		a->reason = TG_REASON_RULES_INVALID;
		*detail = psprintf("trading_guard.rules was malformed at server start; TCP connections are refused until a valid value is loaded");
	}
	else if (!port->ssl_in_use)
	{
		a->reason = TG_REASON_NO_TLS;
		*detail = psprintf("connection without TLS");
	}
	else if ((version = tls_ordinal(a->ssl_version)) < tg_ssl_min_protocol)
	{
		a->reason = TG_REASON_TLS_VERSION;
		*detail = psprintf("%s is older than trading_guard.ssl_min_protocol (%s)",
						   a->ssl_version ? a->ssl_version : "unknown TLS version",
						   tls_name(tg_ssl_min_protocol));
	}
	else if (current_rules == NULL || current_rules->nrules == 0)
		a->reason = TG_REASON_NO_ALLOWLIST;
	else
	{
		const TgRuleSet *set = current_rules;

		a->reason = TG_REASON_NO_MATCHING_RULE;
		for (int i = 0; i < set->nrules; i++)
		{
			const TgConnRule *rule = &set->rules[i];

			if (!tg_rule_matches_addr(set, rule, &a->addr) ||
				!rule_matches_role(set, rule, port->user_name, &roleid, &roleid_known))
				continue;
			a->rule = i + 1;
			if (rule->cert && !port->peer_cert_valid)
			{
				a->reason = TG_REASON_CLIENT_CERT_REQUIRED;
				*detail = psprintf("rule %d of trading_guard.rules requires a valid client certificate",
								   a->rule);
			}
			else
				a->reason = TG_REASON_RULE;
			break;
		}
		if (a->reason == TG_REASON_NO_MATCHING_RULE)
			*detail = psprintf("no rule of trading_guard.rules allows role \"%s\" from %s",
							   tg_conn_escape_name(port->user_name), addrbuf);
	}

	if (*detail != NULL)
		a->decision = tg_connection_policy == TG_POLICY_ENFORCE ?
			TG_CONN_REFUSED : TG_CONN_WOULD_REFUSE;

	*can_login = role_can_login(port->user_name);
}

/*
 * Refuse the connection now: FATAL, SQLSTATE 28000, "TLS is required ..."
 * for a plaintext connection and "connection refused" for everything else;
 * detail (what happened) and the client's names, escaped so that they
 * cannot forge log lines, go to the server log only.  Every refusal of the
 * hook is raised here, by one ereport, so that they are identical to the
 * byte (the protocol sends the source location too) even when the log hook
 * does not run to make them so.  Does not return.
 */
static void
refuse(Port *port, bool no_tls, const char *detail)
{
	char		addrbuf[64];
	TgAddr		addr;

	(void) tg_addr_from_sockaddr(&port->raddr.addr, &addr);
	tg_addr_format(&addr, addrbuf, sizeof(addrbuf));
	refusing = true;
	ereport(FATAL,
			(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
			 no_tls ? errmsg("TLS is required for connections to this server") :
			 errmsg("connection refused"),
			 errdetail_log("trading_guard: %s (role \"%s\", database \"%s\", address %s).",
						   detail, tg_conn_escape_name(port->user_name),
						   tg_conn_escape_name(port->database_name), addrbuf)));
}

/*
 * ClientAuthentication_hook: runs once authentication has succeeded or
 * failed, before PostgreSQL tells the client (SASLFinal, if any, has been
 * sent already).  A connection we would let in but whose authentication
 * failed is left to PostgreSQL, which reports the failure (recorded, and
 * made generic, by the log hook); one we refuse is refused alike whatever
 * its authentication's outcome.  A client that hung up during
 * authentication (STATUS_EOF: libpq does so when asked for a password it
 * does not have) is neither refused nor recorded, whatever we would decide:
 * PostgreSQL ends such a connection silently, and counting it only for
 * roles the allowlist refuses would let a client learn the allowlist from
 * when its address gets banned.
 */
static void
conn_client_auth(Port *port, int status)
{
	TgConnAttempt a;
	char	   *detail;
	char		addrbuf[64];
	bool		can_login;

	if (prev_client_auth_hook)
		prev_client_auth_hook(port, status);

	if (tg_connection_policy == TG_POLICY_OFF || status == STATUS_EOF)
		return;

	describe_port(port, &a);
	decide(port, &a, &detail, &can_login);

	if (status != STATUS_OK && a.decision != TG_CONN_REFUSED)
	{
		/*
		 * Authentication failed and we would let the connection through:
		 * PostgreSQL reports the failure, and the log hook records it and
		 * makes it look like our refusal.  PostgreSQL calls the log hook
		 * only for messages that reach the server log; with
		 * log_min_messages = panic its FATAL does not, so we refuse here
		 * instead (losing only PostgreSQL's log detail, which would not be
		 * logged either).
		 */
		if (tg_connection_policy != TG_POLICY_ENFORCE || a.addr.family == 0 ||
			log_min_messages < PANIC)
			return;
		a.decision = TG_CONN_REFUSED;
		a.reason = port->hba && (port->hba->auth_method == uaPassword ||
								 port->hba->auth_method == uaMD5 ||
								 port->hba->auth_method == uaSCRAM) ?
			TG_REASON_PASSWORD : TG_REASON_AUTH_FAILED;
		a.rule = 0;
		tg_conn_record(&a, tg_max_auth_failures, tg_failure_window, tg_ban_time);
		refuse(port, false, "PostgreSQL's authentication failed (log_min_messages = panic hides its message)");
	}

	/*
	 * We refuse a failed authentication the same way as a successful one: a
	 * banned or unlisted address, or a plaintext connection, must not learn
	 * whether the password was right.
	 */
	if (status != STATUS_OK)
		detail = psprintf("%s; authentication had failed too", detail);

	if (a.decision != TG_CONN_ALLOWED || can_login)
		tg_conn_record(&a, tg_max_auth_failures, tg_failure_window, tg_ban_time);

	if (detail == NULL)
		return;

	if (a.decision == TG_CONN_WOULD_REFUSE)
	{
		tg_addr_format(&a.addr, addrbuf, sizeof(addrbuf));
		ereport(LOG,
				(errmsg("trading_guard: connection would be refused: %s (role \"%s\", database \"%s\", address %s)",
						detail, tg_conn_escape_name(port->user_name),
						tg_conn_escape_name(port->database_name), addrbuf)));
		return;
	}
	refuse(port, a.reason == TG_REASON_NO_TLS, detail);
}

/*
 * OpenSSL's ClientHello callback: refuse a TLS connection from a banned
 * address, or from one that no rule of trading_guard.rules could admit
 * whatever the role, before any password is exchanged.  It runs in the new
 * backend, inside SSL_accept() called from ProcessStartupPacket(): MyProcPort
 * holds the client's address, the startup packet (role, database) has not
 * been read, there is no PGPROC, no transaction and no database, so it looks
 * only at shared memory (the ban table) and at the parsed rules, which the
 * backend inherited from the postmaster.  SIGTERM and authentication_timeout
 * end the process with _exit(1) there, which the postmaster does not treat
 * as a crash, so src/conn_state.c blocks them while it holds its spinlock.  Only with connection_policy =
 * enforce: log mode records what it would refuse after authentication.
 *
 * Refusing sends the client a TLS "access denied" alert; SSL_accept() fails
 * and PostgreSQL logs the failed handshake (COMMERROR), which conn_log_hook
 * then leaves alone, as the refusal is already recorded here.
 */
static int
conn_client_hello(SSL *ssl, int *alert, void *arg)
{
	TgConnAttempt a;
	TimestampTz until;
	char		addrbuf[64];
	char	   *detail;

	if (tg_connection_policy != TG_POLICY_ENFORCE || MyProcPort == NULL)
		return SSL_CLIENT_HELLO_SUCCESS;
	if (hello_refused)
	{
		/* a second ClientHello (after a HelloRetryRequest): same answer */
		*alert = SSL_AD_ACCESS_DENIED;
		return SSL_CLIENT_HELLO_ERROR;
	}

	memset(&a, 0, sizeof(a));
	if (!tg_addr_from_sockaddr(&MyProcPort->raddr.addr, &a.addr))
		return SSL_CLIENT_HELLO_SUCCESS;
	tg_addr_format(&a.addr, addrbuf, sizeof(addrbuf));

	if (tg_conn_banned(&a.addr, &until))
	{
		a.reason = TG_REASON_BANNED;
		detail = psprintf("address %s is banned until %s", addrbuf,
						  timestamptz_to_str(until));
	}
	else if (!rules_invalid && !tg_rules_admit_addr(current_rules, &a.addr))
	{
		a.reason = TG_REASON_NO_MATCHING_RULE;
		detail = psprintf("no rule of trading_guard.rules allows any role from %s",
						  addrbuf);
	}
	else
		return SSL_CLIENT_HELLO_SUCCESS;

	a.tls = true;
	a.decision = TG_CONN_REFUSED;
	hello_refused = true;
	tg_conn_record(&a, tg_max_auth_failures, tg_failure_window, tg_ban_time);
	ereport(LOG,
			(errmsg("trading_guard: connection refused in the TLS handshake"),
			 errdetail_log("trading_guard: %s (address %s).", detail, addrbuf)));
	pfree(detail);

	*alert = SSL_AD_ACCESS_DENIED;
	return SSL_CLIENT_HELLO_ERROR;
}

/*
 * openssl_tls_init_hook: called by be_tls_init() for each new SSL_CTX, in
 * the postmaster at start and at each reload (backends inherit the context
 * when they fork), before PostgreSQL loads the certificates into it.  Chain
 * to the previous hook (PostgreSQL's default sets the passphrase callback),
 * then install the ClientHello callback.
 */
static void
conn_tls_init(SSL_CTX *context, bool isServerStart)
{
	if (prev_tls_init_hook)
		prev_tls_init_hook(context, isServerStart);
	SSL_CTX_set_client_hello_cb(context, conn_client_hello, NULL);
}

/* Which refusal by PostgreSQL is this log message, if any? */
static bool
classify_refusal(const ErrorData *edata, TgConnReason *reason)
{
	const char *id = edata->message_id ? edata->message_id : "";

	if (edata->elevel == COMMERROR)
	{
		if (strncmp(id, "could not accept SSL connection", 31) != 0)
			return false;
		*reason = TG_REASON_TLS_HANDSHAKE;
		return true;
	}
	if (edata->sqlerrcode == ERRCODE_INVALID_PASSWORD)
		*reason = TG_REASON_PASSWORD;
	else if (edata->sqlerrcode != ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION)
		return false;
	else if (strncmp(id, "pg_hba.conf rejects", 19) == 0)
		*reason = TG_REASON_HBA_REJECT;
	else if (strncmp(id, "no pg_hba.conf entry", 20) == 0)
		*reason = TG_REASON_HBA_NO_ENTRY;
	else if (cert_check_failed || strstr(id, "certificate") != NULL)
		*reason = TG_REASON_CLIENT_CERT;
	else
		*reason = TG_REASON_AUTH_FAILED;
	return true;
}

/*
 * Is this process a client backend still setting up its connection: the
 * TLS handshake, the startup packet, authentication and the session's
 * start (the role looked up), until PostgresMain switches to normal
 * processing?  A FATAL there is a failed login; the same SQLSTATE raised
 * later in a session (exit_on_error, RAISE ... USING ERRCODE) is not.
 */
static bool
connection_starting(void)
{
	return MyProcPort != NULL && !IsNormalProcessingMode();
}

/*
 * Make a login failure look exactly like the guard's own refusal: SQLSTATE
 * 28000, "connection refused" (or our own message when it is our refusal),
 * no detail, hint or context for the client, and the same source location,
 * which the protocol sends too.  PostgreSQL's own message and log detail go
 * to the server log only (detail_log).  Allocates in ErrorContext, where
 * the error data lives.
 */
static void
make_generic(ErrorData *edata, bool ours)
{
	MemoryContext oldcontext = MemoryContextSwitchTo(ErrorContext);

	if (!ours)
	{
		const char *why = edata->detail_log ? edata->detail_log : edata->detail;

		edata->detail_log = psprintf("trading_guard: PostgreSQL refused the login: %s%s%s",
									 edata->message ? edata->message : "",
									 why ? ": " : "", why ? why : "");
		edata->message = pstrdup("connection refused");
	}
	edata->sqlerrcode = ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
	edata->detail = NULL;
	edata->hint = NULL;
	edata->context = NULL;
	edata->schema_name = edata->table_name = edata->column_name = NULL;
	edata->datatype_name = edata->constraint_name = NULL;
	edata->internalquery = NULL;
	edata->cursorpos = edata->internalpos = 0;
	edata->filename = "conn_guard.c";
	edata->lineno = 1;
	edata->funcname = "conn_client_auth";
	MemoryContextSwitchTo(oldcontext);
}

/*
 * emit_log_hook: record the connection attempts that PostgreSQL refuses
 * (pg_hba.conf, password, client certificate, TLS handshake, unknown role),
 * which never reach conn_client_auth, and, under connection_policy =
 * enforce, make every failed TCP login (ours or PostgreSQL's) look the
 * same to the client, so that a wrong password, an unknown role and a role
 * the allowlist refuses cannot be told apart.  Called for every message
 * this process logs, so it returns at once for anything but FATAL,
 * COMMERROR and the one LOG message it watches for; the previous hook runs
 * last and sees the rewritten message.
 */
static void
conn_log_hook(ErrorData *edata)
{
	TgConnReason reason;
	TgConnAttempt a;

	if (edata->elevel == LOG)
	{
		if (ClientAuthInProgress && edata->message_id &&
			strncmp(edata->message_id, "certificate validation (clientcert=verify-full) failed", 54) == 0)
			cert_check_failed = true;
	}
	else if ((edata->elevel == FATAL || edata->elevel == COMMERROR) &&
			 connection_starting() &&
			 tg_connection_policy != TG_POLICY_OFF && !hello_refused)
	{
		/* a login failure of PostgreSQL's own (ours is recorded already) */
		bool		failed = !refusing && classify_refusal(edata, &reason);

		if (failed)
		{
			describe_port(MyProcPort, &a);
			if (reason == TG_REASON_TLS_HANDSHAKE)
			{
				a.tls = true;	/* though ssl_in_use is not set */
				a.role = a.database = a.application = NULL; /* not read yet */
			}
			a.decision = TG_CONN_REFUSED;
			a.reason = reason;
			tg_conn_record(&a, tg_max_auth_failures, tg_failure_window, tg_ban_time);
		}

		if (edata->elevel == FATAL && (failed || refusing) &&
			tg_connection_policy == TG_POLICY_ENFORCE &&
			(MyProcPort->raddr.addr.ss_family == AF_INET ||
			 MyProcPort->raddr.addr.ss_family == AF_INET6))
			make_generic(edata, refusing);
	}

	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/*
 * Define the GUCs; when preloading, install the hooks and ask for shared
 * memory.
 */
void
tg_conn_guard_init(void)
{
	DefineCustomEnumVariable("trading_guard.connection_policy",
							 "What the connection guard does: off, log (record what would be refused) or enforce.",
							 NULL,
							 &tg_connection_policy,
							 TG_POLICY_ENFORCE,
							 policy_options,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);
	DefineCustomEnumVariable("trading_guard.ssl_min_protocol",
							 "Oldest TLS version accepted on TCP connections.",
							 NULL,
							 &tg_ssl_min_protocol,
							 TG_TLS_V1_2,
							 tls_options,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("trading_guard.allow_local",
							 "Whether Unix-socket connections are allowed.",
							 NULL,
							 &tg_allow_local,
							 true,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);

	defining_rules = true;
	DefineCustomStringVariable("trading_guard.rules",
							   "Allowlist of roles and client networks for TCP connections.",
							   "Rules separated by \";\", each \"roles networks [cert]\"; empty: no allowlist.",
							   &tg_rules,
							   "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   rules_check, rules_assign, NULL);
	defining_rules = false;

	DefineCustomIntVariable("trading_guard.max_auth_failures",
							"Failed or refused connection attempts from one address, within failure_window, above which it is banned (0: never ban).",
							NULL,
							&tg_max_auth_failures,
							5, 0, 1000000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("trading_guard.failure_window",
							"Time window in which failed connection attempts from one address are counted.",
							NULL,
							&tg_failure_window,
							60, 1, INT_MAX / 1000,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("trading_guard.ban_time",
							"How long a banned address stays banned.",
							NULL,
							&tg_ban_time,
							600, 1, INT_MAX / 1000,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	tg_conn_state_init();

	if (!process_shared_preload_libraries_in_progress)
		return;

	if (rules_invalid)
		ereport(LOG,
				(errmsg("trading_guard: trading_guard.rules is malformed; TCP connections will be refused until a valid value is loaded")));

	prev_client_auth_hook = ClientAuthentication_hook;
	ClientAuthentication_hook = conn_client_auth;
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = conn_log_hook;
	prev_tls_init_hook = openssl_tls_init_hook;
	openssl_tls_init_hook = conn_tls_init;
}
