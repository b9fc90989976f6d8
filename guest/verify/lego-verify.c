/*
 * lego-verify - the memory workload that the boot kit carries into a Linux
 * guest (/bin/lego-verify): it writes every page of a buffer with a pattern
 * of its own (page number, pass), reads every page back and counts the pages
 * that do not hold what was written last, pass after pass. Its verdict is
 * the workload's own: "lego-verify: 0 mismatches ...", exit status 0; any
 * mismatch, exit status 1.
 *
 *   lego-verify SIZE [PASSES] [--corrupt]
 *
 * SIZE like 64M; PASSES (default 3); --corrupt flips a byte before the first
 * verification (proof that the check can fail). Static, libc only.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define PAGE 4096UL

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	if (end == s)
		return -1;
	switch (*end) {
	case 'G':
	case 'g':
		v <<= 30;
		end++;
		break;
	case 'M':
	case 'm':
		v <<= 20;
		end++;
		break;
	case 'K':
	case 'k':
		v <<= 10;
		end++;
		break;
	}
	if (*end || v < PAGE)
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t size, pages, mismatches = 0;
	long passes = 3;
	int corrupt = 0;
	uint8_t *buf;

	for (int i = 3; i < argc; i++)
		corrupt |= !strcmp(argv[i], "--corrupt");
	if (argc < 2 || parse_size(argv[1], &size) ||
	    (argc > 2 && strcmp(argv[2], "--corrupt") &&
	     (passes = strtol(argv[2], NULL, 10)) < 1)) {
		fprintf(stderr, "usage: lego-verify SIZE [PASSES] [--corrupt]\n");
		return 2;
	}
	corrupt |= argc > 2 && !strcmp(argv[2], "--corrupt");
	pages = size / PAGE;
	buf = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		fprintf(stderr, "lego-verify: cannot map %llu bytes: %s\n",
			(unsigned long long)size, strerror(errno));
		return 2;
	}
	printf("lego-verify: %llu MiB, %ld passes\n", (unsigned long long)(size >> 20), passes);
	fflush(stdout);
	for (long pass = 1; pass <= passes; pass++) {
		double t0 = now();
		uint64_t bad = 0;

		for (uint64_t p = 0; p < pages; p++) {
			uint64_t *w = (uint64_t *)(buf + p * PAGE);

			for (unsigned i = 0; i < PAGE / 8; i += 64) /* a word per cache line */
				w[i] = (p << 20) ^ ((uint64_t)pass << 8) ^ i;
		}
		if (corrupt && pass == 1)
			buf[PAGE * (pages / 2)] ^= 0x5a; /* a checked word */
		for (uint64_t p = 0; p < pages; p++) {
			const uint64_t *w = (const uint64_t *)(buf + p * PAGE);

			for (unsigned i = 0; i < PAGE / 8; i += 64) {
				if (w[i] != ((p << 20) ^ ((uint64_t)pass << 8) ^ i)) {
					bad++;
					break;
				}
			}
		}
		mismatches += bad;
		printf("lego-verify: pass %ld/%ld: %llu mismatched pages (%.1f s)\n", pass, passes,
		       (unsigned long long)bad, now() - t0);
		fflush(stdout);
	}
	printf("lego-verify: %llu mismatches in %ld passes over %llu MiB\n",
	       (unsigned long long)mismatches, passes, (unsigned long long)(size >> 20));
	return mismatches ? 1 : 0;
}
