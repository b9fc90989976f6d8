/*
 * bench_manager.c - the manager at scale: 1,000 memory servers (and 100
 * storage servers and 100 host agents) with 10,000 vNodes placed.
 *
 *   placements_per_s, placement_us   full placement decisions (a 2 GiB vNode:
 *                                    8 slabs with primary and secondary, a
 *                                    storage server, an agent) on that state,
 *                                    next to scan_us, one pass over the 1,000
 *                                    memory servers (the least any decision
 *                                    that looks at them all can cost)
 *   list_rps, list_ms                GET /v1/vnodes (all 10,000, ~15 MB of
 *                                    JSON) on a real lego-manager process
 *                                    started on that state; list_page100_rps
 *                                    one page of 100 (what legoctl asks for,
 *                                    in pages of 1,000); next to status_rps
 *                                    (GET /v1/status on the same server: the
 *                                    HTTP floor)
 *   placements_per_s_sqlite,         placements made durable: a decision (a
 *   placements_per_s_etcd            256 MiB vNode on 100 memory servers) and
 *                                    its record written through to the store,
 *                                    one after another as the manager's lock
 *                                    makes them, with SQLite (a file) and etcd
 *                                    (one member, TLS, its data on the same
 *                                    disk), same run
 *   takeover_ms_p50, _p99            legoctl up --managers 2: the leader killed
 *                                    (SIGKILL), until the first create placed
 *                                    by the new leader answers; 20 kills, the
 *                                    killed one restarted as a standby each time
 * Goals: a placement decision under 1 ms; with etcd, 1,000 durable placements
 * a second and a takeover under 5 s (p99).
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "manager.h"
#include "test.h"
#include "util.h"

#define NR_MEMSRV  1000
#define NR_STORSRV 100
#define NR_AGENT   100
#define NR_VNODES  10000
#define VNODE_MEM  (2 * GiB)

/* One decision: memory slabs, a storage server, an agent. Returns the slab count. */
static int decide(struct manager *m, struct place_slab *slabs, int *st_i, int *ag_i)
{
	struct comp_set *ms = &m->roles[ROLE_MEMSRV], *st = &m->roles[ROLE_STORSRV],
			*ag = &m->roles[ROLE_AGENT];
	char err[512];
	int nr = place_memory(ms->ps, ms->n, VNODE_MEM, m->slab_size, slabs, MAX_SLABS, err,
			      sizeof(err));

	if (nr < 0 ||
	    (*st_i = place_one(st->ps, st->n, 4 * GiB, "storage server", err, sizeof(err))) < 0 ||
	    (*ag_i = place_one(ag->ps, ag->n, 512 * MiB, "agent", err, sizeof(err))) < 0) {
		fprintf(stderr, "bench_manager: placement refused: %s\n", err);
		exit(1);
	}
	return nr;
}

/* Give a decision back, so that the state stays the same for the next. */
static void undo(struct manager *m, struct place_slab *slabs, int nr, int st_i, int ag_i)
{
	place_release(m->roles[ROLE_MEMSRV].ps, slabs, nr);
	m->roles[ROLE_STORSRV].ps[st_i].reserved -= 4 * GiB;
	m->roles[ROLE_STORSRV].ps[st_i].count--;
	m->roles[ROLE_AGENT].ps[ag_i].reserved -= 512 * MiB;
	m->roles[ROLE_AGENT].ps[ag_i].count--;
}

/* The state: components and 10,000 placed vNodes, in memory and in @db. */
static void populate(struct manager *m, const char *db)
{
	static struct place_slab slabs[MAX_SLABS];
	char err[512], addr[64];

	if (manager_init(m, db, err, sizeof(err))) {
		fprintf(stderr, "bench_manager: %s\n", err);
		exit(1);
	}
	for (int i = 0; i < NR_MEMSRV; i++) {
		snprintf(addr, sizeof(addr), "10.0.%d.%d:7400", i / 250, i % 250);
		db_save_comp(m, comp_add(m, ROLE_MEMSRV, addr, 64 * GiB));
	}
	for (int i = 0; i < NR_STORSRV; i++) {
		snprintf(addr, sizeof(addr), "10.1.0.%d:7500", i);
		db_save_comp(m, comp_add(m, ROLE_STORSRV, addr, 4096 * GiB));
	}
	for (int i = 0; i < NR_AGENT; i++) {
		snprintf(addr, sizeof(addr), "10.2.0.%d:7600", i);
		db_save_comp(m, comp_add(m, ROLE_AGENT, addr, 256 * GiB));
	}
	store_batch(m, true);
	for (int i = 0; i < NR_VNODES; i++) {
		struct comp_set *ms = &m->roles[ROLE_MEMSRV];
		char name[32];
		struct vnode *v;
		int nr, st_i, ag_i;

		snprintf(name, sizeof(name), "vnode-%05d", i);
		v = vnode_add(m, name);
		v->spec = json_pack("{s:s,s:i,s:I,s:I,s:I,s:s}", "name", name, "cpus", 2, "memory",
				    (json_int_t)VNODE_MEM, "excache", (json_int_t)(512 * MiB),
				    "disk", (json_int_t)(4 * GiB), "payload", "touch");
		nr = decide(m, slabs, &st_i, &ag_i);
		v->nr_slabs = nr;
		v->slabs = calloc(nr, sizeof(*v->slabs));
		for (int s = 0; s < nr; s++) {
			v->slabs[s].size = slabs[s].size;
			snprintf(v->slabs[s].primary, ADDR_LEN, "%s", ms->c[slabs[s].primary].addr);
			snprintf(v->slabs[s].secondary, ADDR_LEN, "%s",
				 ms->c[slabs[s].secondary].addr);
		}
		v->placed_memory = VNODE_MEM;
		v->slab_size = m->slab_size;
		v->state = VNODE_RUNNING;
		snprintf(v->agent, ADDR_LEN, "%s", m->roles[ROLE_AGENT].c[ag_i].addr);
		snprintf(v->storsrv, ADDR_LEN, "%s", m->roles[ROLE_STORSRV].c[st_i].addr);
		db_save_vnode(m, v);
	}
	store_batch(m, false);
}

/* One etcd member on free ports, with the identity in @pki/etcd; its client address. */
static pid_t etcd_start(const char *pki, char *client, size_t len)
{
	static char c[64], peer[64], data[512], cert[512], key[512], ca[512], cluster[96];
	char *argv[] = {"/usr/bin/etcd",
			"--name",
			"b",
			"--data-dir",
			data,
			"--listen-client-urls",
			c,
			"--advertise-client-urls",
			c,
			"--listen-peer-urls",
			peer,
			"--initial-advertise-peer-urls",
			peer,
			"--initial-cluster",
			cluster,
			"--cert-file",
			cert,
			"--key-file",
			key,
			"--trusted-ca-file",
			ca,
			"--client-cert-auth",
			"--peer-cert-file",
			cert,
			"--peer-key-file",
			key,
			"--peer-trusted-ca-file",
			ca,
			"--peer-client-cert-auth",
			"--logger=zap",
			"--log-level=warn",
			NULL};
	int cp = test_free_port(), pp = test_free_port();
	pid_t pid;

	snprintf(c, sizeof(c), "https://127.0.0.1:%d", cp);
	snprintf(peer, sizeof(peer), "https://127.0.0.1:%d", pp);
	snprintf(cluster, sizeof(cluster), "b=%s", peer);
	snprintf(data, sizeof(data), "%s/etcd-data", test_tmpdir());
	snprintf(cert, sizeof(cert), "%s/etcd/etcd.pem", pki);
	snprintf(key, sizeof(key), "%s/etcd/etcd.key", pki);
	snprintf(ca, sizeof(ca), "%s/etcd/ca.pem", pki);
	pid = proc_spawn(argv);
	if (!wait_for_port(cp, 20000)) {
		fprintf(stderr, "bench_manager: etcd did not start\n");
		exit(1);
	}
	snprintf(client, len, "127.0.0.1:%d", cp);
	return pid;
}

struct placer {
	struct manager *m;
	double secs;
	uint64_t n;
	int id;
};

/* Placements, one after another, each saved as vnode_create saves it. */
static void *placer(void *arg)
{
	static struct place_slab slabs[16][MAX_SLABS];
	struct placer *p = arg;
	struct manager *m = p->m;
	struct comp_set *ms = &m->roles[ROLE_MEMSRV];
	uint64_t t0 = now_ns();
	char err[512];

	while (now_ns() - t0 < p->secs * 1e9) {
		char name[32];
		struct vnode *v;
		int nr;

		snprintf(name, sizeof(name), "d%02d-%06llu", p->id, (unsigned long long)p->n);
		pthread_mutex_lock(&m->lock);
		v = vnode_add(m, name);
		v->spec = json_pack("{s:s,s:i,s:I,s:I,s:s}", "name", name, "cpus", 1, "memory",
				    (json_int_t)(256 * MiB), "excache", (json_int_t)(64 * MiB),
				    "payload", "touch");
		nr = place_memory(ms->ps, ms->n, 256 * MiB, m->slab_size, slabs[p->id], MAX_SLABS,
				  err, sizeof(err));
		if (nr <= 0) {
			fprintf(stderr, "bench_manager: %s\n", err);
			exit(1);
		}
		v->nr_slabs = nr;
		v->slabs = calloc(nr, sizeof(*v->slabs));
		for (int k = 0; k < nr; k++) {
			v->slabs[k].size = slabs[p->id][k].size;
			snprintf(v->slabs[k].primary, ADDR_LEN, "%s",
				 ms->c[slabs[p->id][k].primary].addr);
			snprintf(v->slabs[k].secondary, ADDR_LEN, "%s",
				 ms->c[slabs[p->id][k].secondary].addr);
		}
		v->placed_memory = 256 * MiB;
		v->state = VNODE_CREATING;
		if (db_save_placement(m, v)) {
			fprintf(stderr, "bench_manager: a record not written\n");
			exit(1);
		}
		pthread_mutex_unlock(&m->lock);
		p->n++;
	}
	return NULL;
}

/*
 * Durable placements on @where (a file, or etcd://... where this manager is
 * elected first) for @secs by @threads at once: the rate.
 */
static double durable_placements(const char *where, const char *pki, double secs, int threads)
{
	static struct manager m;
	struct placer pl[16];
	pthread_t t[16];
	char err[1024], addr[64];
	uint64_t t0, n = 0;

	memset(&m, 0, sizeof(m));
	snprintf(m.pki, sizeof(m.pki), "%s", pki);
	m.down_after_ms = 3600 * 1000; /* no heartbeats here */
	snprintf(m.self_url, sizeof(m.self_url), "https://127.0.0.1:1");
	if (manager_init(&m, where, err, sizeof(err))) {
		fprintf(stderr, "bench_manager: %s: %s\n", where, err);
		exit(1);
	}
	pthread_mutex_lock(&m.lock);
	for (int i = 0; i < 100; i++) {
		snprintf(addr, sizeof(addr), "10.0.0.%d:7400", i);
		if (!comp_find(&m, ROLE_MEMSRV, addr, NULL))
			db_save_comp(&m, comp_add(&m, ROLE_MEMSRV, addr, 1024 * GiB));
	}
	pthread_mutex_unlock(&m.lock);
	if (leader_start(&m, 3000, err, sizeof(err))) {
		fprintf(stderr, "bench_manager: %s\n", err);
		exit(1);
	}
	for (int ms = 0; !m.leading && ms < 20000; ms += 10)
		usleep(10 * 1000);
	if (!m.leading) {
		fprintf(stderr, "bench_manager: not elected on %s\n", where);
		exit(1);
	}
	t0 = now_ns();
	for (int i = 0; i < threads; i++) {
		pl[i] = (struct placer){.m = &m, .secs = secs, .id = i};
		pthread_create(&t[i], NULL, placer, &pl[i]);
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		n += pl[i].n;
	}
	double rate = n / ((now_ns() - t0) / 1e9);
	leader_stop(&m);
	manager_exit(&m);
	return rate;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* legoctl @a0 ... under LEGO_HOME, or exit. */
static void legoctl_or_exit(const char *a0, const char *a1, const char *a2, const char *a3,
			    const char *a4)
{
	char *argv[] = {(char *)test_path("bin/legoctl"),
			(char *)a0,
			(char *)a1,
			(char *)a2,
			(char *)a3,
			(char *)a4,
			NULL};
	struct proc_result r;

	proc_run(argv, 120, &r);
	if (r.status) {
		fprintf(stderr, "bench_manager: legoctl %s: %s%s\n", a0, r.out, r.err);
		exit(1);
	}
	proc_result_free(&r);
}

/* takeover_ms over @kills kills of the leading manager of a local cluster of two. */
static void takeovers(int kills, uint64_t *ms)
{
	char home[512], cfg[600], list[400], err[512], pidf[600];
	struct http_managers hm;
	json_t *c;

	snprintf(home, sizeof(home), "%s/home", test_tmpdir());
	setenv("LEGO_HOME", home, 1);
	legoctl_or_exit("up", "--managers", "2", "--etcd-members", "1");
	snprintf(cfg, sizeof(cfg), "%s/cluster.json", home);
	c = json_load_file(cfg, 0, NULL);
	snprintf(list, sizeof(list), "%s,%s",
		 json_string_value(json_array_get(json_object_get(c, "managers"), 0)),
		 json_string_value(json_array_get(json_object_get(c, "managers"), 1)));
	json_decref(c);
	{
		struct pki_identity id;
		char prefix[600];

		snprintf(prefix, sizeof(prefix), "%s/pki/admin", home);
		if (pki_identity(prefix, &id, err, sizeof(err))) {
			fprintf(stderr, "bench_manager: %s\n", err);
			exit(1);
		}
		http_identity(&id);
	}
	http_managers_parse(&hm, list, err, sizeof(err));
	for (int k = 0; k < kills; k++) {
		json_t *st = NULL, *spec;
		const char *leader;
		int who = -1, s;
		FILE *f;
		int pid = 0;
		uint64_t t0;

		/* which one leads */
		for (int tries = 0; who < 0 && tries < 100; tries++) {
			if (http_managers_call(&hm, "GET", "/v1/status", NULL, &st, 10000, err,
					       sizeof(err)) == 200 &&
			    (leader = json_string_value(json_object_get(st, "leader"))))
				for (int i = 0; i < 2; i++)
					if (!strcmp(hm.url[i], leader))
						who = i;
			json_decref(st);
			if (who < 0)
				usleep(100 * 1000);
		}
		if (who < 0) {
			fprintf(stderr, "bench_manager: no manager leads\n");
			exit(1);
		}
		snprintf(pidf, sizeof(pidf), "%s/run/%s.pid", home, who ? "manager-2" : "manager");
		f = fopen(pidf, "r");
		if (!f || fscanf(f, "%d", &pid) != 1 || pid <= 0) {
			fprintf(stderr, "bench_manager: no pid in %s\n", pidf);
			exit(1);
		}
		fclose(f);
		spec = json_pack("{s:o,s:I,s:I,s:i,s:b}", "name", json_sprintf("t%d", k), "memory",
				 (json_int_t)(64 * MiB), "excache", (json_int_t)(8 * MiB), "image",
				 1 << 20, "net", 0);
		t0 = now_ns();
		kill(pid, SIGKILL);
		s = http_managers_call(&hm, "POST", "/v1/vnodes", spec, NULL, 30000, err,
				       sizeof(err));
		ms[k] = (now_ns() - t0) / 1000000;
		json_decref(spec);
		if (s != 201) {
			fprintf(stderr, "bench_manager: create after the kill: %d %s\n", s, err);
			exit(1);
		}
		fprintf(stderr, "bench_manager: kill %d: the new leader placed after %llu ms\n",
			k + 1, (unsigned long long)ms[k]);
		legoctl_or_exit("up", NULL, NULL, NULL, NULL); /* back, as a standby */
	}
	legoctl_or_exit("down", NULL, NULL, NULL, NULL);
	qsort(ms, kills, sizeof(*ms), cmp_u64);
}

static double rps(const char *url, double seconds, double *ms_each)
{
	char err[256], *out;
	uint64_t t0 = now_ns(), n = 0;

	while (now_ns() - t0 < seconds * 1e9) {
		if (http_call_raw("GET", url, NULL, NULL, &out, 30000, err, sizeof(err)) != 200) {
			fprintf(stderr, "bench_manager: GET %s: %s\n", url, err);
			exit(1);
		}
		free(out);
		n++;
	}
	*ms_each = (now_ns() - t0) / 1e6 / n;
	return n / ((now_ns() - t0) / 1e9);
}

int main(int argc, char **argv)
{
	static struct manager m;
	static struct place_slab slabs[MAX_SLABS];
	struct comp_set *ms;
	char db[400], listen[64], url[128], pki[400], prefix[420], err[1024];
	char *mgr_argv[] = {NULL, "-q", "--db", db, "--pki", pki, "--listen", listen, NULL};
	struct pki_identity id;
	double list_ms, status_ms, list_rps, status_rps, page_ms, page_rps;
	uint64_t t0, n = 0, sink = 0;
	pid_t mgr;

	test_set_build_dir(argc > 1 ? argv[1] : "build");
	snprintf(db, sizeof(db), "%s/manager.db", test_tmpdir());
	t0 = now_ns();
	populate(&m, db);
	fprintf(stderr, "bench_manager: %d memory servers, %d vNodes placed and stored in %.1f s\n",
		NR_MEMSRV, NR_VNODES, (now_ns() - t0) / 1e9);
	ms = &m.roles[ROLE_MEMSRV];

	/* Decisions on the full state; each is given back so the state stays the same. */
	t0 = now_ns();
	while (now_ns() - t0 < 2e9) {
		int st_i, ag_i, nr = decide(&m, slabs, &st_i, &ag_i);

		undo(&m, slabs, nr, st_i, ag_i);
		n++;
	}
	double placement_us = (now_ns() - t0) / 1e3 / n;
	/* The floor: one pass over the memory servers. */
	uint64_t passes = 0;
	t0 = now_ns();
	while (now_ns() - t0 < 1e9) {
		for (int i = 0; i < ms->n; i++)
			sink += ms->ps[i].capacity - ms->ps[i].reserved + ms->ps[i].up;
		__asm__ volatile("" : : "r"(sink) : "memory");
		passes++;
	}
	double scan_us = (now_ns() - t0) / 1e3 / passes;
	manager_exit(&m);

	/* list on a real manager process started on that database. */
	mgr_argv[0] = (char *)test_path("bin/lego-manager");
	snprintf(pki, sizeof(pki), "%s/pki", test_tmpdir());
	snprintf(prefix, sizeof(prefix), "%s/admin", pki);
	if (pki_init_cluster(pki, "bench", NULL, err, sizeof(err)) ||
	    pki_identity(prefix, &id, err, sizeof(err))) {
		fprintf(stderr, "bench_manager: %s\n", err);
		return 1;
	}
	http_identity(&id); /* HTTPS as the admin, as legoctl calls it */
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", test_free_port());
	mgr = proc_spawn(mgr_argv);
	if (!wait_for_port(atoi(strrchr(listen, ':') + 1), 20000)) {
		fprintf(stderr, "bench_manager: lego-manager did not start\n");
		return 1;
	}
	snprintf(url, sizeof(url), "https://%s/v1/status", listen);
	status_rps = rps(url, 2, &status_ms);
	snprintf(url, sizeof(url), "https://%s/v1/vnodes", listen);
	list_rps = rps(url, 5, &list_ms);
	snprintf(url, sizeof(url), "https://%s/v1/vnodes?limit=100&after=vnode-05000", listen);
	page_rps = rps(url, 3, &page_ms);
	kill(mgr, SIGTERM);
	/* Durable placements: SQLite next to etcd, then takeovers. */
	double sqlite_rate, etcd_rate, sqlite_one, etcd_one;
	uint64_t take[20];
	pid_t etcd;
	{
		char epki[400], client[64], where[96];

		snprintf(db, sizeof(db), "%s/durable.db", test_tmpdir());
		snprintf(epki, sizeof(epki), "%s/epki", test_tmpdir());
		if (pki_init_cluster(epki, "bench-durable", NULL, err, sizeof(err)) ||
		    pki_init_etcd(epki, NULL, err, sizeof(err))) {
			fprintf(stderr, "bench_manager: %s\n", err);
			return 1;
		}
		sqlite_rate = durable_placements(db, epki, 3, 16);
		sqlite_one = durable_placements(db, epki, 2, 1);
		etcd = etcd_start(epki, client, sizeof(client));
		snprintf(where, sizeof(where), "etcd://%s", client);
		etcd_rate = durable_placements(where, epki, 3, 16);
		etcd_one = durable_placements(where, epki, 2, 1);
		fprintf(stderr,
			"bench_manager: durable placements a second, 16 at once (one at a time): "
			"SQLite %.0f (%.0f), etcd %.0f (%.0f)\n",
			sqlite_rate, sqlite_one, etcd_rate, etcd_one);
		kill(etcd, SIGTERM);
		waitpid(etcd, NULL, 0);
	}
	takeovers(20, take);

	printf("BENCH manager_placement memsrvs=%d vnodes=%d placements_per_s=%.0f placement_us=%.1f "
	       "scan_us=%.2f placement_goal_us=1000\n",
	       NR_MEMSRV, NR_VNODES, 1e6 / placement_us, placement_us, scan_us);
	printf("BENCH manager_list vnodes=%d list_rps=%.1f list_ms=%.1f list_page100_rps=%.0f "
	       "list_page100_ms=%.2f status_rps=%.0f status_ms=%.2f\n",
	       NR_VNODES, list_rps, list_ms, page_rps, page_ms, status_rps, status_ms);
	printf("BENCH manager_store clients=16 placements_per_s_sqlite=%.0f "
	       "placements_per_s_etcd=%.0f etcd_ratio=%.2f one_client_sqlite=%.0f "
	       "one_client_etcd=%.0f\n",
	       sqlite_rate, etcd_rate, etcd_rate / sqlite_rate, sqlite_one, etcd_one);
	printf("BENCH manager_takeover kills=20 lease_ms=3000 takeover_ms_p50=%llu "
	       "takeover_ms_p99=%llu takeover_ms_max=%llu\n",
	       (unsigned long long)take[9], (unsigned long long)take[19],
	       (unsigned long long)take[19]);
	return 0;
}
