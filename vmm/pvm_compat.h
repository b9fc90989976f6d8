/*
 * pvm_compat.h - workarounds for KVM without hardware virtualisation (the
 * kvm_pvm module), kept apart from the plainly correct VMM: they install
 * themselves as the VM's quirks (struct vm_quirks, vm.h), only where
 * /sys/module/kvm_pvm exists, announced on stderr, and switched off with
 * --no-pvm-compat. On hardware-virtualised KVM nothing here runs.
 *
 * What they do:
 * - CPUID: hide CMPXCHG16B, which this KVM does not emulate.
 * - A ring-3 payload's port I/O: the host CPU does not honour the guest's
 *   IOPL, so an in/out the payload was entitled to (payloads run with IOPL
 *   3) raises #GP; it is emulated and the payload resumes after it.
 * - Instructions KVM's emulator gives up on (KVM_EXIT_INTERNAL_ERROR): a
 *   ring-0 int3 (stepped over, #BP injected), fwait (stepped over), and code
 *   being live-patched (fetched again).
 * - A Linux guest: kernel options that avoid what this KVM cannot emulate,
 *   slow guest time down and shorten the emulated boot; and its user
 *   space's system calls. Here a ring-3 `syscall` only loads RIP (LSTAR),
 *   RCX and R11: CPL stays 3, so the fetch at LSTAR faults and the kernel
 *   sees a #PF. Once the kernel has set LSTAR and its IDT, vector 14 is
 *   pointed at an int3 byte of the kernel's own entry code that never runs
 *   (KVM stops on a ring-0 int3 here). At that stop the exception frame is
 *   read: a user instruction fetch at LSTAR is completed as the system call
 *   it was (kernel CS/SS from STAR, RFLAGS = R11 & ~SFMASK, the user RSP,
 *   RIP = LSTAR); any other fault goes on to the kernel's #PF handler.
 */
#ifndef LEGO_VMM_PVM_COMPAT_H
#define LEGO_VMM_PVM_COMPAT_H

#include <stdbool.h>

#include "vm.h"

/* pvm_compat_host - true when this host's KVM is kvm_pvm. */
bool pvm_compat_host(void);

/* The quirks themselves (tests call them directly). */
extern const struct vm_quirks pvm_quirks;

/* pvm_compat_quirks - &pvm_quirks on a kvm_pvm host, NULL elsewhere. */
const struct vm_quirks *pvm_compat_quirks(void);

#endif
