/*
 * test_sandbox.c - vmm/sandbox.c: a thread under its role's seccomp filter
 * makes the calls it needs, and one outside it stops the process with a
 * message naming the thread and the call. Each case runs in a child process
 * (a filter stays for the life of its thread, a trap ends the process).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "sandbox.h"
#include "test.h"
#include "vm.h"

struct probe {
	enum sandbox_role role;
	void (*act)(void);
};

static void *probe_main(void *arg)
{
	struct probe *p = arg;

	sandbox_enter(p->role, "probe");
	p->act();
	return NULL;
}

/* In a child: sandbox_init(@mode), a thread of @role doing @act; the child's exit status
 * (or 128 + signal), its stderr in @err. */
static int in_child(enum sandbox_mode mode, enum sandbox_role role, void (*act)(void), char *err,
		    size_t errlen)
{
	int pipefd[2], status;
	ssize_t n, got = 0;
	pid_t pid;

	ASSERT(pipe(pipefd) == 0);
	pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		struct probe p = {role, act};
		pthread_t t;

		dup2(pipefd[1], STDERR_FILENO);
		close(pipefd[0]);
		unsetenv("LEGO_SECCOMP");
		if (sandbox_init(mode))
			_exit(100);
		if (pthread_create(&t, NULL, probe_main, &p))
			_exit(101);
		pthread_join(t, NULL);
		_exit(0);
	}
	close(pipefd[1]);
	while (got < (ssize_t)errlen - 1 && (n = read(pipefd[0], err + got, errlen - 1 - got)) > 0)
		got += n;
	err[got] = '\0';
	close(pipefd[0]);
	ASSERT(waitpid(pid, &status, 0) == pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void do_getppid(void)
{
	syscall(SYS_getppid);
}

static void do_everyday_things(void)
{
	struct timespec ts = {0, 1000};
	time_t now = time(NULL);
	struct tm tm;
	void *p = malloc(1 << 20); /* an mmap */
	int efd = (int)syscall(SYS_eventfd2, 0, 0);

	memset(p, 1, 1 << 20);
	free(p);
	gmtime_r(&now, &tm); /* the RTC's, on a vCPU thread: glibc reads the time zone once */
	nanosleep(&ts, NULL);
	if (efd >= 0) {
		uint64_t one = 1;

		if (write(efd, &one, sizeof(one)) != sizeof(one))
			_exit(50);
		close(efd);
	}
}

static void do_execve(void)
{
	char *argv[] = {"/bin/true", NULL};

	execv(argv[0], argv);
}

static void do_tty_ioctl(void)
{
	struct termios t;

	ioctl(STDIN_FILENO, TCGETS, &t); /* not a KVM request: a vCPU thread has no business */
}

static void do_kvm_ioctl(void)
{
	/* a vCPU's KVM requests (on a descriptor that is no KVM one: ENOTTY, not SIGSYS) */
	ioctl(STDIN_FILENO, KVM_RUN, 0);
	ioctl(STDIN_FILENO, KVM_SET_REGS, NULL);
	ioctl(STDIN_FILENO, KVM_IRQFD, NULL);
}

static void do_kvm_memory_slot(void)
{
	/* a KVM request, but none of a vCPU's: a memory slot maps the VMM's memory into the
	 * guest */
	ioctl(STDIN_FILENO, KVM_SET_USER_MEMORY_REGION, NULL);
}

static void do_kvm_create_vm(void)
{
	ioctl(STDIN_FILENO, KVM_CREATE_VM, 0);
}

static void do_tap_offload(void)
{
	ioctl(STDIN_FILENO, TUNSETOFFLOAD, 0); /* what DRIVER_OK does on the vCPU thread */
}

static void do_open_for_writing(void)
{
	int fd = open("/tmp/lego-sandbox-probe", O_WRONLY | O_CREAT, 0600);

	if (fd >= 0)
		close(fd);
}

static void do_open_for_reading(void)
{
	int fd = open("/etc/hosts", O_RDONLY);

	if (fd >= 0)
		close(fd);
}

TEST(a_call_outside_the_filter_stops_the_vmm_and_names_the_call)
{
	char err[1024];

	ASSERT_EQ(in_child(SB_ON, SB_VCPU, do_getppid, err, sizeof(err)), VM_EXIT_VMM_ERROR);
	ASSERT_CONTAINS(err, "thread probe made system call getppid (110)");
	ASSERT_CONTAINS(err, "seccomp filter does not allow");
	ASSERT_EQ(in_child(SB_ON, SB_DEVICE, do_execve, err, sizeof(err)), VM_EXIT_VMM_ERROR);
	ASSERT_CONTAINS(err, "system call execve");
	ASSERT_EQ(in_child(SB_ON, SB_MEMORY, do_open_for_writing, err, sizeof(err)),
		  VM_EXIT_VMM_ERROR);
	ASSERT_CONTAINS(err, "system call openat");
	ASSERT_EQ(in_child(SB_ON, SB_VCPU, do_tty_ioctl, err, sizeof(err)), VM_EXIT_VMM_ERROR);
	ASSERT_CONTAINS(err, "system call ioctl");
	ASSERT_EQ(in_child(SB_ON, SB_VCPU, do_open_for_writing, err, sizeof(err)),
		  VM_EXIT_VMM_ERROR);
	ASSERT_CONTAINS(err, "system call openat");
	/* a vCPU thread makes a vCPU's KVM requests, no others */
	ASSERT_EQ(in_child(SB_ON, SB_VCPU, do_kvm_memory_slot, err, sizeof(err)),
		  VM_EXIT_VMM_ERROR);
	ASSERT_CONTAINS(err, "thread probe made system call ioctl");
	ASSERT_EQ(in_child(SB_ON, SB_VCPU, do_kvm_create_vm, err, sizeof(err)), VM_EXIT_VMM_ERROR);
	ASSERT_CONTAINS(err, "thread probe made system call ioctl");
}

TEST(each_role_makes_the_calls_it_needs)
{
	char err[1024];

	for (int r = 0; r < NR_SB_ROLES; r++) {
		ASSERT_EQ(
			in_child(SB_ON, (enum sandbox_role)r, do_everyday_things, err, sizeof(err)),
			0);
		ASSERT_EQ(err[0], '\0');
	}
	ASSERT_EQ(in_child(SB_ON, SB_VCPU, do_kvm_ioctl, err, sizeof(err)), 0);
	ASSERT_EQ(in_child(SB_ON, SB_VCPU, do_tap_offload, err, sizeof(err)), 0);
	ASSERT_EQ(in_child(SB_ON, SB_DEVICE, do_open_for_reading, err, sizeof(err)), 0);
	ASSERT_EQ(in_child(SB_ON, SB_MEMORY, do_open_for_reading, err, sizeof(err)), 0);
	/* a vCPU thread is refused a file (EACCES), and goes on */
	ASSERT_EQ(in_child(SB_ON, SB_VCPU, do_open_for_reading, err, sizeof(err)), 0);
	ASSERT_EQ(err[0], '\0');
}

static void *plain_thread(void *arg)
{
	prctl(PR_SET_NAME, "control");
	syscall(SYS_getppid); /* anything but the calls never made */
	syscall(SYS_ptrace, 0, 0, 0, 0);
	return arg;
}

/* The main thread, and a thread without a role started after sandbox_init (the control
 * thread), may make any call but those lego-vmm never makes. */
TEST(threads_without_a_role_are_refused_the_calls_never_made)
{
	int pipefd[2], status;
	char err[1024];
	ssize_t n, got;
	pid_t pid;

	for (int k = 0; k < 2; k++) {
		ASSERT(pipe(pipefd) == 0);
		pid = fork();
		ASSERT(pid >= 0);
		if (pid == 0) {
			pthread_t t;
			int fd;

			dup2(pipefd[1], STDERR_FILENO);
			unsetenv("LEGO_SECCOMP");
			if (sandbox_init(SB_ON))
				_exit(100);
			fd = open("/tmp/lego-sandbox-main", O_WRONLY | O_CREAT, 0600);
			if (fd < 0 || syscall(SYS_getppid) <= 0)
				_exit(101); /* the main thread's everyday calls */
			close(fd);
			unlink("/tmp/lego-sandbox-main");
			if (k == 0) {
				char *argv[] = {"/bin/true", NULL};

				prctl(PR_SET_NAME, "lego-vmm");
				execv(argv[0], argv);
				_exit(102);
			}
			pthread_create(&t, NULL, plain_thread, NULL);
			pthread_join(t, NULL);
			_exit(103);
		}
		close(pipefd[1]);
		got = 0;
		while (got < (ssize_t)sizeof(err) - 1 &&
		       (n = read(pipefd[0], err + got, sizeof(err) - 1 - got)) > 0)
			got += n;
		err[got] = '\0';
		close(pipefd[0]);
		ASSERT(waitpid(pid, &status, 0) == pid);
		ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == VM_EXIT_VMM_ERROR,
		       "status %#x: %s", status, err);
		ASSERT_CONTAINS(err, k == 0 ? "thread lego-vmm made system call execve"
					    : "thread control made system call ptrace");
	}
}

static pthread_barrier_t arenas_met;

/* A vCPU thread's mallocs and frees while 15 others make theirs: more threads than
 * glibc's first 8 arenas at once, which (glibc 2.36) opens
 * /sys/devices/system/cpu/online to size the rest unless sandbox_init set M_ARENA_MAX,
 * and a thread's heap shrunk, which opens /proc/sys/vm/overcommit_memory once. */
static void *arena_thread(void *arg)
{
	void *p[32];

	sandbox_enter(SB_VCPU, "probe");
	pthread_barrier_wait(&arenas_met);
	for (int i = 0; i < 32; i++) {
		p[i] = malloc(64 << 10);
		memset(p[i], 1, 64);
	}
	pthread_barrier_wait(&arenas_met);
	for (int i = 0; i < 32; i++)
		free(p[i]);
	return arg;
}

TEST(many_vcpu_threads_allocating_at_once_stay_within_the_filter)
{
	int status;
	pid_t pid = fork();

	ASSERT(pid >= 0);
	if (pid == 0) {
		pthread_t t[16];

		unsetenv("LEGO_SECCOMP");
		if (sandbox_init(SB_ON))
			_exit(100);
		pthread_barrier_init(&arenas_met, NULL, 16);
		for (int i = 0; i < 16; i++)
			if (pthread_create(&t[i], NULL, arena_thread, NULL))
				_exit(101);
		for (int i = 0; i < 16; i++)
			pthread_join(t[i], NULL);
		_exit(0);
	}
	ASSERT(waitpid(pid, &status, 0) == pid);
	ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	       "16 filtered threads allocating at once: status %#x", status);
}

TEST(log_and_off_let_the_call_through)
{
	char err[1024];

	ASSERT_EQ(in_child(SB_LOG, SB_VCPU, do_getppid, err, sizeof(err)), 0);
	ASSERT_EQ(in_child(SB_OFF, SB_VCPU, do_getppid, err, sizeof(err)), 0);
	ASSERT_EQ(sandbox_mode_parse("on"), SB_ON);
	ASSERT_EQ(sandbox_mode_parse("log"), SB_LOG);
	ASSERT_EQ(sandbox_mode_parse("strict"), -1);
}
