/*
 * Runs a libFuzzer target over files without libFuzzer, so `make check`
 * replays the seed corpus and every crash ever found as ordinary tests
 * (with the gcc build, and under ASan/UBSan with SANITIZE=1).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		if (f == NULL) {
			perror(argv[i]);
			return 2;
		}
		uint8_t *buf = NULL;
		size_t len = 0, cap = 0, n;
		do {
			if (cap - len < 65536)
				buf = realloc(buf, cap = cap * 2 + 65536);
			n = fread(buf + len, 1, cap - len, f);
			len += n;
		} while (n > 0);
		fclose(f);
		LLVMFuzzerTestOneInput(buf, len);
		free(buf);
	}
	return 0;
}
