/*-------------------------------------------------------------------------
 *
 * conn_rules.h
 *	  The connection allowlist (trading_guard.rules): parsed once per reload
 *	  into one flat block, matched per connection.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TG_CONN_RULES_H
#define TG_CONN_RULES_H

#include "libpq/pqcomm.h"

/* A client address reduced to what rules and bans compare: IPv4 or IPv6 */
typedef struct TgAddr
{
	uint8		family;			/* 4 or 6; 0 = not an IP address */
	uint8		bytes[16];		/* IPv4 in the first 4 bytes */
} TgAddr;

typedef enum TgRoleKind
{
	TG_ROLE_NAME,				/* exactly this role */
	TG_ROLE_GROUP,				/* +name: members of this role */
	TG_ROLE_ANY					/* * */
} TgRoleKind;

typedef struct TgRoleRef
{
	TgRoleKind	kind;
	char		name[NAMEDATALEN];
} TgRoleRef;

typedef struct TgNet
{
	uint8		family;			/* 4 or 6; 0 = every address ("all") */
	uint8		bits;
	uint8		bytes[16];
} TgNet;

typedef struct TgConnRule
{
	int			first_role;		/* index into TgRuleSet.roles */
	int			nroles;
	int			first_net;		/* index into TgRuleSet.nets */
	int			nnets;
	bool		cert;			/* a valid client certificate is required */
} TgConnRule;

/*
 * A parsed rule list, allocated as one malloc'd block (it is a GUC "extra"),
 * the arrays following the header.  nrules = 0 means "no allowlist".
 */
typedef struct TgRuleSet
{
	int			nrules;
	int			nroles;
	int			nnets;
	TgConnRule *rules;
	TgRoleRef  *roles;
	TgNet	   *nets;
} TgRuleSet;

extern TgRuleSet *tg_rules_parse(const char *text, char **error);
extern void tg_addr_set(TgAddr *addr, bool ipv6, const uint8 *bytes);
extern bool tg_addr_from_sockaddr(const struct sockaddr_storage *sa, TgAddr *addr);
extern bool tg_rule_matches_addr(const TgRuleSet *set, const TgConnRule *rule,
								 const TgAddr *addr);
extern bool tg_rules_admit_addr(const TgRuleSet *set, const TgAddr *addr);
extern void tg_addr_format(const TgAddr *addr, char *buf, size_t buflen);

#endif							/* TG_CONN_RULES_H */
