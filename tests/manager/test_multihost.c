/*
 * test_multihost.c - a cluster across three "hosts" on one machine: network
 * namespaces joined by a bridge, each with its own address. Host 1 runs
 * the manager (its identity made by lego-manager init), a storage server
 * and an agent; hosts 2 and 3 a memory server each. Every component joins
 * with a join token over the network, as on real hosts; a vNode on host 1
 * has its memory on the other two, verifies it, and the host of its
 * primary memory server is cut off (its link down) in the middle: the VMM
 * fails over across hosts, and the workload finds no mismatch.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster.h"
#include "pki.h"

#define MANAGER "https://10.99.0.1:7300"

static char ns[3][32];

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	ASSERT(system(cmd) == 0, "%s", cmd);
}

/* Three namespaces, host N at 10.99.0.N/24, their links on a bridge in the case's own. */
static void hosts_up(void)
{
	sh("ip link add mhbr type bridge && ip addr add 10.99.0.254/24 dev mhbr && "
	   "ip link set mhbr up");
	for (int h = 0; h < 3; h++) {
		snprintf(ns[h], sizeof(ns[h]), "lego%d-h%d", (int)getpid(), h + 1);
		sh("ip netns add %s", ns[h]);
		sh("ip link add mh%d type veth peer name eth0 netns %s", h + 1, ns[h]);
		sh("ip link set mh%d master mhbr up", h + 1);
		sh("ip netns exec %s sh -c 'ip link set lo up && ip addr add 10.99.0.%d/24 dev "
		   "eth0 && ip link set eth0 up'",
		   ns[h], h + 1);
	}
}

static void hosts_down(void)
{
	for (int h = 0; h < 3; h++)
		if (ns[h][0]) {
			char cmd[128];

			snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null", ns[h]);
			if (system(cmd) != 0)
				fprintf(stderr, "  could not remove %s\n", ns[h]);
		}
}

/* Run @argv (NULL-ended) on host @h (1 to 3), in the background. */
static pid_t on_host(int h, char **argv)
{
	char *full[32] = {"/usr/sbin/ip", "netns", "exec", ns[h - 1]}; /* (execv: a path) */
	int n = 4;

	for (char **a = argv; *a && n < 31; a++)
		full[n++] = *a;
	full[n] = NULL;
	return proc_spawn(full);
}

/* A join token for @role, in a file of mode 0600 under @dir: its path into @path. */
static void token_file(const char *role, const char *dir, char *path, size_t len)
{
	json_t *t = legoctl_json("--manager", MANAGER, "token", "create", "--role", role, NULL);

	mkdir(dir, 0700);
	snprintf(path, len, "%.600s/token", dir);
	ASSERT(pki_write(path, JS(t, "token"), strlen(JS(t, "token")), 0600) == 0);
	json_decref(t);
}

/* The vNode's slab: primary and secondary memory servers (empty until placed). */
static void placement(char *primary, char *secondary, size_t len)
{
	json_t *l = legoctl_json("--manager", MANAGER, "list", NULL);
	json_t *s = json_array_get(json_object_get(vnode(l, "mh"), "slabs"), 0);

	snprintf(primary, len, "%s", s ? JS(s, "primary") : "");
	snprintf(secondary, len, "%s", s ? JS(s, "secondary") : "");
	json_decref(l);
}

TEST_TIMEOUT(three_hosts_one_cut_off, 300)
{
	char t[600], pki[700], prefix[4][700], tok[4][760], dirs[4][700], err[1024];
	char db[700], vols[700], vdir[700], primary[64], secondary[64];
	char bin[4][600]; /* (test_path's buffer is reused) */
	const char *names[] = {"bin/lego-memsrv", "bin/lego-storsrv", "bin/lego-agent",
			       "bin/lego-manager"};
	for (int k = 0; k < 4; k++)
		snprintf(bin[k], sizeof(bin[k]), "%s", test_path(names[k]));
	pid_t pids[5];
	struct proc_result r;

	test_require_kvm();
	cluster_home(); /* the case's own namespace: the bridge goes with it */
	atexit(hosts_down);
	hosts_up();
	snprintf(t, sizeof(t), "%s", test_tmpdir());

	/* host 1: the cluster's identity, for the address others reach its manager at */
	ASSERT(mkdir(home, 0700) == 0);
	snprintf(pki, sizeof(pki), "%s/pki", home);
	char *init[] = {bin[3], "init", "--pki", pki, "--host", "10.99.0.1", NULL};
	proc_run(init, 30, &r);
	ASSERT(r.status == 0, "lego-manager init: %s", r.err);
	proc_result_free(&r);
	snprintf(db, sizeof(db), "%s/manager.db", home);
	char *mgr[] = {bin[3], "--db", db, "--pki", pki, "--listen", "10.99.0.1:7300", NULL};
	pids[0] = on_host(1, mgr);

	for (int tries = 0;; tries++) { /* the manager may still be starting */
		if (tries == 49) {
			legoctl(&r, "--manager", MANAGER, "nodes", NULL);
			printf("legoctl: %s %s\n", r.out, r.err);
			printf("manager: %s\n", pki_read(proc_err_path(pids[0])) ?: "");
		}
		legoctl(&r, "--manager", MANAGER, "nodes", NULL);
		bool ok = r.status == 0;

		proc_result_free(&r);
		if (ok)
			break;
		ASSERT(tries < 50, "the manager on host 1 never answered");
		usleep(200 * 1000);
	}
	/* every component joins over the network, with a token the admin made */
	const char *roles[] = {"memsrv", "memsrv", "storsrv", "agent"};
	for (int i = 0; i < 4; i++) {
		snprintf(dirs[i], sizeof(dirs[i]), "%s/host-%d", t, i);
		token_file(roles[i], dirs[i], tok[i], sizeof(tok[i]));
		snprintf(prefix[i], sizeof(prefix[i]), "%.600s/%s", dirs[i], roles[i]);
	}
	char *m2[] = {bin[0],	    "--listen", "0.0.0.0:7400", "--advertise", "10.99.0.2:7400",
		      "--capacity", "512M",	"--manager",	MANAGER,       "--identity",
		      prefix[0],    "--join",	tok[0],		NULL};
	char *m3[] = {bin[0],	    "--listen", "0.0.0.0:7400", "--advertise", "10.99.0.3:7400",
		      "--capacity", "512M",	"--manager",	MANAGER,       "--identity",
		      prefix[1],    "--join",	tok[1],		NULL};
	snprintf(vols, sizeof(vols), "%s/volumes", t);
	char *st[] = {bin[1],  "--listen",   "10.99.0.1:7500", "--data", vols,	 "--manager",
		      MANAGER, "--identity", prefix[2],	       "--join", tok[2], NULL};
	snprintf(vdir, sizeof(vdir), "%s/vnodes", t);
	char *ag[] = {bin[2],	    "--listen", "10.99.0.1:7600", "--dir", vdir,
		      "--capacity", "1G",	"--manager",	  MANAGER, "--identity",
		      prefix[3],    "--join",	tok[3],		  NULL};
	pids[1] = on_host(2, m2);
	pids[2] = on_host(3, m3);
	pids[3] = on_host(1, st);
	pids[4] = on_host(1, ag);
	for (int ms = 0;; ms += 200) {
		json_t *n = legoctl_json("--manager", MANAGER, "nodes", NULL), *c;
		int up = 0;
		size_t i;

		json_array_foreach(json_object_get(n, "components"), i, c) up +=
			!strcmp(JS(c, "health"), "up");
		json_decref(n);
		if (up == 4)
			break;
		if (ms >= 20000)
			for (int k = 1; k < 5; k++)
				printf("component %d: %s\n", k,
				       pki_read(proc_err_path(pids[k])) ?: "");
		ASSERT(ms < 20000, "only %d of 4 components joined and came up", up);
		usleep(200 * 1000);
	}
	json_t *n = legoctl_json("--manager", MANAGER, "nodes", NULL), *c;
	size_t i;
	json_array_foreach(json_object_get(n, "components"), i, c)
		ASSERT(!strncmp(JS(c, "addr"), "10.99.0.", 8), "%s advertised %s", JS(c, "role"),
		       JS(c, "addr"));
	json_decref(n);

	/* a vNode on host 1 whose memory lives on hosts 2 and 3 */
	legoctl(&r, "--manager", MANAGER, "create", "mh", "--cpus", "2", "--memory", "64M",
		"--excache", "8M", "--payload", "touch", "--args",
		"op=verify mode=rand size=40M passes=30", NULL);
	ASSERT(r.status == 0, "create: %s%s", r.out, r.err);
	proc_result_free(&r);
	placement(primary, secondary, sizeof(primary));
	ASSERT(!strncmp(primary, "10.99.0.", 8) && !strncmp(secondary, "10.99.0.", 8) &&
		       strcmp(primary, secondary),
	       "placed on '%s' and '%s'", primary, secondary);
	printf("  memory on %s (primary) and %s, the VMM on 10.99.0.1\n", primary, secondary);

	/* the primary's host is cut off mid-workload */
	sleep(3);
	int cut = primary[8] - '0';
	sh("ip netns exec %s ip link set eth0 down", ns[cut - 1]);
	printf("  host %d (%s) cut off\n", cut, primary);
	for (int s = 0;; s++) {
		json_t *l = legoctl_json("--manager", MANAGER, "list", NULL);
		const char *state = JS(vnode(l, "mh"), "state");
		bool done = !strcmp(state, "exited") || !strcmp(state, "failed");

		json_decref(l);
		if (done)
			break;
		if (s == 200) {
			char p[1600];

			snprintf(p, sizeof(p), "tail -20 %s/mh/vmm.log %s/mh/console.log", vdir,
				 vdir);
			if (system(p))
				(void)0;
		}
		ASSERT(s < 200, "the vNode never finished");
		sleep(1);
	}
	placement(primary, secondary, sizeof(primary));
	printf("  afterwards: primary %s, secondary '%s'\n", primary, secondary);
	ASSERT(primary[8] - '0' != cut, "the slab still has the cut-off host as its primary");
	{
		char console[800], *con;

		snprintf(console, sizeof(console), "%s/mh/console.log", vdir);
		con = pki_read(console);
		ASSERT(con, "%s", console);
		for (int cpu = 0; cpu < 2; cpu++) {
			uint64_t mism = 1;

			ASSERT(report_get(con, cpu, "mismatches", &mism), "vCPU %d: %s", cpu, con);
			ASSERT(mism == 0, "vCPU %d found %llu mismatches", cpu,
			       (unsigned long long)mism);
		}
		free(con);
	}
	for (int k = 4; k >= 0; k--)
		kill(pids[k], SIGTERM);
	for (int k = 4; k >= 0; k--) {
		proc_collect(pids[k], 20, &r);
		proc_result_free(&r);
	}
	(void)err;
}
