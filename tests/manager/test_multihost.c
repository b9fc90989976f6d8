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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster.h"
#include "pki.h"

#define MANAGER "https://10.99.0.1:7300"

static char ns[3][32];

/* Three namespaces, host N at 10.99.0.N/24, their links on a bridge in the case's own. */
static void hosts_up(void)
{
	SH("ip link add mhbr type bridge && ip addr add 10.99.0.254/24 dev mhbr && "
	   "ip link set mhbr up");
	for (int h = 0; h < 3; h++) {
		snprintf(ns[h], sizeof(ns[h]), "lego%d-h%d", (int)getpid(), h + 1);
		SH("ip netns add %s", ns[h]);
		SH("ip link add mh%d type veth peer name eth0 netns %s", h + 1, ns[h]);
		SH("ip link set mh%d master mhbr up", h + 1);
		SH("ip netns exec %s sh -c 'ip link set lo up && ip addr add 10.99.0.%d/24 dev "
		   "eth0 && ip link set eth0 up'",
		   ns[h], h + 1);
	}
}

/* (at exit: named namespaces outlive the case's own) */
static void hosts_down(void)
{
	for (int h = 0; h < 3; h++)
		if (ns[h][0] && test_sh("ip netns del %s 2>/dev/null", ns[h]))
			fprintf(stderr, "  could not remove %s\n", ns[h]);
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

/* The vNode's slab: primary and secondary memory servers. */
static void placement(char *primary, char *secondary, size_t len)
{
	json_t *l = legoctl_json("list", NULL);
	json_t *s = json_array_get(json_object_get(vnode(l, "mh"), "slabs"), 0);

	snprintf(primary, len, "%s", s ? JS(s, "primary") : "");
	snprintf(secondary, len, "%s", s ? JS(s, "secondary") : "");
	json_decref(l);
}

/* Until the manager on host 1 answers legoctl (it may still be starting). */
static void manager_answers(void)
{
	for (int tries = 0;; tries++) {
		struct proc_result r;
		bool ok;

		legoctl(&r, "nodes", NULL);
		ok = r.status == 0;
		ASSERT(ok || tries < 50, "the manager on host 1 never answered: %s", r.err);
		proc_result_free(&r);
		if (ok)
			return;
		usleep(200 * 1000);
	}
}

/* Until @n components are up, all advertising an address of the hosts' network. */
static void components_up(int n)
{
	for (int ms = 0;; ms += 200) {
		json_t *nodes = legoctl_json("nodes", NULL), *c;
		int up = 0;
		size_t i;

		json_array_foreach(json_object_get(nodes, "components"), i, c)
		{
			ASSERT(!strncmp(JS(c, "addr"), "10.99.0.", 8), "%s advertised %s",
			       JS(c, "role"), JS(c, "addr"));
			up += !strcmp(JS(c, "health"), "up");
		}
		json_decref(nodes);
		if (up == n)
			return;
		ASSERT(ms < 20000, "only %d of %d components joined and came up", up, n);
		usleep(200 * 1000);
	}
}

TEST_TIMEOUT(three_hosts_one_cut_off, 300)
{
	static const char *const roles[] = {"memsrv", "memsrv", "storsrv", "agent"};
	static const char *const listen[] = {"0.0.0.0:7400", "0.0.0.0:7400", "10.99.0.1:7500",
					     "10.99.0.1:7600"};
	static const char *const advertise[] = {"10.99.0.2:7400", "10.99.0.3:7400",
						"10.99.0.1:7500", "10.99.0.1:7600"};
	static const int host[] = {2, 3, 1, 1};
	char pki[700], db[700], data[700], dir[4][700], prefix[4][720], tok[4][720], bin[4][600];
	char primary[64], secondary[64];
	pid_t pids[5];
	struct proc_result r;

	test_require_kvm();
	cluster_home();			    /* the case's own namespace: the bridge goes with it */
	setenv("LEGO_MANAGER", MANAGER, 1); /* legoctl's manager is on host 1 */
	atexit(hosts_down);
	hosts_up();
	for (int k = 0; k < 4; k++) /* (test_path's buffer is reused) */
		snprintf(bin[k], sizeof(bin[k]), "%s",
			 test_path((const char *[]){"bin/lego-memsrv", "bin/lego-memsrv",
						    "bin/lego-storsrv", "bin/lego-agent"}[k]));

	/* host 1: the cluster's identity, for the address others reach its manager at */
	ASSERT(mkdir(home, 0700) == 0);
	snprintf(pki, sizeof(pki), "%s/pki", home);
	snprintf(db, sizeof(db), "%s/manager.db", home);
	char *init[] = {(char *)test_path("bin/lego-manager"),
			"init",
			"--pki",
			pki,
			"--host",
			"10.99.0.1",
			NULL};
	proc_run(init, 30, &r);
	ASSERT(r.status == 0, "lego-manager init: %s", r.err);
	proc_result_free(&r);
	char *mgr[] = {(char *)test_path("bin/lego-manager"),
		       "--db",
		       db,
		       "--pki",
		       pki,
		       "--listen",
		       "10.99.0.1:7300",
		       NULL};
	pids[0] = on_host(1, mgr);
	manager_answers();

	/* every component joins over the network, with a token the admin made */
	for (int k = 0; k < 4; k++) {
		snprintf(dir[k], sizeof(dir[k]), "%s/host%d-%d", test_tmpdir(), host[k], k);
		ASSERT(mkdir(dir[k], 0700) == 0);
		snprintf(prefix[k], sizeof(prefix[k]), "%.600s/%s", dir[k], roles[k]);
		snprintf(tok[k], sizeof(tok[k]), "%.600s/token", dir[k]);
		join_token_file(roles[k], tok[k]);
		snprintf(data, sizeof(data), "%.600s/data", dir[k]);
		char *argv[] = {bin[k], "--listen", (char *)listen[k], "--advertise",
				(char *)advertise[k], "--manager", MANAGER, "--identity", prefix[k],
				"--join", tok[k],
				/* each role's own: */
				k < 2	 ? "--capacity"
				: k == 2 ? "--data"
					 : "--dir",
				k < 2 ? "512M" : data, k == 3 ? "--capacity" : NULL, "1G", NULL};
		pids[1 + k] = on_host(host[k], argv);
	}
	components_up(4);

	/* a vNode on host 1 whose memory lives on hosts 2 and 3 */
	legoctl(&r, "create", "mh", "--cpus", "2", "--memory", "64M", "--excache", "8M",
		"--payload", "touch", "--args", "op=verify mode=rand size=40M passes=30", NULL);
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
	SH("ip netns exec %s ip link set eth0 down", ns[cut - 1]);
	printf("  host %d (%s) cut off\n", cut, primary);
	json_decref(wait_vnode_for("mh", "exited", 0, 240));
	placement(primary, secondary, sizeof(primary));
	printf("  afterwards: primary %s, secondary '%s'\n", primary, secondary);
	ASSERT(primary[8] - '0' != cut, "the slab still has the cut-off host as its primary");
	no_mismatches("mh", 2);
	for (int k = 4; k >= 0; k--)
		kill(pids[k], SIGTERM);
	for (int k = 4; k >= 0; k--) {
		proc_collect(pids[k], 20, &r);
		proc_result_free(&r);
	}
}
