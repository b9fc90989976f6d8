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
 * Goal: a placement decision under 1 ms.
 */
#include <signal.h>
#include <stdio.h>
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
	sqlite3_exec(m->db, "BEGIN", NULL, NULL, NULL);
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
	sqlite3_exec(m->db, "COMMIT", NULL, NULL, NULL);
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
	printf("BENCH manager_placement memsrvs=%d vnodes=%d placements_per_s=%.0f placement_us=%.1f "
	       "scan_us=%.2f placement_goal_us=1000\n",
	       NR_MEMSRV, NR_VNODES, 1e6 / placement_us, placement_us, scan_us);
	printf("BENCH manager_list vnodes=%d list_rps=%.1f list_ms=%.1f list_page100_rps=%.0f "
	       "list_page100_ms=%.2f status_rps=%.0f status_ms=%.2f\n",
	       NR_VNODES, list_rps, list_ms, page_rps, page_ms, status_rps, status_ms);
	return 0;
}
