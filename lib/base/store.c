#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exitcodes.h"
#include "store.h"
#include "util.h"

int
dd_store_err(struct dd_store *s, const char *what)
{
	int rc = s->db ? sqlite3_errcode(s->db) : SQLITE_CANTOPEN;
	const char *why = NULL;
	/* "unable to open database file" alone does not say why: a store's
	 * directory must be writable (the -wal, -shm and lock files). */
	if (s->path && (rc == SQLITE_CANTOPEN || rc == SQLITE_READONLY)) {
		char *dir = dd_strdup(s->path), *slash = strrchr(dir, '/');
		if (slash)
			slash[slash == dir] = '\0';
		if (access(slash ? dir : ".", W_OK) < 0)
			why = strerror(errno);
		free(dir);
	}
	dd_seterr("%s: %s: %s%s%s%s", s->path ? s->path : "store", what,
	    s->db ? sqlite3_errmsg(s->db) : "cannot open", why ? " (" : "", why ? why : "",
	    why ? ")" : "");
	return -1;
}

/* Map a SQLite failure to our exit codes. */
static int
code_of(struct dd_store *s)
{
	int rc = s->db ? sqlite3_errcode(s->db) : SQLITE_CANTOPEN;
	return rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? DD_EXIT_BUSY : DD_EXIT_IO;
}

int
dd_store_exec(struct dd_store *s, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		dd_seterr("%s: %s", s->path, msg ? msg : sqlite3_errmsg(s->db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

sqlite3_stmt *
dd_store_prepare(struct dd_store *s, const char *sql)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
		dd_store_err(s, "prepare");
		return NULL;
	}
	return st;
}

static int
user_version(struct dd_store *s, int *v)
{
	sqlite3_stmt *st = dd_store_prepare(s, "PRAGMA user_version");
	if (st == NULL)
		return -1;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : dd_store_err(s, "reading the schema version");
}

static int
open_db(struct dd_store *s, const char *path, int flags)
{
	memset(s, 0, sizeof *s);
	s->path = dd_strdup(path);
	if (sqlite3_open_v2(path, &s->db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		dd_store_err(s, "open");
		return DD_EXIT_IO;
	}
	sqlite3_extended_result_codes(s->db, 0);
	/* Writers of other programs' jobs (dd-archive beside dd-history) keep
	 * their transactions short; waiting for them is normal, not an error. */
	sqlite3_busy_timeout(s->db, 10000);
	return 0;
}

int
dd_store_open(struct dd_store *s, const char *path, const char *const *migrations, int n)
{
	int rc, v = 0;
	char *dir = dd_strdup(path), *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (dd_mkdirs(dir)) {
			free(dir);
			memset(s, 0, sizeof *s);
			return DD_EXIT_IO;
		}
	}
	free(dir);
	if ((rc = open_db(s, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)))
		return rc;
	/* WAL: readers (get/list) never block the filter; FULL: a commit is
	 * on disk when COMMIT returns, as SPEC's durability asks. */
	sqlite3_stmt *st = dd_store_prepare(s, "PRAGMA journal_mode=WAL");
	if (st == NULL)
		goto fail;
	rc = sqlite3_step(st);
	int wal = rc == SQLITE_ROW &&
	    strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW) {
		dd_store_err(s, "open");
		goto fail;
	}
	if (!wal) {
		dd_seterr("%s: cannot switch to WAL mode", path);
		goto fail;
	}
	if (dd_store_exec(s, "PRAGMA synchronous=FULL; PRAGMA cache_size=-32768;"
	    "PRAGMA temp_store=MEMORY") || user_version(s, &v))
		goto fail;
	if (v > n) {
		dd_seterr("%s: schema version %d is newer than this program's (%d)",
		    path, v, n);
		goto fail;
	}
	for (; v < n; v++) {
		char sql[64];
		if (dd_store_exec(s, "BEGIN IMMEDIATE"))
			goto fail;
		snprintf(sql, sizeof sql, "PRAGMA user_version=%d", v + 1);
		if (dd_store_exec(s, migrations[v]) || dd_store_exec(s, sql)) {
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			goto fail;
		}
		if (dd_store_exec(s, "COMMIT"))
			goto fail;
	}
	return 0;
fail:
	rc = code_of(s);
	{
		/* Keep the message: closing must not overwrite it. */
		char *msg = dd_strdup(dd_errmsg());
		dd_store_close(s);
		dd_seterr("%s", msg);
		free(msg);
	}
	return rc;
}

/* No PATH-wal beside the store: no writer has it open, none crashed. */
static int
no_wal(const char *path)
{
	struct stat sb;
	char *wal = dd_malloc(strlen(path) + 5);
	sprintf(wal, "%s-wal", path);
	int none = stat(wal, &sb) < 0 && errno == ENOENT;
	free(wal);
	return none;
}

/* "file:PATH?immutable=1", PATH percent-encoded where a URI needs it. */
static char *
immutable_uri(const char *path)
{
	struct dd_buf b = { 0 };
	dd_buf_adds(&b, path[0] == '/' ? "file://" : "file:");
	for (const unsigned char *p = (const unsigned char *)path; *p; p++)
		if (*p == '%' || *p == '?' || *p == '#' || *p < 0x20 || *p >= 0x7f)
			dd_buf_printf(&b, "%%%02X", *p);
		else
			dd_buf_addc(&b, (char)*p);
	dd_buf_adds(&b, "?immutable=1");
	return b.p;
}

int
dd_store_open_ro(struct dd_store *s, const char *path)
{
	struct stat sb;
	if (stat(path, &sb) < 0) {
		memset(s, 0, sizeof *s);
		dd_seterr("%s: no such store (%s)", path, strerror(errno));
		return DD_EXIT_IO;
	}
	int rc = open_db(s, path, SQLITE_OPEN_READONLY);
	int v;
	if (rc == 0 && user_version(s, &v) && sqlite3_errcode(s->db) == SQLITE_CANTOPEN &&
	    no_wal(path)) {
		/* A store on read-only media (a snapshot, a ro mount): SQLite
		 * cannot create the -shm a WAL reader needs. Without a -wal
		 * everything is in the main file, which immutable=1 reads as it
		 * is. */
		dd_store_close(s);
		char *uri = immutable_uri(path);
		rc = open_db(s, uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI);
		free(s->path);
		s->path = dd_strdup(path);
		free(uri);
	}
	if (rc == 0 && user_version(s, &v)) {
		rc = code_of(s);
		char *msg = dd_strdup(dd_errmsg());
		dd_store_close(s);
		dd_seterr("%s", msg);
		free(msg);
	}
	return rc;
}

void
dd_store_close(struct dd_store *s)
{
	if (s->db) {
		if (s->in_tx)
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		sqlite3_close_v2(s->db);
	}
	free(s->path);
	memset(s, 0, sizeof *s);
}

int
dd_store_begin(struct dd_store *s)
{
	if (s->in_tx)
		return 0;
	if (dd_store_exec(s, "BEGIN IMMEDIATE"))
		return -1;
	s->in_tx = 1;
	return 0;
}

/* Outside the migrations: only a store read from Kafka has the table,
 * and it means the same in every store. */
static const char koff_schema[] =
    "CREATE TABLE IF NOT EXISTS kafka_offsets (topic TEXT NOT NULL, "
    "part INTEGER NOT NULL, next INTEGER NOT NULL, PRIMARY KEY (topic, part))";

int
dd_store_koff_write(struct dd_store *s)
{
	const struct dd_koffsets *k = s->koff;
	s->koff = NULL;
	if (k == NULL || k->n == 0)
		return 0;
	if (dd_store_exec(s, koff_schema))
		return -1;
	sqlite3_stmt *st = dd_store_prepare(s, "INSERT INTO kafka_offsets (topic, part, next) "
	    "VALUES (?, ?, ?) ON CONFLICT (topic, part) DO UPDATE SET next = excluded.next");
	if (st == NULL)
		return -1;
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < k->n; i++) {
		dd_bind_text(st, 0, k->pos[i].topic, (size_t)-1);
		dd_bind_int(st, 1, k->pos[i].partition);
		dd_bind_int(st, 2, k->pos[i].next);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = dd_store_err(s, "kafka offsets");
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	return rc;
}

int64_t
dd_store_koff_get(struct dd_store *s, const char *topic, int32_t partition)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(s->db, "SELECT next FROM kafka_offsets WHERE topic = ? AND "
	    "part = ?", -1, &st, NULL) != SQLITE_OK) {
		/* No table: the store was never fed from Kafka. */
		if (strstr(sqlite3_errmsg(s->db), "no such table"))
			return -1;
		dd_store_err(s, "kafka offsets");
		return -2;
	}
	dd_bind_text(st, 0, topic, (size_t)-1);
	dd_bind_int(st, 1, partition);
	int64_t v = -1;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		v = dd_col_int(st, 0);
	else if (rc != SQLITE_DONE)
		v = -2, dd_store_err(s, "kafka offsets");
	sqlite3_finalize(st);
	return v;
}

int
dd_store_commit(struct dd_store *s)
{
	if (s->koff && dd_store_begin(s))
		return -1;
	if (!s->in_tx)
		return 0;
	if (s->koff && dd_store_koff_write(s)) {
		dd_store_rollback(s);
		return -1;
	}
	if (dd_store_exec(s, "COMMIT")) {
		/* A failed COMMIT may leave the transaction open: undo it, so the
		 * store stays as of the last good commit. */
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		s->in_tx = 0;
		return -1;
	}
	s->in_tx = 0;
	return 0;
}

int
dd_store_rollback(struct dd_store *s)
{
	if (!s->in_tx)
		return 0;
	s->in_tx = 0;
	return dd_store_exec(s, "ROLLBACK");
}

int
dd_lock(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	if (fd < 0) {
		dd_seterr("%s: %s", path, strerror(errno));
		return -DD_EXIT_IO;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		close(fd);
		if (e == EWOULDBLOCK) {
			dd_seterr("%s: another run holds the lock", path);
			return -DD_EXIT_BUSY;
		}
		dd_seterr("%s: lock: %s", path, strerror(e));
		return -DD_EXIT_IO;
	}
	return fd;
}

int
dd_store_read(const char *path, int (*fn)(void *ctx, struct dd_store *s, char **argv),
    void *ctx, char **argv)
{
	struct dd_store s;
	int rc = dd_store_open_ro(&s, path);
	if (rc)
		return rc;
	rc = fn(ctx, &s, argv);
	dd_store_close(&s);
	return rc;
}

/* One id: its answer, or its name on stderr when unknown. Like the filter
 * loop, this loop reports what it skips itself. */
static int
get_one(int (*one)(void *, const char *, FILE *), void *q, const char *id, FILE *out,
    int *unknown)
{
	int rc = one(q, id, out);
	if (rc == DD_EXIT_REJECTED) {
		dd_warn("%s", dd_errmsg());
		*unknown = 1;
		rc = 0;
	}
	if (rc == 0 && ferror(out)) {
		dd_seterr("stdout: %s", strerror(errno ? errno : EIO));
		rc = DD_EXIT_IO;
	}
	return rc;
}

int
dd_store_get(struct dd_store *s, char **ids, int (*one)(void *q, const char *id, FILE *out),
    void *q, FILE *out)
{
	/* Many lookups in random order touch pages all over the file: mapped,
	 * they are read from the page cache without a pread (and a copy) each,
	 * and a bigger cache keeps the B-trees' upper pages. A few ids read a
	 * few pages: mapping the file, its page faults (each maps a run of
	 * pages around it) and unmapping it cost more than the preads, so
	 * they go without. Best effort: a build without mmap reads as before. */
	size_t nids = 0;
	int batch = 0;
	for (char **p = ids; *p && !batch; p++)
		batch = strcmp(*p, "-") == 0 || ++nids > 64;
	if (batch)
		sqlite3_exec(s->db, "PRAGMA mmap_size=1073741824; PRAGMA cache_size=-65536",
		    NULL, NULL, NULL);
	if (dd_store_exec(s, "BEGIN"))
		return DD_EXIT_IO;
	int rc = 0, unknown = 0;
	char *line = NULL;
	size_t cap = 0;
	for (; rc == 0 && *ids; ids++) {
		if (strcmp(*ids, "-") != 0) {
			rc = get_one(one, q, *ids, out, &unknown);
			continue;
		}
		ssize_t n;
		errno = 0;
		while (rc == 0 && (n = getline(&line, &cap, stdin)) >= 0) {
			while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
				line[--n] = '\0';
			if (n > 0)
				rc = get_one(one, q, line, out, &unknown);
		}
		if (rc == 0 && ferror(stdin)) {
			dd_seterr("stdin: %s", strerror(errno ? errno : EIO));
			rc = DD_EXIT_IO;
		}
	}
	free(line);
	/* Nothing was written: the end of the read transaction cannot fail
	 * in a way that matters to the answers. */
	sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	return rc ? rc : unknown ? DD_EXIT_REJECTED : 0;
}

int
dd_bind_text(sqlite3_stmt *st, int i, const char *s, size_t n)
{
	if (s == NULL)
		return sqlite3_bind_null(st, i + 1);
	if (n == (size_t)-1)
		n = strlen(s);
	return sqlite3_bind_text(st, i + 1, s, (int)n, SQLITE_TRANSIENT);
}

int
dd_bind_int(sqlite3_stmt *st, int i, int64_t v)
{
	return sqlite3_bind_int64(st, i + 1, v);
}

int
dd_bind_time(sqlite3_stmt *st, int i, int64_t ms)
{
	return ms == DD_NOTIME ? sqlite3_bind_null(st, i + 1) : sqlite3_bind_int64(st, i + 1, ms);
}

int
dd_bind_real(sqlite3_stmt *st, int i, double v)
{
	return isnan(v) ? sqlite3_bind_null(st, i + 1) : sqlite3_bind_double(st, i + 1, v);
}

const char *
dd_col_text(sqlite3_stmt *st, int i, size_t *n)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	if (n)
		*n = s ? (size_t)sqlite3_column_bytes(st, i) : 0;
	return s;
}

char *
dd_col_strdup(sqlite3_stmt *st, int i)
{
	size_t n;
	const char *s = dd_col_text(st, i, &n);
	return s ? dd_strndup(s, n) : NULL;
}

int64_t
dd_col_int(sqlite3_stmt *st, int i)
{
	return sqlite3_column_int64(st, i);
}

int64_t
dd_col_time(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? DD_NOTIME : sqlite3_column_int64(st, i);
}

double
dd_col_real(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}
