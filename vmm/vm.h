/*
 * vm.h - the machine: one KVM VM, its guest RAM, its buses and its vCPUs.
 * No globals: everything a device or a vCPU needs hangs off struct vm.
 */
#ifndef LEGO_VMM_VM_H
#define LEGO_VMM_VM_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "bus.h"

/* lego-vmm's own exit statuses; a guest-reported status passes through. */
#define VM_EXIT_USAGE	    2	/* wrong command line */
#define VM_EXIT_VMM_ERROR   125 /* the host could not run the VM (KVM, memory, files) */
#define VM_EXIT_GUEST_FAULT 126 /* the guest did something the VMM had to stop it for */

#define VM_MAX_VCPUS 64

/* Guest RAM above this physical address continues at 4 GiB (PCI hole). */
#define GMEM_LOW_LIMIT 0xc0000000ULL
#define GMEM_HIGH_BASE 0x100000000ULL

struct gmem_region {
	uint64_t gpa, size;
	uint8_t *hva;
};

/*
 * Hotpluggable memory (a virtio-mem device's region): guest-physical
 * [gpa, gpa + size) above all boot RAM, in blocks of block_size, each
 * plugged or not (one bit per block). An unplugged block is not memory: its
 * host pages are inaccessible (PROT_NONE), so a guest access to one stops in
 * KVM, and gmem_ptr refuses it to the VMM.
 */
#define GMEM_HP_ALIGN	   (1ULL << 30) /* where the region starts: a GiB boundary */
#define GMEM_HP_BLOCK_SIZE (2ULL << 20) /* the plug unit: one huge page */

struct gmem_hotplug {
	uint64_t gpa, size; /* size 0: no such region */
	uint8_t *hva;
	uint64_t block_size, nr_blocks;
	_Atomic uint64_t *plugged; /* bitmap of plugged blocks */
	_Atomic uint64_t nr_plugged;
	/* unplugged blocks are PROT_NONE (true until an ExCache, which refuses
	 * their pages itself, takes the region over: gmem_hotplug_unprotect) */
	bool protect;
};

/*
 * Guest RAM: one host mapping of map_size bytes: the boot RAM (size bytes,
 * split into at most two guest-physical regions) and after it the
 * hotpluggable region, if any.
 */
struct gmem {
	uint8_t *base;
	uint64_t size;	   /* boot RAM */
	uint64_t map_size; /* the whole mapping: boot RAM and the hotpluggable region */
	int nr;
	struct gmem_region regions[2];
	struct gmem_hotplug hp;
};

/*
 * gmem_plug - plug (@plug) or unplug blocks [@first, @first + @n) of the
 * hotpluggable region: their pages become accessible, or are dropped and
 * made inaccessible again. The caller checked the range and the blocks'
 * states. 0 or -errno.
 */
int gmem_plug(struct gmem *mem, uint64_t first, uint64_t n, bool plug);

/* gmem_ram_bytes - the guest's memory now: boot RAM and the plugged blocks. */
uint64_t gmem_ram_bytes(const struct gmem *mem);

/* gmem_block_plugged - whether block @b of the hotpluggable region is plugged. */
bool gmem_block_plugged(const struct gmem *mem, uint64_t b);

/*
 * gmem_hotplug_block - the block of the hotpluggable region that byte @off
 * of the host mapping lies in, or -1 when it lies in boot RAM.
 */
int64_t gmem_hotplug_block(const struct gmem *mem, uint64_t off);

/*
 * gmem_hotplug_unprotect - leave the unplugged blocks' pages accessible: for
 * an ExCache, whose fault service refuses them. 0 or -errno.
 */
int gmem_hotplug_unprotect(struct gmem *mem);

/*
 * gmem_ptr - the host address of guest-physical [@gpa, @gpa + @len), or NULL
 * when any byte of it is outside guest RAM. The only way the VMM reaches
 * guest memory: a bad guest address is the guest's error, never a VMM crash.
 */
void *gmem_ptr(const struct gmem *mem, uint64_t gpa, uint64_t len);

/* gmem_read - copy guest [@gpa, +@len) to @dst; -EFAULT if outside RAM. */
int gmem_read(const struct gmem *mem, uint64_t gpa, void *dst, uint64_t len);

/*
 * gmem_write - copy @src to guest [@gpa, +@len); -EFAULT if outside RAM.
 * (The ExCache sees the VMM's writes as it sees the guest's: through
 * userfaultfd, on the first write to a page that is absent or clean.)
 */
int gmem_write(struct gmem *mem, uint64_t gpa, const void *src, uint64_t len);

/*
 * gmem_read_str - copy the NUL-terminated guest string at @gpa into @buf
 * (@size bytes, NUL included). Returns its length, -EFAULT if it leaves
 * guest RAM, -E2BIG if no NUL within @size bytes.
 */
int gmem_read_str(const struct gmem *mem, uint64_t gpa, char *buf, uint64_t size);

enum vcpu_state { VCPU_CREATED, VCPU_RUNNING, VCPU_DONE, VCPU_STOPPED };

struct vcpu {
	struct vm *vm;
	int index;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool thread_started;
	_Atomic int state; /* enum vcpu_state */
	bool finished;	   /* set by vcpu_finish on this vCPU's own thread */
	_Atomic uint64_t nr_exits, nr_pio, nr_mmio;
};

struct kvm_cpuid_entry2;
struct kvm_regs;

/*
 * Workarounds for a host whose KVM cannot do everything a guest expects
 * (vmm/pvm_compat.c, on kvm_pvm), installed as this one table; NULL on
 * hardware-virtualised KVM. The core calls a hook only where it is set and
 * names no host.
 */
struct vm_quirks {
	const char *name;
	/* cpuid - adjust one CPUID entry that every vCPU will show */
	void (*cpuid)(struct kvm_cpuid_entry2 *e);
	/* exit - called on @vcpu's thread after each exit, before the run loop
	 * dispatches it; true when the quirk handled the exit and the vCPU resumes */
	bool (*exit)(struct vcpu *vcpu);
	/* user_gp - a ring-3 program's #GP, its user context @r, its IOPL @iopl:
	 * true when the quirk carried the instruction out (@r advanced) */
	bool (*user_gp)(struct vcpu *vcpu, struct kvm_regs *r, unsigned iopl);
	/* boot_linux - a Linux kernel is about to be loaded into @vm: kernel
	 * options that avoid what the host cannot do into @buf (@len bytes), and
	 * whatever the quirks must watch for while it runs. 0 or -errno. */
	int (*boot_linux)(struct vm *vm, char *buf, size_t len);
	/* destroy - release what the quirks keep for @vm (in vm->quirks_state) */
	void (*destroy)(struct vm *vm);
	/* save - what they keep, for a snapshot, into @buf (@len bytes): its length
	 * (0: nothing) or -errno; load - take it back into a fresh @vm */
	ssize_t (*save)(struct vm *vm, void *buf, size_t len);
	int (*load)(struct vm *vm, const void *buf, size_t len);
};

struct vm_config {
	uint64_t mem_size;
	uint64_t hotplug_size; /* a hotpluggable region of this many bytes (0: none) */
	int nr_vcpus;
	bool strict_io;	      /* an access no device claims stops the guest (payload mode) */
	bool irqchip;	      /* in-kernel IOAPIC, PIC and local APICs (a Linux guest) */
	bool shutdown_resets; /* a triple fault resets the machine (Linux's reboot=t) */
	int cpuid_policy;     /* enum cpuid_policy (cpuid.h); 0 is "host" */
	const struct vm_quirks *quirks; /* NULL on hardware-virtualised KVM */
};

struct vm {
	int kvm_fd, vm_fd;
	int run_size;
	struct gmem mem;
	struct bus pio, mmio;
	int nr_vcpus;
	struct vcpu *vcpus;
	struct kvm_cpuid2 *cpuid;
	int cpuid_policy;
	bool strict_io;
	bool irqchip;
	bool shutdown_resets;
	uint64_t tsc_khz;
	const struct vm_quirks *quirks;
	void *quirks_state; /* theirs, or NULL */
	uint64_t created_ns;
	_Atomic uint64_t first_guest_ns; /* CLOCK_MONOTONIC of the guest's start marker */

	pthread_mutex_t lock; /* protects the stop and pause state below */
	pthread_cond_t pause_cond;
	bool pausing;  /* vCPUs are asked to wait out of KVM_RUN */
	int nr_paused; /* ... and this many do */
	bool stopping;
	bool reset; /* ... to boot again (vm_reset): the VMM sets the machine up anew */
	int exit_status;
	char stop_reason[512];
	int nr_finished;
	int finished_status;
	int stop_fd; /* eventfd, readable once the VM is stopping */
};

/* vm_create - open KVM and build the VM of @cfg: RAM, memslots, vCPUs. -errno, logged. */
int vm_create(struct vm *vm, const struct vm_config *cfg);

/* vm_destroy - stop the vCPU threads if running and free everything. */
void vm_destroy(struct vm *vm);

/* vm_start - start one thread per vCPU. */
int vm_start(struct vm *vm);

/*
 * vm_stop - stop the guest with exit @status; the first call wins, later ones
 * only log. @fmt says why (shown to the user when @status is an error).
 */
void vm_stop(struct vm *vm, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * vm_reset - stop the guest to boot it again (a reboot): as vm_stop with
 * status 0, and vm->reset tells the VMM to set the machine up anew.
 */
void vm_reset(struct vm *vm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* vm_stopping - true once vm_stop was called. */
bool vm_stopping(struct vm *vm);

/*
 * vm_pause - every running vCPU out of KVM_RUN, waiting until vm_resume:
 * their state may then be read and written (a snapshot). Returns once all
 * are; -ESHUTDOWN if the VM stops meanwhile.
 */
int vm_pause(struct vm *vm);

/* vm_resume - let the paused vCPUs run again. */
void vm_resume(struct vm *vm);

/* vm_wait - join every vCPU thread; returns the exit status. */
int vm_wait(struct vm *vm);

/*
 * vcpu_finish - called on @vcpu's thread: this vCPU has nothing more to run
 * (status @status). When every vCPU has finished the VM stops with the first
 * non-zero status, or 0.
 */
void vcpu_finish(struct vcpu *vcpu, int status);

/*
 * vcpu_fault - called on @vcpu's thread: the guest did something it must be
 * stopped for. Logs @fmt with the vCPU's registers and instruction bytes,
 * then stops the VM with VM_EXIT_GUEST_FAULT.
 */
void vcpu_fault(struct vcpu *vcpu, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * vcpu_pio - one port access of @size bytes at @port by @vcpu, dispatched on
 * the port bus; @data is read or filled. An unclaimed port stops a strict VM
 * (-ENOENT) and reads all-ones otherwise.
 */
int vcpu_pio(struct vcpu *vcpu, uint16_t port, void *data, uint32_t size, bool is_write);

/* vcpu_read_virt - read @len bytes at guest virtual @gva through @vcpu's page tables. */
int vcpu_read_virt(struct vcpu *vcpu, uint64_t gva, void *dst, uint64_t len);

/* vcpu_write_virt - write @len bytes at guest virtual @gva, ignoring the guest's page protections. */
int vcpu_write_virt(struct vcpu *vcpu, uint64_t gva, const void *src, uint64_t len);

#endif
