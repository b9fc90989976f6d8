/*
 * vm_state.h - the state KVM holds of a VM and of each vCPU, as blobs for
 * a snapshot: saved from a VM whose vCPUs are out of KVM_RUN (paused or
 * not started), loaded into a fresh VM of the same shape before its vCPUs
 * start. Functions return 0 or -errno.
 */
#ifndef LEGO_VMM_VM_STATE_H
#define LEGO_VMM_VM_STATE_H

#include <stddef.h>

#include "vm.h"

/* vm_state_vcpu_size - the most bytes one vCPU's blob takes. */
size_t vm_state_vcpu_size(void);

/* vm_state_save_vcpu - @vcpu's state into @buf (vm_state_vcpu_size bytes); its length in *@len. */
int vm_state_save_vcpu(struct vcpu *vcpu, void *buf, size_t *len);

/* vm_state_load_vcpu - @len bytes of a saved vCPU into @vcpu. -EINVAL for a blob that is not one. */
int vm_state_load_vcpu(struct vcpu *vcpu, const void *buf, size_t len);

/* vm_state_save_vm / vm_state_load_vm - the interrupt controllers and PIT (with an irqchip). */
int vm_state_save_vm(struct vm *vm, void *buf, size_t *len);
int vm_state_load_vm(struct vm *vm, const void *buf, size_t len);

/* The largest VM blob. */
#define VM_STATE_VM_MAX 4096

#endif
