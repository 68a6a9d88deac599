/*
 * Internals of the history store shared by its files: history.c (schema,
 * open), history-ingest.c (events into batches, the writer thread),
 * history-apply.c (one batch into the store), history-query.c and
 * history-archive.c. See history.h for the contract.
 */
#ifndef DD_HISTORY_INT_H
#define DD_HISTORY_INT_H

#include <pthread.h>
#include <stdint.h>

#include "history.h"
#include "util.h"

/* A string in the batch arena: offset and length; len < 0 for none. */
struct span {
	uint32_t off;
	int32_t len;
};

/* No event: the end of a delivery's chain in the batch. */
#define NOEV UINT32_MAX

/* One buffered event and what it says about its delivery. */
struct pev {
	struct span line, eid, owner, request, drone;
	int64_t t;
	uint32_t next;		/* next event of the same delivery, or NOEV */
	uint8_t stage;		/* enum dd_stage */
	uint8_t origin;		/* scheduled or rejected: owner and request */
};

/* The events of one delivery in the batch. */
struct agg {
	uint64_t h;
	struct span key;
	uint32_t first, last;
};

/* Events buffered in memory, grouped by delivery (see history-ingest.c). */
struct batch {
	struct dd_buf arena;
	struct pev *ev;
	size_t nev, capev;
	struct agg *ag;
	size_t nag, capag;
	uint32_t *slot;		/* open addressing: agg index + 1, 0 empty */
	size_t nslot;
};

struct dd_history_ingest {
	struct dd_store *s;
	/* The statements of history-apply.c. */
	sqlite3_stmt *sel, *ins_d, *ins_e, *upd, *upd_origin, *upd_created, *upd_ended;
	sqlite3_stmt *maxkey, *tomb;
	/* Events about archived deliveries go to the lake (history-apply.c):
	 * opened when the first one comes, committed before the history's
	 * transaction is. */
	char *lake, *dataset;
	struct dd_lake_writer *lw;
	uint64_t lake_pending;
	struct dd_buf lbid, lbsub, lbtype;
	struct dd_history_istats st;
	struct batch b[2];
	struct batch *fill;	/* the filter loop adds here */
	struct batch *work;	/* the writer thread applies this one */
	int threaded;
	/* The filter's commit is applying h->fill in the main thread: its
	 * transaction also takes the Kafka offsets (s->koff), which the
	 * writer thread's transactions must never (they hold less). */
	int final;
	pthread_t thr;
	pthread_mutex_t mu;
	pthread_cond_t cv_job, cv_done;
	int job, quit;		/* under mu */
	/* The writer's dd_errmsg() is its own (thread-local): when it fails
	 * it leaves a copy here, under mu, for the main thread to take. */
	char *writer_err;
	/* Checkpoints run on their own connection and thread, beside the
	 * writer instead of inside its commits. */
	struct dd_store ck;
	int ck_started;
	pthread_t ckthr;
	pthread_cond_t cv_ck;
	int ck_want;		/* under mu */
};

/* Prepare the statements of history-apply.c; 0 or -1 (dd_errmsg()). */
int dd_hist_apply_prepare(struct dd_history_ingest *h);
void dd_hist_apply_finalize(struct dd_history_ingest *h);
/*
 * Apply a batch in one write transaction and commit it (on disk when
 * this returns: synchronous=FULL), adding to h->st. 0, or -1 with
 * dd_errmsg() and the transaction rolled back. Called by one thread at a
 * time.
 */
int dd_hist_batch_apply(struct dd_history_ingest *h, const struct batch *b);

#endif
