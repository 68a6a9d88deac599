#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "csvin.h"
#include "ddtime.h"
#include "exitcodes.h"
#include "json.h"
#include "package.h"
#include "reject.h"
#include "store.h"

struct dd_package {
	struct dd_store s;
	sqlite3_stmt *sel, *reg_ins, *reg_upd, *rem_ins, *rem_upd;
	uint64_t stored, removed, unchanged;
	/* Decoded strings of one event (only those with escapes). */
	struct dd_buf b_id, b_pkg, b_owner, b_dlv, b_tag;
};

static const char *const migrations[] = {
	/* 1: documents by id. doc is the data of the registration as
	 * received; a row whose doc is NULL is a removed package (a
	 * tombstone, so an older registration replayed cannot bring it
	 * back). event_time (epoch ms) and event_id are those of the newest
	 * event applied; registered is the time of the registration. */
	"CREATE TABLE package ("
	" id TEXT PRIMARY KEY,"
	" owner_id TEXT,"
	" delivery_id TEXT,"
	" size TEXT,"
	" weight_kg REAL,"
	" tag TEXT,"
	" registered INTEGER,"
	" doc TEXT,"
	" event_time INTEGER NOT NULL,"
	" event_id TEXT NOT NULL"
	") WITHOUT ROWID;"
	"CREATE INDEX package_owner ON package(owner_id, registered) WHERE doc IS NOT NULL;",
};

int
dd_package_open(struct dd_package **pp, const char *path)
{
	struct dd_package *p = dd_calloc(1, sizeof *p);
	*pp = NULL;
	int rc = dd_store_open(&p->s, path, migrations,
	    (int)(sizeof migrations / sizeof migrations[0]));
	if (rc) {
		free(p);
		return rc;
	}
	/* Checkpoint less often than SQLite's 1000 pages: a batch of new
	 * documents writes more than that, and each checkpoint is an fsync. */
	if (dd_store_exec(&p->s, "PRAGMA wal_autocheckpoint=16384")) {
		dd_package_close(p);
		return DD_EXIT_IO;
	}
	/* An INSERT that does nothing for a known package, then a lookup and
	 * an UPDATE: the decision (newer or not) is plain C. */
	if ((p->sel = dd_store_prepare(&p->s, "SELECT event_time, event_id FROM package "
	    "WHERE id = ?1")) == NULL ||
	    (p->reg_ins = dd_store_prepare(&p->s, "INSERT INTO package (id, owner_id, "
	    "delivery_id, size, weight_kg, tag, registered, doc, event_time, event_id) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?7, ?9) ON CONFLICT (id) DO NOTHING")) == NULL ||
	    (p->reg_upd = dd_store_prepare(&p->s, "UPDATE package SET owner_id = ?2, "
	    "delivery_id = ?3, size = ?4, weight_kg = ?5, tag = ?6, registered = ?7, "
	    "doc = ?8, event_time = ?7, event_id = ?9 WHERE id = ?1")) == NULL ||
	    (p->rem_ins = dd_store_prepare(&p->s, "INSERT INTO package (id, event_time, "
	    "event_id) VALUES (?1, ?2, ?3) ON CONFLICT (id) DO NOTHING")) == NULL ||
	    (p->rem_upd = dd_store_prepare(&p->s, "UPDATE package SET owner_id = NULL, "
	    "delivery_id = NULL, size = NULL, weight_kg = NULL, tag = NULL, "
	    "registered = NULL, doc = NULL, event_time = ?2, event_id = ?3 WHERE id = ?1")) == NULL) {
		char *msg = dd_strdup(dd_errmsg());
		dd_package_close(p);
		dd_seterr("%s", msg);
		free(msg);
		return DD_EXIT_IO;
	}
	*pp = p;
	return 0;
}

void
dd_package_close(struct dd_package *p)
{
	if (p == NULL)
		return;
	sqlite3_finalize(p->sel);
	sqlite3_finalize(p->reg_ins);
	sqlite3_finalize(p->reg_upd);
	sqlite3_finalize(p->rem_ins);
	sqlite3_finalize(p->rem_upd);
	dd_store_close(&p->s);
	dd_buf_free(&p->b_id);
	dd_buf_free(&p->b_pkg);
	dd_buf_free(&p->b_owner);
	dd_buf_free(&p->b_dlv);
	dd_buf_free(&p->b_tag);
	free(p);
}

int
dd_package_commit(struct dd_package *p)
{
	return dd_store_commit(&p->s);
}

void
dd_package_summary(struct dd_package *p, struct dd_buf *b)
{
	dd_buf_printf(b, ", stored %" PRIu64 ", removed %" PRIu64 ", unchanged %" PRIu64,
	    p->stored, p->removed, p->unchanged);
}

/* A string value's decoded text: in place when it has no escapes. */
static const char *
text(const struct dd_jval *v, struct dd_buf *b, size_t *n)
{
	if (!v->esc) {
		*n = v->n;
		return v->p;
	}
	dd_buf_reset(b);
	dd_jstr_decode(v, b);
	*n = b->len;
	return b->p ? b->p : "";
}

static int
bad(const char *field, const char *what)
{
	dd_seterr("\"data.%s\" %s", field, what);
	return -1;
}

static int
id_ok(const struct dd_jval *v, const char *field)
{
	if (v->type == DD_JNONE)
		return bad(field, "is missing");
	if (v->type != DD_JSTR || v->n == 0)
		return bad(field, "is not a non-empty string");
	if (v->n > DD_ID_MAX) {
		struct dd_buf b = { 0 };
		dd_jstr_decode(v, &b);
		size_t n = b.len;
		dd_buf_free(&b);
		if (n > DD_ID_MAX)
			return bad(field, "is longer than 128 bytes");
	}
	return 0;
}

static int
size_ok(const char *s, size_t n)
{
	return (n == 5 && memcmp(s, "small", 5) == 0) || (n == 6 && memcmp(s, "medium", 6) == 0) ||
	    (n == 5 && memcmp(s, "large", 5) == 0);
}

/* One registration (reg) or removal, its strings decoded. */
struct write {
	int reg;
	const char *pkg, *eid, *owner, *dlv, *size, *tag, *doc;
	size_t pkgn, eidn, ownern, dlvn, sizen, tagn, docn;
	int64_t t;
	double kg;
};

/* A NULL dlv or tag is SQL NULL. */
static void
bind_write(sqlite3_stmt *st, const struct write *w)
{
	dd_bind_text(st, 0, w->pkg, w->pkgn);
	if (w->reg) {
		dd_bind_text(st, 1, w->owner, w->ownern);
		dd_bind_text(st, 2, w->dlv, w->dlvn);
		dd_bind_text(st, 3, w->size, w->sizen);
		dd_bind_real(st, 4, w->kg);
		dd_bind_text(st, 5, w->tag, w->tagn);
		dd_bind_int(st, 6, w->t);
		dd_bind_text(st, 7, w->doc, w->docn);
		dd_bind_text(st, 8, w->eid, w->eidn);
	} else {
		dd_bind_int(st, 1, w->t);
		dd_bind_text(st, 2, w->eid, w->eidn);
	}
}

/* Run a bound write; 0 or -1 (dd_errmsg()). */
static int
run_write(struct dd_package *p, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : dd_store_err(&p->s, "writing a package");
}

/*
 * Apply w if it is newer than the event the package holds: (time, id)
 * compared, ids as SQLite compares text (bytes, then length), so equal
 * times still have one order and a duplicate is never newer. A new
 * package (the common case) costs one INSERT; a known one a lookup and,
 * when newer, an UPDATE.
 */
static enum dd_verdict
apply(struct dd_package *p, const struct write *w)
{
	if (dd_store_begin(&p->s))
		return DD_FAIL;
	sqlite3_stmt *st = w->reg ? p->reg_ins : p->rem_ins;
	bind_write(st, w);
	if (run_write(p, st))
		return DD_FAIL;
	if (sqlite3_changes(p->s.db) == 0) {
		dd_bind_text(p->sel, 0, w->pkg, w->pkgn);
		int rc = sqlite3_step(p->sel), newer = 0;
		if (rc == SQLITE_ROW) {
			int64_t t = dd_col_int(p->sel, 0);
			size_t n;
			const char *id = dd_col_text(p->sel, 1, &n);
			int c = memcmp(w->eid, id ? id : "", w->eidn < n ? w->eidn : n);
			newer = w->t > t || (w->t == t && (c > 0 || (c == 0 && w->eidn > n)));
		}
		sqlite3_reset(p->sel);
		if (rc != SQLITE_ROW) {
			dd_store_err(&p->s, "reading a package");
			return DD_FAIL;
		}
		if (!newer) {
			p->unchanged++;
			return DD_ACCEPT;
		}
		st = w->reg ? p->reg_upd : p->rem_upd;
		bind_write(st, w);
		if (run_write(p, st))
			return DD_FAIL;
	}
	if (w->reg)
		p->stored++;
	else
		p->removed++;
	return DD_ACCEPT;
}

struct doc {
	struct dd_jval pkg, owner, dlv, size, weight, tag, reason;
	double kg;
};

static int
read_doc(const struct dd_jval *data, struct doc *d, int reg)
{
	struct dd_jval k, v;
	size_t pos = 0;
	memset(d, 0, sizeof *d);
	while (dd_json_next(data, &pos, &k, &v)) {
#define K(lit) (k.esc ? dd_jstr_eq(&k, lit, sizeof lit - 1) : \
	k.n == sizeof lit - 1 && memcmp(k.p, lit, sizeof lit - 1) == 0)
		if (K("packageId")) d->pkg = v;
		else if (K("ownerId")) d->owner = v;
		else if (K("deliveryId")) d->dlv = v;
		else if (K("size")) d->size = v;
		else if (K("weightKg")) d->weight = v;
		else if (K("tag")) d->tag = v;
		else if (K("reason")) d->reason = v;
#undef K
	}
	if (id_ok(&d->pkg, "packageId"))
		return -1;
	if (!reg) {
		if (d->reason.type != DD_JSTR)
			return bad("reason", d->reason.type == DD_JNONE ? "is missing" :
			    "is not a string");
		return 0;
	}
	/* The schema of package.registered, beyond dd_event_check_data. */
	if (id_ok(&d->owner, "ownerId") || id_ok(&d->dlv, "deliveryId"))
		return -1;
	if (d->size.type != DD_JSTR || d->size.esc || !size_ok(d->size.p, d->size.n))
		return bad("size", "is not one of small, medium, large");
	if (dd_jnum_double(&d->weight, &d->kg) || !(d->kg > 0))
		return bad("weightKg", "is not a number above 0");
	if (d->tag.type != DD_JNONE && d->tag.type != DD_JSTR)
		return bad("tag", "is not a string");
	return 0;
}

enum dd_verdict
dd_package_event(struct dd_package *p, const struct dd_line *l, const struct dd_env *e)
{
	int reg = dd_env_type_is(e, "package.registered");
	if (!reg && !dd_env_type_is(e, "package.removed"))
		return DD_SKIP;
	struct doc d;
	if (dd_event_check_version(e))
		return DD_REJECT;
	/* read_doc checks all that dd_event_check_data checks and more (the
	 * schema's required fields and ranges) in one pass; the library's
	 * check runs only for a bad event, so its wording wins where it has
	 * something to say. */
	if (read_doc(&e->data, &d, reg)) {
		char *why = dd_strdup(dd_errmsg());
		if (dd_event_check_data(e) == 0)
			dd_seterr("%s", why);
		free(why);
		return DD_REJECT;
	}
	struct write w = { .reg = reg, .t = e->time_ms, .kg = d.kg };
	w.pkg = text(&d.pkg, &p->b_pkg, &w.pkgn);
	w.eid = text(&e->id, &p->b_id, &w.eidn);
	if (reg) {
		w.owner = text(&d.owner, &p->b_owner, &w.ownern);
		w.dlv = text(&d.dlv, &p->b_dlv, &w.dlvn);
		w.size = d.size.p;
		w.sizen = d.size.n;
		if (d.tag.type == DD_JSTR)
			w.tag = text(&d.tag, &p->b_tag, &w.tagn);
		/* The document is data exactly as it came. */
		w.doc = e->data.p;
		w.docn = e->data.n;
	}
	return apply(p, &w);
}

/* ---- the filter ---- */

static enum dd_verdict
on_event(void *ctx, const struct dd_line *l, const struct dd_env *e)
{
	return dd_package_event(ctx, l, e);
}

static int
on_commit(void *ctx)
{
	return dd_package_commit(ctx);
}

static void
on_summary(void *ctx, struct dd_buf *b)
{
	dd_package_summary(ctx, b);
}

int
dd_package_filter(struct dd_package *p, const struct dd_filter_opts *fo)
{
	static const char *const families[] = { "package.", NULL };
	struct dd_filter_ops ops = { .event = on_event, .commit = on_commit, .families = families,
		.summary = on_summary, .store = &p->s };
	return dd_filter_run(fo, &ops, p, NULL);
}

/* ---- CSV import ---- */

enum { F_PKG, F_OWNER, F_DLV, F_SIZE, F_WEIGHT, F_TAG, F_N };
static const char *const fields[F_N] = { "packageId", "ownerId", "deliveryId", "size",
	"weightKg", "tag" };

struct import {
	struct dd_package *p;
	const struct dd_filter_opts *fo;
	const char *file;
	struct dd_rejects *rj;
	int64_t now_ms;
	int col[F_N];		/* column of each field, -1 when absent */
	int ncols;
	int code;		/* -1 while going on */
	char *why;		/* dd_errmsg() of the failure that set code */
	uint64_t rows, rejected, pending;
	struct dd_buf doc, id;
};

/* Stop the import with code and the reason now in dd_errmsg(): the first
 * one is kept, for the caller to report once. Returns 1 (stop reading). */
static int
import_fail(struct import *im, int code)
{
	if (im->why == NULL)
		im->why = dd_strdup(dd_errmsg());
	im->code = code;
	return 1;
}

static int
import_header(struct import *im, const struct dd_csv_row *r)
{
	for (int i = 0; i < F_N; i++)
		im->col[i] = -1;
	if (r->error) {
		dd_seterr("%s:%" PRIu64 ": %s", im->file, r->lineno, r->error);
		return -1;
	}
	im->ncols = r->n;
	for (int c = 0; c < r->n; c++) {
		int i;
		for (i = 0; i < F_N && strcmp(r->f[c], fields[i]); i++)
			;
		if (i == F_N) {
			dd_seterr("%s:%" PRIu64 ": unknown column \"%s\" (packageId, ownerId, "
			    "deliveryId, size, weightKg, tag)", im->file, r->lineno, r->f[c]);
			return -1;
		}
		if (im->col[i] >= 0) {
			dd_seterr("%s:%" PRIu64 ": column \"%s\" twice", im->file, r->lineno,
			    r->f[c]);
			return -1;
		}
		im->col[i] = c;
	}
	static const int required[] = { F_PKG, F_OWNER, F_SIZE, F_WEIGHT };
	for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
		if (im->col[required[i]] < 0) {
			dd_seterr("%s:%" PRIu64 ": no column \"%s\"", im->file, r->lineno,
			    fields[required[i]]);
			return -1;
		}
	return 0;
}

/* Check one row and build its document; 0, or -1 with dd_errmsg(). */
static int
import_doc(struct import *im, const struct dd_csv_row *r, double *kg, char size[8])
{
	if (r->error) {
		dd_seterr("%s", r->error);
		return -1;
	}
	if (r->n != im->ncols) {
		dd_seterr("%d fields, the header has %d", r->n, im->ncols);
		return -1;
	}
	const char *v[F_N];
	size_t n[F_N];
	for (int i = 0; i < F_N; i++) {
		v[i] = im->col[i] >= 0 ? r->f[im->col[i]] : "";
		n[i] = im->col[i] >= 0 ? r->len[im->col[i]] : 0;
	}
	static const int ids[] = { F_PKG, F_OWNER, F_DLV };
	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
		int f = ids[i];
		if ((n[f] == 0 && f != F_DLV) || n[f] > DD_ID_MAX || !dd_utf8_valid(v[f], n[f]) ||
		    memchr(v[f], '\0', n[f])) {
			dd_seterr("bad %s \"%.40s\": 1-128 bytes of UTF-8", fields[f], v[f]);
			return -1;
		}
	}
	/* The reference system writes sizes capitalised: Small. */
	size_t i;
	for (i = 0; i < n[F_SIZE] && i < 7; i++)
		size[i] = (char)tolower((unsigned char)v[F_SIZE][i]);
	size[i] = '\0';
	if (n[F_SIZE] > 6 || !size_ok(size, i)) {
		dd_seterr("bad size \"%.40s\" (small, medium or large)", v[F_SIZE]);
		return -1;
	}
	struct dd_jval w = dd_json_value(v[F_WEIGHT], n[F_WEIGHT]);
	if (n[F_WEIGHT] == 0 || dd_json_validate(v[F_WEIGHT], n[F_WEIGHT], NULL) ||
	    w.type != DD_JNUM || isspace((unsigned char)v[F_WEIGHT][0]) ||
	    isspace((unsigned char)v[F_WEIGHT][n[F_WEIGHT] - 1]) || dd_jnum_double(&w, kg) ||
	    !(*kg > 0)) {
		dd_seterr("bad weightKg \"%.40s\" (a number above 0)", v[F_WEIGHT]);
		return -1;
	}
	if (!dd_utf8_valid(v[F_TAG], n[F_TAG])) {
		dd_seterr("tag is not valid UTF-8");
		return -1;
	}
	struct dd_buf *d = &im->doc;
	dd_buf_reset(d);
	dd_buf_adds(d, "{\"packageId\":");
	dd_buf_json_str(d, v[F_PKG], n[F_PKG]);
	dd_buf_adds(d, ",\"ownerId\":");
	dd_buf_json_str(d, v[F_OWNER], n[F_OWNER]);
	if (n[F_DLV]) {
		dd_buf_adds(d, ",\"deliveryId\":");
		dd_buf_json_str(d, v[F_DLV], n[F_DLV]);
	}
	dd_buf_printf(d, ",\"size\":\"%s\",\"weightKg\":", size);
	dd_buf_add(d, v[F_WEIGHT], n[F_WEIGHT]);
	if (im->col[F_TAG] >= 0) {
		dd_buf_adds(d, ",\"tag\":");
		dd_buf_json_str(d, v[F_TAG], n[F_TAG]);
	}
	dd_buf_addc(d, '}');
	return 0;
}

static int
import_commit(struct import *im)
{
	if (dd_package_commit(im->p)) {
		import_fail(im, DD_EXIT_IO);
		return -1;
	}
	im->pending = 0;
	return 0;
}

static int
import_row(void *ctx, const struct dd_csv_row *r)
{
	struct import *im = ctx;
	if (dd_signalled) {
		im->code = 128 + dd_signalled;
		return 1;
	}
	if (r->lineno == 1 && im->ncols == 0) {
		if (import_header(im, r))
			return import_fail(im, DD_EXIT_USAGE);
		return 0;
	}
	im->rows++;
	double kg;
	char size[8];
	if (import_doc(im, r, &kg, size)) {
		im->rejected++;
		size_t rawlen = r->rawlen > DD_LINE_KEEP ? DD_LINE_KEEP : r->rawlen;
		if (dd_reject_raw(im->rj, im->file, r->lineno, r->off, r->raw, rawlen,
		    rawlen < r->rawlen, dd_errmsg()))
			return import_fail(im, DD_EXIT_IO);
		if (im->fo->strict) {
			im->code = DD_EXIT_STRICT;
			return 1;
		}
		return 0;
	}
	const char *v[F_N];
	size_t n[F_N];
	for (int i = 0; i < F_N; i++) {
		v[i] = im->col[i] >= 0 ? r->f[im->col[i]] : NULL;
		n[i] = im->col[i] >= 0 ? r->len[im->col[i]] : 0;
	}
	/* Later rows of one file win: their ids sort after earlier ones. */
	dd_buf_reset(&im->id);
	dd_buf_printf(&im->id, "import:%012" PRIu64, r->lineno);
	struct write w = { .reg = 1, .t = im->now_ms, .kg = kg,
		.pkg = v[F_PKG], .pkgn = n[F_PKG], .owner = v[F_OWNER], .ownern = n[F_OWNER],
		.dlv = n[F_DLV] ? v[F_DLV] : NULL, .dlvn = n[F_DLV], .size = size,
		.sizen = strlen(size), .tag = v[F_TAG], .tagn = n[F_TAG],
		.doc = im->doc.p, .docn = im->doc.len, .eid = im->id.p, .eidn = im->id.len };
	if (apply(im->p, &w) != DD_ACCEPT)
		return import_fail(im, DD_EXIT_IO);
	if (++im->pending >= im->fo->batch && import_commit(im))
		return 1;
	return 0;
}

int
dd_package_import(const char *path, const char *csvfile, int64_t now_ms,
    const struct dd_filter_opts *fo, struct dd_package_import_stats *st)
{
	memset(st, 0, sizeof *st);
	FILE *f = fopen(csvfile, "r");
	if (f == NULL) {
		dd_seterr("%s: %s", csvfile, strerror(errno));
		return DD_EXIT_IO;
	}
	struct import im = { .fo = fo, .file = csvfile, .now_ms = now_ms, .code = -1 };
	int rc = dd_package_open(&im.p, path);
	if (rc) {
		fclose(f);
		return rc;
	}
	if ((im.rj = dd_rejects_open(fo->rejects)) == NULL) {
		dd_seterr("--rejects: %s", dd_errmsg());
		dd_package_close(im.p);
		fclose(f);
		return DD_EXIT_IO;
	}
	if (dd_csv_read(f, import_row, &im) < 0)
		import_fail(&im, DD_EXIT_IO);
	if (im.code < 0 && im.ncols == 0) {
		dd_seterr("%s: no header row", csvfile);
		import_fail(&im, DD_EXIT_USAGE);
	}
	/* What was read and accepted is committed, whatever stopped us. */
	if (im.code != DD_EXIT_IO && import_commit(&im) == 0 && im.code < 0)
		im.code = im.rejected ? DD_EXIT_REJECTED : DD_EXIT_OK;
	if (dd_rejects_close(im.rj))
		import_fail(&im, DD_EXIT_IO);
	*st = (struct dd_package_import_stats){ .read = 1, .rows = im.rows,
		.stored = im.p->stored, .unchanged = im.p->unchanged, .rejected = im.rejected };
	if (im.why)
		dd_seterr("%s", im.why);
	free(im.why);
	dd_package_close(im.p);
	dd_buf_free(&im.doc);
	dd_buf_free(&im.id);
	fclose(f);
	return im.code;
}

/* ---- questions ---- */

static int
q_write(FILE *out, const struct dd_buf *b)
{
	if (b->len && fwrite(b->p, 1, b->len, out) != b->len) {
		dd_seterr("stdout: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* One package of a batch get (dd_store_get), by the prepared query q. */
static int
get_one(void *q, const char *id, FILE *out)
{
	int rc = 0;
	sqlite3_stmt *st = q;
	dd_bind_text(st, 0, id, (size_t)-1);
	int r = sqlite3_step(st);
	size_t n;
	const char *doc = r == SQLITE_ROW ? dd_col_text(st, 0, &n) : NULL;
	if (doc) {
		struct dd_buf b = { 0 };
		dd_buf_add(&b, doc, n);
		dd_buf_addc(&b, '\n');
		rc = q_write(out, &b) ? DD_EXIT_IO : 0;
		dd_buf_free(&b);
	} else if (r == SQLITE_ROW || r == SQLITE_DONE) {
		dd_seterr("%s: %s", id, r == SQLITE_ROW ? "removed" : "no such package");
		rc = DD_EXIT_REJECTED;
	} else {
		dd_seterr("reading: %s", sqlite3_errmsg(sqlite3_db_handle(st)));
		rc = DD_EXIT_IO;
	}
	sqlite3_reset(st);
	return rc;
}

int
dd_package_get(struct dd_store *s, char **ids, FILE *out)
{
	sqlite3_stmt *st = dd_store_prepare(s, "SELECT doc FROM package WHERE id = ?");
	if (st == NULL)
		return DD_EXIT_IO;
	int rc = dd_store_get(s, ids, get_one, st, out);
	sqlite3_finalize(st);
	return rc;
}

static void
cell_time(struct dd_out *o, sqlite3_stmt *st, int c)
{
	char tb[DD_TIMEBUF];
	int64_t ms = dd_col_time(st, c);
	size_t n = ms == DD_NOTIME ? 0 : dd_time_format(ms, tb);
	dd_out_cell(o, tb, n);
}

static void
cell_text(struct dd_out *o, sqlite3_stmt *st, int c)
{
	size_t n;
	const char *v = dd_col_text(st, c, &n);
	dd_out_cell(o, v ? v : "", n);
}

/* Finish a query: the write and read errors. */
static int
q_end(struct dd_store *s, sqlite3_stmt *st, struct dd_out *o, int rc, int r)
{
	if (rc == 0 && r != SQLITE_DONE) {
		dd_store_err(s, "reading");
		rc = DD_EXIT_IO;
	}
	if (o && dd_out_finish(o) && rc == 0) {
		dd_seterr("stdout: %s", strerror(errno ? errno : EIO));
		rc = DD_EXIT_IO;
	}
	sqlite3_finalize(st);
	return rc;
}

int
dd_package_list(struct dd_store *s, const char *owner, enum dd_fmt fmt, FILE *out)
{
	int rc = 0;
	sqlite3_stmt *st = dd_store_prepare(s, "SELECT doc, id, owner_id, delivery_id, size, "
	    "weight_kg, tag, registered FROM package "
	    "WHERE doc IS NOT NULL AND (?1 IS NULL OR owner_id = ?1) ORDER BY id");
	if (st == NULL)
		return DD_EXIT_IO;
	if (owner)
		dd_bind_text(st, 0, owner, (size_t)-1);
	static const char *const cols[] = { "packageId", "ownerId", "deliveryId", "size",
		"weightKg", "tag", "registered" };
	struct dd_out *o = fmt == DD_FMT_NDJSON ? NULL : dd_out_new(out, fmt, cols, 7);
	struct dd_buf b = { 0 };
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if (o == NULL) {
			size_t n;
			const char *doc = dd_col_text(st, 0, &n);
			dd_buf_reset(&b);
			dd_buf_add(&b, doc, n);
			dd_buf_addc(&b, '\n');
			if (q_write(out, &b)) {
				rc = DD_EXIT_IO;
				break;
			}
			continue;
		}
		for (int c = 1; c <= 6; c++) {
			if (c == 5) {
				/* 3, not SQLite's 3.0 */
				char w[32];
				int n = snprintf(w, sizeof w, "%.15g", dd_col_real(st, c));
				dd_out_cell(o, w, (size_t)n);
			} else {
				cell_text(o, st, c);
			}
		}
		cell_time(o, st, 7);
		dd_out_endrow(o);
	}
	dd_buf_free(&b);
	return q_end(s, st, o, rc, r);
}

/* "YYYY-MM" as [start, end) in epoch ms; 0 or -1. */
static int
month_range(const char *m, int64_t *start, int64_t *end)
{
	int y, mo;
	char extra;
	if (strlen(m) != 7 || m[4] != '-' || sscanf(m, "%4d-%2d%c", &y, &mo, &extra) != 2 ||
	    mo < 1 || mo > 12) {
		dd_seterr("--month: \"%s\" is not YYYY-MM", m);
		return -1;
	}
	*start = dd_days_from_civil(y, (unsigned)mo, 1) * 86400000;
	*end = (mo == 12 ? dd_days_from_civil(y + 1, 1, 1) :
	    dd_days_from_civil(y, (unsigned)mo + 1, 1)) * 86400000;
	return 0;
}

int
dd_package_owner_summary(struct dd_store *s, const char *owner, const char *month,
    enum dd_fmt fmt, FILE *out)
{
	int64_t start = INT64_MIN, end = INT64_MAX;
	if (month && month_range(month, &start, &end))
		return DD_EXIT_USAGE;
	int rc = 0;
	sqlite3_stmt *st = dd_store_prepare(s, "SELECT count(*), total(weight_kg) FROM package "
	    "WHERE doc IS NOT NULL AND owner_id = ?1 AND registered >= ?2 AND registered < ?3");
	if (st == NULL)
		return DD_EXIT_IO;
	dd_bind_text(st, 0, owner, (size_t)-1);
	dd_bind_int(st, 1, start);
	dd_bind_int(st, 2, end);
	int r = sqlite3_step(st);
	struct dd_out *o = NULL;
	if (r == SQLITE_ROW) {
		int64_t count = dd_col_int(st, 0);
		char kg[64];
		/* Sums of decimal weights: round off the binary noise. */
		snprintf(kg, sizeof kg, "%.10g", dd_col_real(st, 1));
		if (fmt == DD_FMT_NDJSON) {
			struct dd_buf b = { 0 };
			dd_buf_adds(&b, "{\"ownerId\":");
			dd_buf_json_str(&b, owner, strlen(owner));
			dd_buf_adds(&b, ",\"month\":");
			if (month)
				dd_buf_printf(&b, "\"%s\"", month);
			else
				dd_buf_adds(&b, "null");
			dd_buf_printf(&b, ",\"packages\":%" PRId64 ",\"weightKg\":%s}\n", count, kg);
			rc = q_write(out, &b) ? DD_EXIT_IO : 0;
			dd_buf_free(&b);
		} else {
			static const char *const cols[] = { "ownerId", "month", "packages",
				"weightKg" };
			char cnt[32];
			snprintf(cnt, sizeof cnt, "%" PRId64, count);
			o = dd_out_new(out, fmt, cols, 4);
			dd_out_cell(o, owner, strlen(owner));
			dd_out_cell(o, month ? month : "", month ? strlen(month) : 0);
			dd_out_cell(o, cnt, strlen(cnt));
			dd_out_cell(o, kg, strlen(kg));
			dd_out_endrow(o);
		}
		r = sqlite3_step(st);
	}
	return q_end(s, st, o, rc, r);
}

int
dd_package_stats(struct dd_store *s, FILE *out)
{
	int rc = 0;
	sqlite3_stmt *st = dd_store_prepare(s, "SELECT count(doc), count(*) - count(doc), "
	    "count(DISTINCT owner_id), total(weight_kg), min(registered), max(registered), "
	    "max(event_time) FROM package");
	if (st == NULL)
		return DD_EXIT_IO;
	int r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		struct dd_buf b = { 0 };
		char kg[64], tb[DD_TIMEBUF];
		snprintf(kg, sizeof kg, "%.10g", dd_col_real(st, 3));
		dd_buf_printf(&b, "{\"packages\":%" PRId64 ",\"removed\":%" PRId64
		    ",\"owners\":%" PRId64 ",\"weightKg\":%s", dd_col_int(st, 0), dd_col_int(st, 1),
		    dd_col_int(st, 2), kg);
		static const char *const names[] = { "firstRegistered", "lastRegistered",
			"newestEvent" };
		for (int i = 0; i < 3; i++) {
			int64_t ms = dd_col_time(st, 4 + i);
			dd_buf_printf(&b, ",\"%s\":", names[i]);
			if (ms == DD_NOTIME) {
				dd_buf_adds(&b, "null");
			} else {
				dd_time_format(ms, tb);
				dd_buf_printf(&b, "\"%s\"", tb);
			}
		}
		dd_buf_adds(&b, "}\n");
		rc = q_write(out, &b) ? DD_EXIT_IO : 0;
		dd_buf_free(&b);
		r = sqlite3_step(st);
	}
	return q_end(s, st, NULL, rc, r);
}
