/*
 * fuzz_bzimage.c - the boot loader's reading of a kernel image
 * (linux_image_load in vmm/linux.c: the bzImage's setup header, where its
 * payload lies, the payload decompressed, the ELF inside loaded at its
 * physical addresses) fed any file. Either a refusal, or a kernel whose
 * every segment and entry point lie inside guest RAM; never a crash, never
 * a byte written outside RAM or boot_params.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "fuzz.h"
#include "linux.h"
#include "log.h"

#define RAM (16 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *ram, bp[4096];
	struct gmem mem = {.size = RAM, .map_size = RAM, .nr = 1};
	struct linux_boot lb;

	if (!ram) {
		log_init("fuzz_bzimage", LOG_NONE); /* the loader's refusals are its answers */
		ram = mmap(NULL, RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		must(ram != MAP_FAILED, "no guest RAM");
	}
	mem.base = ram;
	mem.regions[0] = (struct gmem_region){0, RAM, ram};
	memset(&lb, 0, sizeof(lb));
	memset(bp, 0, sizeof(bp));
	if (linux_image_load(&mem, data, size, "fuzz", bp, &lb))
		return 0;
	must(lb.kernel_start < lb.kernel_end && lb.kernel_end <= RAM, "a kernel outside RAM");
	must(lb.entry >= lb.kernel_start && lb.entry < lb.kernel_end,
	     "an entry outside the kernel");
	must(lb.protocol >= 0x20c, "an old boot protocol taken");
	must(!memcmp(bp + 0x1f1, data + 0x1f1, 0x202 + data[0x201] - 0x1f1),
	     "boot_params without the kernel's setup header");
	return 0;
}
