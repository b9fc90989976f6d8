/*
 * abi.h - the contract between lego-vmm's payload mode and the freestanding
 * test payloads: guest memory layout, the payload image header, the info page
 * and the I/O ports of the payload runtime. Included by both sides.
 *
 * Guest physical layout (identity-mapped; the first 2 MiB with 4 KiB pages):
 *   0x000000  not present (catches null pointers)
 *   0x001000  info page (user, read-only)
 *   0x002000  GDT, 0x003000 IDT, 0x004000 exception stubs (supervisor)
 *   0x005000  one TSS per vCPU (supervisor)
 *   0x010000  page tables (supervisor)
 *   0x100000  ring-0 exception stacks, 2 KiB per vCPU (supervisor)
 *   0x120000  user stacks, 14 KiB per vCPU (user)
 *   0x200000  payload image, then free memory up to info->free_end
 * Everything in the low 4 GiB (and RAM above it) is mapped, so device MMIO
 * is reachable from ring 3; RAM above 3 GiB continues at 4 GiB.
 */
#ifndef LEGO_PAYLOAD_ABI_H
#define LEGO_PAYLOAD_ABI_H

#ifdef __ASSEMBLER__
#define LP_U(x) x
#else
#include <stdint.h>
#define LP_U(x) x##ULL
#endif

#define LP_INFO_ADDR   LP_U(0x1000)
#define LP_GDT_ADDR    LP_U(0x2000)
#define LP_IDT_ADDR    LP_U(0x3000)
#define LP_STUBS_ADDR  LP_U(0x4000)
#define LP_TSS_ADDR    LP_U(0x5000)
#define LP_PT_ADDR     LP_U(0x10000)
#define LP_PT_END      LP_U(0x100000)
#define LP_KSTACK_ADDR LP_U(0x100000)
#define LP_KSTACK_SIZE LP_U(0x800)
#define LP_USTACK_ADDR LP_U(0x120000)
#define LP_USTACK_SIZE LP_U(0x3800)
#define LP_LOAD_ADDR   LP_U(0x200000)
#define LP_MAX_VCPUS   64

/* GDT selectors (user ones with RPL 3). */
#define LP_SEL_KCODE 0x08
#define LP_SEL_KDATA 0x10
#define LP_SEL_UDATA 0x23
#define LP_SEL_UCODE 0x2b
#define LP_SEL_TSS0  0x30 /* vCPU i uses LP_SEL_TSS0 + 16 * i */

/* The image starts with this header; the VMM checks it before loading. */
#define LP_MAGIC       LP_U(0x315941504f47454c) /* "LEGOPAY1" */
#define LP_ABI_VERSION 1
#ifndef __ASSEMBLER__
struct lp_header {
	uint64_t magic;
	uint32_t abi_version;
	uint32_t flags;
	uint64_t load_addr; /* must be LP_LOAD_ADDR */
	uint64_t end;	    /* first byte after the image including .bss */
	uint64_t entry;	    /* every vCPU starts here */
};

#endif

#define LP_ARGS_MAX	  2048
#define LP_MAX_RAM_RANGES 4
#ifndef __ASSEMBLER__
/* The info page, written by the VMM at LP_INFO_ADDR before the first instruction. */
struct lp_info {
	uint64_t magic; /* LP_MAGIC */
	uint32_t abi_version;
	uint32_t nr_vcpus;
	uint64_t mem_size;  /* guest RAM in bytes */
	uint64_t tsc_khz;   /* guest TSC frequency */
	uint64_t free_base; /* first free byte after the image, 4 KiB aligned */
	uint64_t free_end;  /* end of low RAM: [free_base, free_end) is the payload's */
	uint32_t nr_ram_ranges;
	uint32_t pad;
	struct {
		uint64_t base, size;
	} ram[LP_MAX_RAM_RANGES];
	char args[LP_ARGS_MAX]; /* --args text, NUL-terminated */
};

#endif

/*
 * I/O ports of the payload device (32-bit accesses unless noted). Strings and
 * reports are passed by guest physical address and read with the VMM's
 * checked accessor, so one exit carries a whole line.
 */
#define LP_PORT_BASE	  0x500
#define LP_PORT_PRINT	  0x500 /* out: address of a NUL-terminated string (<= 4 KiB) */
#define LP_PORT_VCPU_ID	  0x504 /* in: this vCPU's index */
#define LP_PORT_VCPU_DONE 0x508 /* out: this vCPU is finished, with a status */
#define LP_PORT_EXIT	  0x50c /* out: stop the whole VM with this status */
#define LP_PORT_REPORT	  0x510 /* out: address of a struct lp_report */
#define LP_PORT_START	  0x514 /* out: "first instruction", timestamps the start */
#define LP_PORT_EXCEPTION 0x518 /* out (8-bit): vector; written by the ring-0 stubs */
/* out: the VMM's vCPU thread calls getppid(2), which its seccomp filter refuses: a test's
 * way to a forbidden system call in the VMM, off unless LEGO_TEST_SYSCALL_PROBE=1 */
#define LP_PORT_SYSCALL_PROBE 0x51c
#define LP_PORT_LEN	      0x20

#define LP_REPORT_KEY_MAX 48
#ifndef __ASSEMBLER__
struct lp_report {
	char key[LP_REPORT_KEY_MAX]; /* [a-z0-9_], NUL-terminated */
	uint64_t value;
};
#endif

#endif
