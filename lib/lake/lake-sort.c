/*
 * A bounded-memory sort of lines by a 64-bit key, ties in the order they
 * were added (lake-int.h). The writer groups the events of partitions it
 * had no room to keep open by day (so a shuffled stream of many days
 * makes one part per day, not one per event); compaction orders a
 * partition by event time. Lines wait in memory up to a budget; beyond,
 * they are sorted and written as a run to an unnamed temporary file
 * (O_TMPFILE) in the lake, which disappears with the process whatever
 * happens, and the runs are merged when read back.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lake-int.h"
#include "util.h"

struct srec {
	int64_t key;
	uint64_t seq;
	size_t off;
	uint32_t len;
};

struct run {
	FILE *f;
	int have;		/* cur holds the next record */
	int64_t key;
	uint64_t seq;
	struct dd_buf line;
};

struct lake_sort {
	char *dir;
	uint64_t budget;
	uint64_t seq;
	struct dd_buf arena, out;
	struct srec *v;
	size_t n, cap, pos;	/* pos: next in-memory record when reading */
	struct run *runs;
	size_t nruns;
	int reading;
	uint64_t count;
};

struct lake_sort *
lake_sort_new(const char *dir, uint64_t budget)
{
	struct lake_sort *s = dd_calloc(1, sizeof *s);
	s->dir = dd_strdup(dir);
	s->budget = budget ? budget : 1;
	return s;
}

uint64_t
lake_sort_count(const struct lake_sort *s)
{
	return s->count;
}

static int
cmp_srec(const void *a, const void *b)
{
	const struct srec *x = a, *y = b;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

/* An unnamed file in dir: gone when closed, or when the process dies. */
static FILE *
spill_file(const char *dir)
{
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
		/* No O_TMPFILE here: a named one, unlinked at once. */
		struct dd_buf p = { 0 }, sfx = { 0 };
		dd_buf_printf(&sfx, ".%u-%08x.tmp", (unsigned)getpid(), lake_host_id());
		dd_buf_printf(&p, "%s/.spill-XXXXXX%s", dir, sfx.p);
		fd = mkostemps(p.p, (int)sfx.len, O_CLOEXEC);
		dd_buf_free(&sfx);
		if (fd >= 0)
			unlink(p.p);
		dd_buf_free(&p);
	}
	if (fd < 0) {
		dd_seterr("%s: temporary file: %s", dir, strerror(errno));
		return NULL;
	}
	FILE *f = fdopen(fd, "w+");
	if (f == NULL) {
		dd_seterr("%s: temporary file: %s", dir, strerror(errno));
		close(fd);
	}
	return f;
}

/* Sort what is in memory and write it as a run. 0 or -1. */
static int
spill(struct lake_sort *s)
{
	if (s->n == 0)
		return 0;
	qsort(s->v, s->n, sizeof *s->v, cmp_srec);
	FILE *f = spill_file(s->dir);
	if (f == NULL)
		return -1;
	for (size_t i = 0; i < s->n; i++) {
		const struct srec *r = &s->v[i];
		if (fwrite(&r->key, 8, 1, f) != 1 || fwrite(&r->seq, 8, 1, f) != 1 ||
		    fwrite(&r->len, 4, 1, f) != 1 ||
		    (r->len && fwrite(s->arena.p + r->off, r->len, 1, f) != 1))
			goto fail;
	}
	if (fflush(f) || fseeko(f, 0, SEEK_SET))
		goto fail;
	s->runs = dd_realloc(s->runs, (s->nruns + 1) * sizeof *s->runs);
	s->runs[s->nruns++] = (struct run){ .f = f };
	s->n = 0;
	dd_buf_reset(&s->arena);
	return 0;
fail:
	dd_seterr("%s: temporary file: %s", s->dir, strerror(errno ? errno : EIO));
	fclose(f);
	return -1;
}

int
lake_sort_add(struct lake_sort *s, int64_t key, const char *line, size_t len)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 1024;
		s->v = dd_realloc(s->v, s->cap * sizeof *s->v);
	}
	s->v[s->n++] = (struct srec){ key, s->seq++, s->arena.len, (uint32_t)len };
	dd_buf_add(&s->arena, line, len);
	s->count++;
	if (s->arena.len + s->n * sizeof *s->v >= s->budget)
		return spill(s);
	return 0;
}

/* Read the next record of run r. 0 (r->have says whether there was
 * one), or -1 on a read error. */
static int
run_next(struct lake_sort *s, struct run *r)
{
	uint32_t len;
	r->have = 0;
	if (fread(&r->key, 8, 1, r->f) != 1) {
		if (ferror(r->f)) {
			dd_seterr("%s: temporary file: %s", s->dir, strerror(errno ? errno : EIO));
			return -1;
		}
		return 0;
	}
	if (fread(&r->seq, 8, 1, r->f) != 1 || fread(&len, 4, 1, r->f) != 1)
		goto short_read;
	dd_buf_reset(&r->line);
	dd_buf_grow(&r->line, (size_t)len + 1);
	if (len && fread(r->line.p, len, 1, r->f) != 1)
		goto short_read;
	r->line.len = len;
	r->have = 1;
	return 0;
short_read:
	dd_seterr("%s: temporary file: short read", s->dir);
	return -1;
}

int
lake_sort_next(struct lake_sort *s, int64_t *key, const char **line, size_t *len)
{
	if (!s->reading) {
		s->reading = 1;
		if (s->n)
			qsort(s->v, s->n, sizeof *s->v, cmp_srec);
		for (size_t i = 0; i < s->nruns; i++)
			if (run_next(s, &s->runs[i]))
				return -1;
	}
	/* The least of the runs' heads and memory's: few runs, a scan. */
	struct run *best = NULL;
	for (size_t i = 0; i < s->nruns; i++) {
		struct run *r = &s->runs[i];
		if (r->have && (best == NULL || r->key < best->key ||
		    (r->key == best->key && r->seq < best->seq)))
			best = r;
	}
	if (s->pos < s->n) {
		const struct srec *m = &s->v[s->pos];
		if (best == NULL || m->key < best->key || (m->key == best->key && m->seq < best->seq)) {
			*key = m->key;
			*line = s->arena.p ? s->arena.p + m->off : "";
			*len = m->len;
			s->pos++;
			return 1;
		}
	}
	if (best == NULL)
		return 0;
	/* Hand out a copy: reading the run's next record reuses its buffer. */
	*key = best->key;
	dd_buf_reset(&s->out);
	dd_buf_add(&s->out, best->line.p, best->line.len);
	*line = s->out.p ? s->out.p : "";
	*len = s->out.len;
	if (run_next(s, best))
		return -1;
	return 1;
}

void
lake_sort_free(struct lake_sort *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->nruns; i++) {
		fclose(s->runs[i].f);
		dd_buf_free(&s->runs[i].line);
	}
	free(s->runs);
	free(s->v);
	dd_buf_free(&s->arena);
	dd_buf_free(&s->out);
	free(s->dir);
	free(s);
}
