/*
 * bench_rdma.c - one page read from a lego-memsrv through lego's RDMA
 * transport, next to the verbs' own floor on the same device in the same
 * run (perftest's ib_read_lat: a one-sided 4 KiB RDMA READ; ib_send_lat: a
 * 4 KiB SEND, reported as half its round trip) and lego's TCP transport:
 *   rdma_read_p50_us, rdma_read_p99_us, ibv_read_lat_p50_us,
 *   ibv_read_lat_p99_us, ibv_send_lat_p50_us, rdma_floor_ratio (lego's RDMA
 *   read p50 over ib_read_lat's), tcp_read_p50_us, tcp_read_p99_us.
 * Where this host has no RDMA device, it runs itself in the nested guest
 * of tests/nested/run.sh over soft-RoCE (tests/rdma/in_guest.sh): real
 * verbs through the real kernel driver on an emulated wire and an emulated
 * CPU, so the figures compare lego with the verbs in the same place, not
 * with hardware.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "memclient.h"
#include "rdma.h"
#include "test.h"
#include "util.h"

#define PAGES 1024
#define READS 2000

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* p50 and p99 (µs) of READS single-page reads at random pages over @mode. */
static int read_latency(const char *addr, enum memclient_transport mode, double *p50, double *p99)
{
	static uint64_t ns[READS];
	static uint8_t page[4096];
	struct memclient_cred c = {.vnode = 77 + mode, .nr_pages = PAGES, .transport = mode};
	struct memclient mc;
	uint64_t seed = 12345;
	char err[512];

	memset(c.token, 0x42 + mode, sizeof(c.token));
	if (memclient_open(&mc, addr, &c, err, sizeof(err))) {
		fprintf(stderr, "bench-rdma: %s\n", err);
		return -1;
	}
	if (mode == MEMCLIENT_RDMA && !mc.rdma) {
		fprintf(stderr, "bench-rdma: the client is not on RDMA\n");
		return -1;
	}
	for (uint64_t p = 0; p < PAGES; p++) { /* every page held by the server */
		void *d = page;

		memset(page, (int)p, sizeof(page));
		if (memclient_write(&mc, &p, &d, 1))
			return -1;
	}
	for (int i = 0; i < READS; i++) {
		uint64_t t0, p;

		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		p = (seed >> 33) % PAGES;
		t0 = now_ns();
		if (memclient_read(&mc, p, 1, page))
			return -1;
		ns[i] = now_ns() - t0;
		if (page[0] != (uint8_t)p || page[4095] != (uint8_t)p) {
			fprintf(stderr, "bench-rdma: page %llu read wrong\n",
				(unsigned long long)p);
			return -1;
		}
	}
	memclient_release(&mc);
	memclient_close(&mc);
	qsort(ns, READS, sizeof(ns[0]), cmp_u64);
	*p50 = ns[READS / 2] / 1000.0;
	*p99 = ns[READS * 99 / 100] / 1000.0;
	return 0;
}

/*
 * perftest's @tool (ib_read_lat, ib_send_lat) with 4 KiB messages on @dev:
 * its server in the background, its client to @ip; t_typical (the median)
 * and the 99th percentile from the client's result line.
 */
static int perftest(const char *tool, const char *dev, const char *ip, double *p50, double *p99)
{
	char cmd[512], line[512];
	FILE *f;
	int found = 0;

	snprintf(cmd, sizeof(cmd),
		 "%s -d %s -s 4096 -n %d >/dev/null 2>&1 & sleep 2; %s -d %s -s 4096 -n %d %s "
		 "2>&1; wait",
		 tool, dev, READS, tool, dev, READS, ip);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		double v[9];

		/* #bytes #iterations t_min t_max t_typical t_avg t_stdev 99% 99.9% */
		if (sscanf(line, " %lf %lf %lf %lf %lf %lf %lf %lf %lf", &v[0], &v[1], &v[2], &v[3],
			   &v[4], &v[5], &v[6], &v[7], &v[8]) == 9 &&
		    v[0] == 4096) {
			*p50 = v[4];
			*p99 = v[7];
			found = 1;
		}
	}
	pclose(f);
	return found ? 0 : -1;
}

/* This host has no RDMA device: the same benchmark in the nested guest, over soft-RoCE. */
static int in_nested_guest(const char *build, const char *why)
{
	char cmd[2048];

	printf("bench-rdma: %s here; running in the nested guest over soft-RoCE\n", why);
	fflush(stdout);
	snprintf(cmd, sizeof(cmd),
		 "NESTED_MEM=${NESTED_MEM:-4G} tests/nested/run.sh 'tests/rdma/in_guest.sh %s "
		 "env LEGO_BENCH_NESTED=1 %s/tests/bench/bench_rdma %s' 2>&1 | "
		 "grep -E '^(BENCH|bench-rdma|test-rdma)'",
		 build, build, build);
	return system(cmd) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	const char *build = argc > 1 ? argv[1] : "build";
	const char *ip = getenv("LEGO_RDMA_IP");
	double rp50, rp99, tp50, tp99, ip50, ip99, sp50 = 0, sp99;
	char why[512], listen[96], dev[64] = "rxe0";
	char *srv[] = {NULL, "-q", "--listen", listen, "--capacity", "64M", "--rdma", "auto", NULL};
	struct ibv_device **devs;
	int n = 0, status;
	pid_t pid;

	test_set_build_dir(build);
	if (rdma_why_off(why, sizeof(why)) || !ip) {
		if (getenv("LEGO_BENCH_NESTED")) {
			fprintf(stderr, "bench-rdma: no RDMA device in the nested guest: %s\n",
				why);
			return 1;
		}
		return in_nested_guest(build, ip ? why : "no RDMA device (LEGO_RDMA_IP unset)");
	}
	devs = ibv_get_device_list(&n);
	if (devs && n > 0)
		snprintf(dev, sizeof(dev), "%s", ibv_get_device_name(devs[0]));
	if (devs)
		ibv_free_device_list(devs);
	srv[0] = (char *)test_path("bin/lego-memsrv");
	snprintf(listen, sizeof(listen), "%s:%d", ip, test_free_port());
	pid = proc_spawn(srv);
	usleep(500000);
	for (int i = 0; i < 100; i++) { /* until it answers */
		struct memclient mc;
		struct memclient_cred c = {.vnode = 1, .nr_pages = 1};

		if (!memclient_open(&mc, listen, &c, why, sizeof(why))) {
			memclient_close(&mc);
			break;
		}
		usleep(100000);
	}
	if (read_latency(listen, MEMCLIENT_RDMA, &rp50, &rp99) ||
	    read_latency(listen, MEMCLIENT_TCP, &tp50, &tp99)) {
		kill(pid, SIGTERM);
		return 1;
	}
	kill(pid, SIGTERM);
	waitpid(pid, &status, 0);
	if (perftest("ib_read_lat", dev, ip, &ip50, &ip99)) {
		fprintf(stderr, "bench-rdma: ib_read_lat gave no result (perftest installed?)\n");
		return 1;
	}
	if (perftest("ib_send_lat", dev, ip, &sp50, &sp99))
		sp50 = 0;
	printf("BENCH rdma device=%s reads=%d rdma_read_p50_us=%.1f rdma_read_p99_us=%.1f "
	       "ibv_read_lat_p50_us=%.1f ibv_read_lat_p99_us=%.1f ibv_send_lat_p50_us=%.1f "
	       "rdma_floor_ratio=%.2f tcp_read_p50_us=%.1f tcp_read_p99_us=%.1f "
	       "rdma_spin_us=%d\n",
	       dev, READS, rp50, rp99, ip50, ip99, sp50, rp50 / ip50, tp50, tp99, rdma_spin_us);
	return 0;
}
