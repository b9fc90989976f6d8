/*
 * cpuid.h - the CPUID a vNode's vCPUs see, as a named policy.
 *
 *   host      everything this KVM can give a guest (KVM_GET_SUPPORTED_CPUID:
 *             the host CPU's features, minus what KVM cannot virtualise,
 *             plus the hypervisor bit). The default: fastest, but a guest
 *             may then use instructions another host lacks.
 *   baseline  the same table reduced to the x86-64-v2 instruction set
 *             (SSE3, SSSE3, SSE4.1/4.2, POPCNT, CMPXCHG16B, LAHF/SAHF on top
 *             of x86-64): no AVX, AVX2, AVX-512, FMA, BMI, AES-NI, XSAVE, ...
 *             so that what runs on one host runs on any x86-64-v2 host.
 *             Platform bits (x2APIC, TSC-deadline, hypervisor, speculation
 *             controls) are kept as the host has them.
 *
 * On top of either: each vCPU's own APIC ID (leaves 1, 0xb, 0x1f); the host's
 * quirks (vm.h) may clear more. (Some hosts build leaves 1, 7 and 0xd
 * themselves, so there the baseline cannot remove their bits: the kernel
 * command line's clearcpuid= does what it can.)
 */
#ifndef LEGO_VMM_CPUID_H
#define LEGO_VMM_CPUID_H

#include <linux/kvm.h>
#include <stdbool.h>

enum cpuid_policy { CPUID_HOST = 0, CPUID_BASELINE };

/* cpuid_policy_parse - "host" or "baseline"; -1 for anything else. */
int cpuid_policy_parse(const char *name);

/* cpuid_apply - turn KVM's supported table @c (edited in place) into vCPU
 * @index's CPUID under policy @p. */
void cpuid_apply(struct kvm_cpuid2 *c, enum cpuid_policy p, int index);

#endif
