/*-------------------------------------------------------------------------
 *
 * keyring.c
 *	  The key ring: master keys that never pass through SQL.
 *
 * Sources, the first one configured wins:
 *	  trading_guard.key_command	a program run without a shell (for HashiCorp
 *								Vault, AWS Secrets Manager, a KMS CLI); its
 *								standard output is the key ring
 *	  trading_guard.key_file		a file owned by the server's user that group
 *								and others cannot read
 *	  TRADING_GUARD_MASTER_KEY		the postmaster's environment
 *
 * Format (README.md, "Key ring"): one key per line, "VERSION KEY", VERSION a
 * positive integer, KEY 256 bits as 64 hex digits or 44 base64 characters;
 * blank lines and lines starting with '#' are ignored, ';' also ends a line
 * (handy in an environment variable); a ring of one key may omit the
 * version (it is version 1).  The highest version encrypts; every version
 * present decrypts.
 *
 * Who loads it: the postmaster, while it sets up shared memory at start
 * (and after a crash); on SIGHUP, the "trading_guard key ring" background
 * worker, so that a slow or hanging key_command never stalls the postmaster
 * and is bounded by trading_guard.key_command_timeout.  A load that fails
 * leaves the ring in force as it was (none at start): the failure goes to
 * the server log and to key_ring_status(), and functions needing a key
 * refuse with TG071 until a load succeeds.
 *
 * What is kept: not the master keys, but the subkeys derived from each one
 * once, at load, with HKDF-SHA256 (one per purpose: encryption,
 * fingerprints, sealing) and a key id (a fingerprint of the master key,
 * shown by key_versions()).  Master keys and the ring's text exist only in
 * locked, never-dumped buffers of the loading process, wiped right after.
 *
 * Shared memory: two slots, page-aligned, locked (mlock) and excluded from
 * core dumps (MADV_DONTDUMP, inherited by every child).  The loader writes
 * the slot not in use, then flips "active" and bumps "generation"; readers
 * copy what they need and retry if the generation moved meanwhile (a
 * seqlock: readers never block the loader, and the postmaster never takes
 * a lock).  The slots are wiped when shared memory goes away.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include "common/base64.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "events.h"
#include "keyring.h"
#include "shmem.h"
#include "trading_guard.h"

#define TG_KEYRING_MAX_TEXT		65536	/* bytes of key ring text accepted */
#define TG_KEYRING_ERROR_LEN	256

typedef struct TgKeySlot
{
	int			nversions;
	TgKeyVersion versions[TG_KEYRING_MAX_VERSIONS];	/* ascending */
} TgKeySlot;

typedef struct TgKeyRingShared
{
	pg_atomic_uint64 generation;	/* bumped after every publication */
	int			active;			/* the slot readers use */
	bool		loaded;			/* a ring is in force */
	bool		worker_must_load;	/* set up again after a crash, not loaded */
	TimestampTz loaded_at;
	char		source[32];		/* where the ring in force came from */
	TimestampTz failed_at;		/* the last failed load, 0 if none since */
	char		error[TG_KEYRING_ERROR_LEN];	/* ... and why */
	TgKeySlot	slots[2];
} TgKeyRingShared;

/* GUCs */
static char *key_command = NULL;
static char *key_file = NULL;
static int	key_command_timeout = 10;

static TgKeyRingShared *ring = NULL;

/* this process's locked buffer for the ring's text and the master keys */
typedef struct TgLoadBuffer
{
	char		text[TG_KEYRING_MAX_TEXT + 1];
	uint8		master[TG_KEYRING_MAX_VERSIONS][TG_KEY_LEN];
	uint32		version[TG_KEYRING_MAX_VERSIONS];
} TgLoadBuffer;

PGDLLEXPORT void tg_keyring_worker_main(Datum arg);

/*
 * Memory for key material: page-aligned anonymous memory, locked into RAM
 * and left out of core dumps.  Never freed (a process asks once).  If the
 * system refuses to lock it (RLIMIT_MEMLOCK), it says so once and goes on.
 */
void *
tg_secure_alloc(Size size)
{
	static bool warned = false;
	Size		pagesize = (Size) sysconf(_SC_PAGESIZE);
	Size		len = TYPEALIGN(pagesize, size);
	void	   *p;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not allocate memory for key material: %m")));
#ifdef MADV_DONTDUMP
	(void) madvise(p, len, MADV_DONTDUMP);
#endif
	if (mlock(p, len) != 0 && !warned)
	{
		warned = true;
		ereport(WARNING,
				(errmsg("trading_guard: could not lock key memory in RAM: %m"),
				 errhint("Raise the server user's RLIMIT_MEMLOCK (ulimit -l) so that keys cannot be swapped out.")));
	}
	return p;
}

static TgLoadBuffer *
load_buffer(void)
{
	static TgLoadBuffer *buf = NULL;
	static int	locked_by = 0;

	if (buf == NULL)
		buf = tg_secure_alloc(sizeof(TgLoadBuffer));
	else if (locked_by != MyProcPid)
	{
		/* inherited from the postmaster: a fork does not inherit mlock */
		Size		pagesize = (Size) sysconf(_SC_PAGESIZE);

		(void) mlock(buf, TYPEALIGN(pagesize, sizeof(TgLoadBuffer)));
	}
	locked_by = MyProcPid;
	return buf;
}

/* ----------------------------------------------------------------------
 * Reading the sources
 * ----------------------------------------------------------------------
 */

/*
 * Split a command line into words: whitespace separates, '...' and "..."
 * quote (no escapes inside single quotes; \" and \\ inside double quotes).
 * No shell: no variables, globs, pipes or redirections.
 */
static char **
split_command(const char *cmd, char *err, size_t errlen)
{
	char	  **argv = palloc0(sizeof(char *) * (strlen(cmd) / 2 + 2));
	int			argc = 0;
	const char *p = cmd;

	for (;;)
	{
		StringInfoData word;
		bool		any = false;

		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		if (*p == '\0')
			break;
		initStringInfo(&word);
		while (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\n')
		{
			any = true;
			if (*p == '\'' || *p == '"')
			{
				char		q = *p++;

				while (*p != '\0' && *p != q)
				{
					if (q == '"' && *p == '\\' && (p[1] == '"' || p[1] == '\\'))
						p++;
					appendStringInfoChar(&word, *p++);
				}
				if (*p != q)
				{
					snprintf(err, errlen, "trading_guard.key_command has an unterminated quote");
					return NULL;
				}
				p++;
			}
			else
				appendStringInfoChar(&word, *p++);
		}
		if (any)
			argv[argc++] = word.data;
	}
	if (argc == 0)
	{
		snprintf(err, errlen, "trading_guard.key_command is empty");
		return NULL;
	}
	argv[argc] = NULL;
	return argv;
}

/*
 * Run key_command and read its standard output into buf->text.  The child
 * gets /dev/null as input, the server's stderr for its messages, no other
 * descriptor, default signal handling; it is killed after the timeout.
 */
static bool
read_command(TgLoadBuffer *buf, char *err, size_t errlen)
{
	char	  **argv = split_command(key_command, err, errlen);
	int			pipefd[2];
	pid_t		pid;
	Size		len = 0;
	TimestampTz deadline;
	int			status;
	bool		ok = true;

	if (argv == NULL)
		return false;
	if (pipe(pipefd) != 0)
	{
		snprintf(err, errlen, "could not create a pipe for trading_guard.key_command: %m");
		return false;
	}

	fflush(NULL);
	pid = fork();
	if (pid < 0)
	{
		snprintf(err, errlen, "could not fork for trading_guard.key_command: %m");
		close(pipefd[0]);
		close(pipefd[1]);
		return false;
	}
	if (pid == 0)
	{
		sigset_t	none;
		int			devnull = open("/dev/null", O_RDONLY);

		(void) setpgid(0, 0);	/* killable with whatever it started */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		for (int sig = 1; sig < NSIG; sig++)
			signal(sig, SIG_DFL);
		if (devnull < 0 || dup2(devnull, STDIN_FILENO) < 0 ||
			dup2(pipefd[1], STDOUT_FILENO) < 0)
			_exit(126);
		closefrom(STDERR_FILENO + 1);
		execvp(argv[0], argv);
		_exit(127);
	}

	close(pipefd[1]);
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
										   (int64) key_command_timeout * 1000);
	for (;;)
	{
		struct pollfd pfd = {.fd = pipefd[0],.events = POLLIN};
		long		secs;
		int			usecs;
		ssize_t		n;

		TimestampDifference(GetCurrentTimestamp(), deadline, &secs, &usecs);
		if (ShutdownRequestPending)
		{
			snprintf(err, errlen, "trading_guard.key_command was killed: the server is shutting down");
			ok = false;
			break;
		}
		if (secs == 0 && usecs == 0)
		{
			snprintf(err, errlen, "trading_guard.key_command did not finish within %d s and was killed",
					 key_command_timeout);
			ok = false;
			break;
		}
		n = poll(&pfd, 1, (int) (secs * 1000 + usecs / 1000 + 1));
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			continue;
		if (n < 0)
		{
			snprintf(err, errlen, "could not read from trading_guard.key_command: %m");
			ok = false;
			break;
		}
		n = read(pipefd[0], buf->text + len, TG_KEYRING_MAX_TEXT - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
		{
			snprintf(err, errlen, "could not read from trading_guard.key_command: %m");
			ok = false;
			break;
		}
		if (n == 0)
			break;
		len += n;
		if (len >= TG_KEYRING_MAX_TEXT)
		{
			snprintf(err, errlen, "trading_guard.key_command wrote more than %d bytes",
					 TG_KEYRING_MAX_TEXT - 1);
			ok = false;
			break;
		}
	}
	close(pipefd[0]);

	/*
	 * Reap it, still within the deadline: a command can close its output
	 * and go on running.  Past the deadline it is killed with its process
	 * group.
	 */
	for (;;)
	{
		pid_t		r;

		if (!ok)
		{
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
		}
		r = waitpid(pid, &status, ok ? WNOHANG : 0);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
		{
			status = -1;
			break;
		}
		if (r == 0 && (ShutdownRequestPending ||
					   GetCurrentTimestamp() >= deadline))
		{
			snprintf(err, errlen, "trading_guard.key_command did not exit within %d s and was killed",
					 key_command_timeout);
			ok = false;
		}
		else if (r == 0)
			pg_usleep(10000L);
	}
	buf->text[len] = '\0';
	if (ok && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
	{
		if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
			snprintf(err, errlen, "trading_guard.key_command could not be run (program \"%s\" not found or not executable)",
					 argv[0]);
		else if (WIFEXITED(status))
			snprintf(err, errlen, "trading_guard.key_command failed with exit code %d",
					 WEXITSTATUS(status));
		else if (WIFSIGNALED(status))
			snprintf(err, errlen, "trading_guard.key_command was terminated by signal %d",
					 WTERMSIG(status));
		else
			snprintf(err, errlen, "trading_guard.key_command failed");
		ok = false;
	}
	return ok;
}

/*
 * Read key_file into buf->text, refusing a file that is not a regular file
 * owned by the server's user, or that group or others may access.  A
 * symbolic link is followed (secret mounts of container platforms are
 * links); what is checked is the file it leads to, as opened.
 */
static bool
read_key_file(TgLoadBuffer *buf, char *err, size_t errlen)
{
	struct stat st;
	int			fd;
	Size		len = 0;

	/* non-blocking: a FIFO must not hang the loader before the checks */
	fd = open(key_file, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
	{
		snprintf(err, errlen, "could not open key file \"%s\": %m", key_file);
		return false;
	}
	if (fstat(fd, &st) != 0)
	{
		snprintf(err, errlen, "could not stat key file \"%s\": %m", key_file);
		close(fd);
		return false;
	}
	if (!S_ISREG(st.st_mode))
	{
		snprintf(err, errlen, "key file \"%s\" is not a regular file", key_file);
		close(fd);
		return false;
	}
	if (st.st_uid != geteuid())
	{
		snprintf(err, errlen, "key file \"%s\" must be owned by the database server's user",
				 key_file);
		close(fd);
		return false;
	}
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
	{
		snprintf(err, errlen, "key file \"%s\" has group or world access (mode %04o); it must be u=rw (0600) or less",
				 key_file, (unsigned) (st.st_mode & 07777));
		close(fd);
		return false;
	}
	for (;;)
	{
		ssize_t		n = read(fd, buf->text + len, TG_KEYRING_MAX_TEXT - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
		{
			snprintf(err, errlen, "could not read key file \"%s\": %m", key_file);
			close(fd);
			return false;
		}
		if (n == 0)
			break;
		len += n;
		if (len >= TG_KEYRING_MAX_TEXT)
		{
			snprintf(err, errlen, "key file \"%s\" is larger than %d bytes",
					 key_file, TG_KEYRING_MAX_TEXT - 1);
			close(fd);
			return false;
		}
	}
	close(fd);
	buf->text[len] = '\0';
	return true;
}

/* ----------------------------------------------------------------------
 * Parsing and deriving
 * ----------------------------------------------------------------------
 */

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode one key (64 hex digits or base64 of 32 bytes) into out */
static bool
decode_key(const char *s, int len, uint8 *out)
{
	if (len == 2 * TG_KEY_LEN)
	{
		for (int i = 0; i < TG_KEY_LEN; i++)
		{
			int			hi = hexval(s[2 * i]),
						lo = hexval(s[2 * i + 1]);

			if (hi < 0 || lo < 0)
				return false;
			out[i] = (uint8) (hi << 4 | lo);
		}
		return true;
	}
	if (len == 44)
	{
		uint8		tmp[36];
		int			n = pg_b64_decode(s, len, (char *) tmp, sizeof(tmp));
		bool		ok = (n == TG_KEY_LEN);

		if (ok)
			memcpy(out, tmp, TG_KEY_LEN);
		OPENSSL_cleanse(tmp, sizeof(tmp));
		return ok;
	}
	return false;
}

/*
 * Parse buf->text into buf->master / buf->version; returns the number of
 * keys, or -1 with err set.  Messages never quote the text (it is key
 * material), only line numbers.
 */
static int
parse_ring(TgLoadBuffer *buf, char *err, size_t errlen)
{
	char	   *p = buf->text;
	int			n = 0;
	int			lineno = 0;
	bool		unversioned = false;

	while (*p != '\0')
	{
		char	   *line = p;
		char	   *end;
		char	   *tok[3];
		int			toklen[3];
		int			ntok = 0;

		lineno++;
		while (*p != '\0' && *p != '\n' && *p != ';')
			p++;
		end = p;
		if (*p != '\0')
			p++;

		/* tokens on this line */
		for (char *q = line; q < end && ntok <= 2;)
		{
			while (q < end && (*q == ' ' || *q == '\t' || *q == '\r' || *q == ':'))
				q++;
			if (q >= end || *q == '#')
				break;
			tok[ntok] = q;
			while (q < end && *q != ' ' && *q != '\t' && *q != '\r' && *q != ':')
				q++;
			toklen[ntok] = (int) (q - tok[ntok]);
			ntok++;
		}
		if (ntok == 0)
			continue;
		if (ntok > 2)
		{
			snprintf(err, errlen, "key ring line %d: expected \"VERSION KEY\"", lineno);
			return -1;
		}
		if (n >= TG_KEYRING_MAX_VERSIONS)
		{
			snprintf(err, errlen, "key ring has more than %d keys", TG_KEYRING_MAX_VERSIONS);
			return -1;
		}
		if (ntok == 1)
		{
			buf->version[n] = 1;
			unversioned = true;
		}
		else
		{
			uint64		v = 0;

			for (int i = 0; i < toklen[0]; i++)
			{
				if (!isdigit((unsigned char) tok[0][i]) || v > PG_INT32_MAX / 10)
				{
					v = 0;
					break;
				}
				v = v * 10 + (tok[0][i] - '0');
			}
			if (v == 0 || v > PG_INT32_MAX)
			{
				snprintf(err, errlen, "key ring line %d: the version must be an integer from 1 to %d",
						 lineno, PG_INT32_MAX);
				return -1;
			}
			buf->version[n] = (uint32) v;
		}
		if (n > 0 && (ntok == 1 || unversioned))
		{
			snprintf(err, errlen, "key ring line %d: every key of a key ring with more than one key needs a version",
					 lineno);
			return -1;
		}
		if (!decode_key(tok[ntok - 1], toklen[ntok - 1], buf->master[n]))
		{
			snprintf(err, errlen, "key ring line %d: the key is not 256 bits as 64 hex digits or 44 base64 characters",
					 lineno);
			return -1;
		}
		for (int i = 0; i < n; i++)
		{
			if (buf->version[i] == buf->version[n])
			{
				snprintf(err, errlen, "key ring line %d: version %u appears twice",
						 lineno, buf->version[n]);
				return -1;
			}
		}
		n++;
	}
	if (n == 0)
	{
		snprintf(err, errlen, "the key ring is empty");
		return -1;
	}
	return n;
}

/* HKDF-SHA256(master, info) -> out[len] */
static bool
hkdf(const uint8 *master, const char *info, uint8 *out, size_t len)
{
	EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
	bool		ok;

	if (pctx == NULL)
		return false;
	ok = EVP_PKEY_derive_init(pctx) > 0 &&
		EVP_PKEY_CTX_set_hkdf_md(pctx, EVP_sha256()) > 0 &&
		EVP_PKEY_CTX_set1_hkdf_key(pctx, master, TG_KEY_LEN) > 0 &&
		EVP_PKEY_CTX_add1_hkdf_info(pctx, (const unsigned char *) info, strlen(info)) > 0 &&
		EVP_PKEY_derive(pctx, out, &len) > 0;
	EVP_PKEY_CTX_free(pctx);
	return ok;
}

static const char *const purpose_info[TG_KEY_NUM_PURPOSES] = {
	"trading_guard/v1/encryption",
	"trading_guard/v1/fingerprint",
	"trading_guard/v1/sealing"
};

/* Derive slot contents from the parsed master keys, sorted by version */
static bool
derive_slot(TgLoadBuffer *buf, int n, TgKeySlot *slot, char *err, size_t errlen)
{
	int			order[TG_KEYRING_MAX_VERSIONS];

	for (int i = 0; i < n; i++)
		order[i] = i;
	for (int i = 1; i < n; i++)	/* insertion sort, n <= 32 */
	{
		int			k = order[i],
					j = i - 1;

		while (j >= 0 && buf->version[order[j]] > buf->version[k])
		{
			order[j + 1] = order[j];
			j--;
		}
		order[j + 1] = k;
	}

	memset(slot, 0, sizeof(*slot));
	for (int i = 0; i < n; i++)
	{
		TgKeyVersion *kv = &slot->versions[i];
		const uint8 *master = buf->master[order[i]];
		uint8		id[TG_KEY_ID_LEN / 2];

		kv->version = buf->version[order[i]];
		for (int p = 0; p < TG_KEY_NUM_PURPOSES; p++)
		{
			if (!hkdf(master, purpose_info[p], kv->subkeys[p], TG_KEY_LEN))
			{
				snprintf(err, errlen, "could not derive subkeys (OpenSSL HKDF failed)");
				OPENSSL_cleanse(slot, sizeof(*slot));
				return false;
			}
		}
		if (!hkdf(master, "trading_guard/v1/key-id", id, sizeof(id)))
		{
			snprintf(err, errlen, "could not derive the key id (OpenSSL HKDF failed)");
			OPENSSL_cleanse(slot, sizeof(*slot));
			return false;
		}
		for (int b = 0; b < (int) sizeof(id); b++)
			snprintf(kv->key_id + 2 * b, 3, "%02x", id[b]);
	}
	slot->nversions = n;
	return true;
}

/*
 * A key_ring security event (events.c): never a key, only versions, key
 * ids (fingerprints), the source and the error.
 */
static void
keyring_event(TgEventOutcome outcome, const char *what, uint32 version,
			  const char *key_id, const char *source, const char *error)
{
	TgEvent		ev;

	tg_event_start(&ev, TG_EV_KEY_RING, outcome);
	tg_event_set(&ev, reason, what);
	ev.key_version = (int32) version;
	tg_event_set(&ev, key_id, key_id);
	tg_event_detail(&ev, "source", source);
	if (error)
		tg_event_detail(&ev, "error", error);
	(void) tg_event_emit(&ev);
}

/* Versions in one ring and not the other become events */
static void
keyring_report_changes(const TgKeySlot *before, const TgKeySlot *after, bool had_ring)
{
	if (!had_ring)
	{
		/*
		 * The first load: the older versions too (the "loaded" event names
		 * the newest), so that key_version_history knows every key id.
		 */
		for (int i = 0; i < after->nversions - 1; i++)
			keyring_event(TG_OUT_INFO, "version present", after->versions[i].version,
						  after->versions[i].key_id, "key ring", NULL);
		return;
	}
	for (int pass = 0; pass < 2; pass++)
	{
		const TgKeySlot *a = pass == 0 ? after : before;
		const TgKeySlot *b = pass == 0 ? before : after;

		for (int i = 0; i < a->nversions; i++)
		{
			bool		found = false;

			for (int j = 0; j < b->nversions; j++)
				if (b->versions[j].version == a->versions[i].version)
					found = true;
			if (!found)
				keyring_event(TG_OUT_INFO, pass == 0 ? "version added" : "version removed",
							  a->versions[i].version, a->versions[i].key_id,
							  "key ring", NULL);
		}
	}
}

/*
 * Load the ring from the configured source into the slot not in use and
 * publish it.  On failure the ring in force stays; the reason is logged
 * and kept for key_ring_status().  Runs in the postmaster (at start) or in
 * the key ring worker (on SIGHUP).
 */
static void
keyring_load_sources(void)
{
	TgLoadBuffer *buf = load_buffer();
	char		err[TG_KEYRING_ERROR_LEN] = "";
	const char *source;
	const char *env = getenv("TRADING_GUARD_MASTER_KEY");
	bool		ok;
	int			n = -1;
	int			target = 1 - ring->active;
	bool		had_ring = ring->loaded;
	TgKeySlot	previous;

	if (key_command && key_command[0] != '\0')
	{
		source = "key_command";
		ok = read_command(buf, err, sizeof(err));
	}
	else if (key_file && key_file[0] != '\0')
	{
		source = "key_file";
		ok = read_key_file(buf, err, sizeof(err));
	}
	else if (env && env[0] != '\0')
	{
		source = "environment";
		ok = strlen(env) < TG_KEYRING_MAX_TEXT;
		if (ok)
			strlcpy(buf->text, env, sizeof(buf->text));
		else
			snprintf(err, sizeof(err), "TRADING_GUARD_MASTER_KEY is longer than %d bytes",
					 TG_KEYRING_MAX_TEXT - 1);
	}
	else
	{
		source = "none";
		ok = false;
		snprintf(err, sizeof(err), "no key source is configured (trading_guard.key_command, trading_guard.key_file or TRADING_GUARD_MASTER_KEY)");
	}

	if (ok)
		n = parse_ring(buf, err, sizeof(err));
	if (n > 0)
		ok = derive_slot(buf, n, &ring->slots[target], err, sizeof(err));
	else
		ok = false;
	OPENSSL_cleanse(buf, sizeof(*buf));

	if (!ok)
	{
		ring->failed_at = GetCurrentTimestamp();
		strlcpy(ring->error, err, sizeof(ring->error));
		ereport(ring->loaded ? WARNING : LOG,
				(errmsg("trading_guard: could not load the key ring from %s: %s", source, err),
				 ring->loaded ?
				 errdetail("The key ring loaded at %s stays in force.",
						   timestamptz_to_str(ring->loaded_at)) :
				 errdetail("The credential vault refuses to work until a key ring is loaded.")));
		keyring_event(TG_OUT_ERROR, ring->loaded ? "reload failed" : "load failed",
					  0, NULL, source, err);
		return;
	}

	/* what was in force, for the version added / removed events (no keys) */
	memset(&previous, 0, sizeof(previous));
	previous.nversions = had_ring ? ring->slots[ring->active].nversions : 0;
	for (int i = 0; i < previous.nversions; i++)
	{
		previous.versions[i].version = ring->slots[ring->active].versions[i].version;
		memcpy(previous.versions[i].key_id, ring->slots[ring->active].versions[i].key_id,
			   sizeof(previous.versions[i].key_id));
	}

	pg_write_barrier();
	ring->active = target;
	ring->loaded = true;
	ring->loaded_at = GetCurrentTimestamp();
	strlcpy(ring->source, source, sizeof(ring->source));
	ring->failed_at = 0;
	ring->error[0] = '\0';
	pg_write_barrier();
	pg_atomic_fetch_add_u64(&ring->generation, 1);
	/* the old slot: readers that might still copy it retry on the generation */
	OPENSSL_cleanse(&ring->slots[1 - target], sizeof(TgKeySlot));

	ereport(LOG,
			(errmsg("trading_guard: key ring loaded from %s: %d key version%s, newest %u",
					source, n, n == 1 ? "" : "s",
					ring->slots[target].versions[n - 1].version)));
	keyring_event(TG_OUT_INFO, "loaded", ring->slots[target].versions[n - 1].version,
				  ring->slots[target].versions[n - 1].key_id, source, NULL);
	keyring_report_changes(&previous, &ring->slots[target], had_ring);
	OPENSSL_cleanse(&previous, sizeof(previous));
}

/*
 * keyring_load_sources in a memory context of its own, so that what parsing
 * the command line allocates does not pile up over reloads in the worker.
 */
static void
keyring_load(void)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext,
											  "trading_guard key ring load",
											  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);

	keyring_load_sources();
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}

/* ----------------------------------------------------------------------
 * Shared memory and the worker
 * ----------------------------------------------------------------------
 */

static Size
ring_shmem_size(void)
{
	return sizeof(TgKeyRingShared) + (Size) sysconf(_SC_PAGESIZE) * 2;
}

static void
ring_wipe(int code, Datum arg)
{
	if (ring)
		OPENSSL_cleanse(ring, sizeof(*ring));
}

/* the postmaster has loaded the ring once (at start) */
static bool postmaster_loaded = false;

static void
ring_shmem_init(void *ptr, bool found)
{
	Size		pagesize = (Size) sysconf(_SC_PAGESIZE);
	char	   *aligned = (char *) TYPEALIGN(pagesize, ptr);

	ring = (TgKeyRingShared *) aligned;
	if (found)
		return;

	memset(ring, 0, sizeof(*ring));
	pg_atomic_init_u64(&ring->generation, 0);
#ifdef MADV_DONTDUMP
	(void) madvise(aligned, TYPEALIGN(pagesize, sizeof(*ring)), MADV_DONTDUMP);
#endif
	if (mlock(aligned, TYPEALIGN(pagesize, sizeof(*ring))) != 0)
		ereport(WARNING,
				(errmsg("trading_guard: could not lock the key ring in RAM: %m"),
				 errhint("Raise the server user's RLIMIT_MEMLOCK (ulimit -l) so that keys cannot be swapped out.")));
	on_shmem_exit(ring_wipe, (Datum) 0);

	/*
	 * In the postmaster at start.  After a crash the postmaster sets up
	 * shared memory again from its child-exit handler, where it must not
	 * wait on a program: the key ring worker loads the ring when it starts.
	 */
	if (!postmaster_loaded)
	{
		postmaster_loaded = true;
		keyring_load();
	}
	else
		ring->worker_must_load = true;
}

void
tg_keyring_worker_main(Datum arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();

	/* after a crash restart the postmaster left the loading to us */
	if (ring->worker_must_load)
	{
		ring->worker_must_load = false;
		keyring_load();
	}

	for (;;)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH, -1,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		if (ShutdownRequestPending)
			break;
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			keyring_load();
		}
	}
	proc_exit(0);
}

/*
 * Define the key source GUCs; when preloading, ask for shared memory and
 * register the worker that reloads the ring on SIGHUP.
 */
void
tg_keyring_init(void)
{
	BackgroundWorker worker;

	DefineCustomStringVariable("trading_guard.key_command",
							   "Program whose standard output is the key ring (run without a shell).",
							   NULL,
							   &key_command,
							   "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("trading_guard.key_file",
							   "File holding the key ring (owned by the server's user, mode 0600 or less).",
							   NULL,
							   &key_file,
							   "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("trading_guard.key_command_timeout",
							"Time after which trading_guard.key_command is killed.",
							NULL,
							&key_command_timeout,
							10, 1, 600,
							PGC_SIGHUP, GUC_UNIT_S | GUC_SUPERUSER_ONLY,
							NULL, NULL, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;

	tg_shmem_register("trading_guard key ring", ring_shmem_size(), ring_shmem_init);

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS;
	worker.bgw_start_time = BgWorkerStart_PostmasterStart;
	worker.bgw_restart_time = 5;
	strlcpy(worker.bgw_library_name, "trading_guard", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "tg_keyring_worker_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "trading_guard key ring", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "trading_guard key ring", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

/* ----------------------------------------------------------------------
 * Reading keys (backends)
 * ----------------------------------------------------------------------
 */

/* The generation of the ring in force: it changes with every reload */
uint64
tg_keyring_generation(void)
{
	return ring ? pg_atomic_read_u64(&ring->generation) : 0;
}

/* Is a key ring loaded (false when not preloaded)? */
bool
tg_keyring_loaded(void)
{
	return ring != NULL && ring->loaded;
}

/*
 * Refuse, with TG071 and the reason, when there is no key ring.
 */
void
tg_keyring_require(void)
{
	tg_require_preload("the credential vault");
	if (!ring->loaded)
		ereport(ERROR,
				(errcode(ERRCODE_TG_KEYRING_UNAVAILABLE),
				 errmsg("no key ring is loaded"),
				 ring->error[0] ? errdetail("The last attempt failed: %s.", ring->error) : 0,
				 errhint("Set trading_guard.key_command or trading_guard.key_file, or TRADING_GUARD_MASTER_KEY in the server's environment, then reload or restart.")));
}

/*
 * Copy the subkeys of key version "version" (0 = the newest) into *kv,
 * which must be memory from tg_secure_alloc().  False if that version is
 * not in the ring.  Call tg_keyring_require() first.
 */
bool
tg_keyring_get(uint32 version, TgKeyVersion *kv)
{
	for (;;)
	{
		uint64		gen = pg_atomic_read_u64(&ring->generation);
		const TgKeySlot *slot;
		bool		found = false;

		pg_read_barrier();
		slot = &ring->slots[ring->active];
		if (slot->nversions > 0)
		{
			if (version == 0)
			{
				*kv = slot->versions[slot->nversions - 1];
				found = true;
			}
			else
			{
				for (int i = 0; i < slot->nversions; i++)
				{
					if (slot->versions[i].version == version)
					{
						*kv = slot->versions[i];
						found = true;
						break;
					}
				}
			}
		}
		pg_read_barrier();
		if (pg_atomic_read_u64(&ring->generation) == gen)
			return found;
		/* a reload published meanwhile: copy again */
	}
}

/*
 * The versions in the ring, ascending, into versions[max]; returns how
 * many.  Call tg_keyring_require() first.
 */
int
tg_keyring_versions(uint32 *versions, int max)
{
	for (;;)
	{
		uint64		gen = pg_atomic_read_u64(&ring->generation);
		const TgKeySlot *slot;
		int			n;

		pg_read_barrier();
		slot = &ring->slots[ring->active];
		n = Min(slot->nversions, max);
		for (int i = 0; i < n; i++)
			versions[i] = slot->versions[i].version;
		pg_read_barrier();
		if (pg_atomic_read_u64(&ring->generation) == gen)
			return n;
	}
}

/*
 * SQL: key_versions() returns table (version int, key_id text, newest bool)
 * The versions in the ring and their key ids; never a key.
 */
PG_FUNCTION_INFO_V1(tg_key_versions);
Datum
tg_key_versions(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	uint32		versions[TG_KEYRING_MAX_VERSIONS];
	char		ids[TG_KEYRING_MAX_VERSIONS][TG_KEY_ID_LEN + 1];
	int			n;

	tg_require_preload("key_versions");
	InitMaterializedSRF(fcinfo, 0);

	for (;;)
	{
		uint64		gen = pg_atomic_read_u64(&ring->generation);
		const TgKeySlot *slot;

		pg_read_barrier();
		slot = &ring->slots[ring->active];
		n = ring->loaded ? slot->nversions : 0;
		for (int i = 0; i < n; i++)
		{
			versions[i] = slot->versions[i].version;
			memcpy(ids[i], slot->versions[i].key_id, sizeof(ids[i]));
		}
		pg_read_barrier();
		if (pg_atomic_read_u64(&ring->generation) == gen)
			break;
	}

	for (int i = n - 1; i >= 0; i--)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		values[0] = Int32GetDatum((int32) versions[i]);
		values[1] = CStringGetTextDatum(ids[i]);
		values[2] = BoolGetDatum(i == n - 1);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * SQL: key_ring_status() returns table (loaded bool, source text,
 *        loaded_at timestamptz, versions int, newest int,
 *        last_error text, last_error_at timestamptz)
 */
PG_FUNCTION_INFO_V1(tg_key_ring_status);
Datum
tg_key_ring_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[7];
	bool		nulls[7] = {false, false, false, false, false, false, false};
	TgKeyRingShared copy;
	const TgKeySlot *slot;

	tg_require_preload("key_ring_status");
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	/* only the bookkeeping, not the slots */
	for (;;)
	{
		uint64		gen = pg_atomic_read_u64(&ring->generation);

		pg_read_barrier();
		copy.loaded = ring->loaded;
		copy.loaded_at = ring->loaded_at;
		memcpy(copy.source, ring->source, sizeof(copy.source));
		copy.failed_at = ring->failed_at;
		memcpy(copy.error, ring->error, sizeof(copy.error));
		slot = &ring->slots[ring->active];
		copy.slots[0].nversions = slot->nversions;
		copy.slots[0].versions[0].version =
			slot->nversions > 0 ? slot->versions[slot->nversions - 1].version : 0;
		pg_read_barrier();
		if (pg_atomic_read_u64(&ring->generation) == gen)
			break;
	}
	copy.source[sizeof(copy.source) - 1] = '\0';
	copy.error[sizeof(copy.error) - 1] = '\0';

	values[0] = BoolGetDatum(copy.loaded);
	if (copy.loaded)
	{
		values[1] = CStringGetTextDatum(copy.source);
		values[2] = TimestampTzGetDatum(copy.loaded_at);
		values[3] = Int32GetDatum(copy.slots[0].nversions);
		values[4] = Int32GetDatum((int32) copy.slots[0].versions[0].version);
	}
	else
		nulls[1] = nulls[2] = nulls[3] = nulls[4] = true;
	if (copy.failed_at != 0)
	{
		values[5] = CStringGetTextDatum(copy.error);
		values[6] = TimestampTzGetDatum(copy.failed_at);
	}
	else
		nulls[5] = nulls[6] = true;

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
