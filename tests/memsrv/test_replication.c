/*
 * test_replication.c - replicated memory and failover below the VMM, with
 * real lego-memsrv processes: placement epochs fence old connections and
 * stale copies; a write counts only when primary and secondary hold it; a
 * primary killed (kill -9) or cut off (a veth pulled down in a network
 * namespace) in the middle of a write-and-verify workload loses nothing, and
 * the copy it kept is never read again.
 */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "memclient.h"
#include "memroute.h"
#include "memwork.h"
#include "test.h"
#include "util.h"
#include "xport.h"

static struct memclient_cred cred(uint64_t vnode, uint64_t pages, uint64_t epoch)
{
	struct memclient_cred c = {.vnode = vnode, .nr_pages = pages, .epoch = epoch};

	memset(c.token, 0x77, sizeof(c.token));
	return c;
}

static int hello(struct memclient *mc, const char *addr, uint64_t epoch, uint64_t since,
		 uint32_t flags)
{
	struct memclient_cred c = cred(5, 64, epoch);
	char err[256];

	return memclient_open_at(mc, addr, &c, since, flags, 5000, err, sizeof(err));
}

TEST(epochs_fence_old_connections_and_stale_copies)
{
	char addr[64];
	pid_t pid = memsrv_spawn("16M", addr);
	struct memclient c1, c2, c3, c4;
	static uint8_t page[4096], got[4096], zero[4096];
	uint64_t p0 = 0;
	void *data = page;

	ASSERT_EQ(hello(&c1, addr, 1, 1, 0), 0);
	memwork_fill(page, 0, 1);
	ASSERT_EQ(memclient_write(&c1, &p0, &data, 1), 0);
	/* The placement moves on to epoch 2 with this server in it. */
	ASSERT_EQ(hello(&c2, addr, 2, 1, 0), 0);
	ASSERT_EQ(memclient_read(&c2, 0, 1, got), 0);
	ASSERT(memcmp(got, page, 4096) == 0);
	/* The epoch-1 connection is fenced: no read, no write, no release. */
	ASSERT_EQ(memclient_read(&c1, 0, 1, got), -ESTALE);
	ASSERT_EQ(memclient_write(&c1, &p0, &data, 1), -ESTALE);
	ASSERT_EQ(memclient_release(&c1), -ESTALE);
	/* Nor can anyone come back at epoch 1. */
	ASSERT_EQ(hello(&c3, addr, 1, 1, 0), -ESTALE);
	/* A client that has had this server only since epoch 3 does not trust a copy
	 * of epoch 2: it must be refilled. */
	ASSERT_EQ(hello(&c3, addr, 3, 3, 0), -ESTALE);
	ASSERT_EQ(hello(&c3, addr, 3, 3, LMP_HELLO_FRESH), 0);
	ASSERT_EQ(memclient_read(&c3, 0, 1, got), 0);
	ASSERT(memcmp(got, zero, 4096) == 0, "a refilled server still had the old copy");
	ASSERT_EQ(memclient_read(&c2, 0, 1, got), -ESTALE);
	/* A refill only ever comes from a newer placement. */
	ASSERT_EQ(hello(&c4, addr, 3, 3, LMP_HELLO_FRESH), -ESTALE);
	memclient_close(&c1);
	memclient_close(&c2);
	memclient_close(&c3);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

/* Two clients racing to take the vNode over at the same new epoch: one wins, and the old
 * epoch is fenced (a migration's source and target). */
TEST(a_takeover_of_an_epoch_is_won_once)
{
	char addr[64], err[256];
	pid_t pid = memsrv_spawn("16M", addr);
	struct memclient old, won, lost, after;
	static uint8_t page[4096], got[4096];
	uint64_t p0 = 0;
	void *data = page;
	struct memroute r;
	struct memclient_cred c = cred(5, 64, 1);

	ASSERT_EQ(hello(&old, addr, 1, 1, 0), 0);
	memwork_fill(page, 0, 9);
	ASSERT_EQ(memclient_write(&old, &p0, &data, 1), 0);
	ASSERT_EQ(hello(&won, addr, 2, 1, LMP_HELLO_TAKEOVER), 0);
	ASSERT_EQ(hello(&lost, addr, 2, 1, LMP_HELLO_TAKEOVER), -ESTALE);
	ASSERT_EQ(memclient_write(&old, &p0, &data, 1), -ESTALE); /* the source is fenced */
	ASSERT_EQ(memclient_read(&won, 0, 1, got), 0);
	ASSERT(memcmp(got, page, 4096) == 0, "the takeover lost the page");
	/* the winner's other connections join at its epoch without the flag */
	ASSERT_EQ(hello(&after, addr, 2, 1, 0), 0);
	/* memroute_takeover: the same, and the route moves to the epoch */
	ASSERT(memroute_init(&r, addr, NULL, 0, &c, err, sizeof(err)) == 0, "%s", err);
	ASSERT_EQ(memroute_takeover(&r, 2, err, sizeof(err)), -ESTALE);
	ASSERT_CONTAINS(err, "taken first");
	ASSERT_EQ(memroute_takeover(&r, 3, err, sizeof(err)), 0);
	ASSERT_EQ(memroute_epoch(&r), 3);
	ASSERT_EQ(memclient_read(&won, 0, 1, got), -ESTALE);
	memroute_exit(&r);
	memclient_close(&old);
	memclient_close(&won);
	memclient_close(&after);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

TEST(a_write_counts_when_primary_and_secondary_both_hold_it)
{
	char a[64], b[64], err[256];
	pid_t pa = memsrv_spawn("16M", a), pb = memsrv_spawn("16M", b);
	struct memclient_cred c = cred(7, 64, 1);
	struct memroute r;
	struct memroute_client rc;
	struct memclient on_a, on_b;
	static uint8_t pages[8][4096], got[4096];
	uint64_t nos[8];
	void *data[8];

	ASSERT(memroute_init(&r, a, b, 0, &c, err, sizeof(err)) == 0, "%s", err);
	ASSERT(memroute_open(&rc, &r, err, sizeof(err)) == 0, "%s", err);
	for (int i = 0; i < 8; i++) {
		nos[i] = (uint64_t)i * 7;
		memwork_fill(pages[i], nos[i], 3);
		data[i] = pages[i];
	}
	ASSERT_EQ(memroute_write(&rc, nos, data, 8), 0);
	ASSERT_EQ(memclient_open_at(&on_a, a, &c, 1, 0, 5000, err, sizeof(err)), 0);
	ASSERT_EQ(memclient_open_at(&on_b, b, &c, 1, 0, 5000, err, sizeof(err)), 0);
	for (int i = 0; i < 8; i++) {
		ASSERT_EQ(memclient_read(&on_a, nos[i], 1, got), 0);
		ASSERT(memcmp(got, pages[i], 4096) == 0, "primary lacks page %llu",
		       (unsigned long long)nos[i]);
		ASSERT_EQ(memclient_read(&on_b, nos[i], 1, got), 0);
		ASSERT(memcmp(got, pages[i], 4096) == 0, "secondary lacks page %llu",
		       (unsigned long long)nos[i]);
	}
	/* Primary and secondary on one server is refused. */
	memroute_close(&rc);
	memroute_exit(&r);
	ASSERT(memroute_init(&r, a, a, 0, &c, err, sizeof(err)) == -EINVAL);
	ASSERT_CONTAINS(err, "primary and secondary");
	memclient_close(&on_a);
	memclient_close(&on_b);
	kill(pa, SIGTERM);
	kill(pb, SIGTERM);
	waitpid(pa, NULL, 0);
	waitpid(pb, NULL, 0);
}

/* ---- the workload (tests/lib/memwork.c): threads writing and verifying pages ---- */

#define WL_PAGES   256 /* per thread */
#define WL_THREADS 2

/* Run the workload on @r; @cut is called after @cut_ms; returns the mismatches. */
static uint64_t run_workload(struct memroute *r, int run_ms, int cut_ms, void (*cut)(void *),
			     void *cut_arg)
{
	struct memwork_result res;

	memwork_run(r, WL_THREADS, WL_PAGES, run_ms, cut_ms, cut, cut_arg, &res);
	ASSERT(res.error == 0, "the workload stopped: %s", memclient_strerror(res.error));
	ASSERT(res.idle_threads == 0, "%d workload threads wrote nothing", res.idle_threads);
	return res.mismatches;
}

static void kill9(void *arg)
{
	kill(*(pid_t *)arg, SIGKILL);
}

TEST_TIMEOUT(primary_killed_mid_workload_twenty_rounds_loses_nothing, 240)
{
	uint64_t max_pause = 0;

	for (int round = 0; round < 20; round++) {
		char a[64], b[64], err[256];
		pid_t pa = memsrv_spawn("16M", a), pb = memsrv_spawn("16M", b);
		struct memclient_cred c = cred(100 + round, WL_THREADS * WL_PAGES, 1);
		struct memroute r;
		uint64_t bad;

		ASSERT(memroute_init(&r, a, b, 0, &c, err, sizeof(err)) == 0, "%s", err);
		bad = run_workload(&r, 400, 50 + (int)(now_ns() % 250), kill9, &pa);
		ASSERT_EQ(bad, 0);
		ASSERT_EQ(r.failovers, 1);
		ASSERT(r.nr_pauses >= 1, "no failover pause recorded");
		if (r.pause_max_ns > max_pause)
			max_pause = r.pause_max_ns;
		waitpid(pa, NULL, 0);
		kill(pb, SIGTERM);
		waitpid(pb, NULL, 0);
		memroute_exit(&r);
	}
	printf("  20 rounds, 0 mismatches; longest failover pause %.2f ms\n", max_pause / 1e6);
}

TEST(secondary_killed_the_vnode_goes_on_without_losing_anything)
{
	char a[64], b[64], err[256];
	pid_t pa = memsrv_spawn("16M", a), pb = memsrv_spawn("16M", b);
	struct memclient_cred c = cred(300, WL_THREADS * WL_PAGES, 1);
	struct memroute r;

	ASSERT(memroute_init(&r, a, b, 0, &c, err, sizeof(err)) == 0, "%s", err);
	ASSERT_EQ(run_workload(&r, 400, 150, kill9, &pb), 0);
	ASSERT_EQ(r.failovers, 1);
	ASSERT_EQ(r.slabs[0].secondary, -1);
	ASSERT_CONTAINS(r.last_event, "without a secondary");
	/* Then losing the primary too is an error, not a silent loss. */
	kill(pa, SIGKILL);
	waitpid(pa, NULL, 0);
	waitpid(pb, NULL, 0);
	{
		struct memroute_client rc;
		static uint8_t got[4096];

		ASSERT(memroute_open(&rc, &r, err, sizeof(err)) != 0 ||
			       memroute_read(&rc, 0, 1, got) != 0,
		       "reading with every copy gone did not fail");
		memroute_close(&rc);
	}
	memroute_exit(&r);
}

/* ---- a primary cut off by the network, not killed ---- */

struct netns {
	char name[32], host_if[16], ns_if[16], host_ip[32], ns_ip[32];
};

static void netns_down(struct netns *n)
{
	test_sh("ip netns del %s 2>/dev/null; ip link del %s 2>/dev/null", n->name, n->host_if);
}

static void netns_up(struct netns *n)
{
	int k = (int)(getpid() % 200) + 20;

	snprintf(n->name, sizeof(n->name), "lego-rep-%d", (int)getpid());
	snprintf(n->host_if, sizeof(n->host_if), "lgh%d", (int)getpid() % 100000);
	snprintf(n->ns_if, sizeof(n->ns_if), "lgn%d", (int)getpid() % 100000);
	snprintf(n->host_ip, sizeof(n->host_ip), "10.199.%d.1", k);
	snprintf(n->ns_ip, sizeof(n->ns_ip), "10.199.%d.2", k);
	if (geteuid() != 0 || test_sh("command -v ip >/dev/null"))
		test_skip("needs root and iproute2 for a network namespace: this test did NOT run");
	netns_down(n);
	if (test_sh("ip netns add %s && ip link add %s type veth peer name %s && "
		    "ip link set %s netns %s && ip addr add %s/24 dev %s && ip link set %s up && "
		    "ip netns exec %s ip addr add %s/24 dev %s && ip netns exec %s ip link set %s up && "
		    "ip netns exec %s ip link set lo up",
		    n->name, n->host_if, n->ns_if, n->ns_if, n->name, n->host_ip, n->host_if,
		    n->host_if, n->name, n->ns_ip, n->ns_if, n->name, n->ns_if, n->name)) {
		netns_down(n);
		test_skip(
			"cannot make a network namespace with a veth here: this test did NOT run");
	}
}

static void link_down(void *arg)
{
	struct netns *n = arg;

	/* The namespace's end: packets to it are lost silently, as in a partition. */
	ASSERT_EQ(test_sh("ip netns exec %s ip link set %s down", n->name, n->ns_if), 0);
}

TEST_TIMEOUT(primary_cut_off_by_the_network_is_fenced_when_it_comes_back, 120)
{
	static struct netns n;
	char a[64], b[64], err[256];
	char ip[64] = "ip";
	char *argv[] = {ip,	    "netns", "exec",	   n.name, NULL, "-q",
			"--listen", a,	     "--capacity", "16M",  NULL};
	struct memclient_cred c = cred(400, WL_THREADS * WL_PAGES, 1);
	struct memclient old, probe;
	struct memroute r;
	static uint8_t got[4096], zero[4096];
	pid_t pa, pb;

	netns_up(&n);
	{
		FILE *f = popen("command -v ip", "r");

		if (!f || !fgets(ip, sizeof(ip), f))
			test_skip("iproute2's ip is not installed: this test did NOT run");
		ip[strcspn(ip, "\n")] = '\0';
		pclose(f);
	}
	snprintf(a, sizeof(a), "%s:%d", n.ns_ip, 7400);
	argv[3] = n.name;
	argv[4] = (char *)test_path("bin/lego-memsrv");
	pa = proc_spawn(argv);
	pb = memsrv_spawn("16M", b);
	for (int ms = 0; memclient_open_at(&old, a, &c, 1, 0, 2000, err, sizeof(err)); ms += 50) {
		ASSERT(ms < 10000, "lego-memsrv in the namespace: %s", err);
		usleep(50 * 1000);
	}
	/* `old` is a connection of epoch 1 that outlives the cut. */
	ASSERT(memroute_init(&r, a, b, 0, &c, err, sizeof(err)) == 0, "%s", err);
	ASSERT_EQ(run_workload(&r, 7000, 300, link_down, &n), 0);
	ASSERT_EQ(r.failovers, 1);
	printf("  cut off: failover after %.0f ms (the I/O timeout of a replicated route, %d ms)\n",
	       r.pause_max_ns / 1e6, MEMROUTE_IO_TIMEOUT_MS);
	/* The network comes back, and with it the old primary and its old copy. */
	ASSERT_EQ(test_sh("ip netns exec %s ip link set %s up", n.name, n.ns_if), 0);
	for (int ms = 0; memclient_open_at(&probe, a, &c, 2, 0, 2000, err, sizeof(err)) != -ESTALE;
	     ms += 100) {
		/* A client of epoch 2 that has had it since 2 must not take it for current. */
		ASSERT(ms < 10000, "the returned server was taken for current (%s)", err);
		memclient_close(&probe);
		usleep(100 * 1000);
	}
	/* The surviving server moved on to epoch 2: an epoch-1 client is fenced there. */
	struct memclient_cred c1 = cred(400, WL_THREADS * WL_PAGES, 1);
	ASSERT_EQ(memclient_open_at(&probe, b, &c1, 1, 0, 2000, err, sizeof(err)), -ESTALE);
	/* Refilled for a newer placement, it drops the old copy, and the connection
	 * that outlived the cut is fenced. */
	struct memclient_cred c3 = cred(400, WL_THREADS * WL_PAGES, 3);
	ASSERT_EQ(memclient_open_at(&probe, a, &c3, 3, LMP_HELLO_FRESH, 2000, err, sizeof(err)), 0);
	ASSERT_EQ(memclient_read(&probe, 0, 1, got), 0);
	ASSERT(memcmp(got, zero, 4096) == 0, "the refilled server kept its old copy");
	ASSERT_EQ(memclient_read(&old, 0, 1, got), -ESTALE);
	memclient_close(&probe);
	memclient_close(&old);
	memroute_exit(&r);
	kill(pa, SIGTERM);
	kill(pb, SIGTERM);
	waitpid(pa, NULL, 0);
	waitpid(pb, NULL, 0);
	netns_down(&n);
}

struct refill_plan {
	struct memroute *r;
	pid_t a, b;
	const char *c;
	int ret;
	uint64_t refill_ms;
};

/* The secondary dies; a new one is filled under the workload; then the primary dies. */
static void secondary_then_primary(void *arg)
{
	struct refill_plan *p = arg;
	struct memroute_client rc;
	char err[256];
	uint64_t t0;

	kill(p->b, SIGKILL);
	usleep(100 * 1000);
	p->ret = memroute_open(&rc, p->r, err, sizeof(err));
	t0 = now_ns();
	if (!p->ret)
		p->ret = memroute_add_secondary(&rc, p->c, err, sizeof(err));
	p->refill_ms = (now_ns() - t0) / 1000000;
	memroute_close(&rc);
	if (p->ret)
		fprintf(stderr, "refill: %s\n", err);
	usleep(100 * 1000);
	kill(p->a, SIGKILL);
}

TEST_TIMEOUT(a_new_secondary_is_filled_and_a_later_primary_kill_loses_nothing, 120)
{
	char a[64], b[64], c[64], err[256];
	pid_t pa = memsrv_spawn("16M", a), pb = memsrv_spawn("16M", b), pc = memsrv_spawn("16M", c);
	struct memclient_cred cr = cred(500, WL_THREADS * WL_PAGES, 1);
	struct memroute r;
	struct refill_plan plan = {.r = &r, .a = pa, .b = pb, .c = c};

	ASSERT(memroute_init(&r, a, b, 0, &cr, err, sizeof(err)) == 0, "%s", err);
	ASSERT_EQ(run_workload(&r, 1500, 200, secondary_then_primary, &plan), 0);
	ASSERT(plan.ret == 0, "the refill failed");
	ASSERT_EQ(r.failovers, 2); /* the secondary, then the primary */
	ASSERT(r.slabs[0].primary >= 0 && !strcmp(r.servers[r.slabs[0].primary].addr, c),
	       "the refilled server is not the primary after the second kill");
	ASSERT_EQ(atomic_load(&r.fill_done), atomic_load(&r.fill_total));
	printf("  refilled %llu pages in %llu ms under the workload\n",
	       (unsigned long long)atomic_load(&r.fill_total), (unsigned long long)plan.refill_ms);
	waitpid(pa, NULL, 0);
	waitpid(pb, NULL, 0);
	kill(pc, SIGTERM);
	waitpid(pc, NULL, 0);
	memroute_exit(&r);
}

TEST(unreplicated_a_lost_server_is_an_error_that_names_it)
{
	char a[64], err[256];
	pid_t pa = memsrv_spawn("16M", a);
	struct memclient_cred c = cred(600, 64, 0);
	struct memroute r;
	struct memroute_client rc;
	static uint8_t got[4096];
	int ret;

	ASSERT(memroute_init(&r, a, NULL, 0, &c, err, sizeof(err)) == 0, "%s", err);
	ASSERT(memroute_open(&rc, &r, err, sizeof(err)) == 0, "%s", err);
	ASSERT_EQ(memroute_read(&rc, 3, 1, got), 0);
	kill(pa, SIGKILL);
	waitpid(pa, NULL, 0);
	ret = memroute_read(&rc, 3, 1, got);
	ASSERT(ret != 0, "a read from a killed server succeeded");
	/* What lego-vmm then says (tests/vmm/test_excache.c expects it). */
	ASSERT_CONTAINS(memclient_strerror(ret), "the memory server closed the connection");
	ASSERT_EQ(r.failovers, 0);
	memroute_close(&rc);
	memroute_exit(&r);
}

TEST(a_server_declared_down_is_failed_over_from_at_once)
{
	char a[64], b[64], err[256];
	pid_t pa = memsrv_spawn("16M", a), pb = memsrv_spawn("16M", b);
	struct memclient_cred c = cred(700, 64, 1);
	struct memroute r;
	struct memroute_client rc;
	static uint8_t page[4096], got[4096];
	uint64_t no = 9;
	void *data = page;

	ASSERT(memroute_init(&r, a, b, 0, &c, err, sizeof(err)) == 0, "%s", err);
	ASSERT(memroute_open(&rc, &r, err, sizeof(err)) == 0, "%s", err);
	memwork_fill(page, no, 1);
	ASSERT_EQ(memroute_write(&rc, &no, &data, 1), 0);
	ASSERT_EQ(memroute_lose(&r, "127.0.0.1:1"), -ENOENT);
	/* The manager says the primary is down (it still runs: a partition, say). */
	ASSERT_EQ(memroute_lose(&r, a), 0);
	ASSERT_EQ(r.failovers, 1);
	ASSERT_EQ(r.cred.epoch, 2);
	ASSERT_EQ(memroute_read(&rc, no, 1, got), 0);
	ASSERT(memcmp(got, page, 4096) == 0, "the secondary does not have the page");
	/* The survivor is the only copy now: declaring it down too changes nothing. */
	ASSERT_EQ(memroute_lose(&r, b), -EHOSTDOWN);
	ASSERT_CONTAINS(r.last_event, "has no secondary");
	ASSERT_EQ(memroute_read(&rc, no, 1, got), 0);
	/* And the old primary, still running, fences the epoch-1 view of it. */
	{
		struct memclient old;
		struct memclient_cred c2 = cred(700, 64, 2);

		ASSERT_EQ(memclient_open_at(&old, a, &c2, 2, 0, 2000, err, sizeof(err)), -ESTALE);
	}
	memroute_close(&rc);
	memroute_exit(&r);
	kill(pa, SIGTERM);
	kill(pb, SIGTERM);
	waitpid(pa, NULL, 0);
	waitpid(pb, NULL, 0);
}

/* lego-memsrv on @addr exactly (a restart where it was). */
static pid_t memsrv_at(const char *addr)
{
	char a[64];
	char *argv[] = {(char *)test_path("bin/lego-memsrv"),
			"-q",
			"--listen",
			a,
			"--capacity",
			"16M",
			NULL};
	pid_t pid;

	snprintf(a, sizeof(a), "%s", addr);
	ASSERT(wait_for_port_free(atoi(strrchr(addr, ':') + 1), 5000), "%s stays busy", addr);
	pid = proc_spawn(argv);
	ASSERT(wait_for_port(atoi(strrchr(addr, ':') + 1), 10000), "no lego-memsrv on %s", addr);
	return pid;
}

struct restart_plan {
	struct memroute *r;
	pid_t a, b, b2;
	const char *b_addr;
	int ret;
};

/* The secondary is killed and restarted empty where it was; it is filled again; then the
 * primary is killed. */
static void secondary_restarted(void *arg)
{
	struct restart_plan *p = arg;
	struct memroute_client rc;
	char err[256];

	kill(p->b, SIGKILL);
	waitpid(p->b, NULL, 0);
	usleep(100 * 1000);
	p->b2 = memsrv_at(p->b_addr);
	p->ret = memroute_open(&rc, p->r, err, sizeof(err));
	if (!p->ret)
		p->ret = memroute_add_secondary(&rc, p->b_addr, err, sizeof(err));
	if (p->ret)
		fprintf(stderr, "refill: %s\n", err);
	memroute_close(&rc);
	usleep(100 * 1000);
	kill(p->a, SIGKILL);
}

TEST_TIMEOUT(a_lost_server_restarted_where_it_was_is_refilled_and_serves_after_the_primary_dies,
	     120)
{
	char a[64], b[64], err[256];
	pid_t pa = memsrv_spawn("16M", a), pb = memsrv_spawn("16M", b);
	struct memclient_cred cr = cred(900, WL_THREADS * WL_PAGES, 1);
	struct memroute r;
	struct restart_plan plan = {.r = &r, .a = pa, .b = pb, .b_addr = b};

	ASSERT(memroute_init(&r, a, b, 0, &cr, err, sizeof(err)) == 0, "%s", err);
	ASSERT_EQ(run_workload(&r, 2000, 200, secondary_restarted, &plan), 0);
	ASSERT(plan.ret == 0, "refilling the restarted server failed");
	ASSERT_EQ(r.failovers, 2);
	ASSERT(!strcmp(r.servers[r.slabs[0].primary].addr, b),
	       "the refilled server does not serve");
	waitpid(pa, NULL, 0);
	kill(plan.b2, SIGTERM);
	waitpid(plan.b2, NULL, 0);
	memroute_exit(&r);
}

TEST(the_route_reports_itself_as_the_manager_reads_it)
{
	char a[64], b[64], err[256];
	pid_t pa = memsrv_spawn("16M", a), pb = memsrv_spawn("16M", b);
	struct memclient_cred c = cred(950, 64, 4);
	struct memroute r;
	json_t *j, *slab;

	ASSERT(memroute_init(&r, a, b, 0, &c, err, sizeof(err)) == 0, "%s", err);
	j = memroute_status(&r);
	ASSERT_EQ(json_integer_value(json_object_get(j, "epoch")), 4);
	slab = json_array_get(json_object_get(j, "slabs"), 0);
	ASSERT(!strcmp(json_string_value(json_object_get(slab, "primary")), a));
	ASSERT(!strcmp(json_string_value(json_object_get(slab, "secondary")), b));
	ASSERT_EQ(json_integer_value(json_object_get(j, "failovers")), 0);
	json_decref(j);
	ASSERT_EQ(memroute_lose(&r, a), 0);
	j = memroute_status(&r);
	slab = json_array_get(json_object_get(j, "slabs"), 0);
	ASSERT(!strcmp(json_string_value(json_object_get(slab, "primary")), b));
	ASSERT(json_is_null(json_object_get(slab, "secondary")), "a lost secondary is listed");
	ASSERT_EQ(json_integer_value(json_object_get(j, "failovers")), 1);
	ASSERT_EQ(json_integer_value(json_object_get(j, "epoch")), 5);
	ASSERT_CONTAINS(json_string_value(json_object_get(j, "last_event")), "lost");
	ASSERT_EQ(json_integer_value(json_object_get(j, "fill_failures")), 0);
	json_decref(j);

	/* A refill ordered onto a server that is not listening (killed, not yet
	 * restarted) fails, and says so: the manager retries on that. */
	struct memroute_client rc;

	kill(pa, SIGKILL);
	waitpid(pa, NULL, 0);
	ASSERT(memroute_open(&rc, &r, err, sizeof(err)) == 0, "%s", err);
	ASSERT(memroute_add_secondary(&rc, a, err, sizeof(err)) < 0, "a refill of nothing worked");
	j = memroute_status(&r);
	slab = json_array_get(json_object_get(j, "slabs"), 0);
	ASSERT(json_is_null(json_object_get(slab, "secondary")), "a failed refill is a secondary");
	ASSERT_EQ(json_integer_value(json_object_get(j, "fill_failures")), 1);
	ASSERT_CONTAINS(json_string_value(json_object_get(j, "fill_error")), "failed");
	/* The placement did not change: the last event is still the loss. */
	ASSERT_CONTAINS(json_string_value(json_object_get(j, "last_event")), "lost");
	json_decref(j);
	/* Restarted where it was, the next order fills it. */
	pa = memsrv_at(a);
	ASSERT(memroute_add_secondary(&rc, a, err, sizeof(err)) == 0, "%s", err);
	j = memroute_status(&r);
	slab = json_array_get(json_object_get(j, "slabs"), 0);
	ASSERT(!strcmp(json_string_value(json_object_get(slab, "secondary")), a));
	ASSERT_EQ(json_integer_value(json_object_get(j, "fill_failures")), 1);
	ASSERT_CONTAINS(json_string_value(json_object_get(j, "last_event")), "redundancy restored");
	ASSERT(!strcmp(json_string_value(json_object_get(j, "fill_error")), ""),
	       "a fill that worked left its predecessor's error");
	json_decref(j);
	memroute_close(&rc);
	memroute_exit(&r);
	kill(pa, SIGTERM);
	kill(pb, SIGTERM);
	waitpid(pa, NULL, 0);
	waitpid(pb, NULL, 0);
}
