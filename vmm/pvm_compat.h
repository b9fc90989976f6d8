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

/*
 * System calls from a Linux guest's user space. Here a ring-3 `syscall` only
 * loads RIP (LSTAR), RCX and R11: CPL stays 3, so the fetch at LSTAR faults
 * and the kernel sees a #PF instead of a system call. pvm_compat_linux_init
 * arms a watch: once the guest kernel has set LSTAR and its IDT, vector 14 is
 * pointed at an int3 byte of the kernel's own entry code that never runs
 * (KVM stops on a ring-0 int3 here). At that stop the VMM reads the exception
 * frame: a user instruction fetch at LSTAR is completed as the system call
 * it was (kernel CS/SS from STAR, RFLAGS = R11 & ~SFMASK, the user RSP,
 * RIP = LSTAR); any other fault goes on to the kernel's #PF handler.
 */
int pvm_compat_linux_init(struct vm *vm);
void pvm_compat_linux_exit(struct vm *vm);

/* pvm_compat_linux_watch - called after each exit of a Linux guest's vCPU: arm or re-arm the hook. */
void pvm_compat_linux_watch(struct vcpu *vcpu);

/* pvm_compat_linux_stats - system calls completed and user faults passed on, for the log. */
void pvm_compat_linux_stats(struct vm *vm, uint64_t *syscalls, uint64_t *faults);

/* pvm_compat_cpuid - clear CPUID bits whose instructions this KVM cannot emulate. */
void pvm_compat_cpuid(struct kvm_cpuid_entry2 *e);

/*
 * pvm_compat_cmdline - into @buf (@len bytes), kernel command-line options
 * that avoid what this KVM cannot emulate, slow guest time down, and shorten
 * the emulated boot; @tsc_khz is the real TSC frequency.
 */
void pvm_compat_cmdline(char *buf, size_t len, uint64_t tsc_khz);

#endif
