#include <ctype.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <jq.h>
#include <jv.h>

#include "event.h"
#include "jqf.h"
#include "json.h"
#include "util.h"

/* ---------------------------------------------- select() without jq */

/* The ranks of jq 1.6's jv_kind order, which jv_cmp compares first. */
enum { R_NULL = 1, R_FALSE, R_TRUE, R_NUMBER, R_STRING, R_ARRAY, R_OBJECT };

enum { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE };

struct operand {
	int is_path;
	char **keys;		/* path: .k1.k2... (none: the input itself) */
	int nkeys;
	int rank;		/* literal */
	double num;
	char *str;
	size_t slen;
};

/* A node of a select() the fast path decides: a value (an operand), a
 * comparison, and/or, or a function applied by '|' to a node's value. */
enum { N_VAL, N_CMP, N_AND, N_OR, N_NOT, N_HAS, N_STARTS, N_ENDS, N_TEST };

struct node {
	int kind;
	int op;			/* N_CMP */
	struct operand v;	/* N_VAL */
	struct node *l, *r;	/* operands; the input of a function */
	char *lit;		/* the string argument of a function */
	size_t litn;
	int bol, eol;		/* N_TEST: anchored with ^, $ */
};

struct fast {
	int identity;		/* the program is "." */
	struct node *cond;	/* select(cond) */
};

struct dd_jqf {
	jq_state *jq;		/* NULL until compiled (jq_ready) */
	char *program;
	char **names, **values;	/* the --arg bindings */
	int nargs;
	struct dd_buf errs;	/* compile messages */
	struct fast *fast;
	int use_fast;
	struct dd_buf tmp;	/* decoded strings of the fast path */
};

static const char *
ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

static int
ident_start(int c)
{
	return isalpha(c) || c == '_';
}

static int
ident_char(int c)
{
	return isalnum(c) || c == '_';
}

static void
operand_free(struct operand *o)
{
	for (int i = 0; i < o->nkeys; i++)
		free(o->keys[i]);
	free(o->keys);
	free(o->str);
}

/*
 * One operand of a comparison: .a.b, a number (optionally negated), a
 * string without escapes, true/false/null, or $NAME bound by --arg.
 * Returns the text after it, or NULL when it is anything else.
 */
static const char *
parse_operand(const char *p, struct operand *o, const char *const *names,
    const char *const *values, int nargs)
{
	memset(o, 0, sizeof *o);
	if (*p == '.' && (ident_start((unsigned char)p[1]) || !isdigit((unsigned char)p[1]))) {
		o->is_path = 1;
		if (!ident_start((unsigned char)p[1]))
			return p + 1;	/* "." */
		while (*p == '.' && ident_start((unsigned char)p[1])) {
			const char *s = ++p;
			while (ident_char((unsigned char)*p))
				p++;
			o->keys = dd_realloc(o->keys, (size_t)(o->nkeys + 1) * sizeof *o->keys);
			o->keys[o->nkeys++] = dd_strndup(s, (size_t)(p - s));
		}
		/* .a[0], .a?, .a.[...]: not ours. */
		if (*p == '.' || *p == '[' || *p == '?' || *p == '"')
			return NULL;
		return p;
	}
	if (*p == '"') {
		const char *s = ++p;
		while (*p && *p != '"' && *p != '\\')
			p++;
		if (*p != '"')
			return NULL;
		o->rank = R_STRING;
		o->str = dd_strndup(s, (size_t)(p - s));
		o->slen = (size_t)(p - s);
		return p + 1;
	}
	if (*p == '$') {
		const char *s = ++p;
		while (ident_char((unsigned char)*p))
			p++;
		size_t n = (size_t)(p - s);
		/* The first binding of a name is the one jq keeps. */
		for (int i = 0; i < nargs; i++)
			if (strlen(names[i]) == n && memcmp(names[i], s, n) == 0) {
				o->rank = R_STRING;
				o->str = dd_strdup(values[i]);
				o->slen = strlen(values[i]);
				return p;
			}
		return NULL;
	}
	static const struct { const char *w; int rank; } words[] = {
		{ "true", R_TRUE }, { "false", R_FALSE }, { "null", R_NULL },
	};
	for (size_t i = 0; i < 3; i++) {
		size_t n = strlen(words[i].w);
		if (strncmp(p, words[i].w, n) == 0 && !ident_char((unsigned char)p[n])) {
			o->rank = words[i].rank;
			return p + n;
		}
	}
	/* A number as jq's lexer reads it: 12, 1.5, .5, 1e3, with a unary minus. */
	const char *s = p;
	int neg = 0;
	if (*p == '-') {
		neg = 1;
		p = ws(p + 1);
		s = p;
	}
	int digits = 0;
	while (isdigit((unsigned char)*p))
		p++, digits++;
	if (*p == '.') {
		p++;
		while (isdigit((unsigned char)*p))
			p++, digits++;
	}
	if (!digits)
		return NULL;
	if (*p == 'e' || *p == 'E') {
		const char *e = p + 1;
		if (*e == '+' || *e == '-')
			e++;
		if (!isdigit((unsigned char)*e))
			return NULL;
		while (isdigit((unsigned char)*e))
			e++;
		p = e;
	}
	if (ident_char((unsigned char)*p) || *p == '.')
		return NULL;
	char *num = dd_strndup(s, (size_t)(p - s)), *end;
	o->num = strtod(num, &end);
	free(num);
	if (neg)
		o->num = -o->num;
	o->rank = R_NUMBER;
	return p;
}

static void
node_free(struct node *n)
{
	if (n == NULL)
		return;
	operand_free(&n->v);
	node_free(n->l);
	node_free(n->r);
	free(n->lit);
	free(n);
}

struct parser {
	const char *p;
	const char *const *names, *const *values;
	int nargs;
};

/* The keyword w at the parser's position (not a prefix of a name). */
static int
keyword(struct parser *ps, const char *w)
{
	size_t n = strlen(w);
	if (strncmp(ps->p, w, n) != 0 || ident_char((unsigned char)ps->p[n]))
		return 0;
	ps->p = ws(ps->p + n);
	return 1;
}

static struct node *parse_pipe(struct parser *ps);

/* A function applied to the input: has("k"), startswith("s"), endswith,
 * test("literal"), not; its string argument a literal without escapes
 * (or $NAME). NULL when it is none of them. */
static struct node *
parse_func(struct parser *ps)
{
	static const struct { const char *w; int kind; } funcs[] = {
		{ "has", N_HAS }, { "startswith", N_STARTS }, { "endswith", N_ENDS },
		{ "test", N_TEST },
	};
	if (keyword(ps, "not")) {
		struct node *n = dd_calloc(1, sizeof *n);
		n->kind = N_NOT;
		return n;
	}
	for (size_t i = 0; i < sizeof funcs / sizeof funcs[0]; i++) {
		const char *save = ps->p;
		if (!keyword(ps, funcs[i].w))
			continue;
		if (*ps->p != '(') {
			ps->p = save;
			return NULL;
		}
		struct operand arg;
		const char *q = parse_operand(ws(ps->p + 1), &arg, ps->names, ps->values, ps->nargs);
		if (q == NULL || arg.is_path || arg.rank != R_STRING || *(q = ws(q)) != ')') {
			if (q)
				operand_free(&arg);
			return NULL;
		}
		ps->p = ws(q + 1);
		struct node *n = dd_calloc(1, sizeof *n);
		n->kind = funcs[i].kind;
		n->lit = arg.str;
		n->litn = arg.slen;
		arg.str = NULL;
		operand_free(&arg);
		if (n->kind == N_TEST) {
			/* Only a regex that is a literal, perhaps anchored: its
			 * match is a substring, prefix, suffix or equality. */
			char *r = n->lit;
			size_t len = n->litn;
			if (len && r[0] == '^') {
				n->bol = 1;
				memmove(r, r + 1, len--);
			}
			if (len && r[len - 1] == '$') {
				n->eol = 1;
				r[--len] = '\0';
			}
			n->litn = len;
			if (strpbrk(r, ".[]()*+?{}|\\^$#")) {
				node_free(n);
				return NULL;
			}
		}
		return n;
	}
	return NULL;
}

/* term: ( pipe ) | a function of the input | an operand */
static struct node *
parse_term(struct parser *ps)
{
	if (*ps->p == '(') {
		ps->p = ws(ps->p + 1);
		struct node *n = parse_pipe(ps);
		if (n == NULL || *ps->p != ')') {
			node_free(n);
			return NULL;
		}
		ps->p = ws(ps->p + 1);
		return n;
	}
	if (ident_start((unsigned char)*ps->p) && strncmp(ps->p, "true", 4) &&
	    strncmp(ps->p, "false", 5) && strncmp(ps->p, "null", 4)) {
		struct node *f = parse_func(ps);
		if (f == NULL)
			return NULL;
		/* Applied to the input itself. */
		f->l = dd_calloc(1, sizeof *f->l);
		f->l->kind = N_VAL;
		f->l->v.is_path = 1;
		return f;
	}
	struct node *n = dd_calloc(1, sizeof *n);
	n->kind = N_VAL;
	const char *q = parse_operand(ps->p, &n->v, ps->names, ps->values, ps->nargs);
	if (q == NULL) {
		node_free(n);
		return NULL;
	}
	ps->p = ws(q);
	return n;
}

/* cmp: term [OP term] (jq's comparisons do not chain) */
static struct node *
parse_cmp(struct parser *ps)
{
	static const struct { const char *s; int op; } ops[] = {
		{ "==", OP_EQ }, { "!=", OP_NE }, { "<=", OP_LE }, { ">=", OP_GE },
		{ "<", OP_LT }, { ">", OP_GT },
	};
	struct node *l = parse_term(ps);
	if (l == NULL)
		return NULL;
	for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
		size_t n = strlen(ops[i].s);
		if (strncmp(ps->p, ops[i].s, n) != 0)
			continue;
		ps->p = ws(ps->p + n);
		struct node *r = parse_term(ps);
		if (r == NULL) {
			node_free(l);
			return NULL;
		}
		struct node *c = dd_calloc(1, sizeof *c);
		c->kind = N_CMP;
		c->op = ops[i].op;
		c->l = l;
		c->r = r;
		return c;
	}
	return l;
}

static struct node *
binary(int kind, struct node *l, struct node *r)
{
	struct node *n = dd_calloc(1, sizeof *n);
	n->kind = kind;
	n->l = l;
	n->r = r;
	return n;
}

/* and binds tighter than or; both to the left, as in jq. */
static struct node *
parse_and(struct parser *ps)
{
	struct node *l = parse_cmp(ps);
	while (l && keyword(ps, "and")) {
		struct node *r = parse_cmp(ps);
		if (r == NULL) {
			node_free(l);
			return NULL;
		}
		l = binary(N_AND, l, r);
	}
	return l;
}

static struct node *
parse_or(struct parser *ps)
{
	struct node *l = parse_and(ps);
	while (l && keyword(ps, "or")) {
		struct node *r = parse_and(ps);
		if (r == NULL) {
			node_free(l);
			return NULL;
		}
		l = binary(N_OR, l, r);
	}
	return l;
}

/* pipe: or ( '|' function )* -- '|' binds loosest of all */
static struct node *
parse_pipe(struct parser *ps)
{
	struct node *l = parse_or(ps);
	while (l && *ps->p == '|') {
		ps->p = ws(ps->p + 1);
		struct node *f = parse_func(ps);
		if (f == NULL) {
			node_free(l);
			return NULL;
		}
		f->l = l;
		l = f;
	}
	return l;
}

/* Does the tree read the input anywhere? (A constant is jq's, cheaply.) */
static int
reads_input(const struct node *n)
{
	return n && ((n->kind == N_VAL && n->v.is_path) || reads_input(n->l) ||
	    reads_input(n->r));
}

/* Recognise "." and select(COND) where COND is made of paths, literals,
 * comparisons, and, or, not, has, startswith, endswith and test of a
 * literal; NULL for anything else (libjq runs it). */
static struct fast *
parse_fast(const char *prog, const char *const *names, const char *const *values,
    int nargs)
{
	struct fast *f = dd_calloc(1, sizeof *f);
	const char *p = ws(prog);
	if (p[0] == '.' && *ws(p + 1) == '\0') {
		f->identity = 1;
		return f;
	}
	struct parser ps = { .p = p, .names = names, .values = values, .nargs = nargs };
	if (!keyword(&ps, "select") || *ps.p != '(')
		goto no;
	ps.p = ws(ps.p + 1);
	f->cond = parse_pipe(&ps);
	if (f->cond == NULL || *ps.p != ')' || *ws(ps.p + 1) != '\0')
		goto no;
	if (!reads_input(f->cond))
		goto no;
	return f;
no:
	node_free(f->cond);
	free(f);
	return NULL;
}

/* A value for comparison: a rank, and a number or the bytes of a string. */
struct fval {
	int rank;
	double num;
	const char *s;		/* NULL: the bytes are in f->tmp at off */
	size_t off, n;
	struct dd_jval obj;	/* R_OBJECT: the object itself (has) */
};

const struct dd_jval *
dd_jqf_env_attr(const struct dd_env *e, const char *name, size_t n)
{
	static const struct {
		const char *name;
		size_t len, off;
	} attrs[] = {
#define A(s, f) { s, sizeof s - 1, offsetof(struct dd_env, f) }
		A("id", id), A("type", type), A("time", time), A("subject", subject),
		A("source", source), A("data", data), A("specversion", specversion),
		A("datacontenttype", datacontenttype), A("traceparent", traceparent),
#undef A
	};
	for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++)
		if (attrs[i].len == n && memcmp(attrs[i].name, name, n) == 0)
			return (const struct dd_jval *)((const char *)e + attrs[i].off);
	return NULL;
}

/* 0 with *v filled, -1 when jq must decide (an error or a composite). */
static int
eval_operand(struct dd_jqf *f, const struct operand *o, const struct dd_jval *in,
    const struct dd_env *env, struct fval *v)
{
	if (!o->is_path) {
		v->rank = o->rank;
		v->num = o->num;
		v->s = o->str;
		v->n = o->slen;
		return 0;
	}
	struct dd_jval cur = *in, next;
	int i = 0, under_data = 0;
	if (env && o->nkeys > 0) {
		/* The scan found the envelope already: no walk over the line. */
		const struct dd_jval *a = dd_jqf_env_attr(env, o->keys[0], strlen(o->keys[0]));
		if (a) {
			cur = *a;
			if (cur.type == DD_JNONE)
				cur.type = DD_JNULL;
			i = 1;
			/* And data's members too (data is always an object). */
			if (a == &env->data && o->nkeys > 1) {
				if (!dd_env_data_get(env, o->keys[1], strlen(o->keys[1]), &cur))
					cur.type = DD_JNULL;
				i = 2;
				under_data = 1;
			}
		}
	}
	for (; i < o->nkeys; i++) {
		if (cur.type == DD_JNULL)
			break;		/* .a of null is null */
		if (cur.type != DD_JOBJ)
			return -1;	/* jq: Cannot index ... */
		/* Under data's objects (.data.location.lat) the scan may have
		 * the members already. */
		if (!(under_data && i == 2 ?
		    dd_env_sub_get(env, &cur, o->keys[i], strlen(o->keys[i]), &next) :
		    dd_json_get(&cur, o->keys[i], strlen(o->keys[i]), &next))) {
			cur.type = DD_JNULL;
			break;
		}
		cur = next;
	}
	switch (cur.type) {
	case DD_JNULL: v->rank = R_NULL; return 0;
	case DD_JFALSE: v->rank = R_FALSE; return 0;
	case DD_JTRUE: v->rank = R_TRUE; return 0;
	case DD_JNUM:
		v->rank = R_NUMBER;
		return dd_jnum_double(&cur, &v->num);
	case DD_JSTR:
		v->rank = R_STRING;
		if (!cur.esc) {
			v->s = cur.p;
			v->n = cur.n;
		} else {
			/* Decoded into tmp; the offset survives a later realloc. */
			v->off = f->tmp.len;
			dd_jstr_decode(&cur, &f->tmp);
			v->s = NULL;
			v->n = f->tmp.len - v->off;
		}
		return 0;
	case DD_JARR: v->rank = R_ARRAY; return 0;
	case DD_JOBJ: v->rank = R_OBJECT; v->obj = cur; return 0;
	default: return -1;
	}
}

static const char *
fstr(const struct dd_jqf *f, const struct fval *v)
{
	return v->s ? v->s : f->tmp.p + v->off;
}

static int
truthy(const struct fval *v)
{
	return v->rank != R_NULL && v->rank != R_FALSE;
}

static void
boolean(struct fval *v, int b)
{
	memset(v, 0, sizeof *v);
	v->rank = b ? R_TRUE : R_FALSE;
}

/* The value of a node, as jq computes it; -1 where jq must decide (an
 * error to report, arrays and objects compared). */
static int
eval_node(struct dd_jqf *f, const struct node *n, const struct dd_jval *in,
    const struct dd_env *env, struct fval *v)
{
	struct fval a, b;
	switch (n->kind) {
	case N_VAL:
		memset(v, 0, sizeof *v);
		return eval_operand(f, &n->v, in, env, v);
	case N_AND:
	case N_OR:
		/* jq evaluates the right side only when the left does not
		 * decide: so an error there is only jq's when it is reached. */
		if (eval_node(f, n->l, in, env, &a))
			return -1;
		if (truthy(&a) == (n->kind == N_OR)) {
			boolean(v, n->kind == N_OR);
			return 0;
		}
		if (eval_node(f, n->r, in, env, &b))
			return -1;
		boolean(v, truthy(&b));
		return 0;
	case N_NOT:
		if (eval_node(f, n->l, in, env, &a))
			return -1;
		boolean(v, !truthy(&a));
		return 0;
	case N_HAS:
		if (eval_node(f, n->l, in, env, &a) || a.rank != R_OBJECT)
			return -1;	/* jq: Cannot check whether ... has a key */
		{
			struct dd_jval x;
			boolean(v, dd_json_get(&a.obj, n->lit, n->litn, &x));
		}
		return 0;
	case N_STARTS:
	case N_ENDS:
	case N_TEST: {
		if (eval_node(f, n->l, in, env, &a) || a.rank != R_STRING)
			return -1;	/* jq: ... requires string inputs */
		const char *s = fstr(f, &a);
		size_t k = n->litn;
		int m;
		if (k > a.n)
			m = 0;
		else if (n->kind == N_STARTS || (n->kind == N_TEST && n->bol && !n->eol))
			m = memcmp(s, n->lit, k) == 0;
		else if (n->kind == N_ENDS || (n->kind == N_TEST && n->eol && !n->bol))
			m = memcmp(s + a.n - k, n->lit, k) == 0;
		else if (n->bol && n->eol)
			m = k == a.n && memcmp(s, n->lit, k) == 0;
		else
			m = k == 0 || memmem(s, a.n, n->lit, k) != NULL;
		if (n->kind == N_TEST && (n->bol || n->eol) && memchr(s, '\n', a.n))
			return -1;	/* ^ and $ also match at line breaks */
		boolean(v, m);
		return 0;
	}
	default:
		break;
	}
	/* N_CMP: jq's order of values. */
	if (eval_node(f, n->l, in, env, &a) || eval_node(f, n->r, in, env, &b))
		return -1;
	int c;
	if (a.rank != b.rank) {
		c = a.rank - b.rank;
	} else if (a.rank == R_NUMBER) {
		c = a.num < b.num ? -1 : a.num > b.num ? 1 : 0;
	} else if (a.rank == R_STRING) {
		/* jq's string_cmp: bytes, then length. */
		size_t m = a.n < b.n ? a.n : b.n;
		c = m ? memcmp(fstr(f, &a), fstr(f, &b), m) : 0;
		if (c == 0)
			c = (a.n > b.n) - (a.n < b.n);
	} else if (a.rank == R_ARRAY || a.rank == R_OBJECT) {
		return -1;
	} else {
		c = 0;
	}
	switch (n->op) {
	case OP_EQ: boolean(v, c == 0); break;
	case OP_NE: boolean(v, c != 0); break;
	case OP_LT: boolean(v, c < 0); break;
	case OP_LE: boolean(v, c <= 0); break;
	case OP_GT: boolean(v, c > 0); break;
	default: boolean(v, c >= 0); break;
	}
	return 0;
}

/* 1 select keeps the input, 0 it drops it, -1 jq must decide. */
static int
fast_eval(struct dd_jqf *f, const struct dd_env *env, const char *json, size_t n)
{
	struct dd_jval in = env ? env->whole : dd_json_value(json, n);
	struct fval v;
	dd_buf_reset(&f->tmp);
	if (eval_node(f, f->fast->cond, &in, env, &v))
		return -1;
	return truthy(&v);
}

/* ------------------------------------------------------------ libjq */

static void
compile_err(void *ctx, jv msg)
{
	struct dd_jqf *f = ctx;
	jv s = jq_format_error(msg);	/* consumes msg */
	if (f->errs.len)
		dd_buf_addc(&f->errs, '\n');
	dd_buf_adds(&f->errs, jv_string_value(s));
	jv_free(s);
}

/* jq's `debug` writes ["DEBUG:",VALUE] to stderr, as jq(1) does. */
static void
debug_cb(void *ctx, jv v)
{
	jv s = jv_dump_string(JV_ARRAY(jv_string("DEBUG:"), v), 0);
	fprintf(stderr, "%s\n", jv_string_value(s));
	jv_free(s);
}

/* libjq's state, the program compiled: 0, or -1 with jq's messages. */
static int
jq_ready(struct dd_jqf *f)
{
	if (f->jq)
		return 0;
	f->jq = jq_init();
	if (f->jq == NULL) {
		dd_seterr("jq: cannot initialise");
		return -1;
	}
	jq_set_error_cb(f->jq, compile_err, f);
	jq_set_debug_cb(f->jq, debug_cb, NULL);
	jv args = jv_object();
	for (int i = 0; i < f->nargs; i++) {
		/* Like jq --arg: the first binding of a name wins. */
		if (!jv_object_has(jv_copy(args), jv_string(f->names[i])))
			args = jv_object_set(args, jv_string(f->names[i]), jv_string(f->values[i]));
	}
	if (!jq_compile_args(f->jq, f->program, args)) {
		dd_seterr("%s", f->errs.len ? f->errs.p : "jq: compile error");
		jq_teardown(&f->jq);
		return -1;
	}
	return 0;
}

struct dd_jqf *
dd_jqf_new(const char *program, const char *const *names, const char *const *values,
    int n)
{
	struct dd_jqf *f = dd_calloc(1, sizeof *f);
	f->program = dd_strdup(program);
	f->nargs = n;
	f->names = dd_calloc((size_t)n + 1, sizeof *f->names);
	f->values = dd_calloc((size_t)n + 1, sizeof *f->values);
	for (int i = 0; i < n; i++) {
		f->names[i] = dd_strdup(names[i]);
		f->values[i] = dd_strdup(values[i]);
	}
	f->fast = parse_fast(program, names, values, n);
	f->use_fast = f->fast != NULL;
	/* A program of the jq-free path's grammar is valid jq: libjq's
	 * compile (some 50 ms of its builtins) waits until an event needs
	 * it, which most runs never see. Any other is compiled now, so its
	 * errors are a usage error before anything is read. */
	if (f->fast == NULL && jq_ready(f)) {
		dd_jqf_free(f);
		return NULL;
	}
	return f;
}

int
dd_jqf_fast(const struct dd_jqf *f)
{
	return f->use_fast;
}

int
dd_jqf_identity(const struct dd_jqf *f)
{
	return f->use_fast && f->fast->identity;
}

void
dd_jqf_set_fast(struct dd_jqf *f, int on)
{
	f->use_fast = on && f->fast != NULL;
}

static void
set_jq_error(jv msg)
{
	if (jv_get_kind(msg) == JV_KIND_STRING) {
		dd_seterr("jq: error: %s", jv_string_value(msg));
		jv_free(msg);
	} else {
		jv s = jv_dump_string(msg, 0);
		dd_seterr("jq: error (not a string): %s", jv_string_value(s));
		jv_free(s);
	}
}

int
dd_jqf_run(struct dd_jqf *f, const char *json, size_t n, dd_jqf_emit emit, void *ctx)
{
	return dd_jqf_run_event(f, NULL, json, n, emit, ctx);
}

int
dd_jqf_run_event(struct dd_jqf *f, const struct dd_env *env, const char *json, size_t n,
    dd_jqf_emit emit, void *ctx)
{
	if (f->use_fast) {
		if (f->fast->identity)
			return emit(ctx, json, n, 1) ? 1 : 0;
		int keep = fast_eval(f, env, json, n);
		if (keep == 0)
			return 0;
		if (keep == 1)
			return emit(ctx, json, n, 1) ? 1 : 0;
	}
	if (n > (size_t)0x7fffffff) {
		dd_seterr("jq: input too large");
		return -1;
	}
	if (jq_ready(f))
		return -1;
	jv in = jv_parse_sized(json, (int)n);
	if (!jv_is_valid(in)) {
		jv msg = jv_invalid_get_msg(in);
		dd_seterr("jq: cannot parse the event: %s", jv_get_kind(msg) == JV_KIND_STRING ?
		    jv_string_value(msg) : "invalid JSON");
		jv_free(msg);
		return -1;
	}
	jq_start(f->jq, jv_copy(in), 0);
	jv r;
	int rc = 0;
	while (jv_is_valid(r = jq_next(f->jq))) {
		int same = jv_equal(jv_copy(r), jv_copy(in));
		int stop;
		if (same) {
			jv_free(r);
			stop = emit(ctx, json, n, 1);
		} else {
			jv s = jv_dump_string(r, 0);
			stop = emit(ctx, jv_string_value(s), (size_t)jv_string_length_bytes(jv_copy(s)), 0);
			jv_free(s);
		}
		if (stop) {
			jv_free(in);
			return 1;
		}
	}
	if (jq_halted(f->jq)) {
		/* halt stops quietly; halt_error is an error on this event. */
		jv msg = jq_get_error_message(f->jq);
		if (jv_get_kind(msg) == JV_KIND_STRING) {
			size_t len = (size_t)jv_string_length_bytes(jv_copy(msg));
			const char *s = jv_string_value(msg);
			dd_seterr("jq: halt_error: %.*s", (int)(len && s[len - 1] == '\n' ?
			    len - 1 : len), s);
			rc = -1;
		} else if (jv_is_valid(msg) && jv_get_kind(msg) != JV_KIND_NULL) {
			jv s = jv_dump_string(jv_copy(msg), 0);
			dd_seterr("jq: halt_error: %s", jv_string_value(s));
			jv_free(s);
			rc = -1;
		}
		jv_free(msg);
		jv_free(r);
	} else if (jv_invalid_has_msg(jv_copy(r))) {
		set_jq_error(jv_invalid_get_msg(r));
		rc = -1;
	} else {
		jv_free(r);
	}
	jv_free(in);
	return rc;
}

void
dd_jqf_free(struct dd_jqf *f)
{
	if (f == NULL)
		return;
	if (f->jq)
		jq_teardown(&f->jq);
	if (f->fast) {
		node_free(f->fast->cond);
		free(f->fast);
	}
	dd_buf_free(&f->errs);
	dd_buf_free(&f->tmp);
	for (int i = 0; i < f->nargs; i++) {
		free(f->names[i]);
		free(f->values[i]);
	}
	free(f->names);
	free(f->values);
	free(f->program);
	free(f);
}
