/* vcpu.c - vCPU threads: the KVM_RUN loop and its dispatch to the buses. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cpuid.h"
#include "log.h"
#include "util.h"
#include "vcpu.h"
#include "sandbox.h"

#define VCPU_KICK_SIGNAL SIGUSR1

const char *vcpu_exit_reason_name(uint32_t reason)
{
	static const char *const names[] = {
		[KVM_EXIT_UNKNOWN] = "UNKNOWN",
		[KVM_EXIT_EXCEPTION] = "EXCEPTION",
		[KVM_EXIT_IO] = "IO",
		[KVM_EXIT_HYPERCALL] = "HYPERCALL",
		[KVM_EXIT_DEBUG] = "DEBUG",
		[KVM_EXIT_HLT] = "HLT",
		[KVM_EXIT_MMIO] = "MMIO",
		[KVM_EXIT_IRQ_WINDOW_OPEN] = "IRQ_WINDOW_OPEN",
		[KVM_EXIT_SHUTDOWN] = "SHUTDOWN",
		[KVM_EXIT_FAIL_ENTRY] = "FAIL_ENTRY",
		[KVM_EXIT_INTR] = "INTR",
		[KVM_EXIT_SET_TPR] = "SET_TPR",
		[KVM_EXIT_TPR_ACCESS] = "TPR_ACCESS",
		[KVM_EXIT_NMI] = "NMI",
		[KVM_EXIT_INTERNAL_ERROR] = "INTERNAL_ERROR",
		[KVM_EXIT_SYSTEM_EVENT] = "SYSTEM_EVENT",
		[KVM_EXIT_IOAPIC_EOI] = "IOAPIC_EOI",
		[KVM_EXIT_X86_RDMSR] = "X86_RDMSR",
		[KVM_EXIT_X86_WRMSR] = "X86_WRMSR",
	};

	if (reason < ARRAY_SIZE(names) && names[reason])
		return names[reason];
	return "?";
}

static void vcpu_kick_handler(int sig)
{
	(void)sig; /* only there to make KVM_RUN return -EINTR */
}

/* The CPUID the guest sees: what this KVM supports, under the VM's policy (cpuid.h). */
static int vcpu_setup_cpuid(struct vcpu *vcpu)
{
	struct vm *vm = vcpu->vm;
	struct kvm_cpuid2 *c;
	size_t bytes;

	if (!vm->cpuid) {
		int nent = 256;

		for (;;) {
			bytes = sizeof(*c) + nent * sizeof(c->entries[0]);
			c = calloc(1, bytes);
			if (!c)
				return -ENOMEM;
			c->nent = nent;
			if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
				break;
			free(c);
			if (errno != E2BIG || nent > 4096)
				return -errno;
			nent *= 2;
		}
		vm->cpuid = c;
	}
	bytes = sizeof(*c) + vm->cpuid->nent * sizeof(c->entries[0]);
	c = malloc(bytes);
	if (!c)
		return -ENOMEM;
	memcpy(c, vm->cpuid, bytes);
	cpuid_apply(c, vm->cpuid_policy, vcpu->index);
	for (uint32_t i = 0; vm->quirks && vm->quirks->cpuid && i < c->nent; i++)
		vm->quirks->cpuid(&c->entries[i]);
	if (ioctl(vcpu->fd, KVM_SET_CPUID2, c) < 0) {
		int ret = -errno;

		free(c);
		return ret;
	}
	free(c);
	return 0;
}

int vcpus_create(struct vm *vm, int n)
{
	struct sigaction sa = {.sa_handler = vcpu_kick_handler};
	int ret;

	/* No SA_RESTART: the kick must interrupt KVM_RUN. */
	sigemptyset(&sa.sa_mask);
	sigaction(VCPU_KICK_SIGNAL, &sa, NULL);

	vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->run_size <= 0) {
		log_err("KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
		return -EINVAL;
	}
	vm->vcpus = calloc(n, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		return -ENOMEM;
	vm->nr_vcpus = n;
	for (int i = 0; i < n; i++)
		vm->vcpus[i].fd = -1;
	for (int i = 0; i < n; i++) {
		struct vcpu *vcpu = &vm->vcpus[i];

		vcpu->vm = vm;
		vcpu->index = i;
		vcpu->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, i);
		if (vcpu->fd < 0) {
			ret = -errno;
			log_err("KVM_CREATE_VCPU %d: %s", i, strerror(errno));
			return ret;
		}
		vcpu->run =
			mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
		if (vcpu->run == MAP_FAILED) {
			ret = -errno;
			vcpu->run = NULL;
			log_err("mmap of vCPU %d's run area: %s", i, strerror(errno));
			return ret;
		}
		ret = vcpu_setup_cpuid(vcpu);
		if (ret) {
			log_err("KVM_SET_CPUID2 on vCPU %d: %s", i, strerror(-ret));
			return ret;
		}
	}
	vm->tsc_khz = ioctl(vm->vcpus[0].fd, KVM_GET_TSC_KHZ, 0);
	if ((int64_t)vm->tsc_khz <= 0)
		vm->tsc_khz = 0;
	return 0;
}

static int vcpu_access_virt(struct vcpu *vcpu, uint64_t gva, void *buf, uint64_t len, bool write)
{
	uint8_t *p = buf;

	while (len) {
		struct kvm_translation tr = {.linear_address = gva};
		uint64_t chunk = 4096 - (gva & 4095);
		int ret;

		if (chunk > len)
			chunk = len;
		if (ioctl(vcpu->fd, KVM_TRANSLATE, &tr) < 0 || !tr.valid)
			return -EFAULT;
		ret = write ? gmem_write(&vcpu->vm->mem, tr.physical_address, p, chunk)
			    : gmem_read(&vcpu->vm->mem, tr.physical_address, p, chunk);
		if (ret)
			return -EFAULT;
		p += chunk;
		gva += chunk;
		len -= chunk;
	}
	return 0;
}

int vcpu_read_virt(struct vcpu *vcpu, uint64_t gva, void *dst, uint64_t len)
{
	return vcpu_access_virt(vcpu, gva, dst, len, false);
}

int vcpu_write_virt(struct vcpu *vcpu, uint64_t gva, const void *src, uint64_t len)
{
	return vcpu_access_virt(vcpu, gva, (void *)src, len, true);
}

/* Registers and the bytes at RIP: what a person needs to see why the guest stopped. */
static void vcpu_dump(struct vcpu *vcpu)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	uint8_t insn[16];
	char bytes[3 * sizeof(insn) + 1] = "";

	if (ioctl(vcpu->fd, KVM_GET_REGS, &r) < 0 || ioctl(vcpu->fd, KVM_GET_SREGS, &s) < 0) {
		log_err("  (cannot read vCPU %d's registers: %s)", vcpu->index, strerror(errno));
		return;
	}
	log_err("  vCPU %d: RIP %#llx CPL %d RSP %#llx RFLAGS %#llx CR0 %#llx CR2 %#llx CR3 %#llx "
		"CR4 %#llx EFER %#llx",
		vcpu->index, r.rip, s.cs.dpl, r.rsp, r.rflags, s.cr0, s.cr2, s.cr3, s.cr4, s.efer);
	log_err("  RAX %#llx RBX %#llx RCX %#llx RDX %#llx RSI %#llx RDI %#llx RBP %#llx", r.rax,
		r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp);
	for (size_t n = sizeof(insn); n > 0; n--) {
		if (vcpu_read_virt(vcpu, r.rip, insn, n) == 0) {
			for (size_t i = 0; i < n; i++)
				sprintf(bytes + 3 * i, "%02x ", insn[i]);
			break;
		}
	}
	log_err("  instruction bytes at RIP: %s", bytes[0] ? bytes : "(not readable)");
}

void vcpu_fault(struct vcpu *vcpu, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (vm_stopping(vcpu->vm))
		return; /* already stopping: a second report would only confuse */
	log_err("guest stopped: vCPU %d: %s", vcpu->index, msg);
	vcpu_dump(vcpu);
	vm_stop(vcpu->vm, VM_EXIT_GUEST_FAULT, "vCPU %d: %s", vcpu->index, msg);
}

int vcpu_pio(struct vcpu *vcpu, uint16_t port, void *data, uint32_t size, bool is_write)
{
	if (bus_dispatch(&vcpu->vm->pio, vcpu, port, data, size, is_write) == 0)
		return 0;
	if (vcpu->vm->strict_io) {
		vcpu_fault(vcpu, "%s of %u byte(s) at port %#x, which no device claims",
			   is_write ? "write" : "read", size, port);
		return -ENOENT;
	}
	/* What real hardware does for an absent device: reads float high. */
	if (!is_write)
		memset(data, 0xff, size);
	return 0;
}

static void vcpu_handle_pio(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	bool out = run->io.direction == KVM_EXIT_IO_OUT;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;

	vcpu->nr_pio++;
	for (uint32_t i = 0; i < run->io.count && !vcpu->finished; i++, data += run->io.size)
		if (vcpu_pio(vcpu, run->io.port, data, run->io.size, out))
			return;
}

static void vcpu_handle_mmio(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	uint64_t addr = run->mmio.phys_addr;
	char size[32];

	vcpu->nr_mmio++;
	if (bus_dispatch(&vcpu->vm->mmio, vcpu, addr, run->mmio.data, run->mmio.len,
			 run->mmio.is_write) == 0)
		return;
	if (vcpu->vm->strict_io) {
		vcpu_fault(vcpu,
			   "%s of %u byte(s) at guest physical %#llx: outside guest RAM (%s) and "
			   "claimed by no device",
			   run->mmio.is_write ? "write" : "read", run->mmio.len,
			   (unsigned long long)addr,
			   format_size(vcpu->vm->mem.size, size, sizeof(size)));
		return;
	}
	if (!run->mmio.is_write)
		memset(run->mmio.data, 0xff, run->mmio.len);
}

static void vcpu_handle_exit(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;

	if (vcpu->vm->quirks && vcpu->vm->quirks->exit && vcpu->vm->quirks->exit(vcpu))
		return;
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		vcpu_handle_pio(vcpu);
		break;
	case KVM_EXIT_MMIO:
		vcpu_handle_mmio(vcpu);
		break;
	case KVM_EXIT_INTR:
		break;
	case KVM_EXIT_SHUTDOWN:
		if (vcpu->vm->shutdown_resets)
			vm_reset(vcpu->vm, "the guest reset itself (triple fault): booting again");
		else
			vcpu_fault(vcpu, "triple fault (KVM_EXIT_SHUTDOWN)");
		break;
	case KVM_EXIT_FAIL_ENTRY:
		vcpu_fault(vcpu, "KVM could not enter the guest (hardware reason %#llx)",
			   (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		break;
	case KVM_EXIT_INTERNAL_ERROR: {
		char data[160] = "";
		int off = 0;

		for (uint32_t i = 0; i < run->internal.ndata && i < 8; i++)
			off += snprintf(data + off, sizeof(data) - off, " %#llx",
					(unsigned long long)run->internal.data[i]);
		vcpu_fault(vcpu, "KVM internal error, suberror %u%s%s", run->internal.suberror,
			   run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION
				   ? " (instruction KVM cannot emulate)"
				   : "",
			   data[0] ? data : "");
		break;
	}
	default:
		vcpu_fault(vcpu, "unhandled exit %s (%u)", vcpu_exit_reason_name(run->exit_reason),
			   run->exit_reason);
	}
}

void vcpu_pause_point(struct vcpu *vcpu)
{
	struct vm *vm = vcpu->vm;

	/* An exit just handled (an in, an MMIO read) is complete only once KVM_RUN is
	 * entered again: entered with immediate_exit, it completes it and runs nothing,
	 * so the registers read while paused are the whole state. */
	__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	while (ioctl(vcpu->fd, KVM_RUN, 0) == 0) {
		vcpu->nr_exits++; /* not expected: an exit came before the check */
		vcpu_handle_exit(vcpu);
	}
	pthread_mutex_lock(&vm->lock);
	if (vm->pausing && !vm->stopping) {
		vm->nr_paused++;
		pthread_cond_broadcast(&vm->pause_cond);
		while (vm->pausing && !vm->stopping)
			pthread_cond_wait(&vm->pause_cond, &vm->lock);
		vm->nr_paused--;
	}
	pthread_mutex_unlock(&vm->lock);
	/* The kick that paused it is spent; a stop's kick must not be: vm_stop sets
	 * stopping before it kicks, so one that comes after this check kicks again. */
	__atomic_store_n(&vcpu->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
	if (vm_stopping(vm))
		__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
}

#ifndef KVM_EXIT_MEMORY_FAULT
#define KVM_EXIT_MEMORY_FAULT 39 /* Linux 6.8; the headers here may be older */
#endif

/*
 * KVM_RUN failed with EFAULT: KVM could not reach the host page behind a
 * guest access. Inside the hotpluggable region that is an unplugged block
 * (PROT_NONE): the guest's error, and it is stopped for it. true when so.
 */
static bool vcpu_unplugged_access(struct vcpu *vcpu)
{
	const struct gmem *mem = &vcpu->vm->mem;
	uint64_t gpa = 0;
	bool known = vcpu->run->exit_reason == KVM_EXIT_MEMORY_FAULT;

	if (!mem->hp.size)
		return false;
	if (known) /* struct kvm_memory_fault {flags, gpa, size} at the start of the union */
		memcpy(&gpa, (const uint8_t *)&vcpu->run->hw + 8, sizeof(gpa));
	if (known && (gpa < mem->hp.gpa || gpa - mem->hp.gpa >= mem->hp.size))
		return false;
	if (known)
		vcpu_fault(vcpu,
			   "the guest touched guest-physical %#llx, in block %llu of its "
			   "hotpluggable memory (virtio-mem), which is not plugged",
			   (unsigned long long)gpa,
			   (unsigned long long)((gpa - mem->hp.gpa) / mem->hp.block_size));
	else
		vcpu_fault(vcpu, "KVM could not reach a page the guest touched: most likely a "
				 "block of its hotpluggable memory (virtio-mem) that is not "
				 "plugged");
	return true;
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *vcpu = arg;
	struct vm *vm = vcpu->vm;
	char name[16];
	sigset_t set;

	snprintf(name, sizeof(name), "vcpu%d", vcpu->index);
	sandbox_enter(SB_VCPU, name);
	sigemptyset(&set);
	sigaddset(&set, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	vcpu->state = VCPU_RUNNING;
	while (!vcpu->finished && !vm_stopping(vm)) {
		if (__atomic_load_n(&vm->pausing, __ATOMIC_ACQUIRE))
			vcpu_pause_point(vcpu);
		if (ioctl(vcpu->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			if (errno == EFAULT && vcpu_unplugged_access(vcpu))
				break;
			vm_stop(vm, VM_EXIT_VMM_ERROR, "KVM_RUN on vCPU %d: %s", vcpu->index,
				strerror(errno));
			break;
		}
		vcpu->nr_exits++;
		vcpu_handle_exit(vcpu);
	}
	vcpu->state = vcpu->finished ? VCPU_DONE : VCPU_STOPPED;
	return NULL;
}

int vcpus_start(struct vm *vm)
{
	sigset_t set, old;
	int ret = 0;

	/* vCPU threads start with the kick signal blocked and unblock it themselves;
	 * every other signal stays with whatever thread the caller chose. */
	sigemptyset(&set);
	sigaddset(&set, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	for (int i = 0; i < vm->nr_vcpus; i++) {
		ret = -pthread_create(&vm->vcpus[i].thread, NULL, vcpu_thread, &vm->vcpus[i]);
		if (ret) {
			vm_stop(vm, VM_EXIT_VMM_ERROR, "cannot start vCPU thread %d", i);
			break;
		}
		vm->vcpus[i].thread_started = true;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ret;
}

void vcpus_kick(struct vm *vm)
{
	for (int i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *vcpu = &vm->vcpus[i];

		if (!vcpu->run)
			continue;
		/* immediate_exit covers the window between the loop's check of
		 * vm->stopping and the next KVM_RUN; the signal covers a vCPU inside it. */
		__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
		if (vcpu->thread_started)
			pthread_kill(vcpu->thread, VCPU_KICK_SIGNAL);
	}
}

void vcpus_join(struct vm *vm)
{
	for (int i = 0; i < vm->nr_vcpus; i++) {
		if (vm->vcpus[i].thread_started) {
			pthread_join(vm->vcpus[i].thread, NULL);
			vm->vcpus[i].thread_started = false;
		}
	}
}

void vcpus_destroy(struct vm *vm)
{
	for (int i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *vcpu = &vm->vcpus[i];

		if (vcpu->run)
			munmap(vcpu->run, vm->run_size);
		if (vcpu->fd >= 0)
			close(vcpu->fd);
	}
	free(vm->vcpus);
	vm->vcpus = NULL;
	vm->nr_vcpus = 0;
}
