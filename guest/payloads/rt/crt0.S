/* crt0.S - payload entry: the image header, the start marker, and the call into C. */
#include "../abi.h"

	.section .lp_header, "a"
	.globl lp_header
lp_header:
	.quad LP_MAGIC
	.long LP_ABI_VERSION
	.long 0
	.quad LP_LOAD_ADDR
	.quad _end
	.quad _start

	.section .text.start, "ax"
	.globl _start
_start:
	/* The very first instruction tells the VMM the guest is running. */
	mov $LP_PORT_START, %dx
	xor %eax, %eax
	out %eax, (%dx)
	mov $LP_PORT_VCPU_ID, %dx
	in (%dx), %eax
	mov %eax, %edi
	xor %ebp, %ebp
	call rt_main
	ud2

	.section .note.GNU-stack, "", @progbits
