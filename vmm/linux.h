/*
 * linux.h - booting a stock Linux bzImage (the x86 boot protocol, 2.12+):
 * the payload is decompressed on the host and its ELF segments loaded at
 * their physical addresses; boot_params carries the setup header, the
 * command line, the initramfs and the e820 map; every vCPU... the boot vCPU
 * enters startup_64 in long mode, the others wait for INIT/SIPI.
 */
#ifndef LEGO_VMM_LINUX_H
#define LEGO_VMM_LINUX_H

#include <stdint.h>

#include "vm.h"

/* Where the loader puts things in low memory. */
#define LINUX_BOOT_GDT	  0x500ULL
#define LINUX_BOOT_PARAMS 0x7000ULL
#define LINUX_CMDLINE	  0x20000ULL
#define LINUX_CMDLINE_MAX 0x10000ULL
#define LINUX_BOOT_PT	  0x9000ULL  /* PML4, PDPT, 4 PDs: 0x9000-0xefff */
#define LINUX_BIOS_START  0x9fc00ULL /* reserved from here to 1 MiB (EBDA, ACPI, BIOS) */

struct linux_boot {
	uint64_t entry; /* physical address of startup_64 */
	uint64_t kernel_start, kernel_end;
	uint64_t initrd_addr, initrd_size;
	uint16_t protocol; /* boot protocol version */
	const char *compression;
	double decompress_ms;
	uint64_t decompressed_bytes;
};

/*
 * linux_load - load bzImage @kernel (and @initrd, may be NULL) into @vm with
 * command line @cmdline, write boot_params, and put vCPU 0 at the entry
 * point. -errno, logged with what was wrong with which file.
 */
int linux_load(struct vm *vm, const char *kernel, const char *initrd, const char *cmdline,
	       struct linux_boot *out);

/*
 * linux_image_load - the bzImage @img (@len bytes, @name in messages): its
 * setup header checked, its payload decompressed and its ELF segments
 * loaded into @mem at their physical addresses, where they must fit; @bp
 * (boot_params) gets the setup header as the kernel shipped it, @out the
 * entry point and extent. -errno, logged. linux_load's first half, whatever
 * the file holds (tests/fuzz/fuzz_bzimage.c).
 */
int linux_image_load(struct gmem *mem, const uint8_t *img, size_t len, const char *name,
		     uint8_t bp[4096], struct linux_boot *out);

/*
 * linux_e820 - fill @table (at most @max entries of {addr, size, type}) with
 * the guest's memory map; returns the number of entries.
 */
struct linux_e820 {
	uint64_t addr, size;
	uint32_t type;
} __attribute__((packed));
int linux_e820(const struct vm *vm, struct linux_e820 *table, int max);

#endif
