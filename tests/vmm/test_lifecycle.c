/*
 * test_lifecycle.c - a running vNode paused and resumed, saved into a
 * snapshot and brought back from it, and moved to another VMM while it runs,
 * with the verifying payload on 2 vCPUs (it writes a pattern through the
 * guest's memory and reads it back, pass after pass): whatever happens to
 * it, it must finish with zero mismatches. Damaged snapshots are refused
 * with their reason. A migration's source and target are killed at each
 * step of the handshake: exactly one VMM runs the vNode afterwards. KVM.
 */
#include <fcntl.h>
#include <limits.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl.h"
#include "memclient.h"
#include "test.h"
#include "util.h"

#define TOKEN	  "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed"
#define MIGTOKEN  "d1ced1ced1ced1ced1ced1ced1ced1ced1ced1ced1ced1ced1ced1ced1ced1ce"
#define MAX_ARGS  40
#define VERIFY(p) "op=verify mode=rand size=24M passes=" p

struct vmm_args {
	char *argv[MAX_ARGS];
	int n;
	char control[300], incoming[64];
	char order[PATH_MAX], migrate_order[PATH_MAX]; /* the credentials */
};

static void arg(struct vmm_args *a, const char *s)
{
	ASSERT(a->n < MAX_ARGS - 1);
	a->argv[a->n++] = (char *)s;
	a->argv[a->n] = NULL;
}

/*
 * lego-vmm running the verifying payload for @passes on 2 vCPUs with 48 MiB,
 * its control socket named @name; with @memsrv, through a 4 MiB ExCache as
 * vNode 4242 there (the same vNode for every VMM of a case).
 */
static void vmm_args(struct vmm_args *a, const char *name, const char *passes, const char *memsrv)
{
	static char args[128];

	a->n = 0;
	snprintf(args, sizeof(args), VERIFY("%s"), passes);
	snprintf(a->control, sizeof(a->control), "%s/%s.sock", test_tmpdir(), name);
	arg(a, strdup(test_path("bin/lego-vmm")));
	arg(a, "--payload");
	arg(a, strdup(test_path("guest/payloads/touch.bin")));
	arg(a, "--args");
	arg(a, strdup(args));
	arg(a, "--memory");
	arg(a, "48M");
	arg(a, "--cpus");
	arg(a, "2");
	arg(a, "--control");
	arg(a, a->control);
	if (memsrv) {
		arg(a, "--excache");
		arg(a, "4M");
		arg(a, "--memsrv");
		arg(a, (char *)memsrv);
		arg(a, "--vnode");
		arg(a, "4242");
		snprintf(a->order, sizeof(a->order), "%s",
			 test_order_file("{\"token\":\"%s\"}", TOKEN));
		arg(a, "--order");
		arg(a, a->order);
	}
}

static json_t *call(const char *sock, const char *fmt, ...)
{
	char text[512], err[256];
	json_t *req, *res;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	req = json_loads(text, 0, NULL);
	ASSERT(req, "bad request %s", text);
	res = ctl_call(sock, req, 60000, err, sizeof(err));
	json_decref(req);
	ASSERT(res, "%s: %s", text, err);
	return res;
}

static bool ok(json_t *res)
{
	return json_is_true(json_object_get(res, "ok"));
}

static long long exits(const char *sock)
{
	json_t *st = call(sock, "{\"cmd\":\"status\"}"), *v;
	long long n = 0;
	size_t i;

	json_array_foreach(json_object_get(st, "vcpus"), i, v)
	{
		n += json_integer_value(json_object_get(v, "exits"));
	}
	json_decref(st);
	return n;
}

/* Both vCPUs reported zero mismatches at the end, in @out. */
static void clean_finish(const char *out, const char *what)
{
	for (int v = 0; v < 2; v++) {
		uint64_t mism = 1;

		ASSERT(report_get(out, v, "mismatches", &mism),
		       "%s: vCPU %d made no mismatches "
		       "report",
		       what, v);
		ASSERT(mism == 0, "%s: vCPU %d found %llu mismatches", what, v,
		       (unsigned long long)mism);
	}
}

static pid_t start(struct vmm_args *a)
{
	pid_t pid = proc_spawn(a->argv);

	ASSERT(wait_for_path(a->control, 20000), "lego-vmm never served its control socket");
	return pid;
}

TEST_TIMEOUT(pause_holds_the_vcpus_and_resume_lets_them_go_on, 120)
{
	struct vmm_args a;
	struct proc_result r;
	long long before, after;
	json_t *res;
	pid_t pid;

	test_require_kvm();
	vmm_args(&a, "p", "20", NULL);
	pid = start(&a);
	res = call(a.control, "{\"cmd\":\"pause\"}");
	ASSERT(ok(res), "pause refused");
	json_decref(res);
	before = exits(a.control);
	usleep(400000);
	after = exits(a.control);
	ASSERT_EQ(before, after); /* no vCPU entered the guest while paused */
	res = call(a.control, "{\"cmd\":\"status\"}");
	ASSERT(json_is_true(json_object_get(res, "paused")));
	json_decref(res);
	json_decref(call(a.control, "{\"cmd\":\"resume\"}"));
	proc_collect(pid, 100, &r);
	ASSERT(r.status == 0, "lego-vmm exited %d:\n%s", r.status, r.err);
	clean_finish(r.out, "paused and resumed");
	proc_result_free(&r);
}

/* Without an ExCache the snapshot holds the memory: the vNode goes on, and so does its copy. */
TEST_TIMEOUT(a_snapshot_of_local_memory_runs_on_and_restores_to_a_clean_finish, 180)
{
	char snap[300];
	struct vmm_args a;
	struct proc_result r;
	json_t *res;
	struct stat st;
	pid_t pid;

	test_require_kvm();
	snprintf(snap, sizeof(snap), "%s/local.snap", test_tmpdir());
	vmm_args(&a, "l", "300", NULL);
	pid = start(&a);
	usleep(300000);
	res = call(a.control, "{\"cmd\":\"snapshot\",\"path\":\"%s\"}", snap);
	ASSERT(ok(res), "snapshot: %s", json_dumps(res, 0));
	printf("  snapshot of 48 MiB (local memory): %.1f ms, %lld bytes\n",
	       json_real_value(json_object_get(res, "ms")),
	       (long long)json_integer_value(json_object_get(res, "bytes")));
	json_decref(res);
	ASSERT(stat(snap, &st) == 0 && (st.st_mode & 077) == 0,
	       "the snapshot must exist and be private (it holds the order)");
	proc_collect(pid, 150, &r);
	ASSERT(r.status == 0, "the vNode did not run on after its snapshot:\n%s", r.err);
	clean_finish(r.out, "the snapshotted vNode");
	proc_result_free(&r);

	{
		char *argv[] = {(char *)test_path("bin/lego-vmm"), "--restore", snap,
				"--check-leaks", NULL};

		proc_run(argv, 150, &r);
	}
	ASSERT(r.status == 0, "the restore exited %d:\n%s", r.status, r.err);
	ASSERT(!strstr(r.err, "LEAK"), "%s", r.err);
	clean_finish(r.out, "the restored copy");
	proc_result_free(&r);
}

/*
 * With an ExCache the memory servers hold the memory: a snapshot stops the
 * vNode (its memory stays for the restore), which finishes it elsewhere.
 */
TEST_TIMEOUT(a_snapshot_through_the_excache_stops_the_vnode_and_its_restore_finishes, 240)
{
	char memsrv[64], snap[300];
	struct vmm_args a;
	struct proc_result r;
	json_t *res;
	pid_t ms, pid;

	test_require_kvm();
	snprintf(snap, sizeof(snap), "%s/xc.snap", test_tmpdir());
	ms = memsrv_spawn("128M", memsrv);
	vmm_args(&a, "x", "20", memsrv);
	pid = start(&a);
	usleep(500000);
	{ /* every thread under a seccomp filter: the guest-facing ones (2 vCPUs, the
	   * ExCache's) under their roles', the main and control threads under the list of
	   * calls never made */
		static const char *const named[] = {"vcpu",  "xc-",  "virtio-",
						    "disk-", "net-", "control"};
		int filtered, open;
		bool main_filtered = false;

		proc_seccomp_threads(pid, named, sizeof(named) / sizeof(named[0]), &filtered, &open,
				     &main_filtered);
		ASSERT(filtered >= 5 && open == 0 && main_filtered,
		       "%d named threads filtered, %d not, main thread %s", filtered, open,
		       main_filtered ? "filtered" : "not");
		printf("  main thread and %d named threads under seccomp filters\n", filtered);
	}
	res = call(a.control, "{\"cmd\":\"snapshot\",\"path\":\"%s\",\"then\":\"resume\"}", snap);
	ASSERT(!ok(res), "a snapshot with memory on servers cannot let the vNode go on");
	ASSERT_CONTAINS(json_string_value(json_object_get(res, "error")), "\"then\":\"stop\"");
	json_decref(res);
	res = call(a.control, "{\"cmd\":\"snapshot\",\"path\":\"%s\"}", snap);
	ASSERT(ok(res), "snapshot: %s", json_dumps(res, 0));
	printf("  snapshot through a 4 MiB ExCache: %.1f ms, %lld bytes (no memory in it)\n",
	       json_real_value(json_object_get(res, "ms")),
	       (long long)json_integer_value(json_object_get(res, "bytes")));
	ASSERT(json_integer_value(json_object_get(res, "bytes")) < 1 << 20);
	json_decref(res);
	proc_collect(pid, 30, &r);
	ASSERT_EQ(r.status, 0);
	ASSERT(!report_get(r.out, 0, "mismatches", &(uint64_t){0}),
	       "it finished before its snapshot");
	proc_result_free(&r);
	{
		char *argv[] = {(char *)test_path("bin/lego-vmm"), "--restore", snap, "--stats",
				NULL};

		proc_run(argv, 200, &r);
	}
	ASSERT(r.status == 0, "the restore exited %d:\n%s", r.status, r.err);
	clean_finish(r.out, "the restored vNode");
	{ /* what the ExCache held at the snapshot came back ahead of the guest's faults */
		const char *w = strstr(r.err, "\"warmed\":");

		ASSERT(w && strtoll(w + 9, NULL, 10) > 0, "no page was fetched ahead:\n%s", r.err);
		printf("  warmed: %lld pages fetched ahead of the restored guest\n",
		       strtoll(w + 9, NULL, 10));
	}
	proc_result_free(&r);
	kill(ms, SIGTERM);
	waitpid(ms, NULL, 0);
}

/* REPORT lines with @key on @pid's output so far. */
static int reports(pid_t pid, const char *key)
{
	char buf[1 << 16];
	FILE *f = fopen(proc_out_path(pid), "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

	if (f)
		fclose(f);
	buf[n] = '\0';
	return report_count(buf, key);
}

/*
 * A reset (what a guest reboot does): the same process sets the machine up
 * again from the same order, on the same memory server, and leaves nothing
 * behind; the restarted payload verifies to a clean finish. A payload has no
 * power button: a shutdown or a graceful reboot is refused with the reason.
 */
TEST_TIMEOUT(a_reset_boots_the_same_vnode_again_in_the_same_process, 240)
{
	char memsrv[64];
	struct vmm_args a;
	struct proc_result r;
	json_t *res;
	pid_t ms, pid;

	test_require_kvm();
	ms = memsrv_spawn("128M", memsrv);
	vmm_args(&a, "r", "6", memsrv);
	arg(&a, "--check-leaks");
	pid = start(&a);
	res = call(a.control, "{\"cmd\":\"shutdown\"}");
	ASSERT(!ok(res), "a payload has no power button");
	ASSERT_CONTAINS(json_string_value(json_object_get(res, "error")), "no power button");
	json_decref(res);
	res = call(a.control, "{\"cmd\":\"reboot\",\"force\":\"yes\"}");
	ASSERT(!ok(res));
	ASSERT_CONTAINS(json_string_value(json_object_get(res, "error")), "\"force\"");
	json_decref(res);
	for (int k = 1; k <= 2; k++) {
		/* each run of the payload has begun (its vCPUs reported their pages) */
		for (int i = 0; i < 400 && reports(pid, "pages") < 2 * k; i++)
			usleep(50000);
		ASSERT_EQ(reports(pid, "pages"), 2 * k);
		res = call(a.control, "{\"cmd\":\"reboot\",\"force\":true}");
		ASSERT(ok(res), "reboot: %s", json_dumps(res, 0));
		json_decref(res);
		res = NULL;
		for (int i = 0; i < 200 && !res; i++) { /* its control socket comes back */
			char err[256];
			json_t *req = json_pack("{s:s}", "cmd", "status");

			usleep(50000);
			res = ctl_call(a.control, req, 2000, err, sizeof(err));
			json_decref(req);
			if (res && json_integer_value(json_object_get(res, "resets")) != k) {
				json_decref(res);
				res = NULL;
			}
		}
		ASSERT(res, "the VMM did not come back from reset %d", k);
		json_decref(res);
		ASSERT(proc_running(pid), "a reset must not end lego-vmm");
	}
	proc_collect(pid, 200, &r);
	ASSERT(r.status == 0, "exit %d:\n%s", r.status, r.err);
	ASSERT(strstr(r.err, "LEAK") == NULL, "%s", r.err);
	ASSERT_EQ(report_count(r.out, "pages"), 2 * 3); /* each vCPU began three times */
	clean_finish(r.out, "the reset vNode");
	proc_result_free(&r);
	kill(ms, SIGTERM);
	waitpid(ms, NULL, 0);
}

/* A copy of @src with @len bytes at @off replaced by @bytes, or cut at @off (bytes NULL). */
static void damaged_copy(const char *src, const char *dst, long off, const void *bytes, size_t len)
{
	char cmd[800];
	int fd;

	snprintf(cmd, sizeof(cmd), "cp %s %s", src, dst);
	ASSERT_EQ(system(cmd), 0);
	fd = open(dst, O_RDWR);
	ASSERT(fd >= 0);
	if (bytes)
		ASSERT_EQ(pwrite(fd, bytes, len, off), (ssize_t)len);
	else
		ASSERT_EQ(ftruncate(fd, off), 0);
	close(fd);
}

static void refused(const char *path, const char *why)
{
	char *argv[] = {(char *)test_path("bin/lego-vmm"), "--restore", (char *)path, NULL};
	struct proc_result r;

	proc_run(argv, 30, &r);
	ASSERT(r.status == 2, "a bad snapshot must be refused as a usage error, got %d:\n%s",
	       r.status, r.err);
	ASSERT(strstr(r.err, why), "expected \"%s\" in:\n%s", why, r.err);
	proc_result_free(&r);
}

TEST_TIMEOUT(damaged_truncated_and_foreign_snapshots_are_refused_with_the_reason, 120)
{
	char snap[300], bad[300];
	struct vmm_args a;
	struct proc_result r;
	struct stat st;
	json_t *res;
	pid_t pid;

	test_require_kvm();
	snprintf(snap, sizeof(snap), "%s/good.snap", test_tmpdir());
	snprintf(bad, sizeof(bad), "%s/bad.snap", test_tmpdir());
	vmm_args(&a, "d", "100000", NULL);
	pid = start(&a);
	res = call(a.control, "{\"cmd\":\"snapshot\",\"path\":\"%s\",\"then\":\"stop\"}", snap);
	ASSERT(ok(res));
	json_decref(res);
	proc_collect(pid, 30, &r);
	proc_result_free(&r);
	ASSERT_EQ(stat(snap, &st), 0);

	damaged_copy(snap, bad, st.st_size / 2, "\xff\x00\xff\x00", 4);
	refused(bad, "damaged (CRC mismatch)");
	damaged_copy(snap, bad, st.st_size - 4096, NULL, 0);
	refused(bad, "truncated");
	damaged_copy(snap, bad, 8, &(uint32_t){99}, 4); /* the header's version */
	refused(bad, "format version 99");
	damaged_copy(snap, bad, 0, "NOTASNAP", 8);
	refused(bad, "not a lego snapshot");
	{
		char *argv[] = {
			(char *)test_path("bin/lego-vmm"), "--restore", snap, "--cpus", "1", NULL};

		proc_run(argv, 30, &r); /* a different machine than the one saved */
		ASSERT(r.status != 0, "a 2-vCPU snapshot restored on 1 vCPU");
		ASSERT_CONTAINS(r.err, "other vCPUs");
		proc_result_free(&r);
	}
}

/* A target VMM of @a's vNode, waiting for it on a free port. */
static pid_t target(struct vmm_args *a, const char *name, const char *passes, const char *memsrv,
		    const char *stall)
{
	vmm_args(a, name, passes, memsrv);
	snprintf(a->incoming, sizeof(a->incoming), "127.0.0.1:%d", test_free_port());
	arg(a, "--incoming");
	arg(a, a->incoming);
	snprintf(a->migrate_order, sizeof(a->migrate_order), "%s",
		 test_order_file("{\"migrate_token\":\"%s\"}", MIGTOKEN));
	arg(a, "--order");
	arg(a, a->migrate_order);
	if (stall)
		setenv("LEGO_MIGRATE_STALL", stall, 1);
	pid_t pid = proc_spawn(a->argv);
	unsetenv("LEGO_MIGRATE_STALL");
	/* its control socket comes after the state: wait for the listening port */
	ASSERT(wait_for_port(atoi(strrchr(a->incoming, ':') + 1), 20000),
	       "the target never listened");
	return pid;
}

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return a < b ? -1 : a > b;
}

TEST_TIMEOUT(twenty_live_migrations_under_a_verifying_guest_lose_nothing, 600)
{
	char memsrv[64];
	struct vmm_args cur, next;
	struct proc_result r;
	double pause[20];
	pid_t ms, pid, npid;

	test_require_kvm();
	ms = memsrv_spawn("128M", memsrv);
	vmm_args(&cur, "m0", "60", memsrv);
	pid = start(&cur);
	for (int i = 0; i < 20; i++) {
		char name[16];
		json_t *res;

		snprintf(name, sizeof(name), "m%d", i + 1);
		npid = target(&next, name, "60", memsrv, NULL);
		usleep(100000 + (useconds_t)(now_ns() % 200000));
		res = call(cur.control, "{\"cmd\":\"migrate\",\"to\":\"%s\",\"token\":\"%s\"}",
			   next.incoming, MIGTOKEN);
		ASSERT(ok(res), "migration %d: %s", i + 1,
		       json_string_value(json_object_get(res, "error")));
		pause[i] = json_real_value(json_object_get(res, "pause_ms"));
		json_decref(res);
		proc_collect(pid, 30, &r); /* the source is done */
		ASSERT(r.status == 0, "migration %d: the source exited %d:\n%s", i + 1, r.status,
		       r.err);
		ASSERT_CONTAINS(r.err, "migrated to");
		ASSERT(!report_get(r.out, 0, "mismatches", &(uint64_t){0}),
		       "the guest finished before migration %d: make it longer", i + 1);
		proc_result_free(&r);
		ASSERT(wait_for_path(next.control, 20000), "the target never came up");
		pid = npid;
		cur = next;
	}
	/* The source is fenced: its epoch's connections are refused everywhere. */
	{
		struct memclient_cred c = {
			.vnode = 4242, .nr_pages = (48 << 20) / 4096, .epoch = 0};
		struct memclient mc;
		char err[256];

		lmp_token_parse(TOKEN, c.token);
		ASSERT(memclient_open(&mc, memsrv, &c, err, sizeof(err)) != 0,
		       "a VMM at the first epoch still reaches the vNode's memory");
		ASSERT_CONTAINS(err, "epoch");
	}
	proc_collect(pid, 400, &r);
	ASSERT(r.status == 0, "the last target exited %d:\n%s", r.status, r.err);
	clean_finish(r.out, "after 20 migrations");
	proc_result_free(&r);
	qsort(pause, 20, sizeof(pause[0]), cmp_double);
	printf("  20 migrations, 0 mismatches; pause p50 %.1f ms, max %.1f ms\n", pause[9],
	       pause[19]);
	kill(ms, SIGTERM);
	waitpid(ms, NULL, 0);
}

/*
 * One migration with one side killed -9 at @step (the other's stall point
 * gives the time): afterwards exactly one of them runs the vNode, and it
 * finishes clean.
 */
static void kill_at(const char *step, bool kill_source)
{
	char memsrv[64];
	struct vmm_args src, dst;
	struct proc_result rs, rd;
	pid_t ms, ps, pd;

	ms = memsrv_spawn("128M", memsrv);
	vmm_args(&src, "s", "30", memsrv);
	if (kill_source)
		setenv("LEGO_MIGRATE_STALL", step, 1);
	ps = start(&src);
	unsetenv("LEGO_MIGRATE_STALL");
	pd = target(&dst, "t", "30", memsrv, kill_source ? NULL : step);
	usleep(300000);
	if (fork() == 0) { /* the command waits for the handshake: sent from a child */
		char err[256];
		json_t *req = json_pack("{s:s,s:s,s:s}", "cmd", "migrate", "to", dst.incoming,
					"token", MIGTOKEN);

		json_decref(ctl_call(src.control, req, 60000, err, sizeof(err)));
		_exit(0);
	}
	/* the stalled side says where it is: kill it there */
	for (int i = 0; i < 200; i++) {
		char buf[8192] = "";
		FILE *f;

		usleep(50000);
		f = fopen(proc_err_path(kill_source ? ps : pd), "r");
		if (f) {
			size_t n = fread(buf, 1, sizeof(buf) - 1, f);

			buf[n] = '\0';
			fclose(f);
		}
		if (strstr(buf, "stalled at")) {
			kill(kill_source ? ps : pd, SIGKILL);
			break;
		}
		ASSERT(i < 199, "the %s never reached %s", kill_source ? "source" : "target", step);
	}
	proc_collect(ps, 200, &rs);
	proc_collect(pd, 200, &rd);
	wait(NULL);
	{
		bool src_ran = report_get(rs.out, 0, "mismatches", &(uint64_t){0});
		bool dst_ran = report_get(rd.out, 0, "mismatches", &(uint64_t){0});

		ASSERT(src_ran != dst_ran,
		       "killed %s at %s: source %s, target %s (exactly one must finish)\nsource:\n%s\n"
		       "target:\n%s",
		       kill_source ? "the source" : "the target", step,
		       src_ran ? "finished" : "did not", dst_ran ? "finished" : "did not", rs.err,
		       rd.err);
		clean_finish(src_ran ? rs.out : rd.out, step);
		printf("  %s killed at %s: the %s ran the vNode to a clean finish\n",
		       kill_source ? "source" : "target", step, src_ran ? "source" : "target");
	}
	proc_result_free(&rs);
	proc_result_free(&rd);
	kill(ms, SIGTERM);
	waitpid(ms, NULL, 0);
}

TEST_TIMEOUT(a_migration_killed_at_each_step_leaves_one_vnode_running, 600)
{
	test_require_kvm();
	kill_at("sent", true);	    /* the source, its state sent: the target takes over */
	kill_at("go", true);	    /* the source, its go sent: the target runs */
	kill_at("received", false); /* the target, before its ready: the source goes on */
	kill_at("ready", false);    /* the target, ready but not yet the owner: the source */
}
