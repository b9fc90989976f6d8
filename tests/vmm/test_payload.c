/*
 * test_payload.c - lego-vmm as a user runs it: payloads on 1 and 2 vCPUs,
 * write-then-verify, guests that misbehave, wrong command lines, the control
 * socket and SIGTERM. Each case is a guest program plus the host's checks.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl.h"
#include "test.h"
#include "vm.h"

#define VMM	      test_path("bin/lego-vmm")
#define PAYLOAD(name) test_path("guest/payloads/" name ".bin")

static void vmm_run(struct proc_result *res, int timeout_s, const char *payload, const char *mem,
		    const char *cpus, const char *args)
{
	char *argv[] = {(char *)VMM,  "--payload", (char *)payload,
			"--memory",   (char *)mem, "--cpus",
			(char *)cpus, "--args",	   (char *)(args ? args : ""),
			NULL};

	proc_run(argv, timeout_s, res);
	ASSERT(!res->timed_out, "lego-vmm hung; stderr:\n%s", res->err);
}

TEST(hello_on_one_vcpu_reports_index_and_memory)
{
	struct proc_result r;
	uint64_t v;

	test_require_kvm();
	vmm_run(&r, 30, PAYLOAD("hello"), "64M", "1", NULL);
	ASSERT_EQ(r.status, 0);
	ASSERT_CONTAINS(r.out, "hello from vCPU 0 of 1, 64 MiB of memory");
	ASSERT(report_get(r.out, 0, "vcpu_index", &v) && v == 0);
	ASSERT(report_get(r.out, 0, "nr_vcpus", &v) && v == 1);
	ASSERT(report_get(r.out, 0, "mem_size", &v) && v == 64ULL << 20);
	proc_result_free(&r);
}

TEST(hello_on_two_vcpus_each_knows_its_index)
{
	struct proc_result r;
	uint64_t v;

	test_require_kvm();
	vmm_run(&r, 30, PAYLOAD("hello"), "128M", "2", NULL);
	ASSERT_EQ(r.status, 0);
	for (int i = 0; i < 2; i++) {
		ASSERT(report_get(r.out, i, "vcpu_index", &v), "no report from vCPU %d", i);
		ASSERT_EQ(v, i);
		ASSERT(report_get(r.out, i, "nr_vcpus", &v) && v == 2);
		ASSERT(report_get(r.out, i, "mem_size", &v) && v == 128ULL << 20);
	}
	ASSERT_EQ(report_count(r.out, "vcpu_index"), 2);
	proc_result_free(&r);
}

TEST(cpuid_policies_are_accepted_by_kvm_and_bad_ones_refused)
{
	char *argv[] = {(char *)test_path("bin/lego-vmm"), "--cpuid", "baseline", "--payload",
			(char *)PAYLOAD("hello"),	   "--cpus",  "2",	  NULL};
	struct proc_result r;

	test_require_kvm();
	proc_run(argv, 30, &r); /* KVM_SET_CPUID2 takes the reduced table on every vCPU */
	ASSERT_EQ(r.status, 0);
	ASSERT_EQ(report_count(r.out, "vcpu_index"), 2);
	proc_result_free(&r);
	argv[2] = "fastest";
	proc_run(argv, 30, &r);
	ASSERT_EQ(r.status, 2);
	ASSERT_CONTAINS(r.err, "not a policy");
	proc_result_free(&r);
}

TEST(guest_exit_status_reaches_the_host)
{
	struct proc_result r;

	test_require_kvm();
	vmm_run(&r, 30, PAYLOAD("hello"), "64M", "2", "status=42");
	ASSERT_EQ(r.status, 42);
	proc_result_free(&r);
}

/*
 * A guest that makes the VMM make a system call outside its vCPU thread's
 * seccomp filter (the payload port a test build of lego-vmm opens on
 * purpose, LEGO_TEST_SYSCALL_PROBE=1): the VMM stops, and says which thread
 * made which call. With the filters off it goes on; without the variable the
 * port is a guest's fault.
 */
TEST(a_system_call_outside_the_filter_stops_the_vmm_with_a_message)
{
	struct proc_result r;

	test_require_kvm();
	unsetenv("LEGO_SECCOMP");
	setenv("LEGO_TEST_SYSCALL_PROBE", "1", 1);
	vmm_run(&r, 30, PAYLOAD("hello"), "64M", "2", "probe=1 status=7");
	ASSERT_EQ(r.status, VM_EXIT_VMM_ERROR);
	ASSERT_CONTAINS(r.err, "lego-vmm: error: thread vcpu0 made system call getppid (110), "
			       "which its seccomp filter does not allow");
	proc_result_free(&r);
	setenv("LEGO_SECCOMP", "off", 1);
	vmm_run(&r, 30, PAYLOAD("hello"), "64M", "2", "probe=1 status=7");
	ASSERT_EQ(r.status, 7);
	proc_result_free(&r);
	unsetenv("LEGO_SECCOMP");
	unsetenv("LEGO_TEST_SYSCALL_PROBE");
	vmm_run(&r, 30, PAYLOAD("hello"), "64M", "2", "probe=1 status=7");
	ASSERT(r.status != 7 && r.status != VM_EXIT_VMM_ERROR, "status %d", r.status);
	ASSERT_CONTAINS(r.err, "system call probe port 0x51c, which is off");
	proc_result_free(&r);
}

static void check_verify(const char *mode, const char *size, const char *passes, uint64_t pages)
{
	char args[128];
	struct proc_result r;
	uint64_t v;

	snprintf(args, sizeof(args), "op=verify mode=%s size=%s passes=%s", mode, size, passes);
	vmm_run(&r, 120, PAYLOAD("touch"), "320M", "2", args);
	ASSERT_EQ(r.status, 0);
	for (int i = 0; i < 2; i++) {
		ASSERT(report_get(r.out, i, "mismatches", &v), "vCPU %d did not finish:\n%s", i,
		       r.out);
		ASSERT_EQ(v, 0);
		ASSERT(report_get(r.out, i, "pages", &v) && v == pages);
		ASSERT(report_get(r.out, i, "p1_verify_ns_per_page", &v));
	}
	proc_result_free(&r);
}

TEST(write_then_verify_256m_on_two_vcpus)
{
	test_require_kvm();
	check_verify("seq", "256M", "2", 32768);
	check_verify("rand", "256M", "2", 32768);
}

TEST(write_then_verify_zipf)
{
	test_require_kvm();
	check_verify("zipf", "64M", "2", 8192);
}

TEST(write_then_verify_detects_a_corrupted_page)
{
	struct proc_result r;
	uint64_t v;

	test_require_kvm();
	vmm_run(&r, 60, PAYLOAD("touch"), "64M", "2", "op=verify size=16M corrupt=1");
	ASSERT_EQ(r.status, 1);
	ASSERT(report_get(r.out, 0, "mismatches", &v) && v == 1);
	ASSERT(report_get(r.out, 1, "mismatches", &v) && v == 0);
	ASSERT_CONTAINS(r.out, "fails verification (holds version 1, expected 1)");
	proc_result_free(&r);
}

static void check_fault(const char *what, const char *message)
{
	char args[64];
	struct proc_result r;

	snprintf(args, sizeof(args), "what=%s", what);
	vmm_run(&r, 30, PAYLOAD("fault"), "64M", "2", args);
	ASSERT_EQ(r.status, VM_EXIT_GUEST_FAULT);
	ASSERT_CONTAINS(r.err, "guest stopped: vCPU 0");
	ASSERT_CONTAINS(r.err, message);
	ASSERT_CONTAINS(r.err, "instruction bytes at RIP");
	ASSERT(r.seconds < 10, "took %.1f s to stop", r.seconds);
	proc_result_free(&r);
}

TEST(touching_memory_outside_guest_ram_stops_the_vmm)
{
	test_require_kvm();
	check_fault("outside", "at guest physical 0x4100000: outside guest RAM (64 MiB)");
	check_fault("unmapped", "#PF page fault at address 0x10000000000 (not mapped, read)");
	check_fault("null", "#PF page fault at address 0 (not mapped, read)");
	check_fault("badprint", "print of a string at 0x4100000, outside guest RAM");
}

TEST(privileged_instruction_or_unclaimed_port_stops_the_vmm)
{
	test_require_kvm();
	check_fault("priv", "#GP general protection");
	check_fault("port", "read of 4 byte(s) at port 0x7770, which no device claims");
}

TEST(pvm_compat_is_what_lets_ring3_port_io_work_on_kvm_pvm)
{
	char *argv[] = {(char *)VMM,	   "--payload", (char *)PAYLOAD("hello"), "--memory", "64M",
			"--no-pvm-compat", NULL};
	struct proc_result r;

	test_require_kvm();
	if (access("/sys/module/kvm_pvm", F_OK) != 0)
		test_skip("not a kvm_pvm host: pvm_compat never runs here");
	proc_run(argv, 30, &r);
	ASSERT_EQ(r.status, VM_EXIT_GUEST_FAULT);
	ASSERT_CONTAINS(r.err, "pvm_compat workarounds off");
	ASSERT_CONTAINS(r.err, "#GP");
	proc_result_free(&r);
}

TEST(files_that_are_not_payloads_are_refused)
{
	char junk[300];
	FILE *f;
	struct proc_result r;

	test_require_kvm();
	snprintf(junk, sizeof(junk), "%s/junk.bin", test_tmpdir());
	f = fopen(junk, "w");
	fputs("this is not a payload, but it is long enough to hold a header", f);
	fclose(f);
	vmm_run(&r, 30, junk, "64M", "1", NULL);
	ASSERT_EQ(r.status, VM_EXIT_VMM_ERROR);
	ASSERT_CONTAINS(r.err, "is not a lego payload");
	proc_result_free(&r);
	vmm_run(&r, 30, "/nonexistent/payload.bin", "64M", "1", NULL);
	ASSERT_EQ(r.status, VM_EXIT_VMM_ERROR);
	ASSERT_CONTAINS(r.err, "cannot read payload /nonexistent/payload.bin");
	proc_result_free(&r);
}

static void check_usage(const char *message, char *a1, char *a2, char *a3)
{
	char *argv[] = {(char *)VMM, a1, a2, a3, NULL};
	struct proc_result r;

	proc_run(argv, 10, &r);
	ASSERT_EQ(r.status, VM_EXIT_USAGE);
	ASSERT_CONTAINS(r.err, message);
	ASSERT_CONTAINS(r.err, "Try 'lego-vmm --help'");
	proc_result_free(&r);
}

TEST(wrong_command_lines_get_a_clear_error)
{
	char *p = (char *)PAYLOAD("hello");

	check_usage("--cpus: '0' is not a vCPU count", "--payload", p, "--cpus=0");
	check_usage("--cpus: 'two' is not a vCPU count", "--payload", p, "--cpus=two");
	check_usage("--memory: '12Q' is not a size", "--payload", p, "--memory=12Q");
	check_usage("--memory: 1M is not a multiple of 4 KiB of at least 4M", "--payload", p,
		    "--memory=1M");
	check_usage("unknown option '--bogus'", "--payload", p, "--bogus");
	check_usage("unexpected argument 'extra'", "--payload", p, "extra");
	check_usage("nothing to run: give --kernel BZIMAGE or --payload FILE", "--cpus", "1", NULL);
	check_usage("--memory needs a value", "--memory", NULL, NULL);
}

TEST(control_socket_answers_status_and_sigterm_stops_cleanly)
{
	char sock[300], err[256];
	char *argv[] = {(char *)VMM, "--payload", (char *)PAYLOAD("hello"),
			"--memory",  "96M",	  "--cpus",
			"2",	     "--args",	  "spin=1",
			"--control", sock,	  NULL};
	struct proc_result r;
	json_t *req, *res = NULL, *vcpus;
	pid_t pid;

	test_require_kvm();
	snprintf(sock, sizeof(sock), "%s/vmm.sock", test_tmpdir());
	pid = proc_spawn(argv);
	ASSERT(wait_for_path(sock, 10000), "no control socket at %s", sock);
	req = json_pack("{s:s}", "cmd", "status");
	/* the reports (3 per vCPU) show that both vCPUs got past main's start */
	for (int tries = 0; tries < 500; tries++) {
		json_decref(res);
		res = ctl_call(sock, req, 2000, err, sizeof(err));
		ASSERT(res, "%s", err);
		if (json_integer_value(json_object_get(res, "reports")) == 6)
			break;
		usleep(10000);
	}
	ASSERT(json_is_true(json_object_get(res, "ok")));
	ASSERT(strcmp(json_string_value(json_object_get(res, "state")), "running") == 0);
	ASSERT_EQ(json_integer_value(json_object_get(res, "nr_vcpus")), 2);
	ASSERT_EQ(json_integer_value(json_object_get(res, "memory_bytes")), 96LL << 20);
	ASSERT_EQ(json_integer_value(json_object_get(res, "reports")), 6);
	ASSERT(json_integer_value(json_object_get(res, "first_guest_ns")) > 0);
	vcpus = json_object_get(res, "vcpus");
	ASSERT_EQ(json_array_size(vcpus), 2);
	ASSERT(strcmp(json_string_value(json_object_get(json_array_get(vcpus, 1), "state")),
		      "running") == 0);
	json_decref(res);
	json_decref(req);

	kill(pid, SIGTERM);
	proc_collect(pid, 10, &r);
	ASSERT(!r.timed_out, "lego-vmm did not stop on SIGTERM");
	ASSERT_EQ(r.status, 0);
	ASSERT_CONTAINS(r.err, "Terminated: stopping the guest");
	ASSERT(access(sock, F_OK) != 0, "control socket left behind");
	proc_result_free(&r);
}
