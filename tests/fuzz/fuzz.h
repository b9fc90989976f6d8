/* fuzz.h - what every libFuzzer harness in tests/fuzz/ shares. */
#ifndef LEGO_FUZZ_H
#define LEGO_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

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

#endif
