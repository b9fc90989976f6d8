/* fuzz.h - what every libFuzzer harness in tests/fuzz/ shares. */
#ifndef LEGO_FUZZ_H
#define LEGO_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* must - a property the parser's answer has to have: a crash (libFuzzer keeps the input)
 * that says which, when it does not. */
#define must(cond, what)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s: %s\n", __FILE__, (what));                             \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/*
 * fuzz_frames - what a peer that says anything sends, from @len input bytes:
 * frames of a flag byte and a struct lmp_hdr with its body (cut to what the
 * input holds), the magic and version set unless flag bit 0 says to leave
 * them as they are. Into @out (at most @cap bytes, whole frames): its length.
 */
static inline size_t fuzz_frames(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i + 1 + sizeof(struct lmp_hdr) <= len;) {
		struct lmp_hdr h;
		size_t body;

		memcpy(&h, in + i + 1, sizeof(h));
		if (!(in[i] & 1)) {
			h.magic = LMP_MAGIC;
			h.version = LMP_VERSION;
		}
		i += 1 + sizeof(h);
		body = h.len < len - i ? h.len : len - i;
		if (n + sizeof(h) + body > cap)
			break;
		memcpy(out + n, &h, sizeof(h));
		memcpy(out + n + sizeof(h), in + i, body);
		n += sizeof(h) + body;
		i += body;
	}
	return n;
}

#endif
