/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  Shared-memory plumbing for the parts of trading_guard that need it.
 *
 * Shared memory exists only when the library is in shared_preload_libraries.
 * Parts call tg_shmem_register() from their init function (while _PG_init
 * runs in the postmaster); this file asks for the space in shmem_request_hook
 * and hands each part its chunk in shmem_startup_hook, under
 * AddinShmemInitLock, as pg_stat_statements does.  A part must not touch its
 * pointer before its init callback has run; SQL functions that need shared
 * memory call tg_require_preload() first.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"

#include "shmem.h"

#define TG_MAX_SHMEM_CHUNKS 8

typedef struct TgShmemChunk
{
	const char *name;
	Size		size;
	tg_shmem_init_fn init;
} TgShmemChunk;

static TgShmemChunk chunks[TG_MAX_SHMEM_CHUNKS];
static int	nchunks = 0;

/* true in every process of a server that preloaded us, once attached */
static bool shmem_attached = false;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
tg_shmem_request(void)
{
	int			i;

	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	for (i = 0; i < nchunks; i++)
		RequestAddinShmemSpace(MAXALIGN(chunks[i].size));
}

static void
tg_shmem_startup(void)
{
	int			i;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	for (i = 0; i < nchunks; i++)
	{
		bool		found;
		void	   *ptr = ShmemInitStruct(chunks[i].name, chunks[i].size, &found);

		chunks[i].init(ptr, found);
	}
	LWLockRelease(AddinShmemInitLock);

	shmem_attached = true;
}

/*
 * Install the hooks.  Called from _PG_init only while shared_preload_libraries
 * is being processed, before any part registers a chunk.
 */
void
tg_shmem_init(void)
{
	Assert(process_shared_preload_libraries_in_progress);

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = tg_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = tg_shmem_startup;
}

/*
 * Register a chunk of shared memory.  Only valid while preloading; parts
 * check process_shared_preload_libraries_in_progress before calling.
 */
void
tg_shmem_register(const char *name, Size size, tg_shmem_init_fn init)
{
	if (!process_shared_preload_libraries_in_progress)
		elog(ERROR, "trading_guard: shared memory can only be requested while preloading");
	if (nchunks >= TG_MAX_SHMEM_CHUNKS)
		elog(ERROR, "trading_guard: too many shared memory chunks");

	chunks[nchunks].name = name;
	chunks[nchunks].size = size;
	chunks[nchunks].init = init;
	nchunks++;
}

/* Is the shared-memory part available in this process? */
bool
tg_preloaded(void)
{
	return shmem_attached;
}

/*
 * Refuse politely when a feature needs the preloaded library and we are not.
 */
void
tg_require_preload(const char *feature)
{
	if (!shmem_attached)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s requires trading_guard to be loaded via shared_preload_libraries",
						feature),
				 errhint("Add 'trading_guard' to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/*
 * Take a spinlock of shared memory from any process, the postmaster and
 * backends still authenticating included.  A backend in its TLS handshake
 * or reading its startup packet (no PGPROC yet) exits straight from its
 * SIGALRM (authentication_timeout), SIGTERM and SIGQUIT handlers, with
 * _exit(1) for the first two, which the postmaster takes for a normal exit:
 * exiting inside the critical section would leave the spinlock held for
 * good and hang every later connection.  So such a process blocks those
 * signals for the critical section.  Returns whether it did; pass that and
 * *saved to tg_spin_release.
 */
bool
tg_spin_acquire(slock_t *lock, sigset_t *saved)
{
	bool		blocked = false;

	if (MyProc == NULL)
	{
		sigset_t	block;

		sigemptyset(&block);
		sigaddset(&block, SIGALRM);
		sigaddset(&block, SIGTERM);
		sigaddset(&block, SIGQUIT);
		sigaddset(&block, SIGINT);
		sigprocmask(SIG_BLOCK, &block, saved);
		blocked = true;
	}
	SpinLockAcquire(lock);
	return blocked;
}

/* Release what tg_spin_acquire took, and restore the signal mask */
void
tg_spin_release(slock_t *lock, bool blocked, const sigset_t *saved)
{
	SpinLockRelease(lock);
	if (blocked)
		sigprocmask(SIG_SETMASK, saved, NULL);
}
