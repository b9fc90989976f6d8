/*
 * vm_state.c - what KVM holds of a VM and its vCPUs, saved into a snapshot
 * and loaded back into a fresh VM of the same shape: each vCPU's registers,
 * segment and control registers, FPU/SSE/AVX state (xsave), XCRs, the MSRs
 * KVM lists as saved, pending events, its run state, debug registers and
 * local APIC; and the VM's interrupt controllers and PIT. Loaded in the
 * order KVM needs (registers before MSRs, MSRs before the LAPIC and events).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "log.h"
#include "vm.h"
#include "vm_state.h"

#define MAX_MSRS	 256
#define MSR_TSC_DEADLINE 0x6e0

/* One vCPU, as it is saved: fixed parts, then nr_msrs MSR entries. */
struct vcpu_blob {
	uint32_t flags; /* VB_* */
	uint32_t nr_msrs;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xsave xsave;
	struct kvm_fpu fpu;
	struct kvm_xcrs xcrs;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp;
	struct kvm_debugregs debugregs;
	struct kvm_lapic_state lapic;
	struct kvm_msr_entry msrs[];
};

#define VB_XSAVE 1u
#define VB_XCRS	 2u
#define VB_LAPIC 4u

/* The VM's own: the PIC pair and the IOAPIC, and the PIT. */
struct vm_blob {
	uint32_t flags; /* 1: irqchip and PIT saved */
	uint32_t reserved;
	struct kvm_irqchip chips[3];
	struct kvm_pit_state2 pit;
};

/* The MSRs KVM says a VMM saves and restores (KVM_GET_MSR_INDEX_LIST), once. */
static int msr_list(struct vm *vm, uint32_t *idx, uint32_t max)
{
	struct {
		struct kvm_msr_list l;
		uint32_t indices[MAX_MSRS];
	} m = {.l.nmsrs = MAX_MSRS};

	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, &m) < 0)
		return -errno;
	if (m.l.nmsrs > max)
		return -E2BIG;
	memcpy(idx, m.indices, m.l.nmsrs * sizeof(uint32_t));
	return (int)m.l.nmsrs;
}

/* Read @n MSRs into @e, one by one where the set as a whole is refused; the count read. */
static uint32_t read_msrs(struct vcpu *vcpu, const uint32_t *idx, uint32_t n,
			  struct kvm_msr_entry *e)
{
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e[1];
	} one;
	uint32_t got = 0;

	for (uint32_t i = 0; i < n; i++) {
		one.h = (struct kvm_msrs){.nmsrs = 1};
		one.e[0] = (struct kvm_msr_entry){.index = idx[i]};
		if (ioctl(vcpu->fd, KVM_GET_MSRS, &one) == 1)
			e[got++] = one.e[0];
	}
	return got;
}

size_t vm_state_vcpu_size(void)
{
	return sizeof(struct vcpu_blob) + MAX_MSRS * sizeof(struct kvm_msr_entry);
}

int vm_state_save_vcpu(struct vcpu *vcpu, void *buf, size_t *len)
{
	struct vcpu_blob *b = buf;
	uint32_t idx[MAX_MSRS];
	int n;

	memset(b, 0, sizeof(*b));
	if (ioctl(vcpu->fd, KVM_GET_REGS, &b->regs) < 0 ||
	    ioctl(vcpu->fd, KVM_GET_SREGS, &b->sregs) < 0 ||
	    ioctl(vcpu->fd, KVM_GET_FPU, &b->fpu) < 0 ||
	    ioctl(vcpu->fd, KVM_GET_VCPU_EVENTS, &b->events) < 0 ||
	    ioctl(vcpu->fd, KVM_GET_MP_STATE, &b->mp) < 0)
		return -errno;
	if (ioctl(vcpu->fd, KVM_GET_XSAVE, &b->xsave) == 0)
		b->flags |= VB_XSAVE;
	if (ioctl(vcpu->fd, KVM_GET_XCRS, &b->xcrs) == 0)
		b->flags |= VB_XCRS;
	if (ioctl(vcpu->fd, KVM_GET_DEBUGREGS, &b->debugregs) < 0)
		memset(&b->debugregs, 0, sizeof(b->debugregs));
	if (vcpu->vm->irqchip) {
		if (ioctl(vcpu->fd, KVM_GET_LAPIC, &b->lapic) < 0)
			return -errno;
		b->flags |= VB_LAPIC;
	}
	n = msr_list(vcpu->vm, idx, MAX_MSRS);
	if (n < 0)
		return n;
	b->nr_msrs = read_msrs(vcpu, idx, (uint32_t)n, b->msrs);
	*len = sizeof(*b) + b->nr_msrs * sizeof(struct kvm_msr_entry);
	return 0;
}

int vm_state_load_vcpu(struct vcpu *vcpu, const void *buf, size_t len)
{
	const struct vcpu_blob *b = buf;
	struct kvm_msrs *msrs;
	int ret = 0;

	if (len < sizeof(*b) || b->nr_msrs > MAX_MSRS ||
	    len != sizeof(*b) + b->nr_msrs * sizeof(struct kvm_msr_entry))
		return -EINVAL;
	if (ioctl(vcpu->fd, KVM_SET_REGS, &b->regs) < 0)
		return -errno;
	if ((b->flags & VB_XSAVE) ? ioctl(vcpu->fd, KVM_SET_XSAVE, &b->xsave) < 0
				  : ioctl(vcpu->fd, KVM_SET_FPU, &b->fpu) < 0)
		return -errno;
	if ((b->flags & VB_XCRS) && ioctl(vcpu->fd, KVM_SET_XCRS, &b->xcrs) < 0)
		log_debug("vCPU %d: KVM_SET_XCRS: %s", vcpu->index, strerror(errno));
	if (ioctl(vcpu->fd, KVM_SET_SREGS, &b->sregs) < 0)
		return -errno;
	msrs = calloc(1, sizeof(*msrs) + b->nr_msrs * sizeof(struct kvm_msr_entry));
	if (!msrs)
		return -ENOMEM;
	msrs->nmsrs = b->nr_msrs;
	memcpy(msrs->entries, b->msrs, b->nr_msrs * sizeof(struct kvm_msr_entry));
	ret = ioctl(vcpu->fd, KVM_SET_MSRS, msrs);
	free(msrs);
	if (ret < 0)
		return -errno;
	if ((uint32_t)ret != b->nr_msrs)
		log_debug("vCPU %d: %d of %u MSRs set", vcpu->index, ret, b->nr_msrs);
	if (ioctl(vcpu->fd, KVM_SET_MP_STATE, &b->mp) < 0)
		return -errno;
	if ((b->flags & VB_LAPIC) && ioctl(vcpu->fd, KVM_SET_LAPIC, &b->lapic) < 0)
		return -errno;
	/* The TSC deadline takes only once the local APIC's timer is in that mode
	 * again: written a second time, after it. */
	for (uint32_t i = 0; (b->flags & VB_LAPIC) && i < b->nr_msrs; i++) {
		struct {
			struct kvm_msrs h;
			struct kvm_msr_entry e[1];
		} one = {.h.nmsrs = 1};

		if (b->msrs[i].index != MSR_TSC_DEADLINE)
			continue;
		one.e[0] = b->msrs[i];
		if (ioctl(vcpu->fd, KVM_SET_MSRS, &one) != 1)
			log_debug("vCPU %d: the TSC deadline not set again", vcpu->index);
	}
	if (ioctl(vcpu->fd, KVM_SET_VCPU_EVENTS, &b->events) < 0)
		return -errno;
	if (ioctl(vcpu->fd, KVM_SET_DEBUGREGS, &b->debugregs) < 0)
		log_debug("vCPU %d: KVM_SET_DEBUGREGS: %s", vcpu->index, strerror(errno));
	return 0;
}

int vm_state_save_vm(struct vm *vm, void *buf, size_t *len)
{
	struct vm_blob *b = buf;

	memset(b, 0, sizeof(*b));
	*len = sizeof(*b);
	if (!vm->irqchip)
		return 0;
	for (uint32_t c = 0; c < 3; c++) {
		b->chips[c].chip_id = c;
		if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &b->chips[c]) < 0)
			return -errno;
	}
	if (ioctl(vm->vm_fd, KVM_GET_PIT2, &b->pit) < 0)
		return -errno;
	b->flags = 1;
	return 0;
}

int vm_state_load_vm(struct vm *vm, const void *buf, size_t len)
{
	const struct vm_blob *b = buf;

	if (len != sizeof(*b) || !!(b->flags & 1) != vm->irqchip)
		return -EINVAL;
	if (!vm->irqchip)
		return 0;
	for (int c = 0; c < 3; c++)
		if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &b->chips[c]) < 0)
			return -errno;
	return ioctl(vm->vm_fd, KVM_SET_PIT2, &b->pit) < 0 ? -errno : 0;
}
