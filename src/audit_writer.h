/*-------------------------------------------------------------------------
 *
 * audit_writer.h
 *	  The writer of trading_guard.audit_log: the log's column layout (the
 *	  only place the C code spells it out) and how rows get into it.
 *
 * A writer is opened for one statement or event, told what the following
 * rows are about (tg_writer_subject), given the rows (tg_writer_add) and
 * closed; rows are inserted in batches with their index entries.  Every
 * column the writer can fill itself -- id, time, transaction, roles,
 * client, application, actor, key_hash -- it fills; callers give only what
 * is particular to a row.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TG_AUDIT_WRITER_H
#define TG_AUDIT_WRITER_H

#include "access/heapam.h"
#include "executor/tuptable.h"
#include "nodes/execnodes.h"
#include "utils/array.h"
#include "utils/jsonb.h"
#include "utils/rel.h"

/*
 * Columns of trading_guard.audit_log, in order: index into
 * tg_audit_log_columns[] (audit_writer.c), which gives each one's name and
 * type.  The SQL scripts create the table with exactly these; the writer
 * checks that the installed table has them before it writes.
 */
typedef enum TgAuditLogColumn
{
	AL_ID = 0,
	AL_EVENT_TIME,
	AL_TXID,
	AL_TABLE_OID,
	AL_SCHEMA_NAME,
	AL_TABLE_NAME,
	AL_OPERATION,
	AL_SESSION_USER,
	AL_CURRENT_USER,
	AL_CLIENT_ADDR,
	AL_APPLICATION_NAME,
	AL_ACTOR,
	AL_ROW_KEY,
	AL_KEY_HASH,
	AL_OLD_KEY,
	AL_OLD_ROW,
	AL_NEW_ROW,
	AL_CHANGED_COLUMNS,
	AL_NATTS
} TgAuditLogColumn;

typedef struct TgAuditLogColumnDef
{
	const char *name;
	Oid			type;
} TgAuditLogColumnDef;

extern const TgAuditLogColumnDef tg_audit_log_columns[AL_NATTS];

/* Audit rows inserted per heap multi-insert */
#define TG_AUDIT_BATCH		1000

/*
 * What one audit row holds beyond what the writer fills in.  NULL pointers
 * are SQL NULLs.  The values need only stay valid until tg_writer_add
 * returns (the row is formed there).
 */
typedef struct TgAuditRow
{
	text	   *row_key;		/* the primary key as jsonb text; key_hash
								 * is derived from it */
	text	   *old_key;
	Jsonb	   *old_row;
	Jsonb	   *new_row;
	ArrayType  *changed_columns;	/* text[] */
} TgAuditRow;

/* An open audit_log and the batch of rows waiting to be inserted */
typedef struct TgAuditWriter
{
	Relation	rel;
	MemoryContext cxt;			/* lives as long as the writer */
	/* fast path of the index entries */
	Relation   *indexes;
	BlockNumber *last_block;	/* per index: heap block of the last entry */
	ExprContext *econtext;
	/* executor path */
	EState	   *estate;
	ResultRelInfo *rri;
	BulkInsertState bistate;
	CommandId	cid;
	MemoryContext batch_cxt;

	/*
	 * The columns from event_time to actor are the same for every row of a
	 * subject: their bytes, as they lie in the tuple's data area (the first
	 * 8 bytes, id's, left for each row), their null bits and the infomask
	 * bits they set.  head_values/head_nulls are what deforming them gives.
	 */
	char	   *head;
	Size		head_len;
	bits8		head_bits[BITMAPLEN(AL_ACTOR + 1)];
	bool		head_hasnull;
	uint16		head_infomask;
	Datum		head_values[AL_ACTOR + 1];
	bool		head_isnull[AL_ACTOR + 1];

	/* the session details of every row (tg_writer_open) */
	TimestampTz event_time;
	FullTransactionId fxid;
	Datum		session_user_name;
	Datum		current_user_name;
	Datum		client_addr;
	bool		client_addr_null;
	Datum		application_name;	/* (Datum) 0: NULL */
	Datum		actor;			/* (Datum) 0: NULL */

	int64		last_id;		/* of the row tg_writer_add formed last */
	int			n;
	int			nslots;
	TupleTableSlot *slots[TG_AUDIT_BATCH];
} TgAuditWriter;

extern void tg_audit_writer_init(void);

/* Open audit_log for writing (checks it first); fails on a standby */
extern void tg_writer_open(TgAuditWriter *w);

/*
 * What the rows added next are about: the table (relid may be InvalidOid,
 * schema and name may be NULL) and the operation.  The text values are
 * copied.
 */
extern void tg_writer_subject(TgAuditWriter *w, Oid relid, text *schema,
							  text *name, text *operation);

/* Queue one audit row (inserted at the latest by tg_writer_close) */
extern void tg_writer_add(TgAuditWriter *w, const TgAuditRow *row);

/* Insert what is queued and release the writer */
extern void tg_writer_close(TgAuditWriter *w);

/* key_hash of a row_key text (see audit_key_hash()) */
extern int64 tg_key_hash(text *key);

#endif							/* TG_AUDIT_WRITER_H */
