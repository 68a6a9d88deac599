/* libFuzzer target: RFC 3339 times, time arguments and durations. A time
 * that parses must format and parse back to the same instant. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ddtime.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char s[64];
	if (size >= sizeof s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	int64_t ms, back, d;
	if (dd_time_parse(s, size, &ms) == 0) {
		char out[DD_TIMEBUF];
		size_t n = dd_time_format(ms, out);
		if (dd_time_parse(out, n, &back) != 0 || back != ms)
			abort();
	}
	(void)dd_time_arg(s, 1795687200000, &ms);
	(void)dd_duration_parse(s, &d);
	return 0;
}
