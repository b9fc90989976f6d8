/*
 * bench_lifecycle.c - a vNode saved, brought back and moved, with the
 * verifying payload on 2 vCPUs running through it (real lego-vmm and
 * lego-memsrv processes, KVM):
 *   snapshot_local_ms, snapshot_local_mib   a 256 MiB vNode whose memory is
 *       all in lego-vmm (128 MiB of it written): the snapshot holds it
 *   restore_local_ms     lego-vmm --restore of it: process start to vCPUs running
 *   snapshot_excache_ms, snapshot_excache_kib  the same vNode with a 64 MiB
 *       ExCache on a memory server: dirty pages written back, no memory saved;
 *       snapshot_excache_stopped_ms the part of it with the guest stopped (the
 *       dirty pages go back while it runs, then what it dirtied since)
 *   restore_excache_ms   its restore, to the vCPUs running (pages fault in after)
 *   restore_first_report_ms  ... to the payload's first report after it
 *   migrate_pause_p50_ms, migrate_pause_p99_ms (per memory size: 512 MiB,
 *       2 GiB, 8 GiB, each with the same 64 MiB ExCache and 256 MiB written
 *       over and over): 20 live migrations, the guest's pause as the source
 *       measured it (pause to the target's "running")
 *   precopy_ms           next to each: what sending that memory once would
 *       take at the loopback TCP throughput measured in the same run (what a
 *       pre-copy migration needs at least, before its own downtime)
 *   restore_first_report_cold_ms, restore_first_report_warm_ms (written=32M,
 *       a working set inside the 64 MiB ExCache, and 128M, twice its size):
 *       the restored payload's first report with every page faulted in on its
 *       own (--warm 0, the baseline), and with the pages resident at the save
 *       fetched ahead in runs while it runs (the default); misses_cold,
 *       misses_warm, warmed_pages, warm_ms: the ExCache's own counts. The
 *       misses are the figure to compare: the first report also depends on
 *       where in its pass each payload was saved (two snapshots, two places)
 * Goals: migrate_pause_p99_ms under 100 ms and flat in the memory size.
 */
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl.h"
#include "test.h"
#include "util.h"

#define TOKEN	 "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0"
#define MIGTOKEN "feedfeedfeedfeedfeedfeedfeedfeedfeedfeedfeedfeedfeedfeedfeedfeed"
#define ROUNDS	 20

static json_t *call(const char *sock, const char *fmt, ...)
{
	char text[512], err[256];
	json_t *req, *res;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	req = json_loads(text, 0, NULL);
	res = ctl_call(sock, req, 120000, err, sizeof(err));
	json_decref(req);
	if (!res || !json_is_true(json_object_get(res, "ok"))) {
		fprintf(stderr, "bench-lifecycle: %s: %s\n", text,
			res ? json_string_value(json_object_get(res, "error")) : err);
		exit(1);
	}
	return res;
}

/* What this benchmark started: stopped at exit, also when it gives up on an error. */
static pid_t children[64];
static int nr_children;

static pid_t track(pid_t pid)
{
	if (pid > 0 && nr_children < (int)(sizeof(children) / sizeof(children[0])))
		children[nr_children++] = pid;
	return pid;
}

static void stop_children(void)
{
	for (int i = 0; i < nr_children; i++)
		if (kill(children[i], SIGKILL) == 0)
			waitpid(children[i], NULL, 0);
}

/* lego-vmm with the verifying payload: @memory, @written of it, ExCache on @memsrv (or none). */
static bool cold_restore; /* restores fault every page in (--warm 0) */

static pid_t vmm(const char *sock, const char *memory, const char *written, const char *memsrv,
		 const char *incoming, const char *restore)
{
	static char args[128];
	char *argv[40];
	int n = 0;

	snprintf(args, sizeof(args), "op=verify mode=rand size=%s passes=100000000", written);
	argv[n++] = (char *)test_path("bin/lego-vmm");
	argv[n++] = "-q";
	if (restore) {
		argv[n++] = "--restore";
		argv[n++] = (char *)restore;
		argv[n++] = "--stats";
		if (cold_restore) {
			argv[n++] = "--warm";
			argv[n++] = "0";
		}
	} else {
		argv[n++] = "--payload";
		argv[n++] = strdup(test_path("guest/payloads/touch.bin"));
		argv[n++] = "--args";
		argv[n++] = args;
		argv[n++] = "--memory";
		argv[n++] = (char *)memory;
		argv[n++] = "--cpus";
		argv[n++] = "2";
		if (memsrv) {
			argv[n++] = "--excache";
			argv[n++] = "64M";
			argv[n++] = "--memsrv";
			argv[n++] = (char *)memsrv;
			argv[n++] = "--vnode";
			argv[n++] = "9090";
			argv[n++] = "--order";
			argv[n++] = strdup(test_order_file("{\"token\":\"%s\"}", TOKEN));
		}
	}
	argv[n++] = "--control";
	argv[n++] = (char *)sock;
	if (incoming) {
		argv[n++] = "--incoming";
		argv[n++] = (char *)incoming;
		argv[n++] = "--order";
		argv[n++] = strdup(test_order_file("{\"migrate_token\":\"%s\"}", MIGTOKEN));
	}
	argv[n] = NULL;
	unlink(sock);
	return track(proc_spawn(argv));
}

/* Process start to vCPUs running, as the VMM at @sock says (it says once they run). */
static double start_ms(const char *sock)
{
	for (int i = 0; i < 6000; i++) {
		if (access(sock, F_OK) == 0) { /* bound may come a moment before listening */
			char err[256];
			json_t *req = json_pack("{s:s}", "cmd", "status");
			json_t *st = ctl_call(sock, req, 5000, err, sizeof(err));
			json_t *ms = json_object_get(st, "start_ms");
			double v = json_number_value(ms);

			json_decref(req);
			json_decref(st);
			if (ms)
				return v;
		}
		usleep(5000);
	}
	fprintf(stderr, "bench-lifecycle: the VMM at %s never ran\n", sock);
	exit(1);
}

/* The first line of @pid's stdout after byte @from, waited for: ms since @t0. */
static double first_report_after(pid_t pid, long from, uint64_t t0)
{
	for (int i = 0; i < 60000; i++) {
		struct stat st;

		if (stat(proc_out_path(pid), &st) == 0 && st.st_size > from)
			return (now_ns() - t0) / 1e6;
		usleep(1000);
	}
	return -1;
}

static void stop(pid_t pid)
{
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return a < b ? -1 : a > b;
}

/* ---- loopback TCP throughput: what a pre-copy migration would send memory at ---- */

static void *sink(void *arg)
{
	int fd = accept(*(int *)arg, NULL, NULL);
	static char buf[1 << 20];

	while (fd >= 0 && read(fd, buf, sizeof(buf)) > 0)
		;
	if (fd >= 0)
		close(fd);
	return NULL;
}

static double loopback_gbps(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int l = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0);
	static char buf[1 << 20];
	uint64_t total = 4ULL << 30, sent = 0, t0;
	pthread_t th;

	bind(l, (struct sockaddr *)&sa, sizeof(sa));
	listen(l, 1);
	getsockname(l, (struct sockaddr *)&sa, &len);
	pthread_create(&th, NULL, sink, &l);
	if (connect(c, (struct sockaddr *)&sa, sizeof(sa)))
		return 0;
	t0 = now_ns();
	while (sent < total) {
		ssize_t n = write(c, buf, sizeof(buf));

		if (n <= 0)
			break;
		sent += (uint64_t)n;
	}
	close(c);
	pthread_join(th, NULL);
	close(l);
	return sent * 8.0 / (now_ns() - t0);
}

static void bench_snapshot(const char *dir, const char *memsrv)
{
	char sock[400], snap[400], sock2[400];
	double snap_local_ms, snap_xc_ms, snap_xc_stopped_ms, restore_local, restore_xc,
		first_report;
	long long local_bytes, xc_bytes;
	json_t *res;
	pid_t pid;
	uint64_t t0;
	struct stat st;

	snprintf(sock, sizeof(sock), "%s/s.sock", dir);
	snprintf(sock2, sizeof(sock2), "%s/r.sock", dir);
	snprintf(snap, sizeof(snap), "%s/bench.snap", dir);

	pid = vmm(sock, "256M", "128M", NULL, NULL, NULL);
	start_ms(sock);
	sleep(2); /* its memory written once at least */
	res = call(sock, "{\"cmd\":\"snapshot\",\"path\":\"%s\",\"then\":\"stop\"}", snap);
	snap_local_ms = json_number_value(json_object_get(res, "ms"));
	local_bytes = json_integer_value(json_object_get(res, "bytes"));
	json_decref(res);
	waitpid(pid, NULL, 0);
	pid = vmm(sock2, NULL, NULL, NULL, NULL, snap);
	restore_local = start_ms(sock2);
	stop(pid);

	pid = vmm(sock, "256M", "128M", memsrv, NULL, NULL);
	start_ms(sock);
	sleep(2);
	res = call(sock, "{\"cmd\":\"snapshot\",\"path\":\"%s\",\"then\":\"stop\"}", snap);
	snap_xc_ms = json_number_value(json_object_get(res, "ms"));
	snap_xc_stopped_ms = json_number_value(json_object_get(res, "stopped_ms"));
	xc_bytes = json_integer_value(json_object_get(res, "bytes"));
	json_decref(res);
	waitpid(pid, NULL, 0);
	t0 = now_ns();
	pid = vmm(sock2, NULL, NULL, NULL, NULL, snap);
	restore_xc = start_ms(sock2);
	first_report = first_report_after(pid, stat(proc_out_path(pid), &st) ? 0 : st.st_size, t0);
	stop(pid);
	unlink(snap);
	printf("BENCH snapshot snapshot_local_ms=%.1f snapshot_local_mib=%.1f restore_local_ms=%.1f "
	       "snapshot_excache_ms=%.1f snapshot_excache_stopped_ms=%.1f snapshot_excache_kib=%.1f "
	       "restore_excache_ms=%.1f restore_first_report_ms=%.1f\n",
	       snap_local_ms, local_bytes / 1048576.0, restore_local, snap_xc_ms,
	       snap_xc_stopped_ms, xc_bytes / 1024.0, restore_xc, first_report);
	fflush(stdout);
}

/* @key's number in the EXCACHE statistics line of @text, or -1. */
static long long xc_stat(const char *text, const char *key)
{
	char k[64];
	const char *p = strstr(text, "EXCACHE ");

	snprintf(k, sizeof(k), "\"%s\":", key);
	p = p ? strstr(p, k) : NULL;
	return p ? strtoll(p + strlen(k), NULL, 10) : -1;
}

/*
 * The warm-up: a vNode whose working set (@written of random reads and
 * writes) fits its 64 MiB ExCache, saved and restored cold (--warm 0: every
 * page faults in on its own) and warm (the pages resident at the save fetched
 * ahead, in runs, while the guest runs). restore_first_report_ms: the restored
 * payload's first report, which needs a full pass over its working set.
 */
static void bench_warm(const char *dir, const char *memsrv, const char *written)
{
	char sock[400], snap[400], sock2[400];
	double first[2];
	long long warmed = 0, misses[2] = {0, 0}, warm_ns = 0;

	snprintf(sock, sizeof(sock), "%s/w.sock", dir);
	snprintf(sock2, sizeof(sock2), "%s/wr.sock", dir);
	snprintf(snap, sizeof(snap), "%s/warm.snap", dir);
	for (int warm = 0; warm < 2; warm++) {
		struct proc_result r;
		struct stat st;
		uint64_t t0;
		json_t *res;
		pid_t pid = vmm(sock, "256M", written, memsrv, NULL, NULL);

		start_ms(sock);
		sleep(3); /* every page of the working set resident */
		res = call(sock, "{\"cmd\":\"snapshot\",\"path\":\"%s\",\"then\":\"stop\"}", snap);
		json_decref(res);
		waitpid(pid, NULL, 0);
		cold_restore = !warm;
		t0 = now_ns();
		pid = vmm(sock2, NULL, NULL, NULL, NULL, snap);
		cold_restore = false;
		start_ms(sock2);
		first[warm] =
			first_report_after(pid, stat(proc_out_path(pid), &st) ? 0 : st.st_size, t0);
		kill(pid, SIGTERM);
		proc_collect(pid, 60, &r);
		misses[warm] = xc_stat(r.err, "misses");
		if (warm) {
			warmed = xc_stat(r.err, "warmed");
			warm_ns = xc_stat(r.err, "warm_ns");
		}
		proc_result_free(&r);
		unlink(snap);
	}
	printf("BENCH warm written=%s excache_mib=64 restore_first_report_cold_ms=%.1f "
	       "restore_first_report_warm_ms=%.1f misses_cold=%lld misses_warm=%lld "
	       "warmed_pages=%lld warm_ms=%.1f\n",
	       written, first[0], first[1], misses[0], misses[1], warmed, warm_ns / 1e6);
	fflush(stdout);
}

static void bench_migrate(const char *dir, const char *memory, uint64_t bytes, double gbps)
{
	char memsrv[64], sock[2][400], incoming[64];
	double pause[ROUNDS];
	pid_t ms, cur, next;
	int at = 0;

	ms = track(memsrv_spawn("1G", memsrv));
	snprintf(sock[0], sizeof(sock[0]), "%s/m0.sock", dir);
	snprintf(sock[1], sizeof(sock[1]), "%s/m1.sock", dir);
	cur = vmm(sock[0], memory, "256M", memsrv, NULL, NULL);
	start_ms(sock[0]);
	sleep(1);
	for (int i = 0; i < ROUNDS; i++) {
		json_t *res;

		snprintf(incoming, sizeof(incoming), "127.0.0.1:%d", test_free_port());
		next = vmm(sock[!at], memory, "256M", memsrv, incoming, NULL);
		if (!wait_for_port(atoi(strrchr(incoming, ':') + 1), 20000)) {
			fprintf(stderr, "bench-lifecycle: the target never listened\n");
			exit(1);
		}
		usleep(300000);
		res = call(sock[at], "{\"cmd\":\"migrate\",\"to\":\"%s\",\"token\":\"%s\"}",
			   incoming, MIGTOKEN);
		pause[i] = json_number_value(json_object_get(res, "pause_ms"));
		json_decref(res);
		waitpid(cur, NULL, 0);
		start_ms(sock[!at]);
		cur = next;
		at = !at;
	}
	stop(cur);
	kill(ms, SIGTERM);
	waitpid(ms, NULL, 0);
	qsort(pause, ROUNDS, sizeof(pause[0]), cmp_double);
	printf("BENCH migrate memory=%s rounds=%d excache_mib=64 migrate_pause_p50_ms=%.1f "
	       "migrate_pause_p99_ms=%.1f precopy_ms=%.0f loopback_gbps=%.1f\n",
	       memory, ROUNDS, pause[ROUNDS / 2], pause[ROUNDS - 1], bytes * 8.0 / gbps / 1e6,
	       gbps);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	char dir[] = "/tmp/lego-bench-lifecycle-XXXXXX", memsrv[64];
	double gbps;
	pid_t ms;

	test_set_build_dir(argc > 1 ? argv[1] : "build");
	if (access("/dev/kvm", R_OK | W_OK)) {
		printf("bench-lifecycle: SKIP: no /dev/kvm\n");
		return 0;
	}
	if (!mkdtemp(dir))
		return 1;
	atexit(stop_children);
	ms = track(memsrv_spawn("1G", memsrv));
	bench_snapshot(dir, memsrv);
	bench_warm(dir, memsrv, "32M");
	bench_warm(dir, memsrv, "128M");
	kill(ms, SIGTERM);
	waitpid(ms, NULL, 0);
	gbps = loopback_gbps();
	bench_migrate(dir, "512M", 512ULL << 20, gbps);
	bench_migrate(dir, "2G", 2ULL << 30, gbps);
	bench_migrate(dir, "8G", 8ULL << 30, gbps);
	return 0;
}
