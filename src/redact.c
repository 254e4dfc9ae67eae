/*-------------------------------------------------------------------------
 *
 * redact.c
 *	  Keeping exchange credentials out of the server log, pg_stat_activity
 *	  and pg_stat_statements: refusal of secrets written as literals in SQL
 *	  text, redaction of log messages about credential functions, and
 *	  mask_sensitive(jsonb) for applications.
 *
 * 1. trading_guard.reject_literal_secrets (PGC_SUSET, default on).  A
 *    post_parse_analyze_hook refuses (TG070) a call to
 *    trading_guard.store_credential() or trading_guard.rotate_credential()
 *    whose api_key or api_secret argument (the 3rd and 4th, in positional or
 *    named notation) is a non-NULL literal, also under casts and coercions of
 *    it.  A parameter ($1) is what we want; any other expression is let
 *    through.  This is a guard against accidents (a script, a psql session, a
 *    client library that interpolates), not against someone determined to
 *    put a secret in SQL text ('s' || 'ecret', a subquery, a PL/pgSQL
 *    variable filled from a literal, a BEGIN ATOMIC body, which is not parse
 *    analysed through the hook, all get through).  Parse analysis is reached
 *    for top-level statements, PREPARE, SQL and PL/pgSQL function bodies
 *    (when they are validated or run) and DO blocks, so a literal is refused
 *    in each of those.
 *
 *    EXECUTE of a prepared statement: EXECUTE p('key', 'secret') writes the
 *    secret in SQL text again, which pg_stat_activity shows while it runs and
 *    log_statement logs.  So when p's query passes one of its parameters to
 *    api_key or api_secret, the matching argument of EXECUTE must not be a
 *    literal either (TG070, with a detail naming the parameter).  EXECUTE
 *    p($1, $2) through the extended protocol is fine.
 *
 *    Whenever such a literal is found, refused or (setting off) accepted,
 *    pg_stat_activity is given the statement with its literals redacted, so
 *    that the idle session does not keep showing it; it showed the original
 *    between the start of the statement and its parse analysis.  (For an
 *    error before that, a syntax error say, the log hook does the same.)
 *
 *    Functions are identified by OID: the vault's functions are looked up
 *    by name in schema trading_guard once, and again after a syscache
 *    invalidation of pg_proc or pg_namespace; the analysed tree is walked
 *    without catalog access.  Utility statements whose expressions are
 *    analysed outside the hook (CREATE RULE, DEFAULT, CHECK, policies,
 *    function bodies, DO) have their text tokenised instead (see
 *    text_literal_secret); CALL's arguments are walked.
 *
 * 2. An emit_log_hook.  A report "involves credentials" when its statement
 *    (debug_query_string, printed on the STATEMENT line) was found to:
 *    parse analysis saw a call of one of the vault's functions (by OID,
 *    also as an operator's function), or one of them started running while
 *    it ran (fmgr_hook: wrappers, operators, dynamic SQL), both remembered
 *    by the hash of the statement's text; or when its error is TG070; or,
 *    the net for statements that fail before their names are resolved,
 *    when its text, message, detail, context or internal query names
 *    something like a credential function (names_credential: decoded
 *    identifiers, near misses), or it EXECUTEs a prepared statement that
 *    does.  Such a report is rewritten before it is
 *    written anywhere:
 *    - the SQL text in log_statement, log_min_duration_statement and
 *      extended-protocol lines ("statement: ...", "duration: ... ms
 *      statement: ...", "execute <unnamed>: ...", "parse", "bind") has every
 *      string literal ('...', E'...', B/X/N/U& forms, dollar-quoted)
 *      replaced by '<redacted>'; so has a "prepare: ..." detail and the
 *      internal query;
 *    - a detail carrying bind parameters ("parameters: $1 = ...") becomes
 *      "parameters: (redacted by trading_guard)", and the context line that
 *      log_parameter_max_length_on_error adds ("unnamed portal with
 *      parameters: ...", "portal "p" parameter $1 = ...") likewise;
 *    - the other texts (message, detail, hint, context) have their
 *      single-quoted or dollar-quoted parts redacted too ("syntax error at
 *      or near "'...'"", a context's SQL statement "..."); an apostrophe
 *      between two letters ("server's") is taken for one;
 *    - errors quote values (a data exception the literal or bind parameter
 *      it refused, current_setting() a revealed secret it was given as a
 *      name): every double-quoted part of the message, detail and hint of
 *      every report but TG070 becomes "<redacted>";
 *    - the STATEMENT line is suppressed (hide_stmt) and, when it would have
 *      been printed, the statement with its literals redacted is added to
 *      the server-only detail (detail_log) instead;
 *    - an ERROR gives pg_stat_activity the redacted statement too: one
 *      raised before parse analysis (a syntax error, an unknown function)
 *      left it there with its literals.
 *    Only then is the hook installed before ours called, so that other
 *    modules' hooks (log shippers) get the redacted report.
 *    The message, detail, hint, context and internal query are shared with
 *    the client, which therefore sees the redacted forms too: it knows its
 *    own literals, and client-side error logs are one leak fewer.
 *    Texts are scanned, not parsed: a stray apostrophe in message text (in
 *    a double-quoted identifier, or "int4'1'" in an SQL statement quoted by
 *    a context line) can shift which parts look quoted.  The parameter
 *    lines are recognised in English (lc_messages = C, as log analysers
 *    want anyway); translated ones are only covered by the literal
 *    redaction.
 *
 *    Memory: the hook runs inside EmitErrorReport, where an ERROR of our own
 *    would lose the report.  Every allocation is MCXT_ALLOC_NO_OOM in the
 *    report's assoc_context (ErrorContext), where elog.c's own strings live
 *    and from where FreeErrorDataContents() frees them; the strings we
 *    replace are pfree'd.  Without memory a text is cut, in place, before
 *    its first secret.  Nothing else here allocates or can fail.
 *
 * 3. mask_sensitive(jsonb): the document with the value of every sensitive
 *    object key, at any depth (objects in arrays in objects...), replaced by
 *    the string "********", whatever the value was (null, a number, an
 *    object).  A key is sensitive when, lower-cased (ASCII) and with every
 *    '-' and '_' removed, it is
 *        authorization or signature, or ends in
 *        apikey, secret, secretkey, password, passwd, passphrase, token,
 *        privatekey or accesskey
 *    which covers api_key, apiSecret, secret_key, password, passwd,
 *    passphrase, token, access_token, refresh_token, private_key,
 *    Authorization, signature, clientSecret, db_password, X-MBX-APIKEY,
 *    KC-API-PASSPHRASE, OK-ACCESS-KEY...  A document without any is
 *    returned as it came.  It is IMMUTABLE: a release that changes this
 *    list changes results, and an index or generated column built on it
 *    must then be rebuilt.
 *
 * The hooks are installed whenever the library is loaded: preloaded, for
 * every session; loaded on demand (without the vault, which needs
 * preloading), from then on in that session, which costs nothing and still
 * keeps a session's later statements out of the log.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "commands/prepare.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "nodes/nodeFuncs.h"
#include "parser/analyze.h"
#include "parser/parse_node.h"
#include "parser/parser.h"
#include "tcop/tcopprot.h"
#include "utils/backend_status.h"
#include "utils/catcache.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/syscache.h"

#include "redact.h"
#include "trading_guard.h"

/* GUC */
bool		tg_reject_literal_secrets = true;

static post_parse_analyze_hook_type prev_post_parse_analyze_hook = NULL;
static emit_log_hook_type prev_emit_log_hook = NULL;
static needs_fmgr_hook_type prev_needs_fmgr_hook = NULL;
static fmgr_hook_type prev_fmgr_hook = NULL;

/* What replaces a literal, a quoted value and bind parameters */
#define TG_REDACTED_LITERAL		"'<redacted>'"
#define TG_REDACTED_QUOTED		"\"<redacted>\""
#define TG_REDACTED_PARAMS		"(redacted by trading_guard)"

/* The arguments of store_credential() and rotate_credential() we guard, from 0 */
#define TG_ARG_API_KEY			2
#define TG_ARG_API_SECRET		3

/*
 * Functions whose calls make a statement's literals and parameters secret;
 * the first two take an API key and a secret (TG_ARG_API_KEY, _SECRET)
 */
#define TG_FN_STORE				0
#define TG_FN_ROTATE			1
static const char *const credential_functions[] = {
	"store_credential",
	"rotate_credential",
	"reveal_credential",
	"revoke_credential",
	"sign_request",
	"rekey",
	NULL
};

/*
 * Statement logging formats (ErrorData.message_id, never translated) whose
 * message ends in SQL text, so that it is scanned as SQL.  PostgreSQL 15's
 * postgres.c.
 */
static const char *const statement_log_formats[] = {
	"statement: %s",
	"duration: %s ms  statement: %s",
	"%s %s%s%s: %s",			/* execute [fetch from] <name>: (extended) */
	"duration: %s ms  %s %s%s%s: %s",
	"duration: %s ms  parse %s: %s",
	"duration: %s ms  bind %s%s%s: %s",
	"parse %s: %s",				/* DEBUG2 */
	NULL
};

/* ------------------------------------------------------------------------
 * A small SQL scanner: just enough to find string literals, words and
 * quoted identifiers, skipping comments.  It never allocates and never
 * fails; on malformed text (an unterminated literal) it errs on the side of
 * treating more as literal.
 * ------------------------------------------------------------------------
 */

#define TG_ASCII_LETTER(c) \
	(((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define TG_IDENT_START(c) \
	(((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z') || \
	 (c) == '_' || IS_HIGHBIT_SET(c))
#define TG_IDENT_CONT(c) \
	(TG_IDENT_START(c) || ((c) >= '0' && (c) <= '9') || (c) == '$')
#define TG_SPACE(c) \
	((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r' || \
	 (c) == '\f' || (c) == '\v')

typedef enum TgScanMode
{
	TG_SCAN_SQL,				/* SQL text: "..." is a quoted identifier */
	TG_SCAN_TEXT				/* message text: " is an ordinary character */
} TgScanMode;

typedef enum TgTokenKind
{
	TG_TOKEN_END,
	TG_TOKEN_LITERAL,			/* '..', E'..', B'..', X'..', N'..', U&'..', $t$..$t$ */
	TG_TOKEN_WORD,				/* keyword or unquoted identifier */
	TG_TOKEN_QUOTED_IDENT,		/* "..." (SQL mode only) */
	TG_TOKEN_OTHER				/* a number, an operator character... */
} TgTokenKind;

typedef struct TgToken
{
	TgTokenKind kind;
	size_t		start;			/* the token is s[start, end) */
	size_t		end;
	size_t		body_start;		/* a literal's or quoted identifier's text */
	size_t		body_end;
	bool		unicode;		/* a U&"..." identifier (SQL mode only) */
} TgToken;

/* Skip a (nested) block comment starting at s[i] = '/', s[i + 1] = '*' */
static size_t
skip_block_comment(const char *s, size_t len, size_t i)
{
	int			depth = 0;

	while (i < len)
	{
		if (s[i] == '/' && i + 1 < len && s[i + 1] == '*')
		{
			depth++;
			i += 2;
		}
		else if (s[i] == '*' && i + 1 < len && s[i + 1] == '/')
		{
			i += 2;
			if (--depth == 0)
				return i;
		}
		else
			i++;
	}
	return len;
}

/* Length of the dollar-quote tag ($$ or $tag$) at s[i] = '$', or 0 */
static size_t
dollar_tag_length(const char *s, size_t len, size_t i)
{
	size_t		j = i + 1;

	if (j < len && TG_IDENT_START((unsigned char) s[j]))
	{
		while (j < len && (TG_IDENT_START((unsigned char) s[j]) ||
						   (s[j] >= '0' && s[j] <= '9')))
			j++;
	}
	if (j < len && s[j] == '$')
		return j - i + 1;
	return 0;
}

/*
 * A quoted literal whose token starts at s[start] (a prefix letter or the
 * quote) and whose opening quote is s[quote].
 */
static void
scan_quoted_literal(const char *s, size_t len, size_t start, size_t quote,
					bool backslash_escapes, TgToken *tok)
{
	size_t		k = quote + 1;

	while (k < len)
	{
		if (s[k] == '\\' && backslash_escapes)
			k += 2;
		else if (s[k] == '\'')
		{
			if (k + 1 < len && s[k + 1] == '\'')
				k += 2;
			else
				break;
		}
		else
			k++;
	}
	tok->kind = TG_TOKEN_LITERAL;
	tok->start = start;
	tok->body_start = quote + 1;
	tok->body_end = Min(k, len);
	tok->end = k < len ? k + 1 : len;
}

/* A dollar-quoted literal whose opening tag s[start, start + taglen) */
static void
scan_dollar_literal(const char *s, size_t len, size_t start, size_t taglen,
					TgToken *tok)
{
	size_t		k;

	tok->kind = TG_TOKEN_LITERAL;
	tok->start = start;
	tok->body_start = start + taglen;
	for (k = start + taglen; k + taglen <= len; k++)
	{
		if (s[k] == '$' && memcmp(s + k, s + start, taglen) == 0)
		{
			tok->body_end = k;
			tok->end = k + taglen;
			return;
		}
	}
	tok->body_end = len;
	tok->end = len;
}

/* A quoted identifier whose token starts at s[start] and opening quote is s[quote] */
static void
scan_quoted_ident(const char *s, size_t len, size_t start, size_t quote,
				  TgToken *tok)
{
	size_t		k = quote + 1;

	while (k < len)
	{
		if (s[k] == '"')
		{
			if (k + 1 < len && s[k + 1] == '"')
			{
				k += 2;
				continue;
			}
			break;
		}
		k++;
	}
	tok->kind = TG_TOKEN_QUOTED_IDENT;
	tok->start = start;
	tok->body_start = quote + 1;
	tok->body_end = Min(k, len);
	tok->end = k < len ? k + 1 : len;
}

/*
 * The next token of s[0, len) at or after *pos, skipping white space and
 * comments; *pos moves past it.
 */
static void
next_token(const char *s, size_t len, size_t *pos, TgScanMode mode,
		   TgToken *tok)
{
	size_t		i = *pos;
	unsigned char c;

	while (i < len)
	{
		c = s[i];
		if (TG_SPACE(c))
			i++;
		else if (c == '-' && i + 1 < len && s[i + 1] == '-')
		{
			while (i < len && s[i] != '\n')
				i++;
		}
		else if (c == '/' && i + 1 < len && s[i + 1] == '*')
			i = skip_block_comment(s, len, i);
		else
			break;
	}

	tok->start = i;
	tok->unicode = false;
	if (i >= len)
	{
		tok->kind = TG_TOKEN_END;
		tok->end = tok->body_start = tok->body_end = len;
		*pos = len;
		return;
	}

	c = s[i];
	if (c == '\'' && mode == TG_SCAN_TEXT && i > 0 && i + 1 < len &&
		TG_ASCII_LETTER(s[i - 1]) && TG_ASCII_LETTER(s[i + 1]))
	{
		/* an apostrophe in a message ("server's", "can't") */
		tok->kind = TG_TOKEN_OTHER;
		tok->body_start = i;
		tok->body_end = tok->end = i + 1;
	}
	else if (c == '\'')
		scan_quoted_literal(s, len, i, i, !standard_conforming_strings, tok);
	else if (c == '$' && dollar_tag_length(s, len, i) > 0)
		scan_dollar_literal(s, len, i, dollar_tag_length(s, len, i), tok);
	else if (c == '"' && mode == TG_SCAN_SQL)
		scan_quoted_ident(s, len, i, i, tok);
	else if (TG_IDENT_START(c))
	{
		size_t		j = i + 1;

		while (j < len && TG_IDENT_CONT((unsigned char) s[j]))
			j++;
		/* E'...', B'...', X'...', N'...' and U&'...' are literals too */
		if (j == i + 1 && j < len && s[j] == '\'' && strchr("EeBbXxNn", c))
			scan_quoted_literal(s, len, i, j,
								c == 'E' || c == 'e' || !standard_conforming_strings,
								tok);
		else if (j == i + 1 && (c == 'U' || c == 'u') &&
				 j + 1 < len && s[j] == '&' && s[j + 1] == '\'')
			scan_quoted_literal(s, len, i, j + 1, false, tok);
		else if (j == i + 1 && (c == 'U' || c == 'u') && mode == TG_SCAN_SQL &&
				 j + 1 < len && s[j] == '&' && s[j + 1] == '"')
		{
			scan_quoted_ident(s, len, i, j + 1, tok);
			tok->unicode = true;
		}
		else
		{
			tok->kind = TG_TOKEN_WORD;
			tok->body_start = i;
			tok->body_end = tok->end = j;
		}
	}
	else if (c >= '0' && c <= '9')
	{
		/* a number, and whatever letters stick to it: never a prefix */
		size_t		j = i + 1;

		while (j < len && TG_IDENT_CONT((unsigned char) s[j]))
			j++;
		tok->kind = TG_TOKEN_OTHER;
		tok->body_start = i;
		tok->body_end = tok->end = j;
	}
	else
	{
		tok->kind = TG_TOKEN_OTHER;
		tok->body_start = i;
		tok->body_end = tok->end = i + 1;
	}
	*pos = tok->end;
}

/*
 * Does s[0, len) contain needle (lower case), ignoring ASCII case?  len < 0:
 * all of s.
 */
static bool
contains_ci_len(const char *s, int len, const char *needle)
{
	size_t		n = strlen(needle);
	const char *end;

	if (s == NULL)
		return false;
	end = len < 0 ? NULL : s + len;
	for (; *s && (end == NULL || s + n <= end); s++)
	{
		if (pg_ascii_tolower((unsigned char) *s) == needle[0] &&
			pg_strncasecmp(s, needle, n) == 0)
			return true;
	}
	return false;
}

#define contains_ci(s, needle)	contains_ci_len((s), -1, (needle))

/*
 * Identifiers as the parser sees them.  A name is matched after the
 * lexer's own decoding: unquoted words folded to lower case, "..." taken
 * as written ("" for "), U&"..." with its \XXXX and \+XXXXXX escapes (or
 * those of a UESCAPE clause) decoded.  Code points outside ASCII become
 * \x01, which no name of ours contains.  At most NAMEDATALEN - 1 bytes are
 * kept, as the parser truncates identifiers there.
 */
static size_t
decode_identifier(const char *body, size_t n, bool quoted, bool unicode,
				  char escape, char *buf)
{
	size_t		o = 0;

	for (size_t i = 0; i < n && o < NAMEDATALEN - 1; i++)
	{
		unsigned char c = body[i];

		if (quoted && c == '"')
		{
			buf[o++] = '"';
			i++;				/* "" stands for " */
		}
		else if (unicode && c == escape)
		{
			size_t		start = i + 1;
			int			digits = 4;
			pg_wchar	cp = 0;
			bool		ok = true;

			if (start < n && body[start] == escape)
			{
				buf[o++] = escape;
				i++;
				continue;
			}
			if (start < n && body[start] == '+')
			{
				start++;
				digits = 6;
			}
			if (start + digits > n)
				ok = false;
			for (int d = 0; ok && d < digits; d++)
			{
				char		h = body[start + d];

				if (h >= '0' && h <= '9')
					cp = cp * 16 + (h - '0');
				else if (h >= 'a' && h <= 'f')
					cp = cp * 16 + (h - 'a' + 10);
				else if (h >= 'A' && h <= 'F')
					cp = cp * 16 + (h - 'A' + 10);
				else
					ok = false;
			}
			if (!ok)
				buf[o++] = c;
			else
			{
				buf[o++] = (cp > 0 && cp < 0x80) ? (char) cp : '\x01';
				i = start + digits - 1;
			}
		}
		else
			buf[o++] = quoted ? c : pg_ascii_tolower(c);
	}
	buf[o] = '\0';
	return o;
}

/*
 * The escape character of a U&"..." identifier whose closing quote is just
 * before s: the one of a following UESCAPE 'c' clause, else backslash.
 */
static char
uescape_after(const char *s)
{
	while (TG_SPACE(*s))
		s++;
	if (pg_strncasecmp(s, "uescape", 7) != 0 || TG_IDENT_CONT((unsigned char) s[7]))
		return '\\';
	s += 7;
	while (TG_SPACE(*s))
		s++;
	if (s[0] == '\'' && s[1] != '\0' && s[2] == '\'')
		return s[1];
	return '\\';
}

/* The identifier a word or quoted identifier token of s stands for */
static size_t
token_identifier(const char *s, const TgToken *tok, char *buf)
{
	return decode_identifier(s + tok->body_start, tok->body_end - tok->body_start,
							 tok->kind == TG_TOKEN_QUOTED_IDENT, tok->unicode,
							 tok->unicode ? uescape_after(s + tok->end) : '\\',
							 buf);
}

/*
 * Is the optimal-string-alignment distance (insertions, deletions,
 * substitutions, transpositions of neighbours) between a[0, n) and
 * b[0, m) at most k?  n and m below NAMEDATALEN.  Gives up on a row whose
 * every cell is over k.
 */
static bool
within_distance(const char *a, int n, const char *b, int m, int k)
{
	int			d[3][NAMEDATALEN + 1];

	if (n - m > k || m - n > k || n >= NAMEDATALEN || m >= NAMEDATALEN)
		return false;
	for (int j = 0; j <= m; j++)
		d[0][j] = j;
	for (int i = 1; i <= n; i++)
	{
		int		   *cur = d[i % 3];
		int		   *prev = d[(i - 1) % 3];
		int		   *prev2 = d[(i - 2 + 3) % 3];
		int			rowmin;

		cur[0] = rowmin = i;
		for (int j = 1; j <= m; j++)
		{
			int			v = Min(prev[j], cur[j - 1]) + 1;

			v = Min(v, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
				v = Min(v, prev2[j - 2] + 1);
			cur[j] = v;
			rowmin = Min(rowmin, v);
		}
		if (rowmin > k)
			return false;
	}
	return d[n % 3][m] <= k;
}

/*
 * Does a decoded identifier look like one of the credential functions?
 * Its exact name; within two edits of a long name or one of "rekey" (a
 * typo: the call fails to resolve, and its literals are logged with the
 * error); or any identifier with "credential" in it.  Matching too much
 * only redacts more.
 */
static bool
ident_like_credential(const char *ident, size_t n)
{
	char		lower[NAMEDATALEN];

	if (n < 4)
		return false;
	for (size_t i = 0; i <= n; i++)
		lower[i] = pg_ascii_tolower((unsigned char) ident[i]);
	if (n >= 10 && strstr(lower, "credential") != NULL)
		return true;
	for (const char *const *f = credential_functions; *f; f++)
	{
		int			flen = strlen(*f);

		if (within_distance(lower, (int) n, *f, flen, flen >= 10 ? 2 : 1))
			return true;
	}
	return false;
}

/*
 * Does the text name something like a credential function (see
 * ident_like_credential)?  Looks at every word and every double-quoted or
 * U&"..." part of the whole text, inside literals and comments too (a DO
 * block's body is a literal), without skipping what it has looked at: a
 * superset of the identifiers the parser would see.  No allocation, linear
 * in the text.
 */
static bool
names_credential(const char *s)
{
	char		buf[NAMEDATALEN];

	if (s == NULL)
		return false;
	for (const char *p = s; *p; p++)
	{
		unsigned char c = *p;
		bool		unicode = (c == 'U' || c == 'u') && p[1] == '&' && p[2] == '"' &&
			(p == s || !TG_IDENT_CONT((unsigned char) p[-1]));

		if (c == '"' || unicode)
		{
			const char *open = unicode ? p + 2 : p;
			const char *close = open + 1;
			size_t		n;

			while (*close)
			{
				if (*close == '"')
				{
					if (close[1] != '"')
						break;
					close++;
				}
				close++;
			}
			if (*close != '"')
				continue;
			n = decode_identifier(open + 1, close - open - 1, true, unicode,
								  unicode ? uescape_after(close + 1) : '\\', buf);
			if (ident_like_credential(buf, n))
				return true;
			/* the words inside are looked at too: the quotes may pair wrongly */
		}
		else if (TG_IDENT_START(c) &&
				 (p == s || !TG_IDENT_CONT((unsigned char) p[-1])))
		{
			const char *q = p;

			while (TG_IDENT_CONT((unsigned char) *q))
				q++;
			if (ident_like_credential(buf, decode_identifier(p, q - p, false, false,
															 '\\', buf)))
				return true;
			p = q - 1;
		}
	}
	return false;
}

/* ------------------------------------------------------------------------
 * Statements known to involve credentials, by the text of the statement
 * ------------------------------------------------------------------------
 *
 * The log hook can neither resolve names nor look at a parse tree, and the
 * lines about a statement come at different times: log_statement's before
 * parse analysis, auto_explain's and log_min_duration_statement's after
 * execution, an error's whenever.  So what parse analysis and execution
 * learn about a statement is remembered by a 64-bit hash of its text
 * (debug_query_string, the same for the Parse, Bind and Execute messages
 * of a prepared statement and for every statement a function runs under a
 * top-level one), in a ring of the last TG_INVOLVED_TEXTS such texts of
 * this backend.  A collision or a text remembered too long only redacts
 * more.
 */
#define TG_INVOLVED_TEXTS	128

static uint64 involved_texts[TG_INVOLVED_TEXTS];
static int	involved_count = 0;
static int	involved_next = 0;

/* the text last noted, and when its statement started: notes once per statement */
static const char *noted_text = NULL;
static TimestampTz noted_at = 0;

static uint64
text_hash(const char *s)
{
	return hash_bytes_extended((const unsigned char *) s, strlen(s), 0);
}

/* Has this text been found to involve credentials?  No allocation. */
static bool
text_involved(const char *s)
{
	uint64		h;

	if (s == NULL || involved_count == 0)
		return false;
	h = text_hash(s);
	for (int i = 0; i < involved_count; i++)
	{
		if (involved_texts[i] == h)
			return true;
	}
	return false;
}

static void report_redacted_activity(void);

/*
 * Remember that the statement running now (debug_query_string) involves
 * credentials, and show it with its literals redacted in pg_stat_activity.
 * Cheap when called again for the same statement (once per row of a query
 * that signs every row): returns true only the first time.  The caller
 * must be in a transaction (pg_stat_activity's copy is allocated).
 */
static bool
note_statement_involved(void)
{
	const char *s = debug_query_string;
	TimestampTz now;

	if (s == NULL)
		return false;
	now = GetCurrentStatementStartTimestamp();
	if (s == noted_text && now == noted_at)
		return false;
	if (!text_involved(s))
	{
		involved_texts[involved_next] = text_hash(s);
		involved_next = (involved_next + 1) % TG_INVOLVED_TEXTS;
		if (involved_count < TG_INVOLVED_TEXTS)
			involved_count++;
	}
	noted_text = s;
	noted_at = now;
	report_redacted_activity();
	return true;
}

/*
 * Does the SQL text EXECUTE a prepared statement that involves credentials?
 * Any top-level "EXECUTE name" counts (also after EXPLAIN or CREATE TABLE
 * ... AS).  Looks prepared statements up in this backend's table without
 * allocating (FetchPreparedStatement with no error).
 */
static bool
executes_credential_statement(const char *s)
{
	size_t		len;
	size_t		pos = 0;
	TgToken		tok;

	if (s == NULL || !contains_ci(s, "execute"))
		return false;
	len = strlen(s);
	for (;;)
	{
		next_token(s, len, &pos, TG_SCAN_SQL, &tok);
		if (tok.kind == TG_TOKEN_END)
			return false;
		if (tok.kind == TG_TOKEN_WORD && tok.end - tok.start == 7 &&
			pg_strncasecmp(s + tok.start, "execute", 7) == 0)
		{
			TgToken		name;
			size_t		after = pos;
			char		buf[NAMEDATALEN];
			PreparedStatement *ps;

			next_token(s, len, &after, TG_SCAN_SQL, &name);
			if (name.kind != TG_TOKEN_WORD && name.kind != TG_TOKEN_QUOTED_IDENT)
				continue;
			token_identifier(s, &name, buf);
			ps = FetchPreparedStatement(buf, false);
			if (ps != NULL && ps->plansource != NULL &&
				(names_credential(ps->plansource->query_string) ||
				 text_involved(ps->plansource->query_string)))
				return true;
		}
	}
}

/*
 * The next part of s[0, len) to redact at or after *pos: a literal or, in
 * text mode with quoted set, a double-quoted part.  Sets [*start, *end) and
 * what replaces it.
 */
static bool
next_secret(const char *s, size_t len, size_t *pos, TgScanMode mode,
			bool quoted, size_t *start, size_t *end,
			const char **replacement)
{
	TgToken		tok;

	for (;;)
	{
		next_token(s, len, pos, mode, &tok);
		if (tok.kind == TG_TOKEN_END)
			return false;
		if (tok.kind == TG_TOKEN_LITERAL)
		{
			*start = tok.start;
			*end = tok.end;
			*replacement = TG_REDACTED_LITERAL;
			return true;
		}
		if (quoted && tok.kind == TG_TOKEN_OTHER && s[tok.start] == '"')
		{
			const char *close = memchr(s + tok.end, '"', len - tok.end);

			if (close != NULL && close > s + tok.end)
			{
				*start = tok.start;
				*end = *pos = close - s + 1;
				*replacement = TG_REDACTED_QUOTED;
				return true;
			}
		}
	}
}

typedef enum TgRedactResult
{
	TG_NOTHING_TO_REDACT,
	TG_REDACTED,
	TG_OUT_OF_MEMORY
} TgRedactResult;

/*
 * A copy of src, allocated in cxt (no error if out of memory), with every
 * secret part (next_secret) replaced.  *first is where the first one starts.
 * If charpos is given, the 1-based character position into src it points to
 * is moved to the same place in the copy (onto the replacement, when it was
 * inside a replaced part).
 */
static TgRedactResult
redact_string(const char *src, TgScanMode mode, bool quoted,
			  MemoryContext cxt, char **out, size_t *first, int *charpos)
{
	int			newpos = charpos ? *charpos : 0;
	bool		placed = (charpos == NULL || *charpos <= 0);
	size_t		len = strlen(src);
	size_t		pos = 0;
	size_t		last = 0;
	size_t		outlen = 0;
	size_t		start,
				end;
	const char *rep;
	int			found = 0;
	char	   *buf;
	char	   *w;

	*out = NULL;
	while (next_secret(src, len, &pos, mode, quoted, &start, &end, &rep))
	{
		if (found++ == 0)
			*first = start;
		outlen += (start - last) + strlen(rep);
		last = end;
		if (!placed)
		{
			int			from = pg_mbstrlen_with_len(src, start) + 1;
			int			chars = pg_mbstrlen_with_len(src + start, end - start);

			if (*charpos >= from + chars)
				newpos += (int) strlen(rep) - chars;
			else
			{
				if (*charpos >= from)
					newpos = newpos - *charpos + from;
				placed = true;
			}
		}
	}
	if (found == 0)
		return TG_NOTHING_TO_REDACT;
	outlen += len - last;
	if (outlen >= MaxAllocSize)
		return TG_OUT_OF_MEMORY;
	buf = MemoryContextAllocExtended(cxt, outlen + 1, MCXT_ALLOC_NO_OOM);
	if (buf == NULL)
		return TG_OUT_OF_MEMORY;

	/* the same scan again, copying this time */
	w = buf;
	pos = last = 0;
	while (next_secret(src, len, &pos, mode, quoted, &start, &end, &rep))
	{
		memcpy(w, src + last, start - last);
		w += start - last;
		memcpy(w, rep, strlen(rep));
		w += strlen(rep);
		last = end;
	}
	memcpy(w, src + last, len - last);
	w += len - last;
	*w = '\0';
	Assert(w == buf + outlen);
	*out = buf;
	if (charpos)
		*charpos = newpos;
	return TG_REDACTED;
}

/*
 * Redact one palloc'd text of a report in place of the old one.  Without
 * memory, cut the text before its first secret instead.
 */
static void
redact_field(char **field, TgScanMode mode, bool quoted,
			 MemoryContext cxt, int *charpos)
{
	char	   *out;
	size_t		first = 0;

	if (*field == NULL)
		return;
	switch (redact_string(*field, mode, quoted, cxt, &out, &first, charpos))
	{
		case TG_NOTHING_TO_REDACT:
			break;
		case TG_REDACTED:
			pfree(*field);
			*field = out;
			break;
		case TG_OUT_OF_MEMORY:
			(*field)[first] = '\0';
			break;
	}
}

/*
 * Replace the text from field[keep] on by TG_REDACTED_PARAMS; without
 * memory, just cut it there.
 */
static void
replace_tail(char **field, size_t keep, MemoryContext cxt)
{
	size_t		n = strlen(TG_REDACTED_PARAMS);
	char	   *out = MemoryContextAllocExtended(cxt, keep + n + 1, MCXT_ALLOC_NO_OOM);

	if (out == NULL)
	{
		(*field)[keep] = '\0';
		return;
	}
	memcpy(out, *field, keep);
	memcpy(out + keep, TG_REDACTED_PARAMS, n + 1);
	pfree(*field);
	*field = out;
}

/* A detail: bind parameters are replaced, a "prepare: " statement is SQL */
static void
redact_detail(char **detail, bool quoted, MemoryContext cxt)
{
	if (*detail == NULL)
		return;
	/* "parameters: %s" (15), "Parameters: %s" (16 and later) */
	if (pg_strncasecmp(*detail, "parameters: ", 12) == 0)
		replace_tail(detail, 12, cxt);
	else if (strncmp(*detail, "prepare: ", 9) == 0)
		redact_field(detail, TG_SCAN_SQL, false, cxt, NULL);
	else
		redact_field(detail, TG_SCAN_TEXT, quoted, cxt, NULL);
}

/*
 * The context: the lines log_parameter_max_length_on_error adds about a
 * portal's parameters come from the outermost callbacks, so they and all
 * that follows them are replaced; the rest is redacted as text.
 */
static void
redact_context(char **context, MemoryContext cxt)
{
	char	   *ctx = *context;
	char	   *line;
	size_t		keep = 0;
	bool		params = false;

	if (ctx == NULL)
		return;
	for (line = ctx; *line; line++)
	{
		size_t		linelen;

		if (line != ctx && line[-1] != '\n')
			continue;
		if (strncmp(line, "unnamed portal ", 15) != 0 &&
			strncmp(line, "portal \"", 8) != 0)
			continue;

		/* keep the line up to the first marker: values follow it */
		linelen = strcspn(line, "\n");
		keep = line - ctx + linelen;
		for (size_t i = 0; i < linelen; i++)
		{
			if (strncmp(line + i, " with parameters: ", 18) == 0)
			{
				keep = line - ctx + i + 18;
				break;
			}
			if (strncmp(line + i, " = ", 3) == 0)
			{
				keep = line - ctx + i + 3;
				break;
			}
		}
		params = true;
		break;
	}

	if (!params)
	{
		redact_field(context, TG_SCAN_TEXT, false, cxt, NULL);
		return;
	}
	/* the parameters go first, so that they are gone whatever happens next */
	ctx[keep] = '\0';
	redact_field(context, TG_SCAN_TEXT, false, cxt, NULL);
	replace_tail(context, strlen(*context), cxt);
}

/*
 * Would elog.c print the STATEMENT line for this report?  As its
 * check_log_of_query() and is_log_level_output() decide.
 */
static bool
statement_would_be_logged(const ErrorData *edata)
{
	int			elevel = edata->elevel;

	if (edata->hide_stmt || debug_query_string == NULL)
		return false;
	if (elevel == LOG || elevel == LOG_SERVER_ONLY)
		return log_min_error_statement == LOG || log_min_error_statement <= ERROR;
	if (elevel == WARNING_CLIENT_ONLY)
		return false;
	if (log_min_error_statement == LOG)
		return elevel >= FATAL;
	return elevel >= log_min_error_statement;
}

/*
 * Add the statement (stmt: redacted, or NULL if it had no literal) to the
 * server-only detail, where the suppressed STATEMENT line would have shown
 * it.
 */
static void
keep_redacted_statement(ErrorData *edata, const char *stmt, MemoryContext cxt)
{
	static const char label[] = "statement (literals redacted): ";
	const char *detail = edata->detail_log ? edata->detail_log : edata->detail;
	size_t		dlen = detail ? strlen(detail) + 1 : 0;
	size_t		slen;
	char	   *out;

	if (stmt == NULL)
		stmt = debug_query_string;
	slen = strlen(stmt);
	if (dlen + sizeof(label) + slen >= MaxAllocSize)
		return;
	out = MemoryContextAllocExtended(cxt, dlen + sizeof(label) + slen,
									 MCXT_ALLOC_NO_OOM);
	if (out == NULL)
		return;
	if (detail)
	{
		memcpy(out, detail, dlen - 1);
		out[dlen - 1] = '\n';
	}
	memcpy(out + dlen, label, sizeof(label) - 1);
	memcpy(out + dlen + sizeof(label) - 1, stmt, slen + 1);
	if (edata->detail_log)
		pfree(edata->detail_log);
	edata->detail_log = out;
}

static bool
is_statement_log(const char *message_id)
{
	if (message_id == NULL)
		return false;
	for (const char *const *f = statement_log_formats; *f; f++)
	{
		if (strcmp(message_id, *f) == 0)
			return true;
	}
	return false;
}

/*
 * Was the report raised by src/keyring.c?  elog.c keeps only the base name
 * of the file; PostgreSQL has no file of that name.
 */
static bool
raised_by_key_ring(const ErrorData *edata)
{
	return edata->filename != NULL && strcmp(edata->filename, "keyring.c") == 0;
}

/*
 * Rewrite a report that involves credential functions (see the file
 * header).  Called for every report this process writes to the server log,
 * so the tests that let the others through come first; none of them
 * allocates.
 */
static void
redact_report(ErrorData *edata)
{
	bool		sql_message;
	bool		statement_involved;
	bool		quoted;
	MemoryContext cxt;

	sql_message = is_statement_log(edata->message_id);

	/*
	 * TG070 names a guarded call however its text was written; a text
	 * parse analysis or execution found to involve credentials was noted;
	 * the text path is the net for the rest (a statement that failed before
	 * parse analysis resolved its names: a syntax error, a typo).
	 */
	statement_involved = edata->sqlerrcode == ERRCODE_TG_LITERAL_SECRET ||
		text_involved(debug_query_string) ||
		names_credential(debug_query_string) ||
		executes_credential_statement(debug_query_string);
	if (!statement_involved &&
		!names_credential(edata->message) &&
		!(sql_message && (executes_credential_statement(edata->message) ||
						  text_involved(edata->message))) &&
		!names_credential(edata->detail) &&
		!names_credential(edata->detail_log) &&
		!names_credential(edata->context) &&
		!names_credential(edata->internalquery))
		return;

	cxt = edata->assoc_context ? edata->assoc_context : ErrorContext;

	/*
	 * Every double-quoted part of the message, detail and hint, whatever the
	 * SQLSTATE: data exceptions quote the value they refused ("invalid input
	 * syntax for type interval: "...""), and so do others
	 * (current_setting(reveal_credential(...)): unrecognized configuration
	 * parameter "..."), which may be a literal, a bind parameter or a
	 * revealed secret.  The vault's own messages (an unknown environment)
	 * are redacted too: an argument given in the wrong place may be a
	 * secret.  Not TG070, which quotes only a prepared statement's name,
	 * nor the key ring's reports, which quote key file paths and commands
	 * (superuser-only settings, never an SQL argument) that whoever fixes
	 * the key source needs to see.
	 */
	quoted = edata->sqlerrcode != ERRCODE_TG_LITERAL_SECRET &&
		!raised_by_key_ring(edata);

	if (sql_message)
		redact_field(&edata->message, TG_SCAN_SQL, false, cxt, NULL);
	else
		redact_field(&edata->message, TG_SCAN_TEXT, quoted, cxt, NULL);
	redact_detail(&edata->detail, quoted, cxt);
	redact_detail(&edata->detail_log, quoted, cxt);
	redact_field(&edata->hint, TG_SCAN_TEXT, quoted, cxt, NULL);
	redact_context(&edata->context, cxt);
	redact_field(&edata->internalquery, TG_SCAN_SQL, false, cxt,
				 &edata->internalpos);

	if (statement_involved)
	{
		bool		logged = statement_would_be_logged(edata);
		char	   *stmt = NULL;
		size_t		first;
		TgRedactResult r = TG_NOTHING_TO_REDACT;

		if (logged || edata->elevel == ERROR)
			r = redact_string(debug_query_string, TG_SCAN_SQL, false, cxt,
							  &stmt, &first, NULL);
		if (logged && r != TG_OUT_OF_MEMORY)
			keep_redacted_statement(edata, stmt, cxt);
		edata->hide_stmt = true;

		/*
		 * An error before parse analysis (a syntax error, an unknown
		 * function) or during it left the statement with its literals in
		 * pg_stat_activity, where the idle session would keep showing it:
		 * redact it there.  pgstat_report_activity() neither allocates nor
		 * fails.
		 */
		if (edata->elevel == ERROR && r != TG_NOTHING_TO_REDACT)
			pgstat_report_activity(STATE_RUNNING, stmt ? stmt : "<redacted>");
		if (stmt)
			pfree(stmt);
	}
}

/*
 * emit_log_hook: redact first, then hand the report to the hook installed
 * before ours, so that other modules' hooks (log shippers) see it redacted
 * too.  A hook installed after ours (by a library later in
 * shared_preload_libraries) is called before ours: it sees the report
 * redacted only if it calls ours before it looks.
 */
static void
redact_emit_log(ErrorData *edata)
{
	redact_report(edata);
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/* ------------------------------------------------------------------------
 * Literal secrets in SQL text (trading_guard.reject_literal_secrets)
 * ------------------------------------------------------------------------
 */

/* An EXECUTE: a parameter of the prepared statement that is a guarded argument */
typedef struct TgParamUse
{
	int			paramid;
	const char *function;
	int			argno;
} TgParamUse;

typedef struct TgSecretSearch
{
	const char *sourcetext;		/* this statement's text */
	int			sourcelen;		/* its length */
	int			base;			/* where it starts in the parser's text */
	bool		collect_params; /* walking a prepared statement for EXECUTE */
	List	   *params;			/* of TgParamUse, when collect_params */

	/* a credential function is called (or, utility statements, named) */
	bool		involved;
	/* the literal is in a utility statement that may keep it (a rule...) */
	bool		utility;

	/* the first literal found */
	bool		found;
	const char *function;
	int			argno;
	int			location;
	const char *prepared;		/* EXECUTE: the prepared statement's name */
	int			paramid;		/* EXECUTE: its parameter */
} TgSecretSearch;

/*
 * The vault's functions, by OID: looked up by name in schema trading_guard
 * when first needed and again after any change to pg_proc or
 * pg_namespace (a syscache callback; the extension dropped and created
 * again, its schema renamed).  Index into credential_functions.
 */
#define TG_MAX_CREDENTIAL_OIDS	32

typedef struct TgCredentialOid
{
	Oid			oid;
	int			function;		/* index into credential_functions */
} TgCredentialOid;

static TgCredentialOid credential_oids[TG_MAX_CREDENTIAL_OIDS];
static int	n_credential_oids = 0;
static bool credential_oids_valid = false;
static bool credential_oids_callbacks = false;

/* syscache callback: pg_proc or pg_namespace changed */
static void
credential_oids_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	credential_oids_valid = false;
}

/*
 * Look the vault's functions up again if anything changed since the last
 * time.  The caller must be in a valid transaction; catalog lookups only
 * after an invalidation.  An invalidation that arrives during the lookup
 * makes the next call look again.
 */
static void
credential_oids_refresh(void)
{
	TgCredentialOid found[TG_MAX_CREDENTIAL_OIDS];
	int			n = 0;
	Oid			nsp;

	if (credential_oids_valid || !IsTransactionState())
		return;
	if (!credential_oids_callbacks)
	{
		CacheRegisterSyscacheCallback(PROCOID, credential_oids_invalidate, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACEOID, credential_oids_invalidate, (Datum) 0);
		credential_oids_callbacks = true;
	}
	credential_oids_valid = true;

	nsp = get_namespace_oid("trading_guard", true);
	for (int f = 0; OidIsValid(nsp) && credential_functions[f]; f++)
	{
		CatCList   *list = SearchSysCacheList1(PROCNAMEARGSNSP,
											   CStringGetDatum(credential_functions[f]));

		for (int i = 0; i < list->n_members; i++)
		{
			Form_pg_proc proc = (Form_pg_proc) GETSTRUCT(&list->members[i]->tuple);

			if (proc->pronamespace == nsp && n < TG_MAX_CREDENTIAL_OIDS)
			{
				found[n].oid = proc->oid;
				found[n].function = f;
				n++;
			}
		}
		ReleaseSysCacheList(list);
	}
	memcpy(credential_oids, found, n * sizeof(TgCredentialOid));
	n_credential_oids = n;
}

/*
 * Which credential function (index into credential_functions) the OID is,
 * or -1.  Uses the OIDs as last looked up: no catalog access, so that it
 * can be called anywhere (from needs_fmgr_hook).
 */
static int
credential_function_index(Oid oid)
{
	for (int i = 0; i < n_credential_oids; i++)
	{
		if (credential_oids[i].oid == oid)
			return credential_oids[i].function;
	}
	return -1;
}

/*
 * needs_fmgr_hook: the vault's functions go through fmgr_hook.  They are
 * SECURITY DEFINER, so they were called through fmgr_security_definer
 * anyway: this costs one more indirect call per call.
 */
static bool
redact_needs_fmgr_hook(Oid fn_oid)
{
	if (prev_needs_fmgr_hook && prev_needs_fmgr_hook(fn_oid))
		return true;
	return credential_function_index(fn_oid) >= 0;
}

/*
 * fmgr_hook: a credential function starts, however it was reached (an
 * application's wrapper function, an operator, a cast, dynamic SQL): the
 * statement running now involves credentials, and so do its later log
 * lines (auto_explain, log_min_duration_statement, an error) and those of
 * any later run of the same text; pg_stat_activity shows it redacted from
 * now on.
 */
static void
redact_fmgr_hook(FmgrHookEventType event, FmgrInfo *flinfo, Datum *private)
{
	if (prev_fmgr_hook)
		prev_fmgr_hook(event, flinfo, private);
	if (event == FHET_START && credential_function_index(flinfo->fn_oid) >= 0)
		note_statement_involved();
}

/* What is under the casts, coercions and collations of an argument */
static Node *
strip_coercions(Node *node)
{
	for (;;)
	{
		if (node == NULL)
			return NULL;
		if (IsA(node, RelabelType))
			node = (Node *) ((RelabelType *) node)->arg;
		else if (IsA(node, CoerceViaIO))
			node = (Node *) ((CoerceViaIO *) node)->arg;
		else if (IsA(node, CoerceToDomain))
			node = (Node *) ((CoerceToDomain *) node)->arg;
		else if (IsA(node, CollateExpr))
			node = (Node *) ((CollateExpr *) node)->arg;
		else if (IsA(node, FuncExpr) &&
				 (((FuncExpr *) node)->funcformat == COERCE_IMPLICIT_CAST ||
				  ((FuncExpr *) node)->funcformat == COERCE_EXPLICIT_CAST) &&
				 ((FuncExpr *) node)->args != NIL)
			node = (Node *) linitial(((FuncExpr *) node)->args);
		else
			return node;
	}
}

/*
 * A call of store_credential() or rotate_credential(): is its api_key or
 * api_secret a literal?  (Or, for EXECUTE, which parameters are they?)
 * Named arguments are still NamedArgExpr nodes in the order written after
 * parse analysis (the planner reorders them), so go by their argnumber.
 */
static bool
check_credential_call(FuncExpr *func, TgSecretSearch *search)
{
	const char *function;
	ListCell   *lc;
	int			argno = 0;
	int			f = credential_function_index(func->funcid);

	if (f < 0)
		return false;
	search->involved = true;
	if (f != TG_FN_STORE && f != TG_FN_ROTATE)
		return false;
	function = credential_functions[f];

	foreach(lc, func->args)
	{
		Node	   *arg = (Node *) lfirst(lc);
		int			position = argno++;
		Node	   *value;

		if (IsA(arg, NamedArgExpr))
		{
			position = ((NamedArgExpr *) arg)->argnumber;
			arg = (Node *) ((NamedArgExpr *) arg)->arg;
		}
		if (position != TG_ARG_API_KEY && position != TG_ARG_API_SECRET)
			continue;
		value = strip_coercions(arg);

		if (search->collect_params)
		{
			if (value != NULL && IsA(value, Param) &&
				((Param *) value)->paramkind == PARAM_EXTERN)
			{
				TgParamUse *use = palloc(sizeof(TgParamUse));

				use->paramid = ((Param *) value)->paramid;
				use->function = function;
				use->argno = position;
				search->params = lappend(search->params, use);
			}
		}
		else if (value != NULL && IsA(value, Const) &&
				 !((Const *) value)->constisnull)
		{
			search->found = true;
			search->function = function;
			search->argno = position;
			search->location = exprLocation(value) >= 0 ?
				exprLocation(value) : exprLocation((Node *) lfirst(lc));
			return true;
		}
	}
	return false;
}

/*
 * Walk an analysed tree: calls of credential functions, directly or as the
 * function of an operator (set by parse analysis), make the statement
 * involved; stops at the first literal secret.  No catalog access.
 */
static bool
secret_walker(Node *node, TgSecretSearch *search)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, secret_walker, (void *) search, 0);
	if (IsA(node, FuncExpr) && check_credential_call((FuncExpr *) node, search))
		return true;
	if ((IsA(node, OpExpr) || IsA(node, DistinctExpr) || IsA(node, NullIfExpr)) &&
		credential_function_index(((OpExpr *) node)->opfuncid) >= 0)
		search->involved = true;
	if (IsA(node, ScalarArrayOpExpr) &&
		credential_function_index(((ScalarArrayOpExpr *) node)->opfuncid) >= 0)
		search->involved = true;
	return expression_tree_walker(node, secret_walker, (void *) search);
}

/* Is a raw (not yet analysed) EXECUTE argument a non-NULL literal? */
static bool
raw_is_literal(Node *node)
{
	for (;;)
	{
		if (node == NULL)
			return false;
		if (IsA(node, A_Const))
			return !((A_Const *) node)->isnull;
		if (IsA(node, TypeCast))
			node = ((TypeCast *) node)->arg;
		else if (IsA(node, CollateClause))
			node = ((CollateClause *) node)->arg;
		else
			return false;
	}
}

/*
 * EXECUTE name(args): which of the prepared statement's parameters go to a
 * guarded argument, and is EXECUTE's argument for one of them a literal?
 */
static void
search_execute(ExecuteStmt *stmt, TgSecretSearch *search)
{
	PreparedStatement *ps = FetchPreparedStatement(stmt->name, false);
	ListCell   *lc;

	if (ps == NULL || ps->plansource == NULL || n_credential_oids == 0)
		return;

	/*
	 * The analysed query trees; they stay in place when the statement is
	 * invalidated, until EXECUTE revalidates it (after us).
	 */
	search->collect_params = true;
	foreach(lc, ps->plansource->query_list)
		(void) secret_walker((Node *) lfirst(lc), search);
	search->collect_params = false;

	foreach(lc, search->params)
	{
		TgParamUse *use = (TgParamUse *) lfirst(lc);
		Node	   *arg;

		if (use->paramid < 1 || use->paramid > list_length(stmt->params))
			continue;
		arg = (Node *) list_nth(stmt->params, use->paramid - 1);
		if (!raw_is_literal(arg))
			continue;
		search->found = true;
		search->function = use->function;
		search->argno = use->argno;
		search->location = exprLocation(arg);
		search->prepared = stmt->name;
		search->paramid = use->paramid;
		return;
	}
}

/*
 * Utility statements: PostgreSQL 15 analyses the expressions a utility
 * statement embeds (a rule's actions, a column's DEFAULT, a CHECK
 * constraint, a policy, a trigger's WHEN, a BEGIN ATOMIC body) while it
 * executes, not through post_parse_analyze_hook, and has no walker for
 * their raw trees.  So the statement's text is tokenised as the lexer does
 * (comments skipped, identifiers decoded: quoted, U&"...", any case) and
 * every call of store_credential or rotate_credential, unqualified or
 * qualified with trading_guard, is looked at: an api_key or api_secret
 * argument that is a literal (under casts and COLLATE) is refused as it is
 * in other statements; in a rule, a default or a function body it would
 * also stay in the catalog.  The dollar-quoted bodies of CREATE FUNCTION,
 * CREATE PROCEDURE and DO are looked into (PL/pgSQL bodies are only
 * analysed when they run).
 */

/* The first tokens of an argument we look at */
#define TG_ARG_TOKENS			8

typedef struct TgTextArg
{
	TgToken		tok[TG_ARG_TOKENS];
	int			ntok;			/* all the argument's tokens, nested ones too */
	bool		tail_typish;	/* those past TG_ARG_TOKENS: all typish_token */
} TgTextArg;

/* Is the token the single character c? */
static bool
is_char_token(const char *s, const TgToken *tok, char c)
{
	return tok->kind == TG_TOKEN_OTHER && tok->end == tok->start + 1 &&
		s[tok->start] == c;
}

/* A literal: a quoted or dollar-quoted string or a number */
static bool
is_literal_token(const char *s, const TgToken *tok)
{
	return tok->kind == TG_TOKEN_LITERAL ||
		(tok->kind == TG_TOKEN_OTHER && s[tok->start] >= '0' && s[tok->start] <= '9');
}

/* May the token follow a literal in a cast, a type name or COLLATE? */
static bool
typish_token(const char *s, const TgToken *tok)
{
	if (tok->kind == TG_TOKEN_WORD || tok->kind == TG_TOKEN_QUOTED_IDENT)
		return true;
	if (tok->kind != TG_TOKEN_OTHER || s[tok->start] == '\0')
		return false;
	return (s[tok->start] >= '0' && s[tok->start] <= '9') ||
		strchr(":.()[]", s[tok->start]) != NULL;
}

/* Is the token a word or quoted identifier that decodes to name? */
static bool
is_name_token(const char *s, const TgToken *tok, const char *name)
{
	char		buf[NAMEDATALEN];

	if (tok->kind != TG_TOKEN_WORD && tok->kind != TG_TOKEN_QUOTED_IDENT)
		return false;
	token_identifier(s, tok, buf);
	return strcmp(buf, name) == 0;
}

/*
 * Is the argument a literal under casts and COLLATE only?  Returns the
 * literal's token index, or -1.  A named argument (name => value, name :=
 * value) sets *position to TG_ARG_API_KEY, TG_ARG_API_SECRET or -1.
 */
static int
text_arg_literal(const char *s, const TgTextArg *arg, int *position)
{
	int			n = Min(arg->ntok, TG_ARG_TOKENS);
	int			k = 0;

	if (n >= 3 &&
		(arg->tok[0].kind == TG_TOKEN_WORD || arg->tok[0].kind == TG_TOKEN_QUOTED_IDENT) &&
		((is_char_token(s, &arg->tok[1], '=') && is_char_token(s, &arg->tok[2], '>')) ||
		 (is_char_token(s, &arg->tok[1], ':') && is_char_token(s, &arg->tok[2], '='))))
	{
		*position = is_name_token(s, &arg->tok[0], "api_key") ? TG_ARG_API_KEY :
			is_name_token(s, &arg->tok[0], "api_secret") ? TG_ARG_API_SECRET : -1;
		k = 3;
	}
	if (k + 1 < n && is_name_token(s, &arg->tok[k], "cast") &&
		is_char_token(s, &arg->tok[k + 1], '('))
		k += 2;
	if (k >= n || !is_literal_token(s, &arg->tok[k]))
		return -1;
	for (int i = k + 1; i < n; i++)
	{
		if (!typish_token(s, &arg->tok[i]))
			return -1;
	}
	if (arg->ntok > TG_ARG_TOKENS && !arg->tail_typish)
		return -1;
	return k;
}

/*
 * A call of credential function f whose name ends at pos in s[0, len): is
 * its api_key or api_secret a literal?  If so fill in search (base: where
 * s is in the source text, for the error position).
 */
static bool
text_check_call(const char *s, size_t len, size_t pos, int f, int base,
				TgSecretSearch *search)
{
	TgToken		tok;
	TgTextArg	arg;
	int			depth = 1;
	int			argno = 0;

	next_token(s, len, &pos, TG_SCAN_SQL, &tok);
	if (is_name_token(s, &tok, "uescape"))
	{
		next_token(s, len, &pos, TG_SCAN_SQL, &tok);
		next_token(s, len, &pos, TG_SCAN_SQL, &tok);
	}
	if (!is_char_token(s, &tok, '('))
		return false;

	memset(&arg, 0, sizeof(arg));
	arg.tail_typish = true;
	for (;;)
	{
		next_token(s, len, &pos, TG_SCAN_SQL, &tok);
		if (tok.kind == TG_TOKEN_END)
			return false;
		if (depth == 1 &&
			(is_char_token(s, &tok, ',') || is_char_token(s, &tok, ')')))
		{
			int			position = argno++;
			int			lit = text_arg_literal(s, &arg, &position);

			if (lit >= 0 &&
				(position == TG_ARG_API_KEY || position == TG_ARG_API_SECRET))
			{
				search->found = true;
				search->utility = true;
				search->function = credential_functions[f];
				search->argno = position;
				search->location = base + (int) arg.tok[lit].start;
				return true;
			}
			if (is_char_token(s, &tok, ')'))
				return false;
			memset(&arg, 0, sizeof(arg));
			arg.tail_typish = true;
			continue;
		}
		if (is_char_token(s, &tok, '(') || is_char_token(s, &tok, '['))
			depth++;
		else if (is_char_token(s, &tok, ')') || is_char_token(s, &tok, ']'))
			depth--;
		if (arg.ntok < TG_ARG_TOKENS)
			arg.tok[arg.ntok] = tok;
		else if (!typish_token(s, &tok))
			arg.tail_typish = false;
		arg.ntok++;
	}
}

/*
 * Look for a call of store_credential or rotate_credential with a literal
 * secret in the text s[0, len) of a utility statement (see above); bodies:
 * look into dollar-quoted literals too, up to a depth of nesting.
 */
static bool
text_literal_secret(const char *s, size_t len, int base, bool bodies,
					int nesting, TgSecretSearch *search)
{
	size_t		pos = 0;
	TgToken		tok;
	TgToken		prev;
	TgToken		prev2;

	prev.kind = prev2.kind = TG_TOKEN_END;
	for (;;)
	{
		next_token(s, len, &pos, TG_SCAN_SQL, &tok);
		if (tok.kind == TG_TOKEN_END)
			return false;
		if (tok.kind == TG_TOKEN_LITERAL && bodies && nesting < 3 &&
			s[tok.start] == '$')
		{
			if (text_literal_secret(s + tok.body_start,
									tok.body_end - tok.body_start,
									base + (int) tok.body_start, bodies,
									nesting + 1, search))
				return true;
		}
		else if (tok.kind == TG_TOKEN_LITERAL && bodies && nesting < 3 &&
				 s[tok.start] == '\'' && standard_conforming_strings)
		{
			/* a '...' body: '' stands for ', positions are the literal's */
			char	   *body = palloc(tok.body_end - tok.body_start + 1);
			size_t		n = 0;
			bool		found;

			for (size_t i = tok.body_start; i < tok.body_end; i++)
			{
				body[n++] = s[i];
				if (s[i] == '\'' && i + 1 < tok.body_end && s[i + 1] == '\'')
					i++;
			}
			body[n] = '\0';
			found = text_literal_secret(body, n, base, bodies, nesting + 1, search);
			if (found)
				search->location = base + (int) tok.start;
			pfree(body);
			if (found)
				return true;
		}
		else if (tok.kind == TG_TOKEN_WORD || tok.kind == TG_TOKEN_QUOTED_IDENT)
		{
			int			f = -1;

			if (is_name_token(s, &tok, credential_functions[TG_FN_STORE]))
				f = TG_FN_STORE;
			else if (is_name_token(s, &tok, credential_functions[TG_FN_ROTATE]))
				f = TG_FN_ROTATE;
			/* qualified with another schema: not the vault's */
			if (f >= 0 && is_char_token(s, &prev, '.') &&
				(prev2.kind == TG_TOKEN_WORD || prev2.kind == TG_TOKEN_QUOTED_IDENT) &&
				!is_name_token(s, &prev2, "trading_guard"))
				f = -1;
			if (f >= 0 && text_check_call(s, len, pos, f, base, search))
				return true;
		}
		prev2 = prev;
		prev = tok;
	}
}

/*
 * Look for calls of credential functions and literal secrets in an analysed
 * statement.  Utility statements that contain an analysed query the hook
 * is not called for (EXPLAIN, CREATE TABLE AS, DECLARE CURSOR) are looked
 * into, so are a CALL's arguments; PREPARE, COPY and CREATE VIEW have
 * theirs analysed through the hook later; the others' text is looked at
 * (text_literal_secret).
 */
static void
search_query(Query *query, TgSecretSearch *search)
{
	if (query->commandType == CMD_UTILITY)
	{
		Node	   *stmt = query->utilityStmt;
		Node	   *inner = NULL;

		if (stmt == NULL || n_credential_oids == 0)
			return;
		if (IsA(stmt, ExecuteStmt))
			search_execute((ExecuteStmt *) stmt, search);
		else if (IsA(stmt, ExplainStmt))
			inner = ((ExplainStmt *) stmt)->query;
		else if (IsA(stmt, CreateTableAsStmt))
			inner = ((CreateTableAsStmt *) stmt)->query;
		else if (IsA(stmt, DeclareCursorStmt))
			inner = ((DeclareCursorStmt *) stmt)->query;
		else if (IsA(stmt, CallStmt))
			(void) secret_walker((Node *) ((CallStmt *) stmt)->funcexpr, search);
		else if (!IsA(stmt, PrepareStmt) && !IsA(stmt, CopyStmt) &&
				 !IsA(stmt, ViewStmt) && search->sourcetext != NULL &&
				 memchr(search->sourcetext, '(', search->sourcelen) != NULL)
			(void) text_literal_secret(search->sourcetext, search->sourcelen,
									   search->base, IsA(stmt, CreateFunctionStmt) ||
									   IsA(stmt, DoStmt), 0, search);
		if (inner != NULL && IsA(inner, Query))
			search_query((Query *) inner, search);
		return;
	}

	if (n_credential_oids > 0)
		(void) secret_walker((Node *) query, search);
}

/*
 * Show the statement with its literals redacted in pg_stat_activity from
 * now on (including once the session is idle).
 */
static void
report_redacted_activity(void)
{
	char	   *out;
	size_t		first;

	if (debug_query_string == NULL)
		return;
	switch (redact_string(debug_query_string, TG_SCAN_SQL, false,
						  CurrentMemoryContext, &out, &first, NULL))
	{
		case TG_NOTHING_TO_REDACT:
			break;
		case TG_REDACTED:
			pgstat_report_activity(STATE_RUNNING, out);
			pfree(out);
			break;
		case TG_OUT_OF_MEMORY:
			pgstat_report_activity(STATE_RUNNING, "<redacted>");
			break;
	}
}

/*
 * post_parse_analyze_hook: note statements that call credential functions
 * and refuse secrets written as literals (see the file header).  Looks the
 * vault's functions up only after an invalidation; walks the analysed
 * tree, or a utility statement's text when it has a parenthesis.
 */
static void
redact_post_parse_analyze(ParseState *pstate, Query *query, JumbleState *jstate)
{
	TgSecretSearch search;
	const char *argname;

	if (prev_post_parse_analyze_hook)
		prev_post_parse_analyze_hook(pstate, query, jstate);

	credential_oids_refresh();
	memset(&search, 0, sizeof(search));

	/*
	 * Only this statement's part of a multi-statement string, or a batch of
	 * N statements would be scanned N times.
	 */
	search.sourcetext = pstate->p_sourcetext;
	if (search.sourcetext != NULL)
	{
		int			total = strlen(search.sourcetext);

		if (query->stmt_location > 0 && query->stmt_location <= total)
			search.base = query->stmt_location;
		search.sourcetext += search.base;
		search.sourcelen = total - search.base;
		if (query->stmt_len > 0 && query->stmt_len < search.sourcelen)
			search.sourcelen = query->stmt_len;
	}
	search_query(query, &search);
	if (search.involved || search.found)
		note_statement_involved();
	if (!search.found)
		return;

	report_redacted_activity();
	if (!tg_reject_literal_secrets)
		return;

	argname = search.argno == TG_ARG_API_KEY ? "api_key" : "api_secret";
	if (search.prepared != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_TG_LITERAL_SECRET),
				 errmsg("the %s argument of trading_guard.%s() must not be written as a literal",
						argname, search.function),
				 errdetail("Parameter $%d of prepared statement \"%s\" is that argument, and EXECUTE gives it as a literal; literals in SQL text reach the server log and pg_stat_activity.",
						   search.paramid, search.prepared),
				 errhint("Bind the value as a query parameter instead of writing it in the SQL text."),
				 parser_errposition(pstate, search.location)));
	else if (search.utility)
		ereport(ERROR,
				(errcode(ERRCODE_TG_LITERAL_SECRET),
				 errmsg("the %s argument of trading_guard.%s() must not be written as a literal",
						argname, search.function),
				 errdetail("Literals in SQL text reach the server log, pg_stat_activity and pg_stat_statements, and one in a rule, a default or a function body stays in the catalog."),
				 errhint("Bind the value as a query parameter instead of writing it in the SQL text."),
				 parser_errposition(pstate, search.location)));
	else
		ereport(ERROR,
				(errcode(ERRCODE_TG_LITERAL_SECRET),
				 errmsg("the %s argument of trading_guard.%s() must not be written as a literal",
						argname, search.function),
				 errdetail("Literals in SQL text reach the server log, pg_stat_activity and pg_stat_statements."),
				 errhint("Bind the value as a query parameter instead of writing it in the SQL text."),
				 parser_errposition(pstate, search.location)));
}

/* ------------------------------------------------------------------------
 * mask_sensitive(jsonb)
 * ------------------------------------------------------------------------
 */

#define TG_MASK		"********"

/* Normalised (see the file header) keys that are sensitive exactly ... */
static const char *const sensitive_keys[] = {
	"authorization",
	"signature",
	NULL
};

/* ... and endings that make a normalised key sensitive */
static const char *const sensitive_endings[] = {
	"apikey",
	"secret",
	"secretkey",
	"password",
	"passwd",
	"passphrase",
	"token",
	"privatekey",
	"accesskey",
	NULL
};

/* Longer than any word above */
#define TG_KEY_TAIL		16

static bool
is_sensitive_key(const char *key, int len)
{
	char		tail[TG_KEY_TAIL];
	int			n = 0;
	bool		longer = false;

	/* the last TG_KEY_TAIL characters of the normalised key */
	for (int i = len - 1; i >= 0; i--)
	{
		if (key[i] == '-' || key[i] == '_')
			continue;
		if (n == TG_KEY_TAIL)
		{
			longer = true;
			break;
		}
		tail[TG_KEY_TAIL - 1 - n++] = pg_ascii_tolower((unsigned char) key[i]);
	}

	for (const char *const *w = sensitive_endings; *w; w++)
	{
		int			wlen = strlen(*w);

		if (n >= wlen && memcmp(tail + TG_KEY_TAIL - wlen, *w, wlen) == 0)
			return true;
	}
	if (longer)
		return false;
	for (const char *const *w = sensitive_keys; *w; w++)
	{
		if (n == (int) strlen(*w) && memcmp(tail + TG_KEY_TAIL - n, *w, n) == 0)
			return true;
	}
	return false;
}

/* Does the document have a sensitive key anywhere? */
static bool
has_sensitive_key(Jsonb *jb)
{
	JsonbIterator *it = JsonbIteratorInit(&jb->root);
	JsonbValue	v;
	JsonbIteratorToken r;

	while ((r = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		if (r == WJB_KEY && is_sensitive_key(v.val.string.val, v.val.string.len))
			return true;
	}
	return false;
}

/*
 * SQL: mask_sensitive(doc jsonb) returns jsonb
 * The document with the values of sensitive keys replaced by "********".
 * A document without any is returned as it came.
 */
PG_FUNCTION_INFO_V1(tg_mask_sensitive);
Datum
tg_mask_sensitive(PG_FUNCTION_ARGS)
{
	Jsonb	   *jb = PG_GETARG_JSONB_P(0);
	JsonbIterator *it;
	JsonbParseState *state = NULL;
	JsonbValue *result = NULL;
	JsonbValue	v;
	JsonbIteratorToken r;
	bool		mask_next = false;

	if (JB_ROOT_IS_SCALAR(jb) || !has_sensitive_key(jb))
		PG_RETURN_JSONB_P(jb);

	it = JsonbIteratorInit(&jb->root);
	/* after a sensitive key, its value comes whole (skipNested), even a container */
	while ((r = JsonbIteratorNext(&it, &v, mask_next)) != WJB_DONE)
	{
		if (mask_next)
		{
			Assert(r == WJB_VALUE);
			v.type = jbvString;
			v.val.string.val = TG_MASK;
			v.val.string.len = strlen(TG_MASK);
			mask_next = false;
		}
		else if (r == WJB_KEY)
			mask_next = is_sensitive_key(v.val.string.val, v.val.string.len);

		result = pushJsonbValue(&state, r,
								(r == WJB_KEY || r == WJB_VALUE || r == WJB_ELEM) ? &v : NULL);
	}

	PG_RETURN_JSONB_P(JsonbValueToJsonb(result));
}

/* ------------------------------------------------------------------------ */

/*
 * Define the setting and install both hooks (see the file header for why
 * also when loaded on demand).
 */
void
tg_redact_init(void)
{
	DefineCustomBoolVariable("trading_guard.reject_literal_secrets",
							 "Refuses API keys and secrets written as literals in calls to store_credential() and rotate_credential().",
							 "Literals in SQL text reach the server log, pg_stat_activity and pg_stat_statements; clients must bind them as parameters.",
							 &tg_reject_literal_secrets,
							 true,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);

	prev_post_parse_analyze_hook = post_parse_analyze_hook;
	post_parse_analyze_hook = redact_post_parse_analyze;
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = redact_emit_log;
	prev_needs_fmgr_hook = needs_fmgr_hook;
	needs_fmgr_hook = redact_needs_fmgr_hook;
	prev_fmgr_hook = fmgr_hook;
	fmgr_hook = redact_fmgr_hook;
}
