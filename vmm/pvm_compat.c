/* pvm_compat.c - kvm_pvm workarounds (see pvm_compat.h); none run on hardware KVM. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "log.h"
#include "pvm_compat.h"
#include "vcpu.h"
#include "vmm.h"

#define MSR_STAR   0xc0000081
#define MSR_LSTAR  0xc0000082
#define MSR_SFMASK 0xc0000084
#define PF_VECTOR  14
#define PF_USER	   (1u << 2)
#define PF_FETCH   (1u << 4)
/* Re-check the hooked gate every this many exits: the kernel rewrites its IDT during boot. */
#define PVM_WATCH_EVERY 64

struct pvm_linux {
	pthread_mutex_t lock;
	bool armed;
	uint64_t star, lstar, sfmask;
	uint64_t pf_handler; /* the kernel's own #PF entry */
	uint64_t trap;	     /* the int3 byte vector 14 now points at, 0 if none */
	uint64_t no_trap_at; /* a #PF entry searched in vain (not searched again) */
	_Atomic uint64_t nr_syscalls, nr_faults;
	_Atomic uint64_t exits;
};

bool pvm_compat_host(void)
{
	return access("/sys/module/kvm_pvm", F_OK) == 0;
}

/*
 * The #GP of a ring-3 in/out: given the user context @r and the IOPL @iopl
 * that the guest really has (its kernel, here the VMM, knows; the host CPU
 * does not even show it in the frame's RFLAGS), carry out the port access
 * if @iopl is 3, advancing @r->rip (and setting @r->rax for an in).
 */
static bool pvm_user_gp(struct vcpu *vcpu, struct kvm_regs *r, unsigned iopl)
{
	uint8_t insn[3] = {0}, op;
	unsigned i = 0, size = 4, port;
	bool out, opsize16 = false;
	uint32_t data;

	if (iopl != 3)
		return false; /* the #GP is what real hardware would raise too */
	if (vcpu_read_virt(vcpu, r->rip, insn, sizeof(insn)) &&
	    vcpu_read_virt(vcpu, r->rip, insn, 2) && vcpu_read_virt(vcpu, r->rip, insn, 1))
		return false;
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
		return false; /* string I/O and everything else: not emulated */
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
	return true;
}

static bool pvm_linux_trap(struct vcpu *vcpu, struct kvm_regs *r, struct kvm_sregs *s);

/* KVM stopped on an instruction it does not emulate: true when handled and the vCPU can resume. */
static bool pvm_internal_error(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	struct pvm_linux *pl = vcpu->vm->quirks_state;
	struct kvm_regs r;
	struct kvm_sregs s;
	uint8_t op;

	if (ioctl(vcpu->fd, KVM_GET_REGS, &r) < 0 || ioctl(vcpu->fd, KVM_GET_SREGS, &s) < 0 ||
	    vcpu_read_virt(vcpu, r.rip, &op, 1))
		return false;
	if (pl && pl->trap && r.rip == pl->trap && s.cs.dpl == 0)
		return pvm_linux_trap(vcpu, &r, &s);
	/* Code patched under this vCPU (text_poke: int3 first, then the rest, then
	 * the first byte): KVM saw bytes that are no longer there. Fetch again. */
	if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION &&
	    run->emulation_failure.ndata >= 2 &&
	    (run->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES) &&
	    run->emulation_failure.insn_size > 0 && run->emulation_failure.insn_bytes[0] != op)
		return true;
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

static void pvm_cpuid(struct kvm_cpuid_entry2 *e)
{
	if (e->function == 1)
		e->ecx &= ~(1U << 13); /* CX16: lock cmpxchg16b is not emulated */
}

/* Guest time runs this many times slower than real time (see pvm_cmdline). */
#define PVM_TIME_DILATION 20

static void pvm_cmdline(char *buf, size_t len, uint64_t tsc_khz)
{
	/* Each one measured on kvm_pvm (see ENVIRONMENT.md): instructions it does not
	 * emulate (xsave, SMAP's clac/stac, popcnt, ssse3, erms/fsrm string ops), and
	 * work that costs minutes of emulation but a vNode does not need. reboot=t:
	 * here Linux 6.1's default restart went straight to a real-mode BIOS jump
	 * (there is no BIOS) without trying the i8042; a triple fault always
	 * comes, and lego-vmm resets the machine on it. The user's command line
	 * comes after these and can override them (reboot=k uses the i8042). */
	/* Every timer tick costs milliseconds of emulated kernel code here: telling the
	 * kernel its TSC runs PVM_TIME_DILATION times faster than it does stretches
	 * its ticks (TSC-deadline local APIC timer) by as much, and leaves it no
	 * calibration to get wrong. kvmclock would undo it, so it is off. */
	/* no-kvmapf: a guest page whose host page is not there yet (an ExCache miss,
	 * a write-protected page) became an async page fault: the guest kernel is told
	 * "not present", switches away and back on "ready", some 6000 instructions
	 * that cost ~6 ms emulated here (seen: 458 in 3 s beside 2.9M emulated
	 * instructions; lego-verify's third pass had not ended after 3 minutes,
	 * where with no-kvmapf passes 2-6 took 0.4 guest-seconds each). Without it
	 * the vCPU waits out the miss itself (p50 about 20 us here). */
	/* nopvspin: a CI run's guest locked up for good in the paravirtual spinlock's
	 * unlock slow path, at the KVM_HC_KICK_CPU hypercall (soft lockup, RIP in
	 * kvm_kick_cpu, 48 s and on) while ext4 wrote on 2 vCPUs; plain queued
	 * spinlocks make no hypercall. */
	snprintf(
		buf, len,
		"tsc_early_khz=%llu "
		"nokaslr no-kvmclock no-kvmapf nopvspin mitigations=off tsc=reliable no_timer_check "
		"io_delay=none noxsave "
		"clearcpuid=297,580,151,137,308 rcupdate.rcu_expedited=1 cryptomgr.notests "
		"audit=0 lsm=capability init_on_alloc=0 reboot=t rodata=off "
		"initcall_blacklist=ftrace_check_for_weak_functions,trace_eval_init,"
		"load_system_certificate_list,blake2s_mod_init,tracer_init_tracefs,"
		"slab_sysfs_init",
		(unsigned long long)tsc_khz * PVM_TIME_DILATION);
}

/* --- system calls from a Linux guest's user space (see pvm_compat.h) --- */

static int pvm_boot_linux(struct vm *vm, char *buf, size_t len)
{
	struct pvm_linux *pl = calloc(1, sizeof(*pl));

	if (!pl)
		return -ENOMEM;
	pthread_mutex_init(&pl->lock, NULL);
	vm->quirks_state = pl;
	pvm_cmdline(buf, len, vm->tsc_khz);
	return 0;
}

static void pvm_destroy(struct vm *vm)
{
	struct pvm_linux *pl = vm->quirks_state;

	if (!pl)
		return;
	log_debug("pvm_compat: %llu guest system calls completed, %llu user faults passed on",
		  (unsigned long long)pl->nr_syscalls, (unsigned long long)pl->nr_faults);
	pthread_mutex_destroy(&pl->lock);
	free(pl);
	vm->quirks_state = NULL;
}

/* What a snapshot keeps of a Linux guest's hook: where the kernel's #PF entry
 * really is (the IDT, in guest memory, points at the int3 now). */
struct pvm_saved {
	uint32_t version, armed;
	uint64_t star, lstar, sfmask, pf_handler, trap, no_trap_at;
};

static ssize_t pvm_save(struct vm *vm, void *buf, size_t len)
{
	struct pvm_linux *pl = vm->quirks_state;
	struct pvm_saved sv = {.version = 1};

	if (!pl)
		return 0; /* a payload: nothing kept */
	if (len < sizeof(sv))
		return -ENOSPC;
	pthread_mutex_lock(&pl->lock);
	sv.armed = pl->armed;
	sv.star = pl->star, sv.lstar = pl->lstar, sv.sfmask = pl->sfmask;
	sv.pf_handler = pl->pf_handler, sv.trap = pl->trap, sv.no_trap_at = pl->no_trap_at;
	pthread_mutex_unlock(&pl->lock);
	memcpy(buf, &sv, sizeof(sv));
	return sizeof(sv);
}

static int pvm_load(struct vm *vm, const void *buf, size_t len)
{
	struct pvm_saved sv;
	struct pvm_linux *pl;

	if (len != sizeof(sv))
		return -EINVAL;
	memcpy(&sv, buf, sizeof(sv));
	if (sv.version != 1)
		return -EINVAL;
	pl = vm->quirks_state;
	if (!pl) {
		pl = calloc(1, sizeof(*pl));
		if (!pl)
			return -ENOMEM;
		pthread_mutex_init(&pl->lock, NULL);
		vm->quirks_state = pl;
	}
	pl->armed = sv.armed;
	pl->star = sv.star, pl->lstar = sv.lstar, pl->sfmask = sv.sfmask;
	pl->pf_handler = sv.pf_handler, pl->trap = sv.trap, pl->no_trap_at = sv.no_trap_at;
	return 0;
}

static int pvm_get_msrs(struct vcpu *vcpu, uint64_t *star, uint64_t *lstar, uint64_t *sfmask)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[3];
	} m = {.hdr.nmsrs = 3,
	       .e = {{.index = MSR_STAR}, {.index = MSR_LSTAR}, {.index = MSR_SFMASK}}};

	if (ioctl(vcpu->fd, KVM_GET_MSRS, &m) != 3)
		return -1;
	*star = m.e[0].data;
	*lstar = m.e[1].data;
	*sfmask = m.e[2].data;
	return 0;
}

static uint64_t gate_offset(const uint8_t g[16])
{
	return (uint64_t)(g[0] | g[1] << 8) | (uint64_t)(g[6] | g[7] << 8) << 16 |
	       (uint64_t)(g[8] | g[9] << 8 | g[10] << 16 | (uint32_t)g[11] << 24) << 32;
}

static void gate_set_offset(uint8_t g[16], uint64_t off)
{
	g[0] = (uint8_t)off;
	g[1] = (uint8_t)(off >> 8);
	g[6] = (uint8_t)(off >> 16);
	g[7] = (uint8_t)(off >> 24);
	for (int i = 0; i < 4; i++)
		g[8 + i] = (uint8_t)(off >> (32 + 8 * i));
}

/*
 * An int3 that never runs: the one after `sysretq` in the system call entry
 * (a speculation stop), else int3 padding just before the #PF entry.
 */
static uint64_t pvm_find_trap(struct vcpu *vcpu, uint64_t lstar, uint64_t pf_handler)
{
	static const uint8_t sysretq_int3[] = {0x48, 0x0f, 0x07, 0xcc};
	uint8_t code[1024], pad[16];

	if (vcpu_read_virt(vcpu, lstar, code, sizeof(code)) == 0) {
		for (size_t i = 0; i + sizeof(sysretq_int3) <= sizeof(code); i++)
			if (!memcmp(code + i, sysretq_int3, sizeof(sysretq_int3)))
				return lstar + i + 3;
	}
	if (vcpu_read_virt(vcpu, pf_handler - sizeof(pad), pad, sizeof(pad)) == 0 &&
	    pad[sizeof(pad) - 1] == 0xcc)
		return pf_handler - 1;
	return 0;
}

/* After each exit of a Linux guest's vCPU: arm or re-arm the #PF hook. */
static void pvm_linux_watch(struct vcpu *vcpu)
{
	struct pvm_linux *pl = vcpu->vm->quirks_state;
	uint64_t star, lstar, sfmask, off;
	struct kvm_sregs s;
	uint8_t gate[16];

	if (pl->armed && ++pl->exits % PVM_WATCH_EVERY)
		return;
	if (ioctl(vcpu->fd, KVM_GET_SREGS, &s) < 0 || !(s.efer & (1 << 10)) /* LMA */ ||
	    s.idt.limit < PF_VECTOR * 16 + 15 || pvm_get_msrs(vcpu, &star, &lstar, &sfmask) ||
	    lstar < 0xffff800000000000ULL)
		return; /* the kernel has not set up system calls yet */
	if (vcpu_read_virt(vcpu, s.idt.base + PF_VECTOR * 16, gate, sizeof(gate)) ||
	    !(gate[5] & 0x80))
		return;
	off = gate_offset(gate);
	pthread_mutex_lock(&pl->lock);
	if ((off != pl->trap || lstar != pl->lstar) && off != pl->no_trap_at) {
		uint64_t trap = pvm_find_trap(vcpu, lstar, off);

		if (!trap) {
			log_warn(
				"pvm_compat: no int3 to hook #PF at; guest system calls will fail");
			pl->armed = true; /* do not search again on every exit */
			pl->no_trap_at = off;
		} else {
			pl->star = star;
			pl->lstar = lstar;
			pl->sfmask = sfmask;
			pl->pf_handler = off;
			pl->trap = trap;
			gate_set_offset(gate, trap);
			if (vcpu_write_virt(vcpu, s.idt.base + PF_VECTOR * 16, gate,
					    sizeof(gate)) == 0) {
				log_debug(
					"pvm_compat: #PF (%#llx) hooked at int3 %#llx, LSTAR %#llx",
					(unsigned long long)off, (unsigned long long)trap,
					(unsigned long long)lstar);
				pl->armed = true;
			}
		}
	}
	pthread_mutex_unlock(&pl->lock);
}

/* At the hooked int3: complete a system call, or go on to the kernel's #PF entry. */
static bool pvm_linux_trap(struct vcpu *vcpu, struct kvm_regs *r, struct kvm_sregs *s)
{
	struct pvm_linux *pl = vcpu->vm->quirks_state;
	uint64_t frame[6]; /* error code, RIP, CS, RFLAGS, RSP, SS */
	uint16_t kcs;

	if (vcpu_read_virt(vcpu, r->rsp, frame, sizeof(frame)))
		return false;
	if ((frame[2] & 3) != 3 || frame[1] != pl->lstar ||
	    (frame[0] & (PF_USER | PF_FETCH)) != (PF_USER | PF_FETCH)) {
		pl->nr_faults++;
		r->rip = pl->pf_handler;
		return ioctl(vcpu->fd, KVM_SET_REGS, r) == 0;
	}
	/* The syscall the CPU left half done: RCX and R11 are already loaded. */
	pl->nr_syscalls++;
	kcs = (uint16_t)(pl->star >> 32) & ~3;
	s->cs.selector = kcs;
	s->cs.base = 0;
	s->cs.limit = 0xffffffff;
	s->cs.type = 0xb;
	s->cs.present = s->cs.s = s->cs.l = s->cs.g = 1;
	s->cs.dpl = s->cs.db = 0;
	s->ss.selector = kcs + 8;
	s->ss.base = 0;
	s->ss.limit = 0xffffffff;
	s->ss.type = 0x3;
	s->ss.present = s->ss.s = s->ss.db = s->ss.g = 1;
	s->ss.dpl = s->ss.l = 0;
	r->rsp = frame[4];
	r->rip = pl->lstar;
	r->rflags = (r->r11 & ~pl->sfmask) | 2;
	return ioctl(vcpu->fd, KVM_SET_SREGS, s) == 0 && ioctl(vcpu->fd, KVM_SET_REGS, r) == 0;
}

static bool pvm_exit(struct vcpu *vcpu)
{
	if (vcpu->vm->quirks_state)
		pvm_linux_watch(vcpu);
	return vcpu->run->exit_reason == KVM_EXIT_INTERNAL_ERROR && pvm_internal_error(vcpu);
}

const struct vm_quirks pvm_quirks = {
	.name = "pvm_compat",
	.cpuid = pvm_cpuid,
	.exit = pvm_exit,
	.user_gp = pvm_user_gp,
	.boot_linux = pvm_boot_linux,
	.destroy = pvm_destroy,
	.save = pvm_save,
	.load = pvm_load,
};

const struct vm_quirks *pvm_compat_quirks(void)
{
	return pvm_compat_host() ? &pvm_quirks : NULL;
}

/* ---- lego-vmm's module ---- */

/* --no-pvm-compat: the module's state is only this flag (priv non-NULL: off). */
static int opt_no_pvm(struct vmm *v, const char *arg, char *err, size_t errlen)
{
	(void)arg, (void)err, (void)errlen;
	vmm_set_priv(v, &mod_pvm, (void *)&pvm_quirks);
	return 0;
}

static void pvm_configure(struct vmm *v, struct vm_config *cfg)
{
	bool off = vmm_priv(v, &mod_pvm) != NULL;

	if (!pvm_compat_host())
		return;
	cfg->quirks = off ? NULL : &pvm_quirks;
	log_info("kvm_pvm host (no hardware virtualisation): pvm_compat workarounds %s",
		 off ? "off" : "on (--no-pvm-compat turns them off)");
}

static const struct vmm_option pvm_options[] = {
	{"no-pvm-compat", NULL,
	 "on a kvm_pvm host (no hardware virtualisation), do not apply\n"
	 "                   the workarounds of vmm/pvm_compat.c (on by default there)",
	 opt_no_pvm},
	{NULL},
};

const struct vmm_module mod_pvm = {
	.name = "pvm_compat",
	.options = pvm_options,
	.configure = pvm_configure,
};
