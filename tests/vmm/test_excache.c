/*
 * test_excache.c - guest memory served from a memory server: write-then-verify
 * through a small ExCache with the resident set read from the kernel, the
 * applications of bench-app computing what they compute all local, live
 * resizing, and a memory server that dies under the guest.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl.h"
#include "memclient.h"
#include "test.h"
#include "vm.h"

#define VMM	      test_path("bin/lego-vmm")
#define PAYLOAD(name) test_path("guest/payloads/" name ".bin")

static json_t *ctl(const char *sock, const char *cmd)
{
	char err[256];
	json_t *req = json_pack("{s:s}", "cmd", cmd), *res;

	res = ctl_call(sock, req, 5000, err, sizeof(err));
	json_decref(req);
	return res;
}

static uint64_t jint(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	ASSERT(json_is_integer(v), "no integer \"%s\"", key);
	return (uint64_t)json_integer_value(v);
}

/* The guest RAM mapping's address, once the control socket answers. */
static uint64_t ram_hva(const char *sock)
{
	for (int i = 0; i < 1000; i++) {
		json_t *r = wait_for_path(sock, 10) ? ctl(sock, "excache") : NULL;

		if (r && json_is_true(json_object_get(r, "ok"))) {
			uint64_t hva = jint(r, "ram_hva");

			json_decref(r);
			return hva;
		}
		json_decref(r);
		usleep(10000);
	}
	test_fail(__FILE__, __LINE__, "the control socket %s never answered", sock);
}

static json_t *excache_line(const char *err)
{
	const char *p = strstr(err, "EXCACHE ");
	json_t *j;

	ASSERT(p, "no EXCACHE line in:\n%s", err);
	j = json_loadb(p + 8, strcspn(p + 8, "\n"), 0, NULL);
	ASSERT(j);
	return j;
}

static uint64_t memsrv_used_pages(const char *addr)
{
	struct memclient mc;
	struct memclient_cred c = {.vnode = 424242, .nr_pages = 1};
	struct lmp_stat st;
	char err[256];

	ASSERT(memclient_open(&mc, addr, &c, err, sizeof(err)) == 0, "%s", err);
	ASSERT_EQ(memclient_stat(&mc, &st), 0);
	memclient_close(&mc);
	return st.used_pages;
}

TEST_TIMEOUT(verify_512m_through_16m_twice_on_two_vcpus, 600)
{
	char addr[64], sock[300];
	char *argv[] = {(char *)VMM,
			"-q",
			"--stats",
			"--payload",
			(char *)PAYLOAD("touch"),
			"--memory",
			"600M",
			"--cpus",
			"2",
			"--excache",
			"16M",
			"--memsrv",
			addr,
			"--control",
			sock,
			"--args",
			"op=verify mode=seq size=512M passes=2",
			NULL};
	struct proc_result r;
	pid_t ms, vmm;
	uint64_t hva, v;
	long rss, max_rss = 0;
	int samples = 0;
	json_t *x;

	test_require_kvm();
	ms = memsrv_spawn("2G", addr);
	snprintf(sock, sizeof(sock), "%s/vmm.sock", test_tmpdir());
	vmm = proc_spawn(argv);
	hva = ram_hva(sock);
	/* The kernel's view of the guest RAM mapping, sampled while the guest runs. */
	while (proc_running(vmm)) {
		rss = vma_rss_kib(vmm, hva);
		if (rss > max_rss)
			max_rss = rss;

		samples += rss >= 0;
		usleep(20000);
	}
	proc_collect(vmm, 10, &r);
	ASSERT_EQ(r.status, 0);
	for (int i = 0; i < 2; i++) {
		ASSERT(report_get(r.out, i, "mismatches", &v), "vCPU %d did not finish", i);
		ASSERT_EQ(v, 0);
		ASSERT(report_get(r.out, i, "pages", &v) && v == 65536);
	}
	fprintf(stderr, "  guest RAM Rss: max %ld KiB over %d samples\n", max_rss, samples);
	ASSERT(samples > 10, "too few samples of the resident set");
	/* DESIGN.md allows a small fixed reserve; on kvm_pvm up to 71 pages above the
	 * ExCache's own count were seen for moments (cause under investigation). */
	ASSERT(max_rss <= 16 * 1024 + 1024, "resident set %ld KiB exceeds 16 MiB + 1 MiB", max_rss);
	ASSERT(max_rss >= 12 * 1024, "the sampler never saw the ExCache full (%ld KiB)", max_rss);
	x = excache_line(r.err);
	ASSERT(jint(x, "misses") >= 4 * 131072 / 64, "prefetch or not, 4 passes over 512 MiB miss");
	ASSERT(jint(x, "dirty_writebacks") >= 2 * 131072 - 4096, "every written page goes back");
	ASSERT_EQ(jint(x, "dirty_writebacks"), jint(x, "evictions") - jint(x, "clean_drops"));
	ASSERT(jint(x, "clean_drops") > 0);
	ASSERT(jint(x, "zero_fills") + jint(x, "zeroed_ahead") >= 131072 - 4096,
	       "the first pass writes never-written pages");
	/* ...in order, on each vCPU: most of them are given ahead, a run per hand-off */
	ASSERT(jint(x, "zeroed_ahead") > 131072 / 2, "%lld", (long long)jint(x, "zeroed_ahead"));
	json_decref(x);
	ASSERT_EQ(memsrv_used_pages(addr), 0); /* the vNode's pages were released at exit */
	kill(ms, SIGTERM);
	proc_result_free(&r);
}

static void verify_mode(const char *mode, const char *cpus)
{
	char addr[64], args[128];
	char *argv[] = {(char *)VMM, "-q",   "--payload", (char *)PAYLOAD("touch"),
			"--memory",  "160M", "--cpus",	  (char *)cpus,
			"--excache", "8M",   "--memsrv",  addr,
			"--args",    args,   NULL};
	struct proc_result r;
	pid_t ms = memsrv_spawn("1G", addr);
	uint64_t v;

	snprintf(args, sizeof(args), "op=verify mode=%s size=128M passes=2", mode);
	proc_run(argv, 300, &r);
	ASSERT(!r.timed_out);
	ASSERT_EQ(r.status, 0);
	ASSERT(report_get(r.out, 0, "mismatches", &v) && v == 0);
	kill(ms, SIGTERM);
	proc_result_free(&r);
}

TEST_TIMEOUT(verify_random_and_zipf_orders_through_8m, 600)
{
	test_require_kvm();
	verify_mode("rand", "2");
	verify_mode("zipf", "1");
}

/* The apps payload's @app over @size: its result, all local or through @excache. */
static uint64_t app_result(const char *app, const char *excache, const char *primary,
			   const char *secondary)
{
	char args[96];
	char *argv[20] = {(char *)VMM, "-q",  "--payload", (char *)PAYLOAD("apps"),
			  "--memory",  "40M", "--args",	   args};
	struct proc_result r;
	uint64_t v = 0;
	int n = 8;

	snprintf(args, sizeof(args), "app=%s size=32M", app);
	if (excache) {
		argv[n++] = "--excache";
		argv[n++] = (char *)excache;
		argv[n++] = "--memsrv";
		argv[n++] = (char *)primary;
	}
	if (secondary) {
		argv[n++] = "--memsrv-secondary";
		argv[n++] = (char *)secondary;
	}
	proc_run(argv, 300, &r);
	ASSERT(!r.timed_out);
	ASSERT(r.status == 0, "%s: status %d: %s", args, r.status, r.err);
	ASSERT(report_get(r.out, 0, "result", &v), "%s", r.out);
	proc_result_free(&r);
	return v;
}

/* What bench-app times must compute the same thing wherever its memory is. */
TEST_TIMEOUT(the_applications_give_the_all_local_result_through_a_small_excache, 300)
{
	static const char *const apps[] = {"wordcount", "kmeans", "hashjoin"};
	char a1[64], a2[64];
	pid_t ms1, ms2;

	test_require_kvm();
	ms1 = memsrv_spawn("1G", a1);
	ms2 = memsrv_spawn("1G", a2);
	for (int i = 0; i < 3; i++) {
		uint64_t local = app_result(apps[i], NULL, NULL, NULL);

		ASSERT(local != 0);
		ASSERT(app_result(apps[i], "8M", a1, NULL) == local, "%s", apps[i]);
		ASSERT(app_result(apps[i], "8M", a1, a2) == local, "%s, replicated", apps[i]);
	}
	/* another input gives another result: the result is the computation's */
	{
		char args[] = "app=hashjoin size=32M seed=2";
		char *argv[] = {(char *)VMM, "-q",  "--payload", (char *)PAYLOAD("apps"),
				"--memory",  "40M", "--args",	 args,
				NULL};
		struct proc_result r;
		uint64_t v = 0;

		proc_run(argv, 300, &r);
		ASSERT(report_get(r.out, 0, "result", &v));
		ASSERT(v != app_result("hashjoin", NULL, NULL, NULL));
		proc_result_free(&r);
	}
	kill(ms1, SIGTERM);
	kill(ms2, SIGTERM);
}

/*
 * A page fetched for a read is installed writable with a sum of its content
 * (--excache-writes sums, the default): evicted unchanged, it leaves without a
 * write-back; the ExCache's write-protected way (wp) must agree on the result
 * and on what is written back. hashjoin reads most of its 32 MiB (the probe
 * relation) after writing it once, through 8 MiB.
 */
TEST_TIMEOUT(pages_only_read_leave_without_a_write_back, 300)
{
	static const char *const writes[] = {"sums", "wp"};
	char addr[64], args[] = "app=hashjoin size=32M";
	json_t *x[2];
	uint64_t result[2] = {0, 0};
	pid_t ms;

	test_require_kvm();
	ms = memsrv_spawn("1G", addr);
	for (int i = 0; i < 2; i++) {
		char *argv[] = {(char *)VMM,
				"-q",
				"--payload",
				(char *)PAYLOAD("apps"),
				"--memory",
				"40M",
				"--excache",
				"8M",
				"--memsrv",
				addr,
				"--excache-writes",
				(char *)writes[i],
				"--stats",
				"--args",
				args,
				NULL};
		struct proc_result r;

		proc_run(argv, 300, &r);
		ASSERT(r.status == 0, "%s: status %d: %s", writes[i], r.status, r.err);
		ASSERT(report_get(r.out, 0, "result", &result[i]), "%s", r.out);
		x[i] = excache_line(r.err);
		ASSERT_CONTAINS(json_string_value(json_object_get(x[i], "writes")), writes[i]);
		fprintf(stderr,
			"  %s: %llu fetched, %llu evicted, %llu clean (%llu of them unchanged), "
			"%llu written back, %llu write faults\n",
			writes[i],
			(unsigned long long)(jint(x[i], "fetches") + jint(x[i], "prefetched")),
			(unsigned long long)jint(x[i], "evictions"),
			(unsigned long long)jint(x[i], "clean_drops"),
			(unsigned long long)jint(x[i], "unchanged_drops"),
			(unsigned long long)jint(x[i], "dirty_writebacks"),
			(unsigned long long)jint(x[i], "wp_faults"));
		ASSERT_EQ(jint(x[i], "dirty_writebacks"),
			  jint(x[i], "evictions") - jint(x[i], "clean_drops"));
		proc_result_free(&r);
	}
	ASSERT_EQ(result[0], result[1]);
	ASSERT(jint(x[0], "unchanged_drops") > 4096, "pages only read were written back");
	ASSERT_EQ(jint(x[1], "unchanged_drops"), 0);
	/* the same pages go back either way: those written (the input), no more */
	ASSERT(jint(x[0], "dirty_writebacks") <= jint(x[1], "dirty_writebacks") + 256,
	       "sums wrote back %llu pages, wp %llu",
	       (unsigned long long)jint(x[0], "dirty_writebacks"),
	       (unsigned long long)jint(x[1], "dirty_writebacks"));
	ASSERT(jint(x[0], "dirty_writebacks") + 256 >= jint(x[1], "dirty_writebacks"));
	json_decref(x[0]);
	json_decref(x[1]);
	kill(ms, SIGTERM);
}

TEST_TIMEOUT(excache_shrinks_live_when_resized, 300)
{
	char addr[64], sock[300], err[256];
	char *argv[] = {(char *)VMM, "-q",
			"--payload", (char *)PAYLOAD("touch"),
			"--memory",  "96M",
			"--excache", "64M",
			"--memsrv",  addr,
			"--control", sock,
			"--args",    "op=verify mode=seq size=40M passes=1000000",
			NULL};
	struct proc_result r;
	pid_t ms, vmm;
	uint64_t hva;
	json_t *req, *res;
	long rss = -1;
	int i;

	test_require_kvm();
	ms = memsrv_spawn("1G", addr);
	snprintf(sock, sizeof(sock), "%s/vmm.sock", test_tmpdir());
	vmm = proc_spawn(argv);
	hva = ram_hva(sock);
	for (i = 0; i < 500 && vma_rss_kib(vmm, hva) < 30 * 1024; i++)
		usleep(20000);

	ASSERT(vma_rss_kib(vmm, hva) >= 30 * 1024,
	       "the working set never became resident (%ld KiB at %#llx)", vma_rss_kib(vmm, hva),
	       (unsigned long long)hva);
	req = json_pack("{s:s,s:s}", "cmd", "excache.resize", "size", "8M");
	res = ctl_call(sock, req, 5000, err, sizeof(err));
	ASSERT(res && json_is_true(json_object_get(res, "ok")), "%s", err);
	json_decref(res);
	json_decref(req);
	for (i = 0; i < 500; i++) {
		rss = vma_rss_kib(vmm, hva);
		if (rss >= 0 && rss <= 8 * 1024)
			break;
		usleep(20000);
	}
	ASSERT(rss >= 0 && rss <= 8 * 1024, "still %ld KiB resident after shrinking to 8 MiB", rss);
	res = ctl(sock, "excache");
	ASSERT(jint(res, "size_bytes") == 8 << 20);
	ASSERT(jint(res, "resident_pages") <= 2048);
	json_decref(res);
	/* and it keeps running (and missing) within the new bound */
	usleep(300000);
	ASSERT(proc_running(vmm));
	ASSERT(vma_rss_kib(vmm, hva) <= 8 * 1024);
	kill(vmm, SIGTERM);
	proc_collect(vmm, 20, &r);
	ASSERT_EQ(r.status, 0);
	kill(ms, SIGTERM);
	proc_result_free(&r);
}

TEST_TIMEOUT(a_memory_server_killed_under_the_guest_stops_it_with_a_clear_error, 120)
{
	char addr[64];
	char *argv[] = {(char *)VMM,
			"--payload",
			(char *)PAYLOAD("touch"),
			"--memory",
			"300M",
			"--excache",
			"8M",
			"--memsrv",
			addr,
			"--args",
			"op=verify mode=seq size=256M passes=100",
			NULL};
	struct proc_result r;
	pid_t ms, vmm;

	test_require_kvm();
	ms = memsrv_spawn("1G", addr);
	vmm = proc_spawn(argv);
	usleep(1500000);
	ASSERT(proc_running(vmm));
	kill(ms, SIGKILL);
	waitpid(ms, NULL, 0);
	proc_collect(vmm, 30, &r);
	ASSERT(!r.timed_out, "lego-vmm hung after its memory server died");
	ASSERT_EQ(r.status, VM_EXIT_VMM_ERROR);
	ASSERT_CONTAINS(r.err, "memory server 127.0.0.1:");
	ASSERT_CONTAINS(r.err, "the memory server closed the connection");
	proc_result_free(&r);
}

#define TOKEN_HEX "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

TEST(excache_command_line_errors)
{
	char *a1[] = {(char *)VMM, "--payload", (char *)PAYLOAD("hello"), "--excache", "16M", NULL};
	char *a2[] = {(char *)VMM,   "--payload", (char *)PAYLOAD("hello"),
		      "--excache",   "16M",	  "--memsrv",
		      "127.0.0.1:1", NULL};
	char *a3[] = {(char *)VMM, "--payload", (char *)PAYLOAD("hello"), "--excache",
		      "16M",	   "--memsrv",	"127.0.0.1:7400",	  "--token",
		      TOKEN_HEX,   NULL};
	char *a4[] = {(char *)VMM,
		      "--payload",
		      (char *)PAYLOAD("hello"),
		      "--excache",
		      "16M",
		      "--memsrv",
		      "127.0.0.1:7400",
		      "--order",
		      (char *)test_order_file("{\"token\":\"xyz\"}"),
		      NULL};
	struct proc_result r;

	proc_run(a1, 10, &r);
	ASSERT_EQ(r.status, VM_EXIT_USAGE);
	ASSERT_CONTAINS(r.err, "--excache and --memsrv go together");
	proc_result_free(&r);
	/* a secret on the command line: refused, however well formed */
	proc_run(a3, 10, &r);
	ASSERT_EQ(r.status, VM_EXIT_USAGE);
	ASSERT_CONTAINS(r.err, "--token: a secret on the command line is visible to every user");
	proc_result_free(&r);
	proc_run(a4, 10, &r);
	ASSERT_EQ(r.status, VM_EXIT_USAGE);
	ASSERT_CONTAINS(r.err, "order: token must be 64 hex digits");
	proc_result_free(&r);
	{
		char *a5[] = {
			(char *)VMM, "--payload",      (char *)PAYLOAD("hello"), "--excache", "16M",
			"--memsrv",  "127.0.0.1:7400", "--excache-writes",	 "never",     NULL};

		proc_run(a5, 10, &r);
		ASSERT_EQ(r.status, VM_EXIT_USAGE);
		ASSERT_CONTAINS(r.err, "--excache-writes: 'never' is neither sums nor wp");
		proc_result_free(&r);
	}
	test_require_kvm();
	proc_run(a2, 20, &r);
	ASSERT_EQ(r.status, VM_EXIT_VMM_ERROR);
	ASSERT_CONTAINS(r.err, "cannot connect to 127.0.0.1:1");
	ASSERT_CONTAINS(r.err, "is the server running?");
	proc_result_free(&r);
}
