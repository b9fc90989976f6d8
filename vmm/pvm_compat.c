/* pvm_compat.c - kvm_pvm workarounds (see pvm_compat.h); none run on hardware KVM. */
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "log.h"
#include "pvm_compat.h"
#include "vcpu.h"

bool pvm_compat_host(void)
{
	return access("/sys/module/kvm_pvm", F_OK) == 0;
}

int pvm_compat_user_pio(struct vcpu *vcpu, struct kvm_regs *r, unsigned iopl)
{
	uint8_t insn[3] = {0}, op;
	unsigned i = 0, size = 4, port;
	bool out, opsize16 = false;
	uint32_t data;

	if (iopl != 3)
		return 0; /* the #GP is what real hardware would raise too */
	if (vcpu_read_virt(vcpu, r->rip, insn, sizeof(insn)) &&
	    vcpu_read_virt(vcpu, r->rip, insn, 2) && vcpu_read_virt(vcpu, r->rip, insn, 1))
		return 0;
	if (insn[0] == 0x66) {
		opsize16 = true;
		i++;
	}
	op = insn[i];
	switch (op) {
	case 0xe4:
	case 0xe5:
	case 0xe6:
	case 0xe7: /* in/out with an 8-bit port */
		port = insn[i + 1];
		i += 2;
		break;
	case 0xec:
	case 0xed:
	case 0xee:
	case 0xef: /* in/out with the port in %dx */
		port = r->rdx & 0xffff;
		i += 1;
		break;
	default:
		return 0; /* string I/O and everything else: not emulated */
	}
	out = op & 2;
	if (!(op & 1))
		size = 1;
	else if (opsize16)
		size = 2;
	data = (uint32_t)r->rax;
	vcpu_pio(vcpu, (uint16_t)port, &data, size, out);
	if (!out) {
		uint64_t mask = size == 4 ? 0xffffffffULL : size == 2 ? 0xffff : 0xff;

		/* a 32-bit in zero-extends into %rax; narrower ones merge */
		r->rax = size == 4 ? data : (r->rax & ~mask) | (data & mask);
	}
	r->rip += i;
	return 1;
}

bool pvm_compat_internal_error(struct vcpu *vcpu)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	uint8_t op;

	if (ioctl(vcpu->fd, KVM_GET_REGS, &r) < 0 || ioctl(vcpu->fd, KVM_GET_SREGS, &s) < 0 ||
	    vcpu_read_virt(vcpu, r.rip, &op, 1))
		return false;
	if (op == 0x9b) { /* fwait: no x87 exceptions are ever pending here */
		r.rip++;
		return ioctl(vcpu->fd, KVM_SET_REGS, &r) == 0;
	}
	if (op == 0xcc && s.cs.dpl == 0) {
		struct kvm_vcpu_events ev;

		/* #BP is a trap: it is delivered with RIP after the int3. */
		if (ioctl(vcpu->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
			return false;
		r.rip++;
		ev.exception.injected = 1;
		ev.exception.nr = 3;
		ev.exception.has_error_code = 0;
		return ioctl(vcpu->fd, KVM_SET_REGS, &r) == 0 &&
		       ioctl(vcpu->fd, KVM_SET_VCPU_EVENTS, &ev) == 0;
	}
	return false;
}

void pvm_compat_cpuid(struct kvm_cpuid_entry2 *e)
{
	if (e->function == 1)
		e->ecx &= ~(1U << 13); /* CX16: lock cmpxchg16b is not emulated */
}

/* Guest time runs this many times slower than real time (see pvm_compat_cmdline). */
#define PVM_TIME_DILATION 20

void pvm_compat_cmdline(char *buf, size_t len, uint64_t tsc_khz)
{
	/* Each one measured on kvm_pvm (see ENVIRONMENT.md): instructions it does not
	 * emulate (xsave, SMAP's clac/stac, popcnt, ssse3, erms/fsrm string ops), and
	 * work that costs minutes of emulation but a vNode does not need. */
	/* Every timer tick costs milliseconds of emulated kernel code here: telling the
	 * kernel its TSC runs PVM_TIME_DILATION times faster than it does stretches
	 * its ticks (TSC-deadline local APIC timer) by as much, and leaves it no
	 * calibration to get wrong. kvmclock would undo it, so it is off. */
	snprintf(
		buf, len,
		"tsc_early_khz=%llu "
		"nokaslr no-kvmclock mitigations=off tsc=reliable no_timer_check io_delay=none noxsave "
		"clearcpuid=297,580,151,137,308 rcupdate.rcu_expedited=1 cryptomgr.notests "
		"audit=0 lsm=capability init_on_alloc=0 reboot=t rodata=off "
		"initcall_blacklist=ftrace_check_for_weak_functions,trace_eval_init,"
		"load_system_certificate_list,blake2s_mod_init,tracer_init_tracefs,"
		"slab_sysfs_init",
		(unsigned long long)tsc_khz * PVM_TIME_DILATION);
}
