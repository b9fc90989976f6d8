/*
 * fault.c - a payload that misbehaves on purpose, as args what=... say, so
 * tests can check that the VMM stops it with a clear error and never hangs:
 *   outside   read guest-physical memory past the end of RAM (no device there)
 *   unmapped  read an address the page tables do not map (#PF)
 *   null      read address 0 (#PF)
 *   priv      execute hlt, privileged in ring 3 (#GP)
 *   badprint  hand the print port a string address outside RAM
 *   port      read a port no device claims
 */
#include "rt.h"

int main(unsigned vcpu)
{
	char what[16];
	const struct lp_info *info = rt_info();

	if (vcpu != 0)
		return 0;
	if (!rt_arg("what", what, sizeof(what)))
		rt_exit(100);
	if (!strcmp(what, "outside")) {
		volatile uint64_t *p = (uint64_t *)(info->free_end + 0x100000);

		rt_printf("reading %p, past the end of RAM\n", (void *)p);
		return (int)*p;
	}
	if (!strcmp(what, "unmapped"))
		return (int)*(volatile uint64_t *)(1ULL << 40);
	if (!strcmp(what, "null"))
		return (int)*(volatile uint64_t *)0;
	if (!strcmp(what, "priv")) {
		__asm__ volatile("hlt");
		return 0;
	}
	if (!strcmp(what, "badprint")) {
		rt_outl(LP_PORT_PRINT, (uint32_t)(info->free_end + 0x100000));
		return 0;
	}
	if (!strcmp(what, "port"))
		return (int)rt_inl(0x7770);
	return 101;
}
