#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fleet.h"
#include "util.h"

#define LEAF_MAX 8
/* The shortest flight any delivery needs: a gap in a drone's day shorter
 * than this can hold no booking, so free times skip it. */
#define MIN_FLIGHT_MS (2 * DD_HANDLING_MS + DD_TURNAROUND_MS)
/* The longest free stretch of a drone is kept as seen from NCLIP points,
 * the floor and CLIP_MS apart after it: a request whose flight cannot
 * start before the floor plus k CLIP_MS (requests come --lead ahead of
 * their pickup) ignores the stretches that end before, which only a
 * sooner flight could use. */
#define NCLIP 5
#define CLIP_MS (15 * 60 * 1000)

static const char *const size_names[] = { NULL, "small", "medium", "large" };

int
dd_size_parse(const char *s, size_t n, int ci)
{
	for (int i = DD_SIZE_SMALL; i <= DD_SIZE_LARGE; i++)
		if (strlen(size_names[i]) == n &&
		    (ci ? strncasecmp(s, size_names[i], n) : strncmp(s, size_names[i], n)) == 0)
			return i;
	return DD_SIZE_NONE;
}

const char *
dd_size_name(int size)
{
	return size >= DD_SIZE_SMALL && size <= DD_SIZE_LARGE ? size_names[size] : "?";
}

/* Points as unit vectors: the chord between two of them is monotone in
 * their great-circle distance, and the chord from a point to a box of
 * vectors bounds the distance to every vector inside from below. */
static void
unitvec(double lat, double lon, double v[3])
{
	double la = lat * (M_PI / 180.0), lo = lon * (M_PI / 180.0);
	v[0] = cos(la) * cos(lo);
	v[1] = cos(la) * sin(lo);
	v[2] = sin(la);
}

static double
chord_km(double c2)
{
	double c = sqrt(c2) / 2.0;
	return 2.0 * DD_EARTH_KM * asin(c > 1.0 ? 1.0 : c);
}

static double
vec_km(const double a[3], const double b[3])
{
	double d0 = a[0] - b[0], d1 = a[1] - b[1], d2 = a[2] - b[2];
	return chord_km(d0 * d0 + d1 * d1 + d2 * d2);
}

double
dd_geo_km(double lat1, double lon1, double lat2, double lon2)
{
	double a[3], b[3];
	unitvec(lat1, lon1, a);
	unitvec(lat2, lon2, b);
	return vec_km(a, b);
}

/* A leg of km at mps, in ms rounded up to a whole second. */
static int64_t
leg_ms(double km, double mps)
{
	return (int64_t)ceil(km * 1000.0 / mps) * 1000;
}

/* ---- fleet CSV ---- */

const char *const dd_fleet_colnames[7] = {
	"id", "base.lat", "base.lon", "maxPayloadKg", "maxSize", "rangeKm", "speedMps",
};

int
dd_fleet_header(const struct dd_csv_row *r, struct dd_fleet_cols *c)
{
	int *slot[7] = { &c->id, &c->lat, &c->lon, &c->kg, &c->size, &c->range, &c->speed };
	for (int k = 0; k < 7; k++) {
		*slot[k] = -1;
		for (int i = 0; i < r->n; i++)
			if (strcmp(r->f[i], dd_fleet_colnames[k]) == 0)
				*slot[k] = i;
		if (*slot[k] < 0) {
			dd_seterr("missing column \"%s\" in the header", dd_fleet_colnames[k]);
			return -1;
		}
	}
	return 0;
}

static int
num_field(const struct dd_csv_row *r, int col, const char *name, double min, double max,
    int open_min, double *out)
{
	const char *s = r->f[col];
	char *end;
	if (*s == '\0') {
		dd_seterr("%s: empty", name);
		return -1;
	}
	double d = strtod(s, &end);
	if (*end != '\0' || !isfinite(d)) {
		dd_seterr("%s: not a number: \"%.40s\"", name, s);
		return -1;
	}
	if (d < min || d > max || (open_min && d == min)) {
		dd_seterr("%s: %s out of range", name, s);
		return -1;
	}
	*out = d;
	return 0;
}

int
dd_fleet_row(const struct dd_fleet_cols *c, const struct dd_csv_row *r, struct dd_drone_spec *d)
{
	int need = c->id;
	const int cols[] = { c->lat, c->lon, c->kg, c->size, c->range, c->speed };
	for (size_t k = 0; k < sizeof cols / sizeof cols[0]; k++)
		if (cols[k] > need)
			need = cols[k];
	if (r->n <= need) {
		dd_seterr("%d fields, the header has more", r->n);
		return -1;
	}
	memset(d, 0, sizeof *d);
	d->id = r->f[c->id];
	size_t idlen = r->len[c->id];
	if (idlen == 0 || idlen > 128 || !dd_utf8_valid(d->id, idlen) ||
	    memchr(d->id, '\0', idlen)) {
		dd_seterr("id: must be 1 to 128 bytes of UTF-8");
		return -1;
	}
	if (num_field(r, c->lat, "base.lat", -90, 90, 0, &d->lat) ||
	    num_field(r, c->lon, "base.lon", -180, 180, 0, &d->lon) ||
	    num_field(r, c->kg, "maxPayloadKg", 0, 1e6, 1, &d->max_kg) ||
	    num_field(r, c->range, "rangeKm", 0, 1e5, 1, &d->range_km) ||
	    num_field(r, c->speed, "speedMps", 0, 1e4, 1, &d->speed_mps))
		return -1;
	d->max_size = dd_size_parse(r->f[c->size], r->len[c->size], 1);
	if (d->max_size == DD_SIZE_NONE) {
		dd_seterr("maxSize: \"%.40s\" is not small, medium or large", r->f[c->size]);
		return -1;
	}
	return 0;
}

/* ---- the fleet and its index ---- */

struct booking {
	int64_t start, end;
	uint64_t key;
	char *ref;	/* movable (an expedited delivery may take its place): its name */
};

struct drone {
	struct dd_drone_spec s;	/* s.id owned */
	double v[3];
	struct booking *b;
	int nb, cap;
	int64_t free_lb;	/* no flight of this drone departs earlier */
	int64_t tail;		/* free for good from here (after its last booking) */
	int64_t gap[NCLIP];	/* the longest free stretch before tail, from floor + k CLIP_MS */
	int64_t out_from, out_until;	/* out of service (failed): no flight overlaps */
	int leaf;
};

struct node {
	double lo[3], hi[3];
	int left, right, parent;	/* left < 0: a leaf */
	int first, count;		/* leaf: its drones in perm[] */
	int64_t min_free;
	int64_t min_tail, gap[NCLIP];	/* of the drones below: a flight longer than
					 * every gap starts at a tail at the earliest */
	double max_kg, max_range, max_speed, min_speed;
	int max_size;
};

struct hent {
	int64_t pl;
	double dp;
	int node;
};

struct dd_fleet {
	struct drone *d;
	int n, cap, built;
	int *perm;
	struct node *nodes;
	int nnodes;
	int *hash;
	size_t hmask;
	struct hent *heap;
	/* Classes of drones, smallest first (by maxSize, then maxPayloadKg),
	 * each with a tree of its own: the best fit is the first class with a
	 * drone that can fly it. */
	int ncls;
	int *roots, *cls_size;
	double *cls_kg;
	int64_t floor;
	double max_kg;
	int max_size;
	uint64_t c_drones, c_nodes, c_searches;
};

struct dd_fleet *
dd_fleet_new(void)
{
	struct dd_fleet *f = dd_calloc(1, sizeof *f);
	f->floor = INT64_MIN;
	return f;
}

void
dd_fleet_free(struct dd_fleet *f)
{
	if (f == NULL)
		return;
	for (int i = 0; i < f->n; i++) {
		free((char *)f->d[i].s.id);
		for (int k = 0; k < f->d[i].nb; k++)
			free(f->d[i].b[k].ref);
		free(f->d[i].b);
	}
	free(f->d);
	free(f->perm);
	free(f->nodes);
	free(f->hash);
	free(f->heap);
	free(f->roots);
	free(f->cls_size);
	free(f->cls_kg);
	free(f);
}

void
dd_fleet_add(struct dd_fleet *f, const struct dd_drone_spec *s)
{
	if (f->n == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 64;
		f->d = dd_realloc(f->d, (size_t)f->cap * sizeof *f->d);
	}
	struct drone *d = &f->d[f->n++];
	memset(d, 0, sizeof *d);
	d->s = *s;
	d->s.id = dd_strdup(s->id);
	unitvec(s->lat, s->lon, d->v);
	d->free_lb = d->tail = INT64_MIN;
	memset(d->gap, 0, sizeof d->gap);
	d->out_from = d->out_until = INT64_MIN;
}

static int
cmp_drone(const void *a, const void *b)
{
	return strcmp(((const struct drone *)a)->s.id, ((const struct drone *)b)->s.id);
}

static int sort_dim;
static const struct drone *sort_drones;

/* Smaller class first: maxSize, then maxPayloadKg; then by id (index). */
static int
cmp_class(const void *a, const void *b)
{
	const struct drone *x = &sort_drones[*(const int *)a], *y = &sort_drones[*(const int *)b];
	if (x->s.max_size != y->s.max_size)
		return x->s.max_size < y->s.max_size ? -1 : 1;
	if (x->s.max_kg != y->s.max_kg)
		return x->s.max_kg < y->s.max_kg ? -1 : 1;
	return *(const int *)a < *(const int *)b ? -1 : *(const int *)a > *(const int *)b;
}

static int
cmp_dim(const void *a, const void *b)
{
	double x = sort_drones[*(const int *)a].v[sort_dim];
	double y = sort_drones[*(const int *)b].v[sort_dim];
	return x < y ? -1 : x > y;
}

static void
aggregate(struct dd_fleet *f, int ni)
{
	struct node *n = &f->nodes[ni];
	if (n->left < 0) {
		n->min_free = n->min_tail = INT64_MAX;
		memset(n->gap, 0, sizeof n->gap);
		n->max_kg = n->max_range = n->max_speed = 0;
		n->min_speed = INFINITY;
		n->max_size = 0;
		for (int k = 0; k < n->count; k++) {
			const struct drone *d = &f->d[f->perm[n->first + k]];
			if (d->free_lb < n->min_free)
				n->min_free = d->free_lb;
			if (d->tail < n->min_tail)
				n->min_tail = d->tail;
			for (int g = 0; g < NCLIP; g++)
				if (d->gap[g] > n->gap[g])
					n->gap[g] = d->gap[g];
			n->min_speed = fmin(n->min_speed, d->s.speed_mps);
			n->max_kg = fmax(n->max_kg, d->s.max_kg);
			n->max_range = fmax(n->max_range, d->s.range_km);
			n->max_speed = fmax(n->max_speed, d->s.speed_mps);
			if (d->s.max_size > n->max_size)
				n->max_size = d->s.max_size;
		}
		return;
	}
	const struct node *l = &f->nodes[n->left], *r = &f->nodes[n->right];
	n->min_free = l->min_free < r->min_free ? l->min_free : r->min_free;
	n->min_tail = l->min_tail < r->min_tail ? l->min_tail : r->min_tail;
	for (int g = 0; g < NCLIP; g++)
		n->gap[g] = l->gap[g] > r->gap[g] ? l->gap[g] : r->gap[g];
	n->min_speed = fmin(l->min_speed, r->min_speed);
	n->max_kg = fmax(l->max_kg, r->max_kg);
	n->max_range = fmax(l->max_range, r->max_range);
	n->max_speed = fmax(l->max_speed, r->max_speed);
	n->max_size = l->max_size > r->max_size ? l->max_size : r->max_size;
}

static int
build(struct dd_fleet *f, int first, int count, int parent)
{
	int ni = f->nnodes++;
	struct node *n = &f->nodes[ni];
	memset(n, 0, sizeof *n);
	n->parent = parent;
	n->first = first;
	n->count = count;
	for (int k = 0; k < 3; k++) {
		n->lo[k] = INFINITY;
		n->hi[k] = -INFINITY;
	}
	for (int i = first; i < first + count; i++)
		for (int k = 0; k < 3; k++) {
			n->lo[k] = fmin(n->lo[k], f->d[f->perm[i]].v[k]);
			n->hi[k] = fmax(n->hi[k], f->d[f->perm[i]].v[k]);
		}
	if (count <= LEAF_MAX) {
		n->left = n->right = -1;
		for (int i = first; i < first + count; i++)
			f->d[f->perm[i]].leaf = ni;
	} else {
		int dim = 0;
		for (int k = 1; k < 3; k++)
			if (n->hi[k] - n->lo[k] > n->hi[dim] - n->lo[dim])
				dim = k;
		sort_dim = dim;
		sort_drones = f->d;
		qsort(f->perm + first, (size_t)count, sizeof *f->perm, cmp_dim);
		int half = count / 2;
		int l = build(f, first, half, ni);
		int r = build(f, first + half, count - half, ni);
		n = &f->nodes[ni];
		n->left = l;
		n->right = r;
	}
	aggregate(f, ni);
	return ni;
}

int
dd_fleet_build(struct dd_fleet *f)
{
	if (f->n > 1)
		qsort(f->d, (size_t)f->n, sizeof *f->d, cmp_drone);
	for (int i = 1; i < f->n; i++)
		if (strcmp(f->d[i - 1].s.id, f->d[i].s.id) == 0) {
			dd_seterr("drone \"%s\" is listed twice", f->d[i].s.id);
			return -1;
		}
	size_t hs = 16;
	while (hs < (size_t)f->n * 2)
		hs *= 2;
	f->hash = dd_realloc(f->hash, hs * sizeof *f->hash);
	f->hmask = hs - 1;
	memset(f->hash, 0xff, hs * sizeof *f->hash);
	f->max_kg = 0;
	f->max_size = DD_SIZE_NONE;
	for (int i = 0; i < f->n; i++) {
		const char *id = f->d[i].s.id;
		size_t h = (size_t)dd_hash64(id, strlen(id)) & f->hmask;
		while (f->hash[h] >= 0)
			h = (h + 1) & f->hmask;
		f->hash[h] = i;
		f->max_kg = fmax(f->max_kg, f->d[i].s.max_kg);
		if (f->d[i].s.max_size > f->max_size)
			f->max_size = f->d[i].s.max_size;
	}
	f->perm = dd_realloc(f->perm, (size_t)(f->n ? f->n : 1) * sizeof *f->perm);
	for (int i = 0; i < f->n; i++)
		f->perm[i] = i;
	/* The drones by class, then a tree for each class. */
	sort_drones = f->d;
	if (f->n > 1)
		qsort(f->perm, (size_t)f->n, sizeof *f->perm, cmp_class);
	f->ncls = 0;
	for (int i = 0; i < f->n; i++) {
		const struct drone *d = &f->d[f->perm[i]], *p = i ? &f->d[f->perm[i - 1]] : NULL;
		if (p == NULL || p->s.max_size != d->s.max_size || p->s.max_kg != d->s.max_kg)
			f->ncls++;
	}
	f->roots = dd_realloc(f->roots, (size_t)(f->ncls + 1) * sizeof *f->roots);
	f->cls_size = dd_realloc(f->cls_size, (size_t)(f->ncls + 1) * sizeof *f->cls_size);
	f->cls_kg = dd_realloc(f->cls_kg, (size_t)(f->ncls + 1) * sizeof *f->cls_kg);
	/* A tree of m drones in leaves of at most LEAF_MAX has at most m nodes
	 * (m + 1 for m = 1, hence one spare a class). */
	int maxnodes = f->n + f->ncls + 1;
	f->nodes = dd_realloc(f->nodes, (size_t)maxnodes * sizeof *f->nodes);
	f->heap = dd_realloc(f->heap, (size_t)maxnodes * sizeof *f->heap);
	f->nnodes = 0;
	for (int i = 0, c = 0; i < f->n; c++) {
		const struct drone *d = &f->d[f->perm[i]];
		int j = i + 1;
		while (j < f->n && f->d[f->perm[j]].s.max_size == d->s.max_size &&
		    f->d[f->perm[j]].s.max_kg == d->s.max_kg)
			j++;
		f->cls_size[c] = d->s.max_size;
		f->cls_kg[c] = d->s.max_kg;
		f->roots[c] = build(f, i, j - i, -1);
		i = j;
	}
	f->built = 1;
	return 0;
}

int
dd_fleet_count(const struct dd_fleet *f)
{
	return f->n;
}

int
dd_fleet_find(const struct dd_fleet *f, const char *id)
{
	if (!f->built || f->n == 0)
		return -1;
	size_t h = (size_t)dd_hash64(id, strlen(id)) & f->hmask;
	for (; f->hash[h] >= 0; h = (h + 1) & f->hmask)
		if (strcmp(f->d[f->hash[h]].s.id, id) == 0)
			return f->hash[h];
	return -1;
}

const struct dd_drone_spec *
dd_fleet_spec(const struct dd_fleet *f, int i)
{
	return &f->d[i].s;
}

double
dd_fleet_max_kg(const struct dd_fleet *f)
{
	return f->max_kg;
}

int
dd_fleet_max_size(const struct dd_fleet *f)
{
	return f->max_size;
}

void
dd_fleet_counters(const struct dd_fleet *f, uint64_t *drones, uint64_t *nodes,
    uint64_t *searches)
{
	*drones = f->c_drones;
	*nodes = f->c_nodes;
	*searches = f->c_searches;
}

void
dd_fleet_set_floor(struct dd_fleet *f, int64_t floor_ms)
{
	if (floor_ms > f->floor)
		f->floor = floor_ms;
}

/* Forget bookings that ended before the floor, and recompute the drone's
 * free time; with up, propagate a change up the tree (without, the nodes
 * keep an earlier free time: still a lower bound, only less tight). */
static void
refresh_drone(struct dd_fleet *f, int i, int force, int up)
{
	struct drone *d = &f->d[i];
	int k = 0;
	while (k < d->nb && d->b[k].end <= f->floor)
		free(d->b[k++].ref);
	if (k > 0) {
		memmove(d->b, d->b + k, (size_t)(d->nb - k) * sizeof *d->b);
		d->nb -= k;
	}
	/* The free stretches from the floor on: the first long enough for
	 * any flight, the longest, and where the last begins. The time out
	 * of service counts as one more booking. */
	int64_t s = f->floor, first = INT64_MIN, gap[NCLIP] = { 0 };
	int out = d->out_until > f->floor && d->out_until > d->out_from;
	for (k = 0; k <= d->nb; k++) {
		int64_t bs, be;
		if (k < d->nb && (!out || d->b[k].start < d->out_from)) {
			bs = d->b[k].start, be = d->b[k].end;
		} else if (out) {
			bs = d->out_from, be = d->out_until;
			out = 0;
			k--;	/* this booking again, after the time out */
		} else {
			break;
		}
		if (bs >= s + MIN_FLIGHT_MS && first == INT64_MIN)
			first = s;
		/* The stretch [s, bs) as seen from each clip point; with no
		 * floor yet (no clock), of no known length. */
		for (int g = 0; g < NCLIP; g++) {
			int64_t from = f->floor == INT64_MIN ? INT64_MIN : f->floor + g * CLIP_MS;
			int64_t lo = s > from ? s : from;
			int64_t len = lo == INT64_MIN ? INT64_MAX : bs - lo;
			if (len > gap[g])
				gap[g] = len;
		}
		if (be > s)
			s = be;
	}
	if (first == INT64_MIN)
		first = s;
	if ((first == d->free_lb && s == d->tail && !memcmp(gap, d->gap, sizeof gap) && !force) ||
	    !f->built || f->nnodes == 0)
		return;
	d->free_lb = first;
	d->tail = s;
	memcpy(d->gap, gap, sizeof gap);
	for (int ni = up ? d->leaf : -1; ni >= 0; ni = f->nodes[ni].parent) {
		const struct node *n = &f->nodes[ni];
		int64_t b0 = n->min_free, b1 = n->min_tail, b2[NCLIP];
		memcpy(b2, n->gap, sizeof b2);
		aggregate(f, ni);
		if (n->min_free == b0 && n->min_tail == b1 && !memcmp(n->gap, b2, sizeof b2) && !force)
			break;
	}
}

static void
refresh(struct dd_fleet *f, int i, int force)
{
	refresh_drone(f, i, force, 1);
}

int
dd_fleet_book(struct dd_fleet *f, int i, int64_t start, int64_t end, uint64_t key)
{
	return dd_fleet_book_movable(f, i, start, end, key, NULL);
}

int
dd_fleet_book_movable(struct dd_fleet *f, int i, int64_t start, int64_t end, uint64_t key,
    const char *ref)
{
	struct drone *d = &f->d[i];
	int lo = 0, hi = d->nb;
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (d->b[mid].start < start)
			lo = mid + 1;
		else
			hi = mid;
	}
	if ((lo > 0 && d->b[lo - 1].end > start) || (lo < d->nb && d->b[lo].start < end)) {
		dd_seterr("drone %s is already booked at that time", d->s.id);
		return -1;
	}
	if (d->nb == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 4;
		d->b = dd_realloc(d->b, (size_t)d->cap * sizeof *d->b);
	}
	memmove(d->b + lo + 1, d->b + lo, (size_t)(d->nb - lo) * sizeof *d->b);
	d->b[lo] = (struct booking){ start, end, key, ref ? dd_strdup(ref) : NULL };
	d->nb++;
	refresh(f, i, 0);
	return 0;
}

void
dd_fleet_ground(struct dd_fleet *f, int i, int64_t from, int64_t until)
{
	struct drone *d = &f->d[i];
	d->out_from = from;
	d->out_until = until;
	refresh(f, i, 1);
}

static int
find_booking(const struct drone *d, uint64_t key)
{
	for (int k = 0; k < d->nb; k++)
		if (d->b[k].key == key)
			return k;
	return -1;
}

void
dd_fleet_pin(struct dd_fleet *f, int i, uint64_t key)
{
	struct drone *d = &f->d[i];
	int k = find_booking(d, key);
	if (k >= 0) {
		free(d->b[k].ref);
		d->b[k].ref = NULL;
	}
}

int
dd_fleet_movable_in(const struct dd_fleet *f, int i, int64_t start, int64_t end, int64_t now,
    char **refs, int max)
{
	const struct drone *d = &f->d[i];
	int n = 0;
	for (int k = 0; k < d->nb && n < max; k++)
		if (d->b[k].ref && d->b[k].start > now && d->b[k].start < end && d->b[k].end > start)
			refs[n++] = dd_strdup(d->b[k].ref);
	return n;
}

int
dd_fleet_unbook(struct dd_fleet *f, int i, uint64_t key)
{
	struct drone *d = &f->d[i];
	int k = find_booking(d, key);
	if (k < 0)
		return -1;
	free(d->b[k].ref);
	memmove(d->b + k, d->b + k + 1, (size_t)(d->nb - k - 1) * sizeof *d->b);
	d->nb--;
	/* Freed time may lower the free time: recompute it, and the tree. */
	refresh(f, i, 1);
	return 0;
}

int
dd_fleet_shorten(struct dd_fleet *f, int i, uint64_t key, int64_t end)
{
	struct drone *d = &f->d[i];
	int k = find_booking(d, key);
	if (k < 0)
		return -1;
	if (end <= d->b[k].start)
		return dd_fleet_unbook(f, i, key);	/* nothing left of it */
	if (end < d->b[k].end) {
		d->b[k].end = end;
		refresh(f, i, 1);
	}
	return 0;
}

int64_t
dd_fleet_return_ms(const struct dd_fleet *f, int i, double lat, double lon)
{
	const struct drone *d = &f->d[i];
	return leg_ms(dd_geo_km(lat, lon, d->s.lat, d->s.lon), d->s.speed_mps);
}

/* ---- the search ---- */

static int clip_of(const struct dd_fleet *f, int64_t smin);

struct ctx {
	const struct dd_trip *t;
	double pk[3], dr[3];
	double trip_km;		/* pickup to dropoff */
	int ignore_time;	/* capability and range only */
	int idle;		/* as if every drone were free: can the deadline be met at all? */
	int preempt;		/* movable bookings that have not left may make room */
	int64_t limit;		/* the best pickup found so far: a drone that cannot
				 * beat it is not worth the exact look */
};

/* Exact: can drone i fly it, and when? */
static int
fit(struct dd_fleet *f, const struct ctx *c, int i, struct dd_plan *p)
{
	struct drone *d = &f->d[i];
	const struct dd_trip *t = c->t;
	f->c_drones++;
	if (i == t->exclude || d->s.max_kg < t->kg || d->s.max_size < t->size)
		return DD_FIT_NONE;
	double a = vec_km(d->v, c->pk), b = c->trip_km;
	if (c->limit != INT64_MAX && !c->idle && !c->preempt) {
		/* What this drone's own free times allow at best (a flight longer
		 * than each of its gaps starts at its tail): no need to look at
		 * its bookings when that cannot beat the best found. */
		int64_t ta = leg_ms(a, d->s.speed_mps);
		int64_t len = ta + 2 * DD_HANDLING_MS + leg_ms(b, d->s.speed_mps) + DD_TURNAROUND_MS;
		int64_t smin = t->pickup_time - ta > t->now ? t->pickup_time - ta : t->now;
		int64_t s0 = len > d->gap[clip_of(f, smin)] ? d->tail : d->free_lb;
		if (s0 < smin)
			s0 = smin;
		if (s0 + ta > c->limit)
			return DD_FIT_BUSY;
	}
	double r = vec_km(c->dr, d->v);
	if (a + b + r > d->s.range_km)
		return DD_FIT_NONE;
	p->drone = i;
	p->approach_km = a;
	p->trip_km = a + b + r;
	if (c->ignore_time)
		return DD_FIT_OK;
	int64_t ta = leg_ms(a, d->s.speed_mps), tb = leg_ms(b, d->s.speed_mps),
	    tr = leg_ms(r, d->s.speed_mps);
	int64_t len = ta + DD_HANDLING_MS + tb + DD_HANDLING_MS + tr + DD_TURNAROUND_MS;
	int64_t s = t->pickup_time - ta;
	if (s < t->now)
		s = t->now;
	if (c->idle)
		goto plan;
	if (d->free_lb < f->floor)
		refresh(f, i, 0);
	/* Bookings are sorted and disjoint: find the first that ends after s,
	 * then slide s past each booking that the flight would overlap. */
	int lo = 0, hi = d->nb;
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (d->b[mid].end <= s)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (int k = lo;; k++) {
		/* Out of service: not before it is back (bookings after that
		 * are further on in the list). */
		if (s < d->out_until && s + len > d->out_from)
			s = d->out_until;
		if (k < d->nb && c->preempt && d->b[k].ref && d->b[k].start > t->now)
			continue;	/* it can be moved */
		if (k >= d->nb || d->b[k].start >= s + len)
			break;
		if (d->b[k].end > s)
			s = d->b[k].end;
	}
plan:
	p->depart = s;
	p->pickup = s + ta;
	p->dropoff = p->pickup + DD_HANDLING_MS + tb;
	p->ret = p->dropoff + DD_HANDLING_MS + tr;
	p->busy_end = p->ret + DD_TURNAROUND_MS;
	return p->dropoff <= t->deadline ? DD_FIT_OK : DD_FIT_BUSY;
}

/* The clip point of a flight that starts at smin at the earliest: the
 * last one not after it (drones refreshed at an earlier floor saw their
 * stretches from earlier points, which only makes them longer). */
static int
clip_of(const struct dd_fleet *f, int64_t smin)
{
	if (f->floor == INT64_MIN || smin <= f->floor)
		return 0;
	int64_t g = (smin - f->floor) / CLIP_MS;
	return g >= NCLIP ? NCLIP - 1 : (int)g;
}

/* The farthest any point of the node's box is from p (an upper bound). */
static double
far_km(const struct node *n, const double p[3])
{
	double s = 0;
	for (int k = 0; k < 3; k++) {
		double x = fmax(fabs(p[k] - n->lo[k]), fabs(p[k] - n->hi[k]));
		s += x * x;
	}
	return chord_km(s);
}

static double
box_km(const struct node *n, const double p[3])
{
	double s = 0;
	for (int k = 0; k < 3; k++) {
		double x = p[k] < n->lo[k] ? n->lo[k] - p[k] : p[k] > n->hi[k] ? p[k] - n->hi[k] : 0;
		s += x * x;
	}
	return chord_km(s);
}

/* A lower bound on (pickup, approach) for any drone under node ni, or
 * 0 when none of them can fly the trip. */
static int
bound(const struct dd_fleet *f, const struct ctx *c, int ni, struct hent *h)
{
	const struct node *n = &f->nodes[ni];
	const struct dd_trip *t = c->t;
	if (n->max_kg < t->kg || n->max_size < t->size)
		return 0;
	double dp = box_km(n, c->pk), dd = box_km(n, c->dr);
	if (dp + c->trip_km + dd > n->max_range * (1 + 1e-12))
		return 0;
	h->node = ni;
	h->dp = dp;
	if (c->ignore_time) {
		h->pl = 0;
		return 1;
	}
	/* Minus a millisecond: the drones round their legs up, this must
	 * never exceed what they compute. */
	int64_t alb = (int64_t)floor(dp * 1e6 / n->max_speed) - 1;
	int64_t pl = t->pickup_time;
	if (t->now + alb > pl)
		pl = t->now + alb;
	if (!c->idle && !c->preempt && n->min_free != INT64_MIN) {
		/* A flight longer than every gap of the drones below starts at
		 * one's tail at the earliest. */
		int64_t len = 2 * DD_HANDLING_MS + DD_TURNAROUND_MS +
		    (int64_t)floor((dp + c->trip_km + dd) * 1e6 / n->max_speed) - 1;
		/* No flight of the drones below starts before smin: the farthest
		 * of them at the slowest speed, a second more for rounding. */
		int64_t smin = t->pickup_time -
		    ((int64_t)ceil(far_km(n, c->pk) * 1e6 / n->min_speed) + 1000);
		if (smin < t->now)
			smin = t->now;
		int64_t free = len > n->gap[clip_of(f, smin)] ? n->min_tail : n->min_free;
		if (free + alb > pl)
			pl = free + alb;
	}
	int64_t dl = pl + DD_HANDLING_MS + (int64_t)floor(c->trip_km * 1e6 / n->max_speed) - 1;
	if (dl > t->deadline)
		return 0;
	h->pl = pl;
	return 1;
}

static int
hless(const struct hent *a, const struct hent *b)
{
	return a->pl < b->pl || (a->pl == b->pl && a->dp < b->dp);
}

static void
hpush(struct hent *h, int *n, struct hent e)
{
	int i = (*n)++;
	while (i > 0) {
		int up = (i - 1) / 2;
		if (!hless(&e, &h[up]))
			break;
		h[i] = h[up];
		i = up;
	}
	h[i] = e;
}

static struct hent
hpop(struct hent *h, int *n)
{
	struct hent top = h[0], last = h[--(*n)];
	int i = 0;
	for (;;) {
		int l = 2 * i + 1, r = l + 1, m = i;
		const struct hent *mv = &last;
		if (l < *n && hless(&h[l], mv)) {
			m = l;
			mv = &h[l];
		}
		if (r < *n && hless(&h[r], mv))
			m = r;
		if (m == i)
			break;
		h[i] = h[m];
		i = m;
	}
	h[i] = last;
	return top;
}

/* Is plan a better than plan b (earlier pickup, shorter approach, smaller id)? */
static int
better(const struct dd_plan *a, const struct dd_plan *b)
{
	if (a->pickup != b->pickup)
		return a->pickup < b->pickup;
	if (a->approach_km != b->approach_km)
		return a->approach_km < b->approach_km;
	return a->drone < b->drone;
}

static int
search_tree(struct dd_fleet *f, struct ctx *c, int root, struct dd_plan *best)
{
	int nh = 0, found = 0;
	struct hent e;
	if (!bound(f, c, root, &e))
		return 0;
	hpush(f->heap, &nh, e);
	while (nh > 0) {
		e = hpop(f->heap, &nh);
		if (found && (e.pl > best->pickup || (e.pl == best->pickup && e.dp > best->approach_km)))
			break;
		f->c_nodes++;
		const struct node *n = &f->nodes[e.node];
		if (n->left < 0) {
			for (int k = 0; k < n->count; k++) {
				struct dd_plan p;
				if (fit(f, c, f->perm[n->first + k], &p) != DD_FIT_OK)
					continue;
				if (!found || better(&p, best)) {
					*best = p;
					found = 1;
					c->limit = p.pickup;
				}
			}
			/* Whether one exists is all these ask. */
			if (found && (c->ignore_time || c->idle))
				break;
			continue;
		}
		struct hent ch;
		if (bound(f, c, n->left, &ch))
			hpush(f->heap, &nh, ch);
		if (bound(f, c, n->right, &ch))
			hpush(f->heap, &nh, ch);
	}
	return found;
}

/* The smallest class that has a drone for the trip wins; within it, the
 * earliest pickup. */
static int
search(struct dd_fleet *f, struct ctx *c, struct dd_plan *best)
{
	c->limit = INT64_MAX;
	for (int k = 0; k < f->ncls; k++)
		if (f->cls_size[k] >= c->t->size && f->cls_kg[k] >= c->t->kg &&
		    search_tree(f, c, f->roots[k], best))
			return 1;
	return 0;
}

static void
ctx_init(struct ctx *c, const struct dd_trip *t)
{
	memset(c, 0, sizeof *c);
	c->t = t;
	c->limit = INT64_MAX;
	unitvec(t->pk_lat, t->pk_lon, c->pk);
	unitvec(t->dr_lat, t->dr_lon, c->dr);
	c->trip_km = vec_km(c->pk, c->dr);
}

int
dd_fleet_search(struct dd_fleet *f, const struct dd_trip *t, struct dd_plan *p)
{
	struct ctx c;
	ctx_init(&c, t);
	f->c_searches++;
	if (search(f, &c, p))
		return DD_FIT_OK;
	struct dd_plan any;
	c.idle = 1;
	if (search(f, &c, &any))
		return DD_FIT_BUSY;
	c.idle = 0;
	c.ignore_time = 1;
	return search(f, &c, &any) ? DD_FIT_LATE : DD_FIT_NONE;
}

int
dd_fleet_check(struct dd_fleet *f, const struct dd_trip *t)
{
	struct ctx c;
	struct dd_plan any;
	ctx_init(&c, t);
	c.idle = 1;
	if (search(f, &c, &any))
		return DD_FIT_BUSY;
	c.idle = 0;
	c.ignore_time = 1;
	return search(f, &c, &any) ? DD_FIT_LATE : DD_FIT_NONE;
}

int
dd_fleet_search_preempt(struct dd_fleet *f, const struct dd_trip *t, struct dd_plan *p)
{
	struct ctx c;
	ctx_init(&c, t);
	c.preempt = 1;
	return search(f, &c, p) ? DD_FIT_OK : DD_FIT_BUSY;
}

int
dd_fleet_fit(struct dd_fleet *f, int i, const struct dd_trip *t, struct dd_plan *p)
{
	struct ctx c;
	ctx_init(&c, t);
	return fit(f, &c, i, p);
}
