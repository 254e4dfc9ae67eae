/*-------------------------------------------------------------------------
 *
 * conn_rules.c
 *	  Parse trading_guard.rules, the connection allowlist, and match client
 *	  addresses against it.
 *
 * Syntax (README.md, "Connection guard"): rules separated by ';', each
 *
 *		ROLES NETWORKS [cert]
 *
 * ROLES is a comma-separated list of role names (double-quoted if needed),
 * +group (members of that role) or * (any role); NETWORKS a comma-separated
 * list of CIDR networks, bare addresses or "all".  "cert" requires a valid
 * client certificate as well.
 *
 * The text is parsed by the GUC check hook, in the postmaster and in every
 * backend, once per reload; the result is one malloc'd block (a GUC "extra")
 * that connections only read.  Parsing does not touch the catalogs, so role
 * names are matched at connection time (src/conn_guard.c).  It runs twice
 * over the text: once to count, once to fill the block it then allocates.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "conn_rules.h"

/* The first 12 bytes of an IPv4-mapped IPv6 address, ::ffff:a.b.c.d */
static const uint8 v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

typedef enum TokKind
{
	TOK_END,
	TOK_WORD,					/* unquoted */
	TOK_QUOTED,					/* "..." with "" for a quote */
	TOK_PLUS_QUOTED,			/* +"..." */
	TOK_COMMA,
	TOK_SEMI,
	TOK_ERROR
} TokKind;

typedef struct Lexer
{
	const char *p;
	char		tok[NAMEDATALEN * 2];	/* current token's text */
	bool		too_long;
} Lexer;

static TokKind
lex(Lexer *lx)
{
	int			n = 0;
	bool		plus = false;

	lx->tok[0] = '\0';
	lx->too_long = false;
	while (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\n' || *lx->p == '\r')
		lx->p++;

	switch (*lx->p)
	{
		case '\0':
			return TOK_END;
		case ',':
			lx->p++;
			return TOK_COMMA;
		case ';':
			lx->p++;
			return TOK_SEMI;
		case '+':
			if (lx->p[1] == '"')
			{
				plus = true;
				lx->p++;
			}
			break;
	}

	if (*lx->p == '"')
	{
		lx->p++;
		for (;;)
		{
			if (*lx->p == '\0')
				return TOK_ERROR;	/* unterminated quote */
			if (*lx->p == '"')
			{
				if (lx->p[1] != '"')
					break;
				lx->p++;		/* "" stands for one quote */
			}
			if (n < (int) sizeof(lx->tok) - 1)
				lx->tok[n++] = *lx->p;
			else
				lx->too_long = true;
			lx->p++;
		}
		lx->p++;				/* closing quote */
		lx->tok[n] = '\0';
		return plus ? TOK_PLUS_QUOTED : TOK_QUOTED;
	}

	while (*lx->p != '\0' && *lx->p != ' ' && *lx->p != '\t' &&
		   *lx->p != '\n' && *lx->p != '\r' &&
		   *lx->p != ',' && *lx->p != ';' && *lx->p != '"')
	{
		if (n < (int) sizeof(lx->tok) - 1)
			lx->tok[n++] = *lx->p;
		else
			lx->too_long = true;
		lx->p++;
	}
	lx->tok[n] = '\0';
	return TOK_WORD;
}

/*
 * Parse one network: "all", an address, or address/bits with no bits set
 * right of the mask (as the cidr type insists: 10.1.2.3/8 is most likely a
 * typo, and a typo in an allowlist should be refused, not guessed at).
 */
static bool
parse_net(const char *text, TgNet *net, char **error)
{
	char		addr[64];
	const char *slash = strchr(text, '/');
	size_t		len = slash ? (size_t) (slash - text) : strlen(text);
	int			maxbits;
	int			i;

	memset(net, 0, sizeof(*net));
	if (pg_strcasecmp(text, "all") == 0)
		return true;

	if (len == 0 || len >= sizeof(addr))
		goto bad;
	memcpy(addr, text, len);
	addr[len] = '\0';

	if (inet_pton(AF_INET, addr, net->bytes) == 1)
	{
		net->family = 4;
		maxbits = 32;
	}
	else if (inet_pton(AF_INET6, addr, net->bytes) == 1)
	{
		net->family = 6;
		maxbits = 128;
	}
	else
		goto bad;

	net->bits = maxbits;
	if (slash)
	{
		char	   *end;
		long		bits;

		if (!isdigit((unsigned char) slash[1]))
			goto bad;
		errno = 0;
		bits = strtol(slash + 1, &end, 10);
		if (*end != '\0' || errno != 0 || bits < 0 || bits > maxbits)
			goto bad;
		net->bits = (uint8) bits;
	}

	for (i = net->bits; i < maxbits; i++)
	{
		if (net->bytes[i / 8] & (0x80 >> (i % 8)))
		{
			*error = psprintf("\"%s\" has bits set to the right of its mask", text);
			return false;
		}
	}

	/*
	 * An IPv4-mapped IPv6 network (::ffff:10.0.0.0/104) is the IPv4 network
	 * it maps: clients connecting that way are matched as IPv4.
	 */
	if (net->family == 6 && net->bits >= 96)
	{
		if (memcmp(net->bytes, v4mapped_prefix, 12) == 0)
		{
			net->family = 4;
			net->bits -= 96;
			memmove(net->bytes, net->bytes + 12, 4);
			memset(net->bytes + 4, 0, 12);
		}
	}
	return true;

bad:
	*error = psprintf("\"%s\" is not a network (expected an address, address/bits or \"all\")",
					  text);
	return false;
}

/*
 * One pass over the text.  With set == NULL it only validates and counts;
 * otherwise it fills set's arrays, which the counting pass sized.
 */
static bool
parse_pass(const char *text, TgRuleSet *set, int *nrules, int *nroles,
		   int *nnets, char **error)
{
	Lexer		lx;
	TokKind		t;
	int			rule_no = 0;	/* 1-based number of the rule being read */

	*nrules = *nroles = *nnets = 0;
	lx.p = text;
	t = lex(&lx);

	while (t != TOK_END)
	{
		TgConnRule	rule;

		if (t == TOK_SEMI)		/* empty rule */
		{
			t = lex(&lx);
			continue;
		}
		rule_no++;
		memset(&rule, 0, sizeof(rule));
		rule.first_role = *nroles;
		rule.first_net = *nnets;

		/* roles */
		for (;;)
		{
			TgRoleRef	ref;

			memset(&ref, 0, sizeof(ref));
			if (t == TOK_WORD && strcmp(lx.tok, "*") == 0)
				ref.kind = TG_ROLE_ANY;
			else if (t == TOK_WORD && lx.tok[0] == '+' && lx.tok[1] != '\0')
			{
				ref.kind = TG_ROLE_GROUP;
				memmove(lx.tok, lx.tok + 1, strlen(lx.tok));
			}
			else if (t == TOK_PLUS_QUOTED && lx.tok[0] != '\0')
				ref.kind = TG_ROLE_GROUP;
			else if ((t == TOK_WORD || t == TOK_QUOTED) && lx.tok[0] != '\0' &&
					 !(t == TOK_WORD && lx.tok[0] == '+'))
				ref.kind = TG_ROLE_NAME;
			else
			{
				*error = t == TOK_ERROR ?
					psprintf("rule %d: unterminated quoted name", rule_no) :
					psprintf("rule %d: expected a role name, +group or *", rule_no);
				return false;
			}
			if (ref.kind != TG_ROLE_ANY)
			{
				if (lx.too_long || strlen(lx.tok) >= NAMEDATALEN)
				{
					*error = psprintf("rule %d: role name \"%.20s...\" is longer than %d bytes",
									  rule_no, lx.tok, NAMEDATALEN - 1);
					return false;
				}
				strlcpy(ref.name, lx.tok, NAMEDATALEN);
			}
			if (set)
				set->roles[*nroles] = ref;
			(*nroles)++;
			rule.nroles++;

			t = lex(&lx);
			if (t != TOK_COMMA)
				break;
			t = lex(&lx);
		}

		/* networks */
		if (t != TOK_WORD)
		{
			*error = t == TOK_ERROR ?
				psprintf("rule %d: unterminated quoted name", rule_no) :
				psprintf("rule %d: expected a network after the roles", rule_no);
			return false;
		}
		for (;;)
		{
			TgNet		net;
			char	   *neterr = NULL;

			if (t != TOK_WORD || lx.too_long)
			{
				*error = psprintf("rule %d: expected a network after \",\"", rule_no);
				return false;
			}
			if (!parse_net(lx.tok, &net, &neterr))
			{
				*error = psprintf("rule %d: %s", rule_no, neterr);
				return false;
			}
			if (set)
				set->nets[*nnets] = net;
			(*nnets)++;
			rule.nnets++;

			t = lex(&lx);
			if (t != TOK_COMMA)
				break;
			t = lex(&lx);
		}

		/* options */
		while (t == TOK_WORD)
		{
			if (pg_strcasecmp(lx.tok, "cert") == 0)
				rule.cert = true;
			else
			{
				*error = psprintf("rule %d: unknown option \"%s\" (the only option is \"cert\"; separate networks with \",\")",
								  rule_no, lx.tok);
				return false;
			}
			t = lex(&lx);
		}
		if (t != TOK_SEMI && t != TOK_END)
		{
			*error = t == TOK_ERROR ?
				psprintf("rule %d: unterminated quoted name", rule_no) :
				psprintf("rule %d: unexpected text after the networks", rule_no);
			return false;
		}

		if (set)
			set->rules[*nrules] = rule;
		(*nrules)++;
		if (t == TOK_SEMI)
			t = lex(&lx);
	}
	return true;
}

/*
 * Parse the rules.  Returns a malloc'd block (free() it), or NULL with
 * *error set to a palloc'd sentence fragment saying what is wrong (or NULL
 * when out of memory).
 */
TgRuleSet *
tg_rules_parse(const char *text, char **error)
{
	int			nrules,
				nroles,
				nnets,
				r2,
				o2,
				n2;
	Size		size;
	TgRuleSet  *set;

	*error = NULL;
	if (text == NULL)
		text = "";
	if (!parse_pass(text, NULL, &nrules, &nroles, &nnets, error))
		return NULL;

	size = MAXALIGN(sizeof(TgRuleSet)) +
		MAXALIGN(nrules * sizeof(TgConnRule)) +
		MAXALIGN(nroles * sizeof(TgRoleRef)) +
		nnets * sizeof(TgNet);
	set = malloc(size);
	if (set == NULL)
		return NULL;
	memset(set, 0, size);
	set->nrules = nrules;
	set->nroles = nroles;
	set->nnets = nnets;
	set->rules = (TgConnRule *) ((char *) set + MAXALIGN(sizeof(TgRuleSet)));
	set->roles = (TgRoleRef *) ((char *) set->rules + MAXALIGN(nrules * sizeof(TgConnRule)));
	set->nets = (TgNet *) ((char *) set->roles + MAXALIGN(nroles * sizeof(TgRoleRef)));

	if (!parse_pass(text, set, &r2, &o2, &n2, error))
	{
		free(set);
		return NULL;
	}
	Assert(r2 == nrules && o2 == nroles && n2 == nnets);
	return set;
}

/*
 * An address from its bytes (4 for IPv4, 16 for IPv6); an IPv4-mapped IPv6
 * address counts as the IPv4 address it maps, as clients using one are
 * IPv4 clients.
 */
void
tg_addr_set(TgAddr *addr, bool ipv6, const uint8 *bytes)
{
	memset(addr, 0, sizeof(*addr));
	if (ipv6 && memcmp(bytes, v4mapped_prefix, 12) != 0)
	{
		addr->family = 6;
		memcpy(addr->bytes, bytes, 16);
	}
	else
	{
		addr->family = 4;
		memcpy(addr->bytes, ipv6 ? bytes + 12 : bytes, 4);
	}
}

/*
 * Reduce a socket address to an IP address (tg_addr_set).  Returns false
 * for anything else (a Unix socket).
 */
bool
tg_addr_from_sockaddr(const struct sockaddr_storage *sa, TgAddr *addr)
{
	if (sa->ss_family == AF_INET)
		tg_addr_set(addr, false, (const uint8 *) &((const struct sockaddr_in *) sa)->sin_addr);
	else if (sa->ss_family == AF_INET6)
		tg_addr_set(addr, true, (const uint8 *) &((const struct sockaddr_in6 *) sa)->sin6_addr);
	else
	{
		memset(addr, 0, sizeof(*addr));
		return false;
	}
	return true;
}

static bool
net_contains(const TgNet *net, const TgAddr *addr)
{
	int			full = net->bits / 8;
	int			rest = net->bits % 8;

	if (net->family == 0)
		return true;
	if (net->family != addr->family)
		return false;
	if (memcmp(net->bytes, addr->bytes, full) != 0)
		return false;
	if (rest != 0)
	{
		uint8		mask = (uint8) (0xff << (8 - rest));

		if ((net->bytes[full] & mask) != (addr->bytes[full] & mask))
			return false;
	}
	return true;
}

/* Does one of the rule's networks contain the address? */
bool
tg_rule_matches_addr(const TgRuleSet *set, const TgConnRule *rule, const TgAddr *addr)
{
	int			i;

	for (i = 0; i < rule->nnets; i++)
	{
		if (net_contains(&set->nets[rule->first_net + i], addr))
			return true;
	}
	return false;
}

/*
 * Could some rule admit a client from this address, whatever its role and
 * certificate?  The TLS handshake asks, before the role is known.  An empty
 * rule list (no allowlist) admits every address.
 */
bool
tg_rules_admit_addr(const TgRuleSet *set, const TgAddr *addr)
{
	if (set == NULL || set->nrules == 0)
		return true;
	for (int i = 0; i < set->nrules; i++)
	{
		if (tg_rule_matches_addr(set, &set->rules[i], addr))
			return true;
	}
	return false;
}

/* The address as text (inet_ntop), for messages and views */
void
tg_addr_format(const TgAddr *addr, char *buf, size_t buflen)
{
	if (addr->family == 4)
		inet_ntop(AF_INET, addr->bytes, buf, buflen);
	else if (addr->family == 6)
		inet_ntop(AF_INET6, addr->bytes, buf, buflen);
	else
		strlcpy(buf, "[local]", buflen);
}
