/*
 * pvm_compat.h - workarounds for KVM without hardware virtualisation (the
 * kvm_pvm module), kept apart from the plainly correct VMM. Enabled only
 * where /sys/module/kvm_pvm exists, announced on stderr, and switched off
 * with --no-pvm-compat. On hardware-virtualised KVM nothing here runs.
 */
#ifndef LEGO_VMM_PVM_COMPAT_H
#define LEGO_VMM_PVM_COMPAT_H

#include <linux/kvm.h>
#include <stdbool.h>

#include "vm.h"

/* pvm_compat_host - true when this host's KVM is kvm_pvm. */
bool pvm_compat_host(void);

/*
 * pvm_compat_user_pio - kvm_pvm runs guest ring 3 natively on the host CPU,
 * which does not honour the guest's IOPL: an in/out that the guest was
 * allowed raises #GP, and the IOPL it was given does not even show in the
 * RFLAGS of the exception frame. Given the user context @r of such a #GP and
 * the IOPL @iopl that the guest really has (its kernel, here the VMM, knows),
 * emulate the instruction if it is a port access and @iopl is 3, advancing
 * @r->rip (and setting @r->rax for an in). Returns 1 when emulated, 0 when the
 * instruction is not one this emulates (the #GP is then the guest's).
 */
int pvm_compat_user_pio(struct vcpu *vcpu, struct kvm_regs *r, unsigned iopl);

/*
 * pvm_compat_internal_error - KVM stopped on an instruction it does not
 * emulate (KVM_EXIT_INTERNAL_ERROR). Handles the ones a stock kernel runs
 * into: int3 in ring 0 (stepped over, #BP injected) and fwait (stepped
 * over). Returns true when handled and the vCPU can resume.
 */
bool pvm_compat_internal_error(struct vcpu *vcpu);

/* pvm_compat_cpuid - clear CPUID bits whose instructions this KVM cannot emulate. */
void pvm_compat_cpuid(struct kvm_cpuid_entry2 *e);

/*
 * pvm_compat_cmdline - into @buf (@len bytes), kernel command-line options
 * that avoid what this KVM cannot emulate, slow guest time down, and shorten
 * the emulated boot; @tsc_khz is the real TSC frequency.
 */
void pvm_compat_cmdline(char *buf, size_t len, uint64_t tsc_khz);

#endif
