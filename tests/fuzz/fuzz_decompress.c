/*
 * fuzz_decompress.c - the kernel image's payload decompression
 * (vmm/decompress.c: gzip, xz, lz4, zstd, the format detected from its
 * magic) fed any bytes: 0 with at most the bytes allowed, or a refusal;
 * never a crash, and never more output than asked for.
 */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz.h"
#include "decompress.h"
#include "log.h"

#define MAX_OUT (8 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int once;
	uint8_t *out = NULL;
	size_t len = 0;

	if (!once++)
		log_init("fuzz_decompress", LOG_NONE);
	if (!decompress(data, size, MAX_OUT, &out, &len) && (len > MAX_OUT || !out)) {
		fprintf(stderr, "fuzz_decompress: %zu bytes out of at most %d\n", len, MAX_OUT);
		abort();
	}
	free(out);
	return 0;
}
