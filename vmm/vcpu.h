/* vcpu.h - vCPU creation, threads and the run loop (used by vm.c). */
#ifndef LEGO_VMM_VCPU_H
#define LEGO_VMM_VCPU_H

#include "vm.h"

/* vcpus_create - create @n vCPUs with the host's supported CPUID. -errno, logged. */
int vcpus_create(struct vm *vm, int n);

/* vcpus_start - start one run-loop thread per vCPU. */
int vcpus_start(struct vm *vm);

/* vcpus_kick - make every vCPU leave KVM_RUN and notice vm->stopping. */
void vcpus_kick(struct vm *vm);

/* vcpu_pause_point - on @vcpu's thread, out of KVM_RUN: wait here while the VM is paused. */
void vcpu_pause_point(struct vcpu *vcpu);

/* vcpus_join - wait for every vCPU thread to end. */
void vcpus_join(struct vm *vm);

/* vcpus_destroy - close the vCPUs (threads must have ended). */
void vcpus_destroy(struct vm *vm);

/* vcpu_exit_reason_name - "IO", "MMIO", ... for a KVM_EXIT_* value. */
const char *vcpu_exit_reason_name(uint32_t reason);

#endif
