/* sandbox.c - the seccomp filters of lego-vmm's guest-facing threads (see sandbox.h). */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <linux/userfaultfd.h>
#include <rdma/rdma_user_ioctl_cmds.h>
#include <stdbool.h>
#include <malloc.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sandbox.h"
#include "vm.h"

#define NR_NAMES 512 /* x86-64 system call numbers are below this */

static enum sandbox_mode mode =
	SB_OFF;		      /* until sandbox_init: a program that only links the VM code */
static bool rdma;	      /* sandbox_allow_rdma */
static char *names[NR_NAMES]; /* resolved once, before any filter: the handler allocates nothing */
static __thread char thread_name[16];

/* Every role: memory, threads, time, signals, the descriptors it was given. */
static const int base_calls[] = {
	SCMP_SYS(read),		 SCMP_SYS(write),
	SCMP_SYS(readv),	 SCMP_SYS(writev),
	SCMP_SYS(pread64),	 SCMP_SYS(pwrite64),
	SCMP_SYS(close),	 SCMP_SYS(futex),
	SCMP_SYS(mmap),		 SCMP_SYS(munmap),
	SCMP_SYS(mprotect),	 SCMP_SYS(madvise),
	SCMP_SYS(brk),		 SCMP_SYS(mremap),
	SCMP_SYS(rt_sigreturn),	 SCMP_SYS(rt_sigprocmask),
	SCMP_SYS(sigaltstack),	 SCMP_SYS(exit),
	SCMP_SYS(exit_group),	 SCMP_SYS(gettid),
	SCMP_SYS(getpid),	 SCMP_SYS(tgkill),
	SCMP_SYS(clock_gettime), SCMP_SYS(clock_nanosleep),
	SCMP_SYS(nanosleep),	 SCMP_SYS(sched_yield),
	SCMP_SYS(getrandom),	 SCMP_SYS(restart_syscall),
	SCMP_SYS(poll),		 SCMP_SYS(ppoll),
	SCMP_SYS(epoll_wait),	 SCMP_SYS(epoll_pwait),
	SCMP_SYS(lseek),	 SCMP_SYS(fstat),
	SCMP_SYS(newfstatat),	 SCMP_SYS(fcntl),
	SCMP_SYS(eventfd2),	 SCMP_SYS(set_robust_list),
	SCMP_SYS(rseq),		 SCMP_SYS(sched_getaffinity),
};

/* Talking to memory and storage servers: connections made again after a failure, name
 * resolution included (it reads /etc/hosts and the like, never writes). */
static const int net_calls[] = {
	SCMP_SYS(connect),	  SCMP_SYS(sendmsg),	 SCMP_SYS(recvmsg),    SCMP_SYS(sendto),
	SCMP_SYS(recvfrom),	  SCMP_SYS(sendmmsg),	 SCMP_SYS(setsockopt), SCMP_SYS(getsockopt),
	SCMP_SYS(getsockname),	  SCMP_SYS(getpeername), SCMP_SYS(shutdown),   SCMP_SYS(bind),
	SCMP_SYS(io_uring_enter),
};

static const int device_calls[] = {SCMP_SYS(fsync), SCMP_SYS(fdatasync), SCMP_SYS(fallocate)};
static const int memory_calls[] = {SCMP_SYS(fallocate)};

/* The KVM requests of a vCPU's own loop: running, its registers and state (resets, the
 * payloads' and pvm_compat's fix-ups, a failure's dump), interrupts raised by devices
 * emulated on it, and the doorbells and interrupts a virtio device wires up when its
 * driver starts it (a register write). Not: making VMs, vCPUs, memory slots or devices. */
static const unsigned long vcpu_ioctls[] = {
	KVM_RUN,
	KVM_GET_REGS,
	KVM_SET_REGS,
	KVM_GET_SREGS,
	KVM_SET_SREGS,
	KVM_GET_FPU,
	KVM_SET_FPU,
	KVM_GET_MSRS,
	KVM_SET_MSRS,
	KVM_GET_VCPU_EVENTS,
	KVM_SET_VCPU_EVENTS,
	KVM_GET_MP_STATE,
	KVM_SET_MP_STATE,
	KVM_GET_XSAVE,
	KVM_SET_XSAVE,
	KVM_GET_XCRS,
	KVM_SET_XCRS,
	KVM_GET_DEBUGREGS,
	KVM_SET_DEBUGREGS,
	KVM_GET_LAPIC,
	KVM_SET_LAPIC,
	KVM_TRANSLATE,
	KVM_GET_MSR_INDEX_LIST,
	KVM_IRQ_LINE,
	KVM_IRQFD,
	KVM_IOEVENTFD,
	TUNSETOFFLOAD, /* the TAP's, at DRIVER_OK */
};

/* Never made by lego-vmm, on any thread: running programs, other processes' memory,
 * privileges and identities, mounts and namespaces, the kernel's own state. The main
 * thread (set-up, reboots) and the control thread (snapshots, migration, the agent's
 * commands) are under this list; the threads facing the guest under their role's
 * allow list besides. */
static const int never_calls[] = {
	SCMP_SYS(execve),
	SCMP_SYS(execveat),
	SCMP_SYS(ptrace),
	SCMP_SYS(process_vm_readv),
	SCMP_SYS(process_vm_writev),
	SCMP_SYS(pidfd_getfd),
	SCMP_SYS(kcmp),
	SCMP_SYS(mount),
	SCMP_SYS(umount2),
	SCMP_SYS(pivot_root),
	SCMP_SYS(chroot),
	SCMP_SYS(unshare),
	SCMP_SYS(setns),
	SCMP_SYS(fsopen),
	SCMP_SYS(fsmount),
	SCMP_SYS(fsconfig),
	SCMP_SYS(move_mount),
	SCMP_SYS(open_tree),
	SCMP_SYS(mount_setattr),
	SCMP_SYS(setuid),
	SCMP_SYS(setgid),
	SCMP_SYS(setreuid),
	SCMP_SYS(setregid),
	SCMP_SYS(setresuid),
	SCMP_SYS(setresgid),
	SCMP_SYS(setfsuid),
	SCMP_SYS(setfsgid),
	SCMP_SYS(setgroups),
	SCMP_SYS(capset),
	SCMP_SYS(init_module),
	SCMP_SYS(finit_module),
	SCMP_SYS(delete_module),
	SCMP_SYS(kexec_load),
	SCMP_SYS(kexec_file_load),
	SCMP_SYS(reboot),
	SCMP_SYS(swapon),
	SCMP_SYS(swapoff),
	SCMP_SYS(bpf),
	SCMP_SYS(perf_event_open),
	SCMP_SYS(keyctl),
	SCMP_SYS(add_key),
	SCMP_SYS(request_key),
	SCMP_SYS(personality),
	SCMP_SYS(iopl),
	SCMP_SYS(ioperm),
	SCMP_SYS(acct),
	SCMP_SYS(settimeofday),
	SCMP_SYS(clock_settime),
	SCMP_SYS(clock_adjtime),
	SCMP_SYS(adjtimex),
	SCMP_SYS(quotactl),
	SCMP_SYS(fanotify_init),
	SCMP_SYS(open_by_handle_at),
	SCMP_SYS(name_to_handle_at),
	SCMP_SYS(mknod),
	SCMP_SYS(mknodat),
	SCMP_SYS(syslog),
	SCMP_SYS(sethostname),
	SCMP_SYS(setdomainname),
	SCMP_SYS(vhangup),
	SCMP_SYS(uselib),
	SCMP_SYS(lookup_dcookie),
};

int sandbox_mode_parse(const char *s)
{
	if (!strcmp(s, "on"))
		return SB_ON;
	if (!strcmp(s, "log"))
		return SB_LOG;
	if (!strcmp(s, "off"))
		return SB_OFF;
	return -1;
}

static void say(const char *s)
{
	ssize_t r = write(STDERR_FILENO, s, strlen(s));

	(void)r;
}

/* A call outside the thread's filter (SIGSYS from SECCOMP_RET_TRAP): say which, and stop. */
static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
	int nr = si->si_syscall;
	char num[16], *p = num + sizeof(num) - 1;
	unsigned u = nr < 0 ? 0 : (unsigned)nr;

	(void)sig, (void)uc;
	*p = '\0';
	do
		*--p = (char)('0' + u % 10);
	while (u /= 10);
	if (!thread_name[0]) /* a thread without a role: its name as ps shows it */
		prctl(PR_GET_NAME, thread_name);
	say("lego-vmm: error: thread ");
	say(thread_name[0] ? thread_name : "?");
	say(" made system call ");
	say(nr >= 0 && nr < NR_NAMES && names[nr] ? names[nr] : "?");
	say(" (");
	say(p);
	say("), which its seccomp filter does not allow: the VMM stops (a bug in lego-vmm, or "
	    "a guest that reached code it should not have)\n");
	_exit(VM_EXIT_VMM_ERROR);
}

/* never_calls refused to the calling thread, and so to every thread it starts after. */
static int forbid_never_calls(void)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int r = ctx ? 0 : -ENOMEM;

	for (size_t i = 0; !r && i < sizeof(never_calls) / sizeof(never_calls[0]); i++)
		r = seccomp_rule_add(ctx, mode == SB_LOG ? SCMP_ACT_LOG : SCMP_ACT_TRAP,
				     never_calls[i], 0);
	if (!r)
		r = seccomp_load(ctx);
	seccomp_release(ctx);
	if (r)
		fprintf(stderr, "lego-vmm: error: the process's seccomp filter: %s\n",
			strerror(-r));
	return r ? -1 : 0;
}

int sandbox_init(enum sandbox_mode m)
{
	const char *env = getenv("LEGO_SECCOMP");
	struct sigaction sa = {.sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO};
	long ncpu;

	mode = m;
	if (env && *env) {
		int e = sandbox_mode_parse(env);

		if (e < 0) {
			fprintf(stderr, "lego-vmm: LEGO_SECCOMP=%s: give on, log or off\n", env);
			return -1;
		}
		mode = (enum sandbox_mode)e;
	}
	if (mode == SB_OFF)
		return 0;
	for (int i = 0; i < NR_NAMES; i++)
		if (!names[i])
			names[i] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, i);
	/* What glibc does once, lazily, with files, done here before any filter: the time
	 * zone (the first gmtime_r reads /etc/localtime: the RTC's, on a vCPU thread), and the
	 * CPUs counted for malloc's arenas (/sys/devices/system/cpu/online, when a ninth
	 * arena is made: seen with glibc 2.36, test_sandbox) */
	tzset();
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	mallopt(M_ARENA_MAX, 8 * (int)(ncpu > 0 ? ncpu : 1));
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL)) {
		fprintf(stderr, "lego-vmm: SIGSYS handler: %s\n", strerror(errno));
		return -1;
	}
	return forbid_never_calls();
}

static int allow(scmp_filter_ctx ctx, const int *calls, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, calls[i], 0);

		if (r)
			return r;
	}
	return 0;
}

/* ioctl, for the requests of one type only (KVMIO, UFFDIO). */
static int allow_ioctl_type(scmp_filter_ctx ctx, unsigned type)
{
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
				SCMP_A1(SCMP_CMP_MASKED_EQ, 0xff00, type << 8));
}

/* ioctl, for the requests in @reqs only (the kernel reads the request as 32 bits). */
static int allow_ioctls(scmp_filter_ctx ctx, const unsigned long *reqs, size_t n)
{
	int r = 0;

	for (size_t i = 0; !r && i < n; i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
				     SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, reqs[i]));
	return r;
}

/* The TAP's offloads, set when the guest's driver says DRIVER_OK (a register write: on the
 * vCPU thread) or resets the device. */
static int allow_tap_offload(scmp_filter_ctx ctx)
{
	static const unsigned long req = TUNSETOFFLOAD;

	return allow_ioctls(ctx, &req, 1);
}

/* sockets of the families a client of the servers uses, and read-only opens */
static int allow_net(scmp_filter_ctx ctx)
{
	static const int families[] = {AF_INET, AF_INET6, AF_UNIX, AF_NETLINK};
	int r = allow(ctx, net_calls, sizeof(net_calls) / sizeof(net_calls[0]));

	for (size_t i = 0; !r && i < sizeof(families) / sizeof(families[0]); i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
				     SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)families[i]));
	if (!r)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
				     SCMP_A2(SCMP_CMP_MASKED_EQ, O_ACCMODE | O_CREAT, O_RDONLY));
	return r;
}

static int build(scmp_filter_ctx ctx, enum sandbox_role role)
{
	int r = allow(ctx, base_calls, sizeof(base_calls) / sizeof(base_calls[0]));

	switch (role) {
	case SB_VCPU:
		if (!r)
			r = allow_ioctls(ctx, vcpu_ioctls,
					 sizeof(vcpu_ioctls) / sizeof(vcpu_ioctls[0]));
		/* A read-only open is refused, not fatal: glibc's free() reads
		 * /proc/sys/vm/overcommit_memory once, the first time it shrinks a thread's
		 * heap, and does without it (test_sandbox: many vCPU threads allocating) */
		return r ? r
			 : seccomp_rule_add(
				   ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(openat), 1,
				   SCMP_A2(SCMP_CMP_MASKED_EQ, O_ACCMODE | O_CREAT, O_RDONLY));
	case SB_DEVICE: /* virtio-mem's requests reach the ExCache's userfaultfd */
		if (!r)
			r = allow(ctx, device_calls,
				  sizeof(device_calls) / sizeof(device_calls[0]));
		if (!r)
			r = allow_ioctl_type(ctx, KVMIO);
		if (!r)
			r = allow_ioctl_type(ctx, UFFDIO);
		if (!r)
			r = allow_tap_offload(ctx);
		return r ? r : allow_net(ctx);
	case SB_MEMORY:
		if (!r)
			r = allow(ctx, memory_calls,
				  sizeof(memory_calls) / sizeof(memory_calls[0]));
		if (!r)
			r = allow_ioctl_type(ctx, UFFDIO);
		if (!r && rdma) /* the verbs' ioctl; a connection opens /dev/infiniband/rdma_cm */
			r = allow_ioctl_type(ctx, RDMA_IOCTL_MAGIC);
		if (!r && rdma)
			r = seccomp_rule_add(
				ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
				SCMP_A2(SCMP_CMP_MASKED_EQ, O_ACCMODE | O_CREAT, O_RDWR));
		return r ? r : allow_net(ctx);
	default:
		return -EINVAL;
	}
}

void sandbox_allow_rdma(void)
{
	rdma = true;
}

void sandbox_enter(enum sandbox_role role, const char *name)
{
	scmp_filter_ctx ctx;
	int r;

	snprintf(thread_name, sizeof(thread_name), "%s", name);
	prctl(PR_SET_NAME, thread_name);
	if (mode == SB_OFF)
		return;
	ctx = seccomp_init(mode == SB_LOG ? SCMP_ACT_LOG : SCMP_ACT_TRAP);
	r = ctx ? build(ctx, role) : -ENOMEM;
	if (!r)
		r = seccomp_load(ctx); /* this thread only: no TSYNC */
	seccomp_release(ctx);
	if (r) {
		fprintf(stderr, "lego-vmm: error: thread %s: its seccomp filter: %s\n", name,
			strerror(-r));
		_exit(VM_EXIT_VMM_ERROR);
	}
}
