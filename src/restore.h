/*-------------------------------------------------------------------------
 *
 * restore.h
 *	  Keeping the background workers out of a database being restored.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TG_RESTORE_H
#define TG_RESTORE_H

extern void tg_restore_init(void);
extern bool tg_database_being_restored(void);

#endif							/* TG_RESTORE_H */
