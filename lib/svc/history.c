/* The history store itself: its schema and how it is opened. */
#include "exitcodes.h"
#include "history.h"
#include "util.h"

/* Migrations of history.db: migrations[i] takes user_version i to i+1. */
static const char *const migrations[] = {
	/* 1: deliveries and their events */
	"CREATE TABLE deliveries ("
	"  dkey INTEGER PRIMARY KEY,"
	"  id TEXT NOT NULL UNIQUE,"
	"  request TEXT, owner TEXT, origin_ms INTEGER, origin_eid TEXT,"
	"  stage TEXT, stage_ms INTEGER, stage_eid TEXT, final INTEGER NOT NULL DEFAULT 0,"
	"  drone TEXT, drone_ms INTEGER, drone_eid TEXT,"
	"  created_ms INTEGER, updated_ms INTEGER, ended_ms INTEGER,"
	"  events INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX deliveries_owner ON deliveries(owner, created_ms);"
	"CREATE INDEX deliveries_created ON deliveries(created_ms);"
	"CREATE INDEX deliveries_ended ON deliveries(ended_ms) WHERE ended_ms IS NOT NULL;"
	"CREATE TABLE events ("
	"  dkey INTEGER NOT NULL, eid TEXT NOT NULL, time_ms INTEGER NOT NULL,"
	"  line TEXT NOT NULL, PRIMARY KEY (dkey, eid)) WITHOUT ROWID;",
	/* 2: tombstones of archived deliveries: an event arriving for one
	 * after it left (a replay, a very late status) starts a new entry
	 * that keeps the archived final stage, so the next run archives it
	 * too, instead of an entry stuck at whatever stage that event says. */
	"CREATE TABLE archived ("
	"  id TEXT PRIMARY KEY, stage TEXT NOT NULL, stage_ms INTEGER NOT NULL,"
	"  stage_eid TEXT) WITHOUT ROWID;",
	/* 3: the rank (lib/base/order.h) of the event the drone came from,
	 * so equal times are decided as dd-track decides them. */
	"ALTER TABLE deliveries ADD COLUMN drone_rank INTEGER NOT NULL DEFAULT 0;",
};

int
dd_history_open(struct dd_store *s, const char *path)
{
	/* SQLite's allocation statistics take a global mutex on every
	 * malloc; nothing here reads them. Only possible before SQLite's
	 * first use in the process, and harmless (SQLITE_MISUSE) after. */
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	int rc = dd_store_open(s, path, migrations,
	    (int)(sizeof migrations / sizeof migrations[0]));
	/* Checkpoint every 64 MiB of WAL rather than every 4: each checkpoint
	 * costs two fsyncs (synchronous=FULL), and at the default they, not
	 * the inserts, bound the ingest rate. */
	if (rc == 0 && dd_store_exec(s, "PRAGMA wal_autocheckpoint=16384")) {
		dd_store_close(s);
		return DD_EXIT_IO;
	}
	return rc;
}
