#include <string.h>

#include "stage.h"

static const struct {
	const char *name;
	unsigned who;
	int final;
} stages[DD_NSTAGES] = {
	[DD_STAGE_UNKNOWN] = { "unknown", DD_STAGE_TRACK, 0 },
	[DD_STAGE_CREATED] = { "created", DD_STAGE_SPEC | DD_STAGE_TRACK | DD_STAGE_HISTORY, 0 },
	[DD_STAGE_RESCHEDULED] = { "rescheduled",
	    DD_STAGE_SPEC | DD_STAGE_TRACK | DD_STAGE_HISTORY, 0 },
	[DD_STAGE_HEADED_TO_PICKUP] = { "headed-to-pickup",
	    DD_STAGE_SPEC | DD_STAGE_TRACK | DD_STAGE_HISTORY, 0 },
	[DD_STAGE_HEADED_TO_DROPOFF] = { "headed-to-dropoff",
	    DD_STAGE_SPEC | DD_STAGE_TRACK | DD_STAGE_HISTORY, 0 },
	[DD_STAGE_COMPLETED] = { "completed", DD_STAGE_SPEC | DD_STAGE_TRACK | DD_STAGE_HISTORY, 1 },
	[DD_STAGE_CANCELLED] = { "cancelled", DD_STAGE_SPEC | DD_STAGE_TRACK | DD_STAGE_HISTORY, 1 },
	[DD_STAGE_FAILED] = { "failed", DD_STAGE_SPEC | DD_STAGE_TRACK | DD_STAGE_HISTORY, 1 },
	[DD_STAGE_REJECTED] = { "rejected", DD_STAGE_HISTORY, 1 },
};

const char *
dd_stage_name(enum dd_stage s)
{
	return (unsigned)s < DD_NSTAGES ? stages[s].name : "unknown";
}

int
dd_stage_lookup(const char *p, size_t n, unsigned who)
{
	for (int i = 0; i < DD_NSTAGES; i++)
		if ((stages[i].who & who) && strlen(stages[i].name) == n &&
		    memcmp(stages[i].name, p, n) == 0)
			return i;
	return -1;
}

int
dd_stage_parse(const char *s, unsigned who)
{
	return s ? dd_stage_lookup(s, strlen(s), who) : -1;
}

int
dd_stage_known(int s, unsigned who)
{
	return s >= 0 && s < DD_NSTAGES && (stages[s].who & who);
}

int
dd_stage_final(int s)
{
	return s >= 0 && s < DD_NSTAGES && stages[s].final;
}
