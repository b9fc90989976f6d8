/* test_cpuid.c - CPUID policies on a table shaped like KVM_GET_SUPPORTED_CPUID's. */
#include <stdlib.h>

#include "cpuid.h"
#include "pvm_compat.h"
#include "test.h"

enum { L1, L7, L7_1, LD, LB, LX1, NR };

/* Every feature bit set, so that what a policy keeps and removes shows. */
static struct kvm_cpuid2 *full_table(void)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + NR * sizeof(c->entries[0]));
	static const struct {
		uint32_t function, index;
	} leaves[NR] = {{1, 0}, {7, 0}, {7, 1}, {0xd, 0}, {0xb, 0}, {0x80000001, 0}};

	ASSERT(c != NULL);
	c->nent = NR;
	for (int i = 0; i < NR; i++) {
		c->entries[i].function = leaves[i].function;
		c->entries[i].index = leaves[i].index;
		c->entries[i].eax = c->entries[i].ebx = ~0u;
		c->entries[i].ecx = c->entries[i].edx = ~0u;
	}
	return c;
}

#define HAS(reg, bit) (((reg) >> (bit)) & 1)

TEST(cpuid_host_policy_keeps_features_and_sets_apic_ids)
{
	struct kvm_cpuid2 *c = full_table();

	cpuid_apply(c, CPUID_HOST, 5);
	ASSERT_EQ(c->entries[L1].ebx >> 24, 5u); /* initial APIC ID */
	ASSERT_EQ(c->entries[L1].ecx, ~0u);
	ASSERT_EQ(c->entries[L7].ebx, ~0u);
	ASSERT_EQ(c->entries[LB].edx, 5u); /* x2APIC ID */
	ASSERT_EQ(c->entries[LD].eax, ~0u);
	free(c);
}

TEST(cpuid_baseline_is_x86_64_v2)
{
	struct kvm_cpuid2 *c = full_table();
	uint32_t ecx1;

	cpuid_apply(c, CPUID_BASELINE, 1);
	ecx1 = c->entries[L1].ecx;
	/* v2 kept */
	ASSERT(HAS(ecx1, 0) && HAS(ecx1, 9) && HAS(ecx1, 13) && HAS(ecx1, 19) && HAS(ecx1, 20) &&
		       HAS(ecx1, 23),
	       "SSE3, SSSE3, CX16, SSE4.1, SSE4.2, POPCNT");
	ASSERT(HAS(ecx1, 21) && HAS(ecx1, 24) && HAS(ecx1, 31), "x2APIC, TSC-deadline, hypervisor");
	/* beyond v2 removed */
	ASSERT(!HAS(ecx1, 28) && !HAS(ecx1, 12) && !HAS(ecx1, 26) && !HAS(ecx1, 25) &&
		       !HAS(ecx1, 22),
	       "AVX, FMA, XSAVE, AES-NI, MOVBE");
	ASSERT_EQ(c->entries[L1].edx, ~0u); /* x86-64's own baseline */
	ASSERT_EQ(c->entries[L7].ebx, 0u);  /* AVX2, BMI, AVX-512, ... */
	ASSERT_EQ(c->entries[L7].ecx, 0u);
	ASSERT(HAS(c->entries[L7].edx, 26) && !HAS(c->entries[L7].edx, 8),
	       "speculation controls kept, the rest of leaf 7 EDX not");
	ASSERT_EQ(c->entries[L7].eax, 0u); /* no subleaf 1 announced */
	ASSERT_EQ(c->entries[L7_1].eax, 0u);
	ASSERT_EQ(c->entries[LD].eax | c->entries[LD].ebx | c->entries[LD].ecx, 0u);
	ASSERT_EQ(c->entries[LX1].ecx, 1u); /* LAHF/SAHF only: no LZCNT, no PREFETCHW */
	ASSERT_EQ(c->entries[L1].ebx >> 24, 1u);
	free(c);
}

TEST(cpuid_pvm_compat_hides_cx16_and_policy_names)
{
	struct kvm_cpuid2 *c = full_table();

	cpuid_apply(c, CPUID_HOST, 0);
	for (uint32_t i = 0; i < c->nent; i++)
		pvm_quirks.cpuid(&c->entries[i]);
	ASSERT(!HAS(c->entries[L1].ecx, 13), "CX16 hidden on kvm_pvm");
	free(c);
	ASSERT_EQ(cpuid_policy_parse("host"), CPUID_HOST);
	ASSERT_EQ(cpuid_policy_parse("baseline"), CPUID_BASELINE);
	ASSERT_EQ(cpuid_policy_parse("Host"), -1);
	ASSERT_EQ(cpuid_policy_parse(""), -1);
}
