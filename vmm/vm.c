/* vm.c - creating and tearing down the KVM VM, its RAM and its vCPUs; stopping it. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "util.h"
#include "vcpu.h"
#include "vm.h"

static int vm_set_slot(struct vm *vm, uint32_t slot, uint64_t gpa, uint64_t size, void *hva)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)hva,
	};

	return ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0 ? -errno : 0;
}

static int vm_setup_memory(struct vm *vm, uint64_t size, uint64_t hp_size)
{
	struct gmem *mem = &vm->mem;
	struct gmem_hotplug *hp = &mem->hp;
	uint64_t low = size < GMEM_LOW_LIMIT ? size : GMEM_LOW_LIMIT, end;
	int ret;

	if (hp_size % GMEM_HP_BLOCK_SIZE)
		return -EINVAL;
	/* One anonymous private mapping: the ExCache later registers exactly this
	 * range with userfaultfd and drops pages from it with MADV_DONTNEED. */
	mem->base = mmap(NULL, size + hp_size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem->base == MAP_FAILED) {
		mem->base = NULL;
		return -errno;
	}
	mem->size = size;
	mem->map_size = size + hp_size;
	mem->regions[mem->nr++] = (struct gmem_region){0, low, mem->base};
	if (size > low)
		mem->regions[mem->nr++] =
			(struct gmem_region){GMEM_HIGH_BASE, size - low, mem->base + low};
	for (int i = 0; i < mem->nr; i++) {
		ret = vm_set_slot(vm, (uint32_t)i, mem->regions[i].gpa, mem->regions[i].size,
				  mem->regions[i].hva);
		if (ret)
			return ret;
	}
	if (!hp_size)
		return 0;
	/* The hotpluggable region: above everything, every block unplugged. */
	end = mem->regions[mem->nr - 1].gpa + mem->regions[mem->nr - 1].size;
	hp->gpa = ALIGN_UP(end > GMEM_HIGH_BASE ? end : GMEM_HIGH_BASE, GMEM_HP_ALIGN);
	hp->size = hp_size;
	hp->hva = mem->base + size;
	hp->block_size = GMEM_HP_BLOCK_SIZE;
	hp->nr_blocks = hp_size / GMEM_HP_BLOCK_SIZE;
	hp->plugged = calloc((hp->nr_blocks + 63) / 64, sizeof(*hp->plugged));
	if (!hp->plugged)
		return -ENOMEM;
	hp->protect = true;
	if (mprotect(hp->hva, hp_size, PROT_NONE))
		return -errno;
	return vm_set_slot(vm, 2, hp->gpa, hp_size, hp->hva);
}

static int vm_check_kvm(struct vm *vm)
{
	int version = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);

	if (version != KVM_API_VERSION) {
		log_err("/dev/kvm speaks API version %d, lego-vmm needs %d", version,
			KVM_API_VERSION);
		return -EINVAL;
	}
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY) <= 0 ||
	    ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IMMEDIATE_EXIT) <= 0) {
		log_err("this KVM lacks user memory or immediate exit support");
		return -EINVAL;
	}
	return 0;
}

int vm_create(struct vm *vm, const struct vm_config *cfg)
{
	char size_text[32];
	int ret, max_vcpus;

	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->vm_fd = vm->stop_fd = -1;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->pause_cond, NULL);
	bus_init(&vm->pio, "port I/O");
	bus_init(&vm->mmio, "MMIO");
	vm->created_ns = now_ns();
	vm->strict_io = cfg->strict_io;
	vm->quirks = cfg->quirks;
	vm->irqchip = cfg->irqchip;
	vm->shutdown_resets = cfg->shutdown_resets;
	vm->cpuid_policy = cfg->cpuid_policy;

	if (cfg->mem_size < 4 * MiB || cfg->mem_size % (4 * KiB)) {
		log_err("guest memory must be a multiple of 4 KiB and at least 4 MiB, not %s",
			format_size(cfg->mem_size, size_text, sizeof(size_text)));
		return -EINVAL;
	}
	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		ret = -errno;
		log_err("cannot open /dev/kvm: %s (is the kvm module loaded, and may this user "
			"use it?)",
			strerror(errno));
		return ret;
	}
	ret = vm_check_kvm(vm);
	if (ret)
		goto fail;
	max_vcpus = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (max_vcpus <= 0)
		max_vcpus = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (max_vcpus > VM_MAX_VCPUS || max_vcpus <= 0)
		max_vcpus = VM_MAX_VCPUS;
	if (cfg->nr_vcpus < 1 || cfg->nr_vcpus > max_vcpus) {
		log_err("%d vCPUs asked for; this KVM and lego-vmm allow 1 to %d", cfg->nr_vcpus,
			max_vcpus);
		ret = -EINVAL;
		goto fail;
	}
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		ret = -errno;
		log_err("KVM_CREATE_VM: %s", strerror(errno));
		goto fail;
	}
	vm->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->stop_fd < 0) {
		ret = -errno;
		goto fail;
	}
	ret = vm_setup_memory(vm, cfg->mem_size, cfg->hotplug_size);
	if (ret) {
		log_err("cannot set up %s of guest memory: %s",
			format_size(cfg->mem_size, size_text, sizeof(size_text)), strerror(-ret));
		goto fail;
	}
	/* The interrupt controllers must exist before the vCPUs (their local APICs). */
	if (cfg->irqchip && ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		ret = -errno;
		log_err("KVM_CREATE_IRQCHIP: %s", strerror(errno));
		goto fail;
	}
	if (cfg->irqchip) {
		struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};

		if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
			log_warn("KVM_CREATE_PIT2: %s (no i8254 timer)", strerror(errno));
	}
	ret = vcpus_create(vm, cfg->nr_vcpus);
	if (ret)
		goto fail;
	return 0;
fail:
	vm_destroy(vm);
	return ret;
}

void vm_destroy(struct vm *vm)
{
	if (vm->vcpus) {
		vm_stop(vm, 0, "VM destroyed");
		vm_wait(vm);
		vcpus_destroy(vm);
	}
	bus_exit(&vm->pio);
	bus_exit(&vm->mmio);
	if (vm->mem.base)
		munmap(vm->mem.base, vm->mem.map_size);
	vm->mem.base = NULL;
	free(vm->mem.hp.plugged);
	vm->mem.hp.plugged = NULL;
	free(vm->cpuid);
	vm->cpuid = NULL;
	if (vm->quirks && vm->quirks->destroy)
		vm->quirks->destroy(vm);
	if (vm->stop_fd >= 0)
		close(vm->stop_fd);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	vm->stop_fd = vm->vm_fd = vm->kvm_fd = -1;
}

int vm_start(struct vm *vm)
{
	return vcpus_start(vm);
}

bool vm_stopping(struct vm *vm)
{
	bool stopping;

	pthread_mutex_lock(&vm->lock);
	stopping = vm->stopping;
	pthread_mutex_unlock(&vm->lock);
	return stopping;
}

static void vm_stop_v(struct vm *vm, int status, bool reset, const char *fmt, va_list ap)
{
	char reason[sizeof(vm->stop_reason)];
	uint64_t one = 1;
	bool first;

	vsnprintf(reason, sizeof(reason), fmt, ap);
	pthread_mutex_lock(&vm->lock);
	first = !vm->stopping;
	if (first) {
		vm->stopping = true;
		vm->reset = reset;
		vm->exit_status = status;
		snprintf(vm->stop_reason, sizeof(vm->stop_reason), "%s", reason);
	}
	pthread_mutex_unlock(&vm->lock);
	if (!first) {
		log_debug("already stopping; also: %s", reason);
		return;
	}
	log_debug("stopping (status %d): %s", status, reason);
	pthread_mutex_lock(&vm->lock);
	pthread_cond_broadcast(&vm->pause_cond); /* paused vCPUs and their pauser: stop */
	pthread_mutex_unlock(&vm->lock);
	vcpus_kick(vm);
	if (write(vm->stop_fd, &one, sizeof(one)) < 0)
		log_warn("cannot signal the VM's stop: %s", strerror(errno));
}

void vm_stop(struct vm *vm, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vm_stop_v(vm, status, false, fmt, ap);
	va_end(ap);
}

void vm_reset(struct vm *vm, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vm_stop_v(vm, 0, true, fmt, ap);
	va_end(ap);
}

/* vCPU threads that can still pause: started and not finished. */
static int vcpus_alive(struct vm *vm)
{
	int n = 0;

	for (int i = 0; i < vm->nr_vcpus; i++)
		n += vm->vcpus[i].thread_started && !vm->vcpus[i].finished;
	return n;
}

int vm_pause(struct vm *vm)
{
	int ret = 0;

	pthread_mutex_lock(&vm->lock);
	vm->pausing = true;
	pthread_mutex_unlock(&vm->lock);
	vcpus_kick(vm);
	pthread_mutex_lock(&vm->lock);
	while (!vm->stopping && vm->nr_paused < vcpus_alive(vm))
		pthread_cond_wait(&vm->pause_cond, &vm->lock);
	if (vm->stopping)
		ret = -ESHUTDOWN;
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

void vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->pausing = false;
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->lock);
}

int vm_wait(struct vm *vm)
{
	vcpus_join(vm);
	return vm->exit_status;
}

void vcpu_finish(struct vcpu *vcpu, int status)
{
	struct vm *vm = vcpu->vm;
	bool all;
	int final;

	vcpu->finished = true;
	pthread_mutex_lock(&vm->lock);
	if (status && !vm->finished_status)
		vm->finished_status = status;
	all = ++vm->nr_finished == vm->nr_vcpus;
	final = vm->finished_status;
	pthread_mutex_unlock(&vm->lock);
	if (all)
		vm_stop(vm, final, "every vCPU finished");
}
