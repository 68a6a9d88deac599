/*
 * A jq program run over events, through libjq: compiled once, $NAME
 * bindings from --arg, run on one event's JSON text at a time, outputs
 * handed back as compact JSON text (or as the input's own bytes when an
 * output equals the input, so a select() keeps events byte for byte).
 *
 * libjq 1.6 keeps global state and is not thread-safe: one dd_jqf per
 * process (dd-lake-query runs jq in worker processes, not threads).
 *
 * The commonest analyst filter, select(PATH OP LITERAL) (and the identity
 * "."), is also decided without jq where the answer is certain under
 * jq's own rules (its ordering null < false < true < numbers < strings <
 * arrays < objects, numbers as doubles, strings by bytes); whenever it is
 * not (an index into a non-object, a number out of range, two arrays),
 * the event goes to jq, so outputs and errors are jq's in every case.
 */
#ifndef DD_JQF_H
#define DD_JQF_H

#include <stddef.h>

struct dd_jqf;

/*
 * Compile program with the string variables names[i] = values[i]
 * ($names[i] in the program). NULL on a compile error, with jq's own
 * messages (possibly several lines) in dd_errmsg().
 */
struct dd_jqf *dd_jqf_new(const char *program, const char *const *names,
    const char *const *values, int n);

/*
 * One output of the program: its compact JSON text (not NUL-terminated,
 * valid until emit returns) and same = 1 when it is the input itself
 * (text is then the input's original bytes). emit returns 0 to go on,
 * non-zero to stop this event's run early (no error).
 */
typedef int (*dd_jqf_emit)(void *ctx, const char *text, size_t n, int same);

/*
 * Run the program on one JSON text (a valid JSON value). Returns 0, 1
 * when emit asked to stop, or -1 on a jq runtime error (error(), an index
 * into a number, halt_error, ...), with jq's message in dd_errmsg();
 * outputs before the error have been emitted.
 */
int dd_jqf_run(struct dd_jqf *f, const char *json, size_t n, dd_jqf_emit emit,
    void *ctx);

/*
 * The same for an event already scanned by dd_env_scan (json is e's
 * line): the jq-free path then finds envelope attributes, and data, from
 * the scan instead of walking the line again.
 */
struct dd_env;
int dd_jqf_run_event(struct dd_jqf *f, const struct dd_env *e, const char *json,
    size_t n, dd_jqf_emit emit, void *ctx);

/*
 * The envelope attribute named by name[0..n) ("id", "type", "data", ...)
 * as dd_env_scan found it (type DD_JNONE when the event has none), or
 * NULL when name is not an envelope attribute. dd_env_scan refuses a
 * repeated attribute, so this is the value jq would see.
 */
const struct dd_jval *dd_jqf_env_attr(const struct dd_env *e, const char *name, size_t n);

/* 1 when the program is decided without jq for most events (see above). */
int dd_jqf_fast(const struct dd_jqf *f);
/* 1 when the program is "." (every event is its own only output). */
int dd_jqf_identity(const struct dd_jqf *f);

/* Turn the jq-free path off (tests compare both paths). */
void dd_jqf_set_fast(struct dd_jqf *f, int on);

void dd_jqf_free(struct dd_jqf *f);

#endif
