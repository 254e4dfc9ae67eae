/*-------------------------------------------------------------------------
 *
 * shmem.h
 *	  Shared-memory plumbing: each part of trading_guard that keeps state in
 *	  shared memory registers a named chunk here from its init function.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TG_SHMEM_H
#define TG_SHMEM_H

#include <signal.h>

#include "storage/spin.h"

/* Called once per chunk when shared memory is attached; found = already set up */
typedef void (*tg_shmem_init_fn) (void *ptr, bool found);

extern void tg_shmem_init(void);
extern void tg_shmem_register(const char *name, Size size, tg_shmem_init_fn init);
extern bool tg_preloaded(void);
extern void tg_require_preload(const char *feature);
extern bool tg_spin_acquire(slock_t *lock, sigset_t *saved);
extern void tg_spin_release(slock_t *lock, bool blocked, const sigset_t *saved);

#endif							/* TG_SHMEM_H */
