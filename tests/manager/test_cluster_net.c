/*
 * test_cluster_net.c - the cluster's network: the agent's bridge, the
 * vNodes' addresses, MACs and TAPs, and a host without a bridge.
 */
#include <ctype.h>
#include <net/if.h>
#include <sched.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "http.h"
#include "cluster.h"
#include "test.h"
#include "util.h"

/*
 * The interface @ifname's master (its bridge), "" if none, NULL if there is
 * no such interface: asked of the kernel in this network namespace (sysfs
 * still shows the namespace it was mounted in).
 */
static const char *master_of(const char *ifname)
{
	static char buf[64];
	char cmd[128], line[1024], *m;
	FILE *f;

	if (!if_nametoindex(ifname))
		return NULL;
	snprintf(cmd, sizeof(cmd), "ip -o link show dev %s", ifname);
	f = popen(cmd, "r");
	buf[0] = '\0';
	if (f && fgets(line, sizeof(line), f) && (m = strstr(line, " master ")))
		sscanf(m + 8, "%63s", buf);
	if (f)
		pclose(f);
	return buf;
}

/*
 * The cluster's network: `up` makes the agent's bridge with the subnet's
 * gateway; a vNode created with --net gets an address of the subnet (never
 * another's), a MAC made from it, and a TAP on the bridge that goes with it
 * when it is destroyed; `down` removes the bridge.
 */
TEST_TIMEOUT(vnodes_get_addresses_and_taps_on_the_clusters_bridge, 180)
{
	char p[700], bridge[32], gw[32], tap[32] = "";
	const char *m;
	struct proc_result r;
	json_t *cfg, *l, *v;
	pid_t vmm;

	test_require_kvm();
	if (geteuid() != 0)
		test_skip("the cluster's network needs root (a bridge, TAPs)");
	cluster_home();
	up("256M");
	snprintf(p, sizeof(p), "%s/cluster.json", home);
	cfg = json_load_file(p, 0, NULL);
	ASSERT(cfg);
	snprintf(bridge, sizeof(bridge), "%s", JS(json_object_get(cfg, "network"), "bridge"));
	snprintf(gw, sizeof(gw), "%s", JS(json_object_get(cfg, "network"), "gateway"));
	json_decref(cfg);
	ASSERT(master_of(bridge), "no bridge %s after up", bridge);
	gw[strlen(gw) - 3] = '\0'; /* "10.77.N.1/24" -> "10.77.N.1" */
	for (int k = 0; k < 2; k++) {
		legoctl(&r, "create", k ? "n2" : "n1", "--payload", "hello", "--args", "spin=1",
			"--memory", "64M", "--excache", "16M", "--net", NULL);
		ASSERT(r.status == 0, "create: %s%s", r.out, r.err);
		proc_result_free(&r);
	}
	l = legoctl_json("list", NULL);
	{
		const char *ip1 = JS(json_object_get(vnode(l, "n1"), "net"), "ip");
		const char *ip2 = JS(json_object_get(vnode(l, "n2"), "net"), "ip");

		ASSERT(*ip1 && *ip2 && strcmp(ip1, ip2), "addresses %s and %s", ip1, ip2);
		ASSERT(!strncmp(ip1, gw, strlen(gw) - 1) && strcmp(ip1, gw),
		       "%s is not a host of the gateway %s's subnet", ip1, gw);
		ASSERT(!strncmp(JS(json_object_get(vnode(l, "n1"), "net"), "mac"), "02:4c:47:", 9));
	}
	v = wait_vnode("n1", "running", 0);
	vmm = (pid_t)JI(v, "pid");
	json_decref(v);
	json_decref(l);
	/* Its TAP, named in the order the agent handed over, is on the bridge. */
	snprintf(p, sizeof(p), "%s/vnodes/n1/vmm.log", home);
	{
		FILE *f = fopen(p, "r");
		char line[4096], *t;

		ASSERT(f, "no %s", p);
		while (fgets(line, sizeof(line), f))
			if ((t = strstr(line, "\"tap\":\"")))
				sscanf(t + 7, "%31[^\"]", tap);
		fclose(f);
	}
	ASSERT(tap[0], "the order in vmm.log names no TAP");
	m = master_of(tap);
	ASSERT(m && !strcmp(m, bridge), "TAP %s is on %s, not on the bridge %s", tap,
	       m ? m : "(none)", bridge);
	ASSERT(!gone(vmm), "the VMM does not run");
	legoctl(&r, "destroy", "n1", NULL);
	ASSERT(r.status == 0, "%s", r.err);
	proc_result_free(&r);
	ASSERT(!master_of(tap), "the TAP %s outlived its vNode", tap);
	/* A payload without --net has none; the address of n1 is free again (not checked
	 * here: the manager's tests hand addresses out by the thousand). */
	legoctl(&r, "destroy", "n2", NULL);
	proc_result_free(&r);
	legoctl(&r, "down", NULL);
	ASSERT(r.status == 0, "%s", r.err);
	proc_result_free(&r);
	ASSERT(!master_of(bridge), "the bridge %s outlived the cluster", bridge);
}

/*
 * A host whose agent cannot make its bridge (here: a gateway that is no
 * address) runs vNodes without a network, and refuses one that wants a
 * network with why, nothing of it left behind: no vNode, no reservation,
 * no volume, no TAP.
 */
TEST_TIMEOUT(no_bridge_no_network_nothing_left, 120)
{
	char p[700], vol[700];
	struct proc_result r;
	json_t *cfg;

	test_require_kvm();
	if (geteuid() != 0)
		test_skip("the cluster's network needs root (a bridge, TAPs)");
	cluster_home();
	mkdir(home, 0700);
	snprintf(p, sizeof(p), "%s/cluster.json", home);
	up("256M");
	legoctl(&r, "down", NULL);
	proc_result_free(&r);
	cfg = json_load_file(p, 0, NULL);
	ASSERT(cfg);
	json_object_set_new(json_object_get(cfg, "network"), "gateway",
			    json_string("300.1.1.1/24"));
	ASSERT_EQ(json_dump_file(cfg, p, 0), 0);
	json_decref(cfg);
	up("256M");
	legoctl(&r, "create", "nn", "--payload", "hello", "--memory", "64M", "--excache", "16M",
		"--disk", "4M", "--net", NULL);
	ASSERT(r.status != 0, "a vNode got a network on a host without one");
	ASSERT_CONTAINS(r.err, "this host has no network for vNodes");
	ASSERT_CONTAINS(r.err, "could not be made");
	proc_result_free(&r);
	ASSERT_EQ(nr_vnodes(), 0);
	ASSERT_EQ(total_reserved(), 0);
	snprintf(vol, sizeof(vol), "%s/volumes/nn.vol", home);
	ASSERT(access(vol, F_OK) < 0, "the refused vNode left its volume");
	/* Without a network it runs. */
	legoctl(&r, "create", "nn", "--payload", "hello", "--args", "spin=1", "--memory", "64M",
		"--excache", "16M", NULL);
	ASSERT(r.status == 0, "%s%s", r.out, r.err);
	proc_result_free(&r);
	down_leaves_nothing(NULL, 0);
}
