/*
 * test_rdma.c - lego-memsrv and its clients over RDMA (real verbs, through the
 * kernel's driver). Where this host has no RDMA device, the RDMA cases skip
 * loudly: `make test-rdma` runs them in a nested guest over soft-RoCE
 * (tests/rdma/in_guest.sh sets the device up and names its address in
 * LEGO_RDMA_IP). What needs no device (a server without RDMA, auto falling
 * back to TCP, a refused address) runs everywhere.
 */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster.h"
#include "memclient.h"
#include "rdma.h"
#include "test.h"
#include "util.h"

static struct memclient_cred cred(uint64_t vnode, uint8_t key, uint64_t pages,
				  enum memclient_transport t)
{
	struct memclient_cred c = {.vnode = vnode, .nr_pages = pages, .transport = t};

	memset(c.token, key, sizeof(c.token));
	return c;
}

static void fill(uint8_t *page, uint64_t seed)
{
	for (int i = 0; i < 4096; i += 8)
		*(uint64_t *)(page + i) = seed * 0x9e3779b97f4a7c15ULL + i;
}

/* The address of the RDMA device to test on, or skip. */
static const char *rdma_ip(void)
{
	const char *ip = getenv("LEGO_RDMA_IP");
	char why[512];

	if (rdma_why_off(why, sizeof(why)))
		test_skip("%s; `make test-rdma` runs this in a nested guest over soft-RoCE", why);
	if (!ip || !*ip)
		test_skip(
			"LEGO_RDMA_IP names no address of the RDMA device (tests/rdma/in_guest.sh "
			"sets it)");
	return ip;
}

/* lego-memsrv on @ip (TCP on a free port, RDMA on the next), its TCP address in @addr. */
static pid_t spawn_on(const char *ip, const char *capacity, const char *rdma, char *addr)
{
	char listen[96];
	char *argv[] = {(char *)test_path("bin/lego-memsrv"),
			"-q",
			"--listen",
			listen,
			"--capacity",
			(char *)capacity,
			"--rdma",
			(char *)rdma,
			NULL};
	pid_t pid;

	snprintf(listen, sizeof(listen), "%s:%d", ip, test_free_port());
	pid = proc_spawn(argv);
	for (int i = 0; i < 200; i++) { /* up once HELLO can be said over TCP */
		struct memclient mc;
		struct memclient_cred c = cred(999999, 0x99, 1, MEMCLIENT_TCP);
		char err[256];

		if (memclient_open(&mc, listen, &c, err, sizeof(err)) == 0) {
			memclient_close(&mc);
			snprintf(addr, 96, "%s", listen);
			return pid;
		}
		usleep(50000);
	}
	test_fail(__FILE__, __LINE__, "lego-memsrv did not start on %s", listen);
}

static void stop(pid_t pid)
{
	int status;

	kill(pid, SIGTERM);
	waitpid(pid, &status, 0);
	ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0, "lego-memsrv did not exit cleanly");
}

static void open_ok(struct memclient *mc, const char *addr, struct memclient_cred c)
{
	char err[512];

	ASSERT(memclient_open(mc, addr, &c, err, sizeof(err)) == 0, "%s", err);
}

TEST(pages_round_trip_over_rdma)
{
	const char *ip = rdma_ip();
	static uint8_t a[4096], b[4096], got[3 * 4096], zero[4096];
	uint64_t pages[2] = {7, 9};
	void *data[2] = {a, b};
	struct memclient mc;
	struct lmp_stat st;
	char addr[96];
	pid_t pid = spawn_on(ip, "64M", "auto", addr);

	open_ok(&mc, addr, cred(1, 0x11, 100, MEMCLIENT_RDMA));
	ASSERT(mc.rdma, "the client is on RDMA");
	ASSERT(strncmp(mc.x->peer, "rdma://", 7) == 0, "peer %s", mc.x->peer);
	fill(a, 1);
	fill(b, 2);
	ASSERT_EQ(memclient_write(&mc, pages, data, 2), 0);
	ASSERT_EQ(memclient_read(&mc, 7, 3, got), 0);
	ASSERT(memcmp(got, a, 4096) == 0);
	ASSERT(memcmp(got + 4096, zero, 4096) == 0, "page 8 was never written");
	ASSERT(memcmp(got + 8192, b, 4096) == 0);
	ASSERT_EQ(mc.one_sided, 2); /* pages 7 and 9 read by RDMA READ; 8 known to be zeros */
	ASSERT_EQ(mc.two_sided, 0);
	/* written again, in place: the next read sees the new contents */
	fill(a, 11);
	ASSERT_EQ(memclient_write(&mc, pages, data, 1), 0);
	ASSERT_EQ(memclient_read(&mc, 7, 1, got), 0);
	ASSERT(memcmp(got, a, 4096) == 0);
	ASSERT_EQ(memclient_stat(&mc, &st), 0);
	ASSERT_EQ(st.vnode_pages, 2);
	ASSERT_EQ(memclient_read(&mc, 99, 2, got), -ERANGE);
	/* the largest batches, both ways: a message as large as the protocol allows */
	{
		static uint8_t big[LMP_MAX_PAGES][4096], back[LMP_MAX_PAGES * 4096];
		uint64_t idx[LMP_MAX_PAGES];
		void *ptr[LMP_MAX_PAGES];

		for (int i = 0; i < LMP_MAX_PAGES; i++) {
			idx[i] = 20 + i;
			ptr[i] = big[i];
			fill(big[i], 100 + i);
		}
		ASSERT_EQ(memclient_write(&mc, idx, ptr, LMP_MAX_PAGES), 0);
		ASSERT_EQ(memclient_read(&mc, 20, LMP_MAX_PAGES, back), 0);
		for (int i = 0; i < LMP_MAX_PAGES; i++)
			ASSERT(memcmp(back + i * 4096, big[i], 4096) == 0, "page %d", 20 + i);
		ASSERT_EQ(mc.one_sided, 3 + LMP_MAX_PAGES);
	}
	/* discarded pages read as zeros, without asking */
	{
		static uint8_t back[2 * 4096];

		ASSERT_EQ(memclient_discard(&mc, 20, 2), 0);
		ASSERT_EQ(memclient_read(&mc, 20, 2, back), 0);
		ASSERT(memcmp(back, zero, 4096) == 0 && memcmp(back + 4096, zero, 4096) == 0);
	}
	ASSERT_EQ(memclient_release(&mc), 0);
	memclient_close(&mc);
	stop(pid);
}

/* A ticket from a session that said HELLO over TCP, as memclient gets one. */
static void ticket_of(const char *addr, struct memclient *tcp, uint8_t *ticket, uint16_t *port)
{
	struct lmp_hdr resp;

	open_ok(tcp, addr, cred(5, 0x55, 16, MEMCLIENT_TCP));
	ASSERT_EQ(xport_call(tcp->x, LMP_RDMA_TICKET, 0, NULL, 0, &resp, ticket, LMP_TOKEN_LEN), 0);
	ASSERT_EQ(resp.status, 0);
	*port = (uint16_t)resp.arg;
}

TEST(rdma_connections_need_a_ticket_that_is_good_once)
{
	const char *ip = rdma_ip();
	uint8_t ticket[LMP_TOKEN_LEN], forged[LMP_TOKEN_LEN];
	struct xport *x = NULL, *y = NULL;
	struct memclient tcp;
	char addr[96], raddr[128], err[512];
	uint16_t port;
	pid_t pid = spawn_on(ip, "16M", "auto", addr);

	ticket_of(addr, &tcp, ticket, &port);
	snprintf(raddr, sizeof(raddr), "rdma://%s:%u", ip, port);
	memset(forged, 0x5a, sizeof(forged));
	ASSERT_EQ(xport_connect_rdma(raddr, forged, 5000, 5000, &y, err, sizeof(err)), -EACCES);
	ASSERT_CONTAINS(err, "ticket");
	ASSERT_EQ(xport_connect_rdma(raddr, ticket, 5000, 5000, &x, err, sizeof(err)), 0);
	ASSERT_EQ(xport_connect_rdma(raddr, ticket, 5000, 5000, &y, err, sizeof(err)), -EACCES);
	/* the connection that presented it acts for the session's vNode */
	{
		struct lmp_hdr resp;
		struct lmp_stat st;

		ASSERT_EQ(xport_call(x, LMP_STAT, 0, NULL, 0, &resp, &st, sizeof(st)), 0);
		ASSERT_EQ(resp.status, 0);
	}
	xport_close(x);
	memclient_close(&tcp);
	stop(pid);
}

TEST(a_fenced_rdma_client_can_neither_read_nor_write)
{
	const char *ip = rdma_ip();
	static uint8_t a[4096], got[4096];
	uint64_t p0 = 0;
	void *data = a;
	struct memclient c1, c2;
	struct memclient_cred k1 = cred(3, 0x33, 16, MEMCLIENT_RDMA), k2 = k1;
	char addr[96];
	pid_t pid = spawn_on(ip, "16M", "auto", addr);

	k1.epoch = 1;
	k2.epoch = 2;
	open_ok(&c1, addr, k1);
	fill(a, 3);
	ASSERT_EQ(memclient_write(&c1, &p0, &data, 1), 0);
	ASSERT_EQ(memclient_read(&c1, 0, 1, got), 0);
	ASSERT_EQ(c1.one_sided, 1); /* c1 holds a key to the page's chunk */
	/* a newer placement, which has had this server since epoch 1: c1 is fenced */
	{
		char err[512];

		ASSERT(memclient_open_at(&c2, addr, &k2, 1, 0, 30000, err, sizeof(err)) == 0, "%s",
		       err);
	}
	/* its key revoked: the one-sided read fails at the device */
	ASSERT_EQ(memclient_read(&c1, 0, 1, got), -EKEYREVOKED);
	ASSERT(memclient_write(&c1, &p0, &data, 1) < 0, "a fenced client wrote");
	ASSERT_EQ(memclient_read(&c2, 0, 1, got), 0);
	ASSERT(memcmp(got, a, 4096) == 0);
	ASSERT_EQ(c2.one_sided, 1);
	memclient_close(&c1);
	memclient_close(&c2);
	stop(pid);
}

TEST(a_malformed_rdma_message_is_answered_and_others_are_served)
{
	const char *ip = rdma_ip();
	struct memclient bad, good;
	struct lmp_hdr h, resp;
	static uint8_t a[4096], got[4096];
	uint64_t p0 = 1;
	void *data = a;
	char addr[96];
	pid_t pid = spawn_on(ip, "16M", "auto", addr);

	open_ok(&bad, addr, cred(7, 0x77, 16, MEMCLIENT_RDMA));
	open_ok(&good, addr, cred(8, 0x88, 16, MEMCLIENT_RDMA));
	lmp_hdr_init(&h, LMP_READ, 42, 4, 0);
	h.magic = 0xdeadbeef;
	{
		uint32_t one = 1;
		struct iovec iov[2] = {{&h, sizeof(h)}, {&one, sizeof(one)}};

		ASSERT_EQ(xport_sendv(bad.x, iov, 2), 0);
	}
	ASSERT_EQ(xport_recv(bad.x, &resp, sizeof(resp)), 0);
	ASSERT_EQ(resp.status, -EPROTO);
	ASSERT_EQ(resp.id, 42);
	/* then the server hangs up on it, and serves the other */
	ASSERT(xport_recv(bad.x, &resp, sizeof(resp)) < 0, "the malformed client was disconnected");
	fill(a, 9);
	ASSERT_EQ(memclient_write(&good, &p0, &data, 1), 0);
	ASSERT_EQ(memclient_read(&good, 1, 1, got), 0);
	ASSERT(memcmp(got, a, 4096) == 0);
	memclient_close(&bad);
	memclient_close(&good);
	stop(pid);
}

/* LMP_CLONE of vNode @src (token byte @key) as @dst (token byte @dkey), as the manager asks. */
static int clone_of(const char *addr, uint64_t src, uint8_t key, uint64_t dst, uint8_t dkey)
{
	struct lmp_clone req = {.src = src, .dst = dst, .dst_epoch = 1};
	struct xport *x;
	struct lmp_hdr resp;
	struct iovec iov = {&req, sizeof(req)};
	char err[256];
	int ret;

	memset(req.src_token, key, sizeof(req.src_token));
	memset(req.dst_token, dkey, sizeof(req.dst_token));
	ret = xport_connect(addr, 5000, 5000, &x, err, sizeof(err));
	if (ret)
		return ret;
	ret = xport_call(x, LMP_CLONE, 0, &iov, 1, &resp, NULL, 0);
	xport_close(x);
	return ret ? ret : resp.status;
}

TEST(a_copy_reads_shared_pages_by_message_and_its_own_one_sided)
{
	const char *ip = rdma_ip();
	static uint8_t a[4096], b[4096], got[4096];
	uint64_t p0 = 0, p1 = 1;
	void *da = a, *db = b;
	struct memclient src, dst;
	char addr[96];
	pid_t pid = spawn_on(ip, "16M", "auto", addr);

	open_ok(&src, addr, cred(10, 0x10, 16, MEMCLIENT_RDMA));
	fill(a, 10);
	ASSERT_EQ(memclient_write(&src, &p0, &da, 1), 0);
	ASSERT_EQ(clone_of(addr, 10, 0x10, 11, 0x11), 0);
	{
		struct memclient_cred k = cred(11, 0x11, 16, MEMCLIENT_RDMA);

		k.epoch = 1;
		open_ok(&dst, addr, k);
	}
	/* the shared page is in the original's chunk: never exposed to the copy */
	ASSERT_EQ(memclient_read(&dst, 0, 1, got), 0);
	ASSERT(memcmp(got, a, 4096) == 0);
	ASSERT_EQ(dst.two_sided, 1);
	ASSERT_EQ(dst.one_sided, 0);
	/* what the copy writes is its own, in its own chunk: one-sided */
	fill(b, 11);
	ASSERT_EQ(memclient_write(&dst, &p1, &db, 1), 0);
	ASSERT_EQ(memclient_read(&dst, 1, 1, got), 0);
	ASSERT(memcmp(got, b, 4096) == 0);
	ASSERT_EQ(dst.one_sided, 1);
	/* and the original reads its page one-sided, unchanged */
	ASSERT_EQ(memclient_read(&src, 0, 1, got), 0);
	ASSERT(memcmp(got, a, 4096) == 0);
	ASSERT_EQ(src.one_sided, 1);
	memclient_close(&src);
	memclient_close(&dst);
	stop(pid);
}

/* Runs everywhere: a server without RDMA. */
TEST(without_rdma_auto_uses_tcp_and_rdma_says_why)
{
	struct memclient mc;
	static uint8_t a[4096], got[4096];
	uint64_t p0 = 2;
	void *data = a;
	char addr[96], err[512];
	struct memclient_cred c = cred(4, 0x44, 16, MEMCLIENT_AUTO);
	char *argv[] = {(char *)test_path("bin/lego-memsrv"),
			"-q",
			"--listen",
			addr,
			"--rdma",
			"off",
			NULL};
	pid_t pid;

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", test_free_port());
	pid = proc_spawn(argv);
	ASSERT(wait_for_port(atoi(strrchr(addr, ':') + 1), 10000), "lego-memsrv started");
	open_ok(&mc, addr, c);
	ASSERT(!mc.rdma, "auto stays on TCP when the server has no RDMA");
	fill(a, 4);
	ASSERT_EQ(memclient_write(&mc, &p0, &data, 1), 0);
	ASSERT_EQ(memclient_read(&mc, 2, 1, got), 0);
	ASSERT(memcmp(got, a, 4096) == 0);
	memclient_close(&mc);
	c.transport = MEMCLIENT_RDMA;
	ASSERT_EQ(memclient_open(&mc, addr, &c, err, sizeof(err)), -EOPNOTSUPP);
	ASSERT_CONTAINS(err, "no RDMA");
	ASSERT(mc.x == NULL, "nothing left open");
	stop(pid);
}

/* Runs everywhere: what is not an RDMA address, and a host without a device. */
TEST(rdma_addresses_are_checked_and_a_missing_device_is_named)
{
	uint8_t ticket[LMP_TOKEN_LEN] = {0};
	char host[64], port[16], err[512], why[512];
	struct xport *x = NULL;

	ASSERT_EQ(rdma_parse_addr("rdma://10.0.0.1:7401", host, sizeof(host), port, sizeof(port)),
		  0);
	ASSERT(!strcmp(host, "10.0.0.1") && !strcmp(port, "7401"));
	ASSERT_EQ(rdma_parse_addr("[fe80::1]:7401", host, sizeof(host), port, sizeof(port)), 0);
	ASSERT(!strcmp(host, "fe80::1"));
	ASSERT_EQ(rdma_parse_addr("rdma://10.0.0.1", host, sizeof(host), port, sizeof(port)),
		  -EINVAL);
	ASSERT_EQ(rdma_parse_addr("10.0.0.1:74x1", host, sizeof(host), port, sizeof(port)),
		  -EINVAL);
	ASSERT_EQ(xport_connect_rdma("nothing", ticket, 100, 100, &x, err, sizeof(err)), -EINVAL);
	ASSERT_CONTAINS(err, "rdma://HOST:PORT");
	if (rdma_why_off(why, sizeof(why))) {
		ASSERT_EQ(xport_connect_rdma("rdma://127.0.0.1:1", ticket, 100, 100, &x, err,
					     sizeof(err)),
			  -ENODEV);
		ASSERT_CONTAINS(err, "no RDMA device here");
	}
	ASSERT(x == NULL);
}

static json_t *excache_line(const char *err)
{
	const char *p = strstr(err, "EXCACHE ");

	ASSERT(p, "no EXCACHE line in:\n%s", err);
	return json_loadb(p + 8, strcspn(p + 8, "\n"), 0, NULL);
}

/* Pages the VMM read from server @addr by RDMA READ (its EXCACHE line's route). */
static long long one_sided_of(json_t *xc, const char *addr)
{
	json_t *servers = json_object_get(json_object_get(xc, "route"), "servers"), *s;
	size_t i;

	json_array_foreach(
		servers, i,
		s) if (!strcmp(json_string_value(json_object_get(s, "addr")),
			       addr)) return json_integer_value(json_object_get(s,
										"one_sided_reads"));
	return -1;
}

/* How the VMM reached the server @addr (its EXCACHE line's route), or "". */
static const char *transport_of(json_t *xc, const char *addr)
{
	json_t *servers = json_object_get(json_object_get(xc, "route"), "servers"), *s;
	size_t i;

	json_array_foreach(servers, i,
			   s) if (!strcmp(json_string_value(json_object_get(s, "addr")), addr))
	{
		const char *t = json_string_value(json_object_get(s, "transport"));

		return t ? t : "";
	}
	return "";
}

/* lego-vmm with the verifying payload on 2 vCPUs over a small ExCache; @extra: more options. */
static pid_t verifying_vmm(char *const *extra)
{
	static char vmm[600], payload[600];
	char *argv[40] = {vmm,	 "--payload", payload,	"--memory",
			  "48M", "--cpus",    "2",	"--excache",
			  "4M",	 "--stats",   "--args", "op=verify mode=rand size=16M passes=2"};
	int n = 12;

	snprintf(vmm, sizeof(vmm), "%s", test_path("bin/lego-vmm"));
	snprintf(payload, sizeof(payload), "%s", test_path("guest/payloads/touch.bin"));
	while (*extra && n < 39)
		argv[n++] = *extra++;
	argv[n] = NULL;
	return proc_spawn(argv);
}

static void vmm_no_mismatches(struct proc_result *r)
{
	uint64_t mism = 1;

	ASSERT(!r->timed_out, "the guest did not finish");
	ASSERT(r->status == 0, "lego-vmm exited %d:\n%s", r->status, r->err);
	for (int v = 0; v < 2; v++) {
		ASSERT(report_get(r->out, v, "mismatches", &mism), "no mismatches report");
		ASSERT(mism == 0, "vCPU %d found %llu mismatches", v, (unsigned long long)mism);
	}
}

TEST_TIMEOUT(a_verifying_guest_over_rdma_survives_its_primary_killed_mid_run, 900)
{
	const char *ip;
	char a[96], b[96];
	struct proc_result r;
	pid_t pa, pb, pid;
	json_t *xc;
	bool running;

	test_require_kvm();
	ip = rdma_ip();
	pa = spawn_on(ip, "64M", "auto", a);
	pb = spawn_on(ip, "64M", "auto", b);
	{
		char *extra[] = {"--memsrv", a,	  "--memsrv-secondary", b,
				 "--epoch",  "1", "--transport",	"rdma",
				 NULL};

		pid = verifying_vmm(extra);
	}
	sleep(3 + (unsigned)(now_ns() % 3)); /* mid-run: the guest writes and verifies */
	running = proc_running(pid);
	kill(pa, SIGKILL);
	waitpid(pa, NULL, 0);
	proc_collect(pid, 800, &r);
	vmm_no_mismatches(&r);
	xc = excache_line(r.err);
	ASSERT(!strcmp(transport_of(xc, b), "rdma"), "the secondary over %s", transport_of(xc, b));
	ASSERT(one_sided_of(xc, a) + one_sided_of(xc, b) > 0, "no page read one-sided");
	if (running)
		ASSERT(one_sided_of(xc, b) > 0, "the secondary served no one-sided read");
	if (running)
		ASSERT_EQ(json_integer_value(
				  json_object_get(json_object_get(xc, "route"), "failovers")),
			  1);
	printf("  primary killed %s the guest ran; 0 mismatches over RDMA (%lld + %lld pages "
	       "read one-sided)\n",
	       running ? "while" : "after", one_sided_of(xc, a), one_sided_of(xc, b));
	json_decref(xc);
	proc_result_free(&r);
	stop(pb);
}

TEST_TIMEOUT(a_mixed_vnode_uses_rdma_where_the_server_has_it_and_tcp_where_not, 900)
{
	const char *ip;
	char a[96], b[96], both[600];
	struct proc_result r;
	pid_t pa, pb, pid;
	json_t *xc;

	test_require_kvm();
	ip = rdma_ip();
	pa = spawn_on(ip, "64M", "auto", a);
	pb = spawn_on(ip, "64M", "off", b);
	snprintf(both, sizeof(both), "%s,%s,%s,%s,%s,%s", a, b, a, b, a, b); /* 6 slabs of 8M */
	{
		char *extra[] = {"--memsrv",	both,	"--slab-size", "8M",
				 "--transport", "auto", NULL};

		pid = verifying_vmm(extra);
	}
	proc_collect(pid, 800, &r);
	vmm_no_mismatches(&r);
	xc = excache_line(r.err);
	ASSERT(!strcmp(transport_of(xc, a), "rdma"), "%s over %s", a, transport_of(xc, a));
	ASSERT(!strcmp(transport_of(xc, b), "tcp"), "%s over %s", b, transport_of(xc, b));
	ASSERT(one_sided_of(xc, a) > 0, "no page read one-sided from %s", a);
	ASSERT_EQ(one_sided_of(xc, b), 0);
	printf("  %lld pages read one-sided from %s, the rest over TCP\n", one_sided_of(xc, a), a);
	json_decref(xc);
	proc_result_free(&r);
	stop(pa);
	stop(pb);
}

/* Runs everywhere: a vNode that asks for RDMA where no memory server serves it. */
TEST_TIMEOUT(an_rdma_vnode_without_rdma_servers_is_refused_with_the_reason, 180)
{
	struct proc_result c;
	json_t *nodes;

	cluster_home();
	up("256M");
	nodes = legoctl_json("nodes", NULL);
	ASSERT(!strcmp(json_string_value(json_array_get(
			       json_object_get(component(nodes, "memsrv", 1), "transports"), 0)),
		       "tcp"));
	ASSERT_EQ(json_array_size(json_object_get(component(nodes, "memsrv", 1), "transports")), 1);
	json_decref(nodes);
	legoctl(&c, "create", "r0", "--memory", "32M", "--excache", "8M", "--payload", "touch",
		"--transport", "rdma", NULL);
	ASSERT(c.status != 0, "placed on servers without RDMA: %s", c.out);
	ASSERT_CONTAINS(c.err, "serve RDMA");
	proc_result_free(&c);
	legoctl(&c, "create", "r0", "--transport", "infiniband", NULL);
	ASSERT(c.status == 2, "a wrong --transport: status %d", c.status);
	ASSERT_CONTAINS(c.err, "tcp, rdma or auto");
	proc_result_free(&c);
	down_leaves_nothing(NULL, 0);
}

TEST_TIMEOUT(a_cluster_places_an_rdma_vnode_on_servers_that_serve_rdma, 900)
{
	char tokfile[600], prefix[2][700], listen[2][64], *argv[16];
	struct proc_result c;
	pid_t m[2];
	json_t *v, *nodes, *s;
	bool shown = false;
	const char *ip;
	size_t i;

	test_require_kvm();
	ip = rdma_ip();
	/* in the namespace of the RDMA device: Linux 6.1's soft-RoCE answers in the first
	 * network namespace only (its UDP socket is there) */
	cluster_home_here();
	up("256M");
	snprintf(tokfile, sizeof(tokfile), "%s/token", test_tmpdir());
	for (int k = 0; k < 2; k++) { /* two memory servers that serve RDMA too */
		join_token_file("memsrv", tokfile);
		snprintf(prefix[k], sizeof(prefix[k]), "%s/memsrv-r%d", test_tmpdir(), k);
		snprintf(listen[k], sizeof(listen[k]), "%s:%d", ip, test_free_port());
		memsrv_join_argv(argv, listen[k], NULL, prefix[k], tokfile);
		m[k] = proc_spawn(argv);
		ASSERT(wait_health("memsrv", listen[k], "up", 20000) >= 0, "%s did not join",
		       listen[k]);
	}
	nodes = legoctl_json("nodes", NULL);
	json_array_foreach(json_object_get(nodes, "components"), i, s)
	{
		if (strcmp(JS(s, "role"), "memsrv"))
			continue;
		ASSERT_EQ(json_array_size(json_object_get(s, "transports")),
			  strncmp(JS(s, "addr"), ip, strlen(ip)) ? 1 : 2);
	}
	json_decref(nodes);
	legoctl(&c, "create", "r1", "--memory", "64M", "--excache", "8M", "--payload", "touch",
		"--args", "op=verify mode=rand size=32M passes=3", "--transport", "rdma", NULL);
	ASSERT(c.status == 0, "create: %s%s", c.out, c.err);
	proc_result_free(&c);
	v = wait_vnode_for("r1", "running", 0, 120);
	ASSERT(json_array_size(json_object_get(v, "slabs")) > 0, "no slabs");
	json_array_foreach(json_object_get(v, "slabs"), i, s)
	{ /* every copy on a server that serves RDMA */
		char *text = json_dumps(v, JSON_COMPACT);

		ASSERT(!strncmp(JS(s, "primary"), ip, strlen(ip)), "primary in %s", text);
		ASSERT(!strncmp(JS(s, "secondary"), ip, strlen(ip)), "secondary in %s", text);
		free(text);
	}
	json_decref(v);
	for (int t = 0; t < 300 && !shown; t++) { /* the VMM's report reaches legoctl list */
		legoctl(&c, "list", NULL);
		shown = strstr(c.out, "(rdma)") != NULL;
		if (!shown && strstr(c.out, "exited"))
			break;
		proc_result_free(&c);
		if (!shown)
			usleep(200000);
	}
	ASSERT(shown, "legoctl list never showed the vNode over RDMA:\n%s", c.out);
	proc_result_free(&c);
	json_decref(wait_vnode_for("r1", "exited", 0, 600));
	no_mismatches("r1", 1);
	for (int k = 0; k < 2; k++) /* the servers that joined: this case's own */
		stop(m[k]);
	down_leaves_nothing(NULL, 0);
}
