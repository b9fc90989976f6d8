/*
 * test_managers.c - several managers sharing the cluster's state in etcd
 * (legoctl up --managers N): a standby takes over from a leader killed in
 * the middle of creates and a memory server's failure; a leader cut off
 * from etcd stops before anyone else leads, and agents refuse its late
 * orders by their term; two managers forced to place at once never hand
 * out the same memory twice. Real etcd (Debian's etcd-server) over TLS,
 * real managers, servers, agent and VMMs.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster.h"
#include "http.h"
#include "tcpproxy.h"
#include "test.h"
#include "util.h"

static void require_etcd(void)
{
	if (access("/usr/bin/etcd", X_OK))
		test_skip("no /usr/bin/etcd (Debian's etcd-server; make test installs it)");
}

/* legoctl up with @n managers and @etcd etcd members. */
static void up_managers_etcd(const char *n, const char *etcd)
{
	struct proc_result r;

	legoctl(&r, "up", "--managers", n, "--etcd-members", etcd, "--memsrv-capacity", "1G",
		"--agent-capacity", "2G", NULL);
	ASSERT(r.status == 0, "legoctl up --managers %s: %s%s", n, r.out, r.err);
	ASSERT_CONTAINS(r.out, "cluster up");
	ASSERT_CONTAINS(r.out, "etcd-1");
	proc_result_free(&r);
	as_member("admin");
}

static void up_managers(const char *n)
{
	up_managers_etcd(n, "1");
}

/* cluster.json's @key array, element @i (and of that, @sub if not NULL). */
static void cfg_at(const char *key, int i, const char *sub, char *out, size_t len)
{
	char p[700];
	json_t *c, *e;

	snprintf(p, sizeof(p), "%s/cluster.json", home);
	c = json_load_file(p, 0, NULL);
	ASSERT(c, "no %s", p);
	e = json_array_get(json_object_get(c, key), (size_t)i);
	snprintf(out, len, "%s", sub ? JS(e, sub) : json_string_value(e) ?: "");
	json_decref(c);
}

/* The daemon name of the manager that leads (and its URL, term), or "" if none does. */
static void leader(char *daemon, size_t len, char *url, size_t ulen, long long *term)
{
	json_t *n = legoctl_json("nodes", NULL), *m;
	size_t i;

	daemon[0] = url[0] = '\0';
	if (term)
		*term = JI(n, "term");
	json_array_foreach(json_object_get(n, "managers"), i, m)
	{
		if (!json_is_true(json_object_get(m, "leading")))
			continue;
		snprintf(url, ulen, "%s", JS(m, "url"));
		for (int k = 0; k < 3; k++) {
			char u[128];

			cfg_at("managers", k, NULL, u, sizeof(u));
			if (!strcmp(u, url))
				snprintf(daemon, len, k ? "manager-%d" : "manager", k + 1);
		}
	}
	json_decref(n);
}

/* Wait until a manager other than @old_url leads: the ms it took, or -1. */
static int wait_leader_other_than(const char *old_url, int max_ms, char *url, size_t ulen)
{
	uint64_t t0 = mono_ms();

	while ((int)(mono_ms() - t0) < max_ms) {
		char d[32];

		leader(d, sizeof(d), url, ulen, NULL);
		if (url[0] && strcmp(url, old_url))
			return (int)(mono_ms() - t0);
		usleep(100 * 1000);
	}
	return -1;
}

struct creates {
	int n;
	int status[16];
};

/* legoctl create c0..c(n-1), one after another, each a short payload. */
static void *creator(void *arg)
{
	struct creates *c = arg;

	for (int i = 0; i < c->n; i++) {
		struct proc_result r;
		char name[16];

		snprintf(name, sizeof(name), "c%d", i);
		legoctl(&r, "create", name, "--memory", "32M", "--excache", "8M", "--payload",
			"touch", "--args", "op=read mode=seq size=1M passes=1", NULL);
		c->status[i] = r.status;
		printf("  create %s: %s%s", name, r.status ? "failed: " : "ok\n",
		       r.status ? r.err : "");
		proc_result_free(&r);
	}
	return NULL;
}

TEST_TIMEOUT(leader_dies_mid_creates, 300)
{
	char old[32], old_url[128], url[128], mem[2][64];
	struct creates cr = {.n = 16};
	struct proc_result r;
	long long term0, term1;
	pthread_t t;
	json_t *l, *n, *c;
	size_t i;
	int ms;

	require_etcd();
	test_require_kvm();
	cluster_home();
	up_managers("3");
	memsrv_addr(1, mem[0], sizeof(mem[0]));
	memsrv_addr(2, mem[1], sizeof(mem[1]));
	leader(old, sizeof(old), old_url, sizeof(old_url), &term0);
	ASSERT(old[0], "no manager leads after up");
	printf("  %s leads (term %lld)\n", old, term0);
	/* the verifying payload on 2 vCPUs, its memory on both servers, for about 40 s */
	legoctl(&r, "create", "v", "--cpus", "2", "--memory", "64M", "--excache", "16M",
		"--payload", "touch", "--args", "op=verify mode=rand size=24M passes=30", NULL);
	ASSERT(r.status == 0, "create v: %s%s", r.out, r.err);
	proc_result_free(&r);
	json_decref(wait_vnode("v", "running", 16 * MiB));

	/* creates go on while the leader and a memory server are killed */
	pthread_create(&t, NULL, creator, &cr);
	usleep(400 * 1000);
	kill_and_wait(pid_of("memsrv-1"));
	kill_and_wait(pid_of(old));
	ms = wait_leader_other_than(old_url, 15000, url, sizeof(url));
	ASSERT(ms >= 0, "no standby led within 15 s of the leader's death");
	leader(old, sizeof(old), url, sizeof(url), &term1);
	printf("  %s leads %d ms after the leader was killed (term %lld -> %lld)\n", old, ms, term0,
	       term1);
	ASSERT(term1 > term0, "the new leader's term %lld is not above %lld", term1, term0);
	pthread_join(t, NULL);

	/* every create happened once or not at all: one that answered is there; one
	 * cut off by the leader's death is there (it happened) or failed, and every
	 * VMM the agent runs belongs to a vNode the new leader knows */
	l = legoctl_json("list", NULL);
	for (int k = 0; k < cr.n; k++) {
		char name[16];
		json_t *v;

		snprintf(name, sizeof(name), "c%d", k);
		v = vnode(l, name);
		if (!cr.status[k])
			ASSERT(v && (!strcmp(JS(v, "state"), "running") ||
				     !strcmp(JS(v, "state"), "exited")),
			       "%s was created but is %s", name, v ? JS(v, "state") : "not listed");
		if (v && !strcmp(JS(v, "state"), "failed")) {
			legoctl(&r, "destroy", name, NULL);
			ASSERT(r.status == 0, "destroy %s: %s", name, r.err);
			proc_result_free(&r);
		}
	}
	{
		struct pki_identity admin = member_identity("admin");
		char agent[64], base[80], out[65536];
		json_t *vm, *e;
		const char *key;

		cluster_cfg("agent", agent, sizeof(agent));
		snprintf(base, sizeof(base), "https://%s", agent);
		ASSERT_EQ(call_as(&admin, "GET", base, "/v1/vnodes", NULL, out, sizeof(out)), 200);
		vm = json_loads(out, 0, NULL);
		json_object_foreach(json_object_get(vm, "vnodes"), key, e) ASSERT(
			vnode(l, key), "the agent runs a VMM for %s, which no manager knows", key);
		json_decref(vm);
	}
	json_decref(l);

	/* the failover happened, and the new leader refills the restarted server */
	ASSERT(vnode_on_servers("v", mem[1], "", 20000), "v did not fail over to %s alone", mem[1]);
	legoctl(&r, "up", NULL); /* memsrv-1 (empty) and the killed manager, as a standby */
	ASSERT(r.status == 0, "legoctl up: %s%s", r.out, r.err);
	proc_result_free(&r);
	ASSERT(vnode_on_servers("v", mem[1], mem[0], 40000),
	       "v's redundancy was not restored on %s by the new leader", mem[0]);
	json_decref(wait_vnode_for("v", "exited", 0, 180));
	no_mismatches("v", 2);

	/* nothing placed beyond a server's capacity; the old leader came back standing by */
	n = legoctl_json("nodes", NULL);
	json_array_foreach(json_object_get(n, "components"), i, c)
		ASSERT(JI(c, "reserved") <= JI(c, "capacity"), "%s %s: %lld reserved of %lld",
		       JS(c, "role"), JS(c, "addr"), JI(c, "reserved"), JI(c, "capacity"));
	ASSERT_EQ(json_array_size(json_object_get(n, "managers")), 3);
	json_decref(n);
	down_leaves_nothing(NULL, 0);
	ASSERT(!pid_of("etcd-1") && !pid_of("manager-2") && !pid_of("manager-3"),
	       "down left etcd or a manager");
}

/* A manager of the case's cluster started by hand on etcd at @etcd, with @extra options. */
static pid_t manager_by_hand(const char *etcd, char *url, size_t ulen, const char *extra1,
			     const char *extra2)
{
	static char store[128], pki[600], listen[32], bin[600];
	char *argv[] = {bin,	    "--store", store,	       "--pki",	       pki,
			"--listen", listen,    (char *)extra1, (char *)extra2, NULL};

	snprintf(bin, sizeof(bin), "%s", test_path("bin/lego-manager"));
	snprintf(store, sizeof(store), "etcd://%s", etcd);
	snprintf(pki, sizeof(pki), "%s/pki", home);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", test_free_port());
	snprintf(url, ulen, "https://%s", listen);
	return proc_spawn(argv);
}

/* GET @url/v1/status as admin: the answer, or NULL. */
static json_t *status_of(const char *url)
{
	struct pki_identity admin = member_identity("admin");
	char out[8192];

	return call_as(&admin, "GET", url, "/v1/status", NULL, out, sizeof(out)) == 200
		       ? json_loads(out, 0, NULL)
		       : NULL;
}

TEST_TIMEOUT(a_partitioned_leader_stops_and_its_late_orders_are_refused, 180)
{
	char etcd[64], paddr[64], url[128], agent[64], base[96], out[4096], hdr[64], p[700];
	struct pki_identity mgr;
	struct proc_result r;
	struct tcpproxy *proxy;
	long long t1 = 0, t2 = 0;
	uint64_t t_cut, t_gone = 0, t_new = 0;
	pid_t pm;
	json_t *st;

	require_etcd();
	cluster_home();
	up_managers("2");
	cfg_at("etcd", 0, "client", etcd, sizeof(etcd));
	/* etcd trusts its own CA only: a member of the cluster (here its admin) is
	 * refused at the handshake, the managers' certificate is served */
	{
		struct pki_identity as = member_identity("admin"), mg;
		char ebase[96], eout[1024];
		const char *q = "{\"key\":\"L2xlZ28vbGVhZGVy\"}";

		snprintf(ebase, sizeof(ebase), "https://%s", etcd);
		snprintf(as.ca, sizeof(as.ca), "%s/pki/etcd/ca.pem", home);
		ASSERT_EQ(call_as(&as, "POST", ebase, "/v3/kv/range", q, eout, sizeof(eout)), -1);
		mg = as;
		snprintf(mg.cert, sizeof(mg.cert), "%s/pki/etcd/manager.pem", home);
		snprintf(mg.key, sizeof(mg.key), "%s/pki/etcd/manager.key", home);
		ASSERT_EQ(call_as(&mg, "POST", ebase, "/v3/kv/range", q, eout, sizeof(eout)), 200);
	}
	/* a third manager, whose only way to etcd is a proxy that can be cut */
	proxy = tcpproxy_start(etcd, paddr);
	pm = manager_by_hand(paddr, url, sizeof(url), "--lease", "2000");
	/* it leads once the two others are gone */
	kill_and_wait(pid_of("manager"));
	kill_and_wait(pid_of("manager-2"));
	for (int ms = 0; ms < 15000; ms += 100) {
		st = status_of(url);
		if (st && json_is_true(json_object_get(st, "leading")))
			t1 = JI(st, "term");
		json_decref(st);
		if (t1)
			break;
		usleep(100 * 1000);
	}
	ASSERT(t1 > 0, "the proxied manager did not lead within 15 s");
	printf("  the proxied manager leads (term %lld)\n", t1);

	/* cut off from etcd: it must stop before anyone else can lead */
	tcpproxy_silent(proxy, true);
	tcpproxy_cut(proxy);
	t_cut = mono_ms();
	legoctl(&r, "up", NULL); /* the two others again: they stand for leader */
	ASSERT(r.status == 0, "legoctl up: %s%s", r.out, r.err);
	proc_result_free(&r);
	while (mono_ms() - t_cut < 20000 && (!t_gone || !t_new)) {
		char d[32], u[128];

		if (!t_gone && !proc_running(pm))
			t_gone = mono_ms();
		leader(d, sizeof(d), u, sizeof(u), &t2);
		if (!t_new && d[0] && t2 > t1)
			t_new = mono_ms();
		usleep(50 * 1000);
	}
	ASSERT(t_gone, "the cut-off leader still runs 20 s after the cut");
	ASSERT(t_new, "no new leader 20 s after the cut");
	printf("  cut off: it stopped after %llu ms; a new leader (term %lld) after %llu ms\n",
	       (unsigned long long)(t_gone - t_cut), t2, (unsigned long long)(t_new - t_cut));
	ASSERT(t_gone <= t_new, "a new leader came before the old one stopped");
	proc_collect(pm, 5, &r);
	ASSERT(r.status == 75, "the cut-off leader ended with %d, not 75", r.status);
	ASSERT_CONTAINS(r.err, "stops acting");
	proc_result_free(&r);
	tcpproxy_stop(proxy);

	/* the agent hears the new term in its heartbeats' answers ... */
	snprintf(p, sizeof(p), "%s/vnodes/term", home);
	for (int ms = 0; ms < 10000; ms += 100) {
		char *t = slurp(p);
		long long seen = atoll(t);

		free(t);
		if (seen >= t2)
			break;
		usleep(100 * 1000);
	}
	/* ... and refuses an order of the deposed leader's, made with its credential */
	mgr = member_identity("manager");
	cluster_cfg("agent", agent, sizeof(agent));
	snprintf(base, sizeof(base), "https://%s", agent);
	snprintf(hdr, sizeof(hdr), "Lego-Term: %lld", t1);
	http_header(hdr);
	ASSERT_EQ(call_as(&mgr, "GET", base, "/v1/vnodes", NULL, out, sizeof(out)), 409);
	ASSERT_CONTAINS(out, "refused");
	ASSERT_EQ(
		call_as(&mgr, "POST", base, "/v1/vnodes", "{\"name\":\"late\"}", out, sizeof(out)),
		409);
	snprintf(hdr, sizeof(hdr), "Lego-Term: %lld", t2);
	http_header(hdr);
	ASSERT_EQ(call_as(&mgr, "GET", base, "/v1/vnodes", NULL, out, sizeof(out)), 200);
	http_header("");
	down_leaves_nothing(NULL, 0);
}

struct racer {
	const char *url[2];
	int first, n;
	int created[2], refused, lost; /* 201 per manager; 507; no answer */
	char why[256], lost_why[256];  /* an answer that is none of those; the first loss */
};

/* POST @n creates, alternating between the two managers. */
static void *racer(void *arg)
{
	struct racer *rc = arg;
	struct pki_identity admin = member_identity("admin");

	for (int i = 0; i < rc->n; i++) {
		int k = (rc->first + i) & 1, s;
		char body[160], out[4096];

		snprintf(
			body, sizeof(body),
			"{\"name\":\"p%d\",\"memory\":%d,\"excache\":%d,\"image\":1048576,\"net\":false}",
			rc->first * rc->n + i, 64 << 20, 8 << 20);
		s = call_as(&admin, "POST", rc->url[k], "/v1/vnodes", body, out, sizeof(out));
		if (s == 201)
			rc->created[k]++;
		else if (s == 507)
			rc->refused++;
		else if (s < 0 || s >= 500) {
			if (!rc->lost++)
				snprintf(rc->lost_why, sizeof(rc->lost_why), "%d: %.200s", s, out);
		} else
			snprintf(rc->why, sizeof(rc->why), "%d: %.200s", s, out);
	}
	return NULL;
}

TEST_TIMEOUT(two_managers_placing_at_once_never_overcommit, 240)
{
	char etcd[64], url[2][128];
	struct racer rc[8];
	pthread_t t[8];
	int created[2] = {0, 0}, refused = 0, lost = 0, listed = 0;
	long long on[2] = {0, 0};
	char mem[2][64];
	pid_t pm[2];
	json_t *l, *v, *s;
	size_t i, j;

	require_etcd();
	cluster_home();
	up_managers("2");
	memsrv_addr(1, mem[0], sizeof(mem[0]));
	memsrv_addr(2, mem[1], sizeof(mem[1]));
	cfg_at("etcd", 0, "client", etcd, sizeof(etcd));
	/* two managers that both act, without an election: only the store's checks stand
	 * between them (components are believed up for the whole run: no heartbeats
	 * reach these two) */
	kill_and_wait(pid_of("manager"));
	kill_and_wait(pid_of("manager-2"));
	for (int k = 0; k < 2; k++)
		pm[k] = manager_by_hand(etcd, url[k], sizeof(url[k]), "--no-election",
					"--down-after=600000");
	for (int k = 0; k < 2; k++) {
		json_t *st = NULL;

		for (int ms = 0; ms < 10000 && !(st = status_of(url[k])); ms += 100)
			usleep(100 * 1000);
		ASSERT(st && json_is_true(json_object_get(st, "leading")), "%s does not act",
		       url[k]);
		json_decref(st);
	}
	/* 1,000 creates from 8 clients at once, each alternating between the two */
	for (int k = 0; k < 8; k++) {
		rc[k] = (struct racer){.url = {url[0], url[1]}, .first = k, .n = 125};
		pthread_create(&t[k], NULL, racer, &rc[k]);
	}
	for (int k = 0; k < 8; k++) {
		pthread_join(t[k], NULL);
		ASSERT(!rc[k].why[0], "a create answered %s", rc[k].why);
		created[0] += rc[k].created[0];
		created[1] += rc[k].created[1];
		refused += rc[k].refused;
		lost += rc[k].lost;
	}
	printf("  1000 creates: %d placed by one, %d by the other, %d refused for room, %d "
	       "unanswered\n",
	       created[0], created[1], refused, lost);
	for (int k = 0; k < 2; k++) {
		struct proc_result r;

		if (proc_running(pm[k])) {
			kill(pm[k], SIGTERM);
			proc_collect(pm[k], 10, &r);
		} else {
			proc_collect(pm[k], 1, &r);
			printf("  manager %d stopped: %s", k,
			       strstr(r.err, "stops acting") ?: r.err);
			ASSERT(r.status == 75 && strstr(r.err, "another manager"),
			       "manager %d ended with %d: %s", k, r.status, r.err);
		}
		proc_result_free(&r);
	}

	/* What etcd holds, read by an elected manager: no server holds more than its
	 * capacity, and every create that was answered is there once. */
	up_managers("2");
	l = legoctl_json("list", NULL);
	json_array_foreach(json_object_get(l, "vnodes"), i, v)
	{
		if (JS(v, "name")[0] != 'p')
			continue;
		listed++;
		json_array_foreach(json_object_get(v, "slabs"), j, s) for (int k = 0; k < 2; k++)
			on[k] +=
			(!strcmp(JS(s, "primary"), mem[k]) + !strcmp(JS(s, "secondary"), mem[k])) *
			JI(s, "size");
	}
	json_decref(l);
	printf("  listed %d; placed on the servers: %lld and %lld MiB of 1024\n", listed,
	       on[0] >> 20, on[1] >> 20);
	ASSERT(on[0] <= 1024LL << 20 && on[1] <= 1024LL << 20, "over-committed: %lld, %lld", on[0],
	       on[1]);
	ASSERT(listed >= created[0] + created[1] && listed <= created[0] + created[1] + lost,
	       "%d listed for %d + %d created (%d unanswered)", listed, created[0], created[1],
	       lost);
	ASSERT(created[0] + created[1] > 0, "nothing was placed");
	down_leaves_nothing(NULL, 0);
}

/* Whether @daemon of the case's cluster runs (its pid file outlives it). */
static bool alive(const char *daemon)
{
	pid_t pid = pid_of(daemon);

	return pid > 0 && kill(pid, 0) == 0;
}

/*
 * Until a vNode "probe" is created and destroyed through the leader twice,
 * one lease (3 s) apart, in the same term: writes land, and the leader that
 * took them outlived the etcd outage (its lease may lapse for want of
 * keepalives while etcd elects, and a standby then leads). The ms it took,
 * or -1.
 */
static int writes_land_again(int max_ms)
{
	struct pki_identity admin = member_identity("admin");
	uint64_t t0 = mono_ms();
	long long landed_in = -1;

	while ((int)(mono_ms() - t0) < max_ms) {
		char d[32], url[128], out[4096];
		long long term;

		leader(d, sizeof(d), url, sizeof(url), &term);
		if (url[0] &&
		    call_as(&admin, "POST", url, "/v1/vnodes",
			    "{\"name\":\"probe\",\"memory\":67108864,\"excache\":8388608,"
			    "\"image\":1048576,\"net\":false}",
			    out, sizeof(out)) == 201 &&
		    call_as(&admin, "DELETE", url, "/v1/vnodes/probe", NULL, out, sizeof(out)) ==
			    200) {
			if (term == landed_in)
				return (int)(mono_ms() - t0);
			landed_in = term;
			usleep(3500 * 1000);
			continue;
		}
		usleep(200 * 1000);
	}
	return -1;
}

TEST_TIMEOUT(one_of_three_etcd_members_dies_and_the_cluster_goes_on, 120)
{
	char d[32], url[128], url2[128], lead[128];
	long long term;
	int ms;

	require_etcd();
	cluster_home();
	up_managers_etcd("2", "3");
	ASSERT(pid_of("etcd-3") > 0, "no third etcd member");
	kill_and_wait(pid_of("etcd-2"));
	/* Had etcd-2 led etcd's raft, the two left elect one first; until then
	 * writes fail (503), and the managers' lease may lapse (a new leader). */
	ms = writes_land_again(30000);
	ASSERT(ms >= 0, "no leader took writes for one lease within 30 s of etcd-2's death");
	printf("  a leader took writes for one lease from %d ms after etcd-2's death\n", ms);
	if (!alive("manager") || !alive("manager-2")) {
		/* a leader deposed by the outage stopped: 'legoctl up' restarts it as a
		 * standby (README), and etcd-2 with it, which dies again (a follower now) */
		printf("  a manager stopped during etcd's election: legoctl up, etcd-2 killed again\n");
		up_managers_etcd("2", "3");
		ASSERT(alive("manager") && alive("manager-2"), "legoctl up restarted no manager");
		kill_and_wait(pid_of("etcd-2"));
		ms = writes_land_again(30000);
		ASSERT(ms >= 0, "no leader took writes for one lease after the second death");
	}
	/* writes still land (a quorum of two): 40 creates from 8 clients at once through
	 * the leader, whose placements commit in groups; exactly what fits is placed */
	leader(d, sizeof(d), url, sizeof(url), &term);
	ASSERT(d[0], "no leader with one etcd member dead");
	snprintf(lead, sizeof(lead), "%s", url);
	{
		struct racer rc[8];
		pthread_t t[8];
		int created = 0, refused = 0;

		for (int k = 0; k < 8; k++) {
			rc[k] = (struct racer){.url = {lead, lead}, .first = k, .n = 5};
			pthread_create(&t[k], NULL, racer, &rc[k]);
		}
		for (int k = 0; k < 8; k++) {
			pthread_join(t[k], NULL);
			ASSERT(!rc[k].why[0] && !rc[k].lost,
			       "a create answered %s (%d unanswered, the first: %s)", rc[k].why,
			       rc[k].lost, rc[k].lost_why);
			created += rc[k].created[0] + rc[k].created[1];
			refused += rc[k].refused;
		}
		/* 2 servers of 1 GiB, 64 MiB on each per vNode (primary and secondary) */
		ASSERT(created == 16 && refused == 24, "%d created, %d refused; 16 fit", created,
		       refused);
	}
	/* and the leader's death is still survived: elections need etcd's quorum too */
	kill_and_wait(pid_of(d));
	ms = wait_leader_other_than(url, 15000, url2, sizeof(url2));
	ASSERT(ms >= 0, "no standby led with one etcd member dead");
	printf("  with etcd-2 dead, a standby led %d ms after the leader's death\n", ms);
	ASSERT_EQ(nr_vnodes(), 16);
	{
		json_t *l = legoctl_json("list", NULL);
		char victim[16];

		snprintf(victim, sizeof(victim), "%s",
			 JS(json_array_get(json_object_get(l, "vnodes"), 0), "name"));
		json_decref(l);
		json_decref(legoctl_json("destroy", victim));
	}
	ASSERT_EQ(nr_vnodes(), 15);
	down_leaves_nothing(NULL, 0);
	ASSERT(!pid_of("etcd-1") && !pid_of("etcd-3"), "down left etcd members");
}
