/*
 * bench_excache.c - the ExCache next to its physical limits, measured in the
 * same run:
 *   excache_miss_p50/p99_us  a guest read of a page held by the memory server
 *                            (random order, prefetch off), timed in the guest
 *   floor_p50_us             the same kind of fault filled locally (never-written
 *                            pages), the faster of a blocking and a spinning handler
 *   tcp_rtt_p50_us           a bare 32-byte request / 4 KiB answer on loopback,
 *                            the faster of both threads on one core and on two
 *   miss_ratio               the miss over its floor: local fill + bare round trip
 *   memsrv_read_p50_us       one page read from lego-memsrv by the project's client,
 *                            no KVM and no userfaultfd
 *   the miss taken apart     (BENCH miss_breakdown) from the VMM's own clock, per
 *                            remote miss: room (waiting for the evictor), fetch (the
 *                            read from the server), install (UFFDIO_COPY and wake),
 *                            service (all of it, from the fault's event being read);
 *                            handoff = the guest's miss - service: the fault reaching
 *                            the handler and the vCPU running again
 *   seq_prefetch_ratio       per-page cost of a sequential scan with prefetch,
 *                            over the same without prefetch (one miss per page)
 *   lru_hit_ratio            the policy's hit rate over exact LRU's on the touch
 *                            payload's Zipf trace (replayed); real_hit_rate is
 *                            what the VMM achieved on that very trace
 *   hitpath_ratio            a resident scan with the ExCache over the same
 *                            scan without userfaultfd at all
 *   excache_miss_p50_us_tls  the miss again, from a memory server of a cluster: TLS,
 *                            the VMM with its credential; tls_miss_ratio over the plain
 *                            one (goal 1.1), memsrv_read_p50_us_tls the client's read
 */
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "memclient.h"
#include "pki.h"
#include "policy_sim.h"
#include "test.h"
#include "util.h"
#include "xport.h"

static char memsrv_addr[64];

/* Run touch with @args; lego-vmm options in @opts (NULL-terminated, may be empty). */
static struct proc_result run_touch(const char *mem, const char *excache, const char *const *opts,
				    const char *args)
{
	char *argv[32];
	int n = 0;
	struct proc_result r;

	argv[n++] = (char *)test_path("bin/lego-vmm");
	argv[n++] = "-q";
	argv[n++] = "--stats";
	argv[n++] = "--payload";
	argv[n++] = (char *)test_path("guest/payloads/touch.bin");
	argv[n++] = "--memory";
	argv[n++] = (char *)mem;
	if (excache) {
		argv[n++] = "--excache";
		argv[n++] = (char *)excache;
		argv[n++] = "--memsrv";
		argv[n++] = memsrv_addr;
	}
	for (; opts && *opts; opts++)
		argv[n++] = (char *)*opts;
	argv[n++] = "--args";
	argv[n++] = (char *)args;
	argv[n] = NULL;
	proc_run(argv, 600, &r);
	if (r.status != 0) {
		fprintf(stderr, "touch %s failed (status %d):\n%s\n%s", args, r.status, r.out,
			r.err);
		exit(1);
	}
	return r;
}

static uint64_t excache_stat(const struct proc_result *r, const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(r->err, pat);
	return p ? strtoull(p + strlen(pat), NULL, 10) : 0;
}

/* ---- bare TCP round trip: 32-byte request, 4 KiB answer ---- */

static int rtt_server_cpu = -1;

static void pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void *rtt_server(void *arg)
{
	int lfd = *(int *)arg, fd = accept(lfd, NULL, NULL), one = 1;

	pin(rtt_server_cpu);
	char req[32], page[4096] = {0};

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	while (recv(fd, req, sizeof(req), MSG_WAITALL) == sizeof(req))
		if (send(fd, page, sizeof(page), 0) != sizeof(page))
			break;
	close(fd);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The bare round trip with the client on @client_cpu, the server on @server_cpu (-1: anywhere). */
static double tcp_rtt_p50_us(int client_cpu, int server_cpu)
{
	cpu_set_t old;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int lfd = socket(AF_INET, SOCK_STREAM, 0), fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	enum { N = 20000 };
	static uint64_t ns[N];
	char req[32] = {0}, page[4096];
	pthread_t th;

	pthread_getaffinity_np(pthread_self(), sizeof(old), &old);
	pin(client_cpu);
	rtt_server_cpu = server_cpu;
	bind(lfd, (struct sockaddr *)&sa, sizeof(sa));
	getsockname(lfd, (struct sockaddr *)&sa, &len);
	listen(lfd, 1);
	pthread_create(&th, NULL, rtt_server, &lfd);
	connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	for (int i = 0; i < N; i++) {
		uint64_t t0 = now_ns();

		if (send(fd, req, sizeof(req), 0) != sizeof(req) ||
		    recv(fd, page, sizeof(page), MSG_WAITALL) != sizeof(page))
			exit(1);
		ns[i] = now_ns() - t0;
	}
	close(fd);
	pthread_join(th, NULL);
	close(lfd);
	pthread_setaffinity_np(pthread_self(), sizeof(old), &old);
	qsort(ns, N, sizeof(ns[0]), cmp_u64);
	return ns[N / 2] / 1000.0;
}

static double memsrv_read_p50_us_at(uint64_t vnode)
{
	struct memclient mc;
	struct memclient_cred c = {.vnode = vnode, .nr_pages = 16};
	static uint8_t page[4096];
	enum { N = 20000 };
	static uint64_t ns[N];
	uint64_t idx = 3;
	void *data = page;
	char err[256];

	if (memclient_open(&mc, memsrv_addr, &c, err, sizeof(err)) ||
	    memclient_write(&mc, &idx, &data, 1))
		exit(1);
	for (int i = 0; i < N; i++) {
		uint64_t t0 = now_ns();

		if (memclient_read(&mc, 3, 1, page))
			exit(1);
		ns[i] = now_ns() - t0;
	}
	memclient_release(&mc);
	memclient_close(&mc);
	qsort(ns, N, sizeof(ns[0]), cmp_u64);
	return ns[N / 2] / 1000.0;
}

static double memsrv_read_p50_us(void)
{
	return memsrv_read_p50_us_at(77);
}

#define TLS_VNODE 4242

/*
 * A memory server of a cluster of the bench's own (TLS, its certificate
 * for 127.0.0.1) on @addr, and an order file giving the VMM the CA and its
 * credential for vNode TLS_VNODE into @order. Its pid.
 */
static pid_t tls_memsrv(char *addr, char *order)
{
	static const char *const local[] = {"127.0.0.1", NULL};
	struct pki_cert_req srv = {.name = "memsrv", .role = PKI_MEMSRV, .hosts = local};
	struct pki_cert_req vmm = {.name = "bench", .role = PKI_VMM, .vnode = TLS_VNODE};
	char dir[600], prefix[620], capath[620], err[1024], *ca, *cert, *key;
	int port = test_free_port();
	json_t *j;
	pid_t pid;

	snprintf(dir, sizeof(dir), "%s/pki", test_tmpdir());
	snprintf(prefix, sizeof(prefix), "%s/memsrv", dir);
	snprintf(capath, sizeof(capath), "%s/ca.pem", dir);
	if (pki_init_cluster(dir, "bench", NULL, err, sizeof(err)) ||
	    pki_issue(dir, &srv, err, sizeof(err)) ||
	    pki_issue_pem(dir, &vmm, &cert, &key, err, sizeof(err)) || !(ca = pki_read(capath))) {
		fprintf(stderr, "bench-excache: %s\n", err);
		exit(1);
	}
	snprintf(addr, 64, "127.0.0.1:%d", port);
	char *argv[] = {(char *)test_path("bin/lego-memsrv"),
			"-q",
			"--listen",
			addr,
			"--capacity",
			"4G",
			"--identity",
			prefix,
			NULL};
	pid = proc_spawn(argv);
	if (!wait_for_port(port, 10000)) {
		fprintf(stderr, "bench-excache: the TLS memory server did not start\n");
		exit(1);
	}
	j = json_pack("{s:s,s:s,s:s,s:I}", "tls_ca", ca, "tls_cert", cert, "tls_key", key, "vnode",
		      (json_int_t)TLS_VNODE);
	snprintf(order, 600, "%s/tls-order.json", test_tmpdir());
	umask(077);
	if (json_dump_file(j, order, 0)) {
		fprintf(stderr, "bench-excache: cannot write %s\n", order);
		exit(1);
	}
	json_decref(j);
	/* this process's own reads (memsrv_read_p50_us) as that VMM */
	if (xport_tls(ca, cert, key, err, sizeof(err))) {
		fprintf(stderr, "bench-excache: %s\n", err);
		exit(1);
	}
	free(ca);
	free(cert);
	free(key);
	return pid;
}

int main(int argc, char **argv)
{
	const char *noprefetch[] = {"--prefetch", "1", NULL};
	const char *spin[] = {"--excache-poll", "spin", NULL};
	struct proc_result r;
	double miss50, miss99, fblock, fspin, floor50, rtt, rtt1, rtt2, rd, seq_pf, seq_nopf;
	double room, fetch, install, service;
	double hit_ours, hit_lru, hit_fifo, hit_real, resident, nouffd;
	uint64_t pages = 65536, n = 4 * pages, cap = 6554;
	uint32_t *trace;
	pid_t ms;
	char accesses[64], zipf_args[160];

	if (argc > 1)
		test_set_build_dir(argv[1]);
	test_require_kvm();
	ms = memsrv_spawn("4G", memsrv_addr);

	r = run_touch("160M", "8M", noprefetch, "op=read mode=rand size=128M prefill=1 lat=1");
	miss50 = report_need(&r, "p1_lat_p50_ns") / 1000.0;
	miss99 = report_need(&r, "p1_lat_p99_ns") / 1000.0;
	room = excache_stat(&r, "room_p50_ns") / 1000.0;
	fetch = excache_stat(&r, "fetch_p50_ns") / 1000.0;
	install = excache_stat(&r, "install_p50_ns") / 1000.0;
	service = excache_stat(&r, "service_p50_ns") / 1000.0;
	proc_result_free(&r);
	r = run_touch("160M", "150M", NULL, "op=write mode=rand size=128M lat=1");
	fblock = report_need(&r, "p1_lat_p50_ns") / 1000.0;
	proc_result_free(&r);
	r = run_touch("160M", "150M", spin, "op=write mode=rand size=128M lat=1");
	fspin = report_need(&r, "p1_lat_p50_ns") / 1000.0;
	proc_result_free(&r);
	floor50 = fblock < fspin ? fblock : fspin;
	rtt1 = tcp_rtt_p50_us(0, 0);
	rtt2 = tcp_rtt_p50_us(0, 1);
	rtt = rtt1 < rtt2 ? rtt1 : rtt2;
	rd = memsrv_read_p50_us();
	printf("BENCH excache_miss_p50_us=%.1f excache_miss_p99_us=%.1f floor_p50_us=%.1f "
	       "floor_block_p50_us=%.1f floor_spin_p50_us=%.1f tcp_rtt_p50_us=%.1f "
	       "memsrv_read_p50_us=%.1f miss_floor_us=%.1f miss_ratio=%.2f miss_goal=1.2\n",
	       miss50, miss99, floor50, fblock, fspin, rtt, rd, floor50 + rtt,
	       miss50 / (floor50 + rtt));
	printf("BENCH miss_breakdown guest_miss_p50_us=%.1f service_p50_us=%.1f room_p50_us=%.1f "
	       "fetch_p50_us=%.1f install_p50_us=%.1f handoff_us=%.1f "
	       "tcp_rtt_one_core_p50_us=%.1f tcp_rtt_two_cores_p50_us=%.1f\n",
	       miss50, service, room, fetch, install, miss50 - service, rtt1, rtt2);
	fflush(stdout);
	{ /* the same miss over TLS, the plain one measured again beside it */
		char plain[64], order[600];
		const char *tls_opts[] = {"--prefetch", "1", "--order", order, NULL};
		double plain50, tls50, tls99, tls_rd;
		pid_t tms;

		r = run_touch("160M", "8M", noprefetch,
			      "op=read mode=rand size=128M prefill=1 lat=1");
		plain50 = report_need(&r, "p1_lat_p50_ns") / 1000.0;
		proc_result_free(&r);
		snprintf(plain, sizeof(plain), "%s", memsrv_addr);
		tms = tls_memsrv(memsrv_addr, order);
		r = run_touch("160M", "8M", tls_opts,
			      "op=read mode=rand size=128M prefill=1 lat=1");
		tls50 = report_need(&r, "p1_lat_p50_ns") / 1000.0;
		tls99 = report_need(&r, "p1_lat_p99_ns") / 1000.0;
		proc_result_free(&r);
		tls_rd = memsrv_read_p50_us_at(TLS_VNODE);
		kill(tms, SIGTERM);
		waitpid(tms, NULL, 0);
		snprintf(memsrv_addr, sizeof(memsrv_addr), "%s", plain);
		printf("BENCH excache_miss_p50_us_tls=%.1f excache_miss_p99_us_tls=%.1f "
		       "excache_miss_p50_us_plain=%.1f tls_miss_ratio=%.2f "
		       "memsrv_read_p50_us_tls=%.1f tls_miss_goal=1.1\n",
		       tls50, tls99, (miss50 + plain50) / 2, tls50 / ((miss50 + plain50) / 2),
		       tls_rd);
		fflush(stdout);
	}

	r = run_touch("160M", "8M", NULL, "op=read mode=seq size=128M prefill=1");
	seq_pf = report_need(&r, "p1_ns") / 32768.0;
	proc_result_free(&r);
	r = run_touch("160M", "8M", noprefetch, "op=read mode=seq size=128M prefill=1");
	seq_nopf = report_need(&r, "p1_ns") / 32768.0;
	proc_result_free(&r);
	printf("BENCH seq_prefetch_ns_per_page=%.0f seq_noprefetch_ns_per_page=%.0f "
	       "seq_prefetch_ratio=%.2f\n",
	       seq_pf, seq_nopf, seq_pf / seq_nopf);
	fflush(stdout);

	/* The payload's zipf trace (seed 1, vCPU 0) replayed here, and run for real. */
	trace = sim_zipf_trace(pages, n, 0.99, 1);
	hit_lru = (double)sim_lru(trace, n, pages, cap) / n;
	hit_fifo = (double)sim_fifo(trace, n, pages, cap) / n;
	hit_ours = (double)sim_excache(trace, n, pages, cap) / n;
	free(trace);
	snprintf(accesses, sizeof(accesses), "%llu", (unsigned long long)n);
	snprintf(zipf_args, sizeof(zipf_args),
		 "op=read mode=zipf size=256M prefill=1 theta=0.99 seed=1 accesses=%s", accesses);
	r = run_touch("300M", "26216K", noprefetch, zipf_args); /* 6554 pages */
	hit_real = 1.0 - (double)excache_stat(&r, "fetches") / n;
	proc_result_free(&r);
	printf("BENCH lru_hit_ratio=%.3f policy_hit_rate=%.4f lru_hit_rate=%.4f fifo_hit_rate=%.4f "
	       "real_hit_rate=%.4f pages=%llu cache_pages=%llu\n",
	       hit_ours / hit_lru, hit_ours, hit_lru, hit_fifo, hit_real, (unsigned long long)pages,
	       (unsigned long long)cap);
	fflush(stdout);

	r = run_touch("160M", "150M", NULL, "op=read mode=seq size=128M prefill=1 passes=5");
	resident = report_need(&r, "p5_ns") / 32768.0;
	proc_result_free(&r);
	r = run_touch("160M", NULL, NULL, "op=read mode=seq size=128M prefill=1 passes=5");
	nouffd = report_need(&r, "p5_ns") / 32768.0;
	proc_result_free(&r);
	printf("BENCH hitpath_ratio=%.3f resident_ns_per_page=%.2f nouffd_ns_per_page=%.2f\n",
	       resident / nouffd, resident, nouffd);
	kill(ms, SIGTERM);
	waitpid(ms, NULL, 0);
	return 0;
}
