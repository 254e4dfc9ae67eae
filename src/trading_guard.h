/*-------------------------------------------------------------------------
 *
 * trading_guard.h
 *	  Things every part of trading_guard shares: the SQLSTATEs of its rules
 *	  and the limits of what it accepts.
 *
 * Each rule a user can break has its own SQLSTATE in class "TG" so that an
 * application can tell them apart without parsing messages.  README.md lists
 * them all; keep the two in step.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TRADING_GUARD_H
#define TRADING_GUARD_H

/* order validation (src/validate.c, src/orders.c) */
#define ERRCODE_TG_INVALID_SYMBOL		MAKE_SQLSTATE('T','G','0','0','1')
#define ERRCODE_TG_UNKNOWN_QUOTE_ASSET	MAKE_SQLSTATE('T','G','0','0','2')
#define ERRCODE_TG_UNKNOWN_SYMBOL		MAKE_SQLSTATE('T','G','0','0','3')
#define ERRCODE_TG_SYMBOL_NOT_TRADING	MAKE_SQLSTATE('T','G','0','0','4')
#define ERRCODE_TG_INVALID_SIDE			MAKE_SQLSTATE('T','G','0','0','5')
#define ERRCODE_TG_INVALID_QUANTITY		MAKE_SQLSTATE('T','G','0','0','6')
#define ERRCODE_TG_INVALID_PRICE		MAKE_SQLSTATE('T','G','0','0','7')
#define ERRCODE_TG_QUANTITY_ABOVE_LIMIT	MAKE_SQLSTATE('T','G','0','0','8')
#define ERRCODE_TG_LOT_SIZE_MIN			MAKE_SQLSTATE('T','G','0','1','1')
#define ERRCODE_TG_LOT_SIZE_MAX			MAKE_SQLSTATE('T','G','0','1','2')
#define ERRCODE_TG_LOT_SIZE_STEP		MAKE_SQLSTATE('T','G','0','1','3')
#define ERRCODE_TG_PRICE_FILTER_MIN		MAKE_SQLSTATE('T','G','0','2','1')
#define ERRCODE_TG_PRICE_FILTER_MAX		MAKE_SQLSTATE('T','G','0','2','2')
#define ERRCODE_TG_PRICE_FILTER_TICK	MAKE_SQLSTATE('T','G','0','2','3')
#define ERRCODE_TG_NOTIONAL_MIN			MAKE_SQLSTATE('T','G','0','3','1')
#define ERRCODE_TG_NOTIONAL_MAX			MAKE_SQLSTATE('T','G','0','3','2')
#define ERRCODE_TG_ROUNDS_TO_ZERO		MAKE_SQLSTATE('T','G','0','4','1')
/* TG051 (invalid exchange info) is raised by load_exchange_info() in SQL */

/* row-level audit (src/audit.c, src/audit_ddl.c) */
#define ERRCODE_TG_AUDIT_APPEND_ONLY	MAKE_SQLSTATE('T','G','0','6','0')
#define ERRCODE_TG_NOT_AUDITED			MAKE_SQLSTATE('T','G','0','6','1')
/* TG062 (a column both excluded and masked, or a masked key) is raised by enable_audit() in SQL */
#define ERRCODE_TG_AUDIT_SETTINGS_STALE	MAKE_SQLSTATE('T','G','0','6','3')
#define ERRCODE_TG_INHERITANCE_CHILD	MAKE_SQLSTATE('T','G','0','6','4')
#define ERRCODE_TG_FOREIGN_PARTITION	MAKE_SQLSTATE('T','G','0','6','5')
#define ERRCODE_TG_AUDIT_LOG_UNSAFE		MAKE_SQLSTATE('T','G','0','6','6')
#define ERRCODE_TG_MERGE_MOVES_ROWS		MAKE_SQLSTATE('T','G','0','6','7')
/* audit_log's columns are not what the library writes (src/audit_writer.c) */
#define ERRCODE_TG_AUDIT_LOG_LAYOUT		MAKE_SQLSTATE('T','G','0','6','8')

/* key ring and credential vault (src/keyring.c, src/vault.c, src/redact.c) */
#define ERRCODE_TG_LITERAL_SECRET		MAKE_SQLSTATE('T','G','0','7','0')
#define ERRCODE_TG_KEYRING_UNAVAILABLE	MAKE_SQLSTATE('T','G','0','7','1')
#define ERRCODE_TG_KEY_VERSION_MISSING	MAKE_SQLSTATE('T','G','0','7','2')
#define ERRCODE_TG_DECRYPTION_FAILED	MAKE_SQLSTATE('T','G','0','7','3')
#define ERRCODE_TG_CREDENTIAL_NOT_FOUND	MAKE_SQLSTATE('T','G','0','7','4')
#define ERRCODE_TG_CREDENTIAL_REVOKED	MAKE_SQLSTATE('T','G','0','7','5')
#define ERRCODE_TG_WRONG_ENVIRONMENT	MAKE_SQLSTATE('T','G','0','7','6')
#define ERRCODE_TG_SECRET_REUSED		MAKE_SQLSTATE('T','G','0','7','7')
#define ERRCODE_TG_CREDENTIAL_EXISTS	MAKE_SQLSTATE('T','G','0','7','8')

/* sealing of the audit trail (src/seal.c, src/seal_verify.c) */
#define ERRCODE_TG_NOT_SEALED			MAKE_SQLSTATE('T','G','0','8','0')
#define ERRCODE_TG_SEAL_BROKEN			MAKE_SQLSTATE('T','G','0','8','1')

/* the extension's own objects (src/utility_guard.c) */
#define ERRCODE_TG_OWN_OBJECT			MAKE_SQLSTATE('T','G','0','9','0')
#define ERRCODE_TG_TRAIL_NOT_EMPTY		MAKE_SQLSTATE('T','G','0','9','1')

/* incident response: halts (src/halt.c) and limits (src/risk_limits.c) */
#define ERRCODE_TG_TRADING_HALTED		MAKE_SQLSTATE('T','G','1','0','0')
#define ERRCODE_TG_ORDER_RATE_LIMIT		MAKE_SQLSTATE('T','G','1','0','1')
#define ERRCODE_TG_ORDER_NOTIONAL_LIMIT	MAKE_SQLSTATE('T','G','1','0','2')
#define ERRCODE_TG_EXPOSURE_LIMIT		MAKE_SQLSTATE('T','G','1','0','3')
#define ERRCODE_TG_SIGN_RATE_LIMIT		MAKE_SQLSTATE('T','G','1','0','4')
#define ERRCODE_TG_NOT_HALTED			MAKE_SQLSTATE('T','G','1','0','5')
#define ERRCODE_TG_NOTIONAL_UNKNOWN		MAKE_SQLSTATE('T','G','1','0','6')
#define ERRCODE_TG_ALREADY_HALTED		MAKE_SQLSTATE('T','G','1','0','7')

/*
 * Symbols: a base asset of 2 to 10 characters followed by a quote asset of
 * 2 to 10 characters, all A-Z or 0-9.
 */
#define TG_BASE_MIN_LEN		2
#define TG_BASE_MAX_LEN		10
#define TG_QUOTE_MIN_LEN	2
#define TG_QUOTE_MAX_LEN	10
#define TG_SYMBOL_MAX_LEN	(TG_BASE_MAX_LEN + TG_QUOTE_MAX_LEN)

/*
 * A symbol value up to this size is read to say what is wrong with it (a
 * bad character, say); a longer one is refused as too long from its size
 * alone, without being detoasted.
 */
#define TG_SYMBOL_INSPECT_MAX	256

/*
 * Quantities and prices: anything with more integer digits or more decimal
 * places than this is refused from its header alone, before any arithmetic.
 */
#define TG_NUMERIC_MAX_INT_DIGITS	20
#define TG_NUMERIC_MAX_SCALE		20

#endif							/* TRADING_GUARD_H */
