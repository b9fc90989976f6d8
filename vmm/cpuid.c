/* cpuid.c - CPUID policies (see cpuid.h). */
#include <stdint.h>
#include <string.h>

#include "cpuid.h"

#define BIT(n) (1u << (n))

/* x86-64-v2 in leaf 1 ECX, and platform bits that are not instructions. */
#define BASELINE_1_ECX                                                                             \
	(BIT(0) /* SSE3 */ | BIT(9) /* SSSE3 */ | BIT(13) /* CX16 */ | BIT(19) /* SSE4.1 */ |      \
	 BIT(20) /* SSE4.2 */ | BIT(21) /* x2APIC */ | BIT(23) /* POPCNT */ |                      \
	 BIT(24) /* TSC-deadline */ | BIT(31) /* hypervisor */)
/* leaf 7 EDX: speculation controls the guest kernel should see as they are */
#define BASELINE_7_EDX                                                                             \
	(BIT(10) /* MD_CLEAR */ | BIT(26) /* IBRS/IBPB */ | BIT(27) /* STIBP */ |                  \
	 BIT(29) /* ARCH_CAPABILITIES */ | BIT(31) /* SSBD */)
#define BASELINE_80000001_ECX BIT(0) /* LAHF/SAHF in 64-bit mode */

int cpuid_policy_parse(const char *name)
{
	if (!strcmp(name, "host"))
		return CPUID_HOST;
	if (!strcmp(name, "baseline"))
		return CPUID_BASELINE;
	return -1;
}

static void cpuid_baseline(struct kvm_cpuid_entry2 *e)
{
	switch (e->function) {
	case 1:
		e->ecx &= BASELINE_1_ECX;
		break;
	case 7:
		if (e->index == 0) {
			e->eax = 0; /* no further subleaves */
			e->ebx = 0;
			e->ecx = 0;
			e->edx &= BASELINE_7_EDX;
		} else {
			e->eax = e->ebx = e->ecx = e->edx = 0;
		}
		break;
	case 0xd:  /* no XSAVE: no state components */
	case 0x14: /* processor trace */
	case 0x19: /* key locker */
	case 0x1d: /* AMX tiles */
	case 0x1e:
		e->eax = e->ebx = e->ecx = e->edx = 0;
		break;
	case 0x80000001:
		e->ecx &= BASELINE_80000001_ECX;
		break;
	}
}

void cpuid_apply(struct kvm_cpuid2 *c, enum cpuid_policy p, int index)
{
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		if (p == CPUID_BASELINE)
			cpuid_baseline(e);
		if (e->function == 1)
			e->ebx = (e->ebx & 0x00ffffff) | ((uint32_t)index << 24);
		if (e->function == 0xb || e->function == 0x1f)
			e->edx = (uint32_t)index;
	}
}
