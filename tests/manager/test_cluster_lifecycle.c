/*
 * test_cluster_lifecycle.c - a vNode's lifecycle across two host agents of a
 * whole cluster: pause and resume, live migration back and forth, an agent
 * killed and taking its VMM back, snapshot, restore, and a copy restored
 * from the snapshot.
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

/* The largest @key of the memory servers' heartbeats, once it is @want (0: once it is not
 * 0), or as it is after 5 s. */
static json_int_t memsrv_most(const char *key, json_int_t want)
{
	json_int_t most = 0;

	for (int t = 0; t < 50; t++) {
		json_t *n = legoctl_json("nodes", NULL), *c;
		size_t i;

		most = 0;
		json_array_foreach(json_object_get(n, "components"), i, c)
		{
			if (!strcmp(JS(c, "role"), "memsrv") && JI(c, key) > most)
				most = JI(c, key);
		}
		json_decref(n);
		if (want ? most == want : most != 0)
			break;
		usleep(100 * 1000);
	}
	return most;
}

/*
 * Two host agents: a verifying payload vNode paused and resumed, migrated
 * back and forth while it runs, saved into a snapshot, copied from it as a
 * second vNode, that copy saved and copied again and then stopped, and the
 * first restored; the first and the last copy finish with zero mismatches,
 * and each step shows in legoctl list.
 */
TEST_TIMEOUT(lifecycle_pause_migrate_snapshot, 600)
{
	struct proc_result r;
	char agents[2][64];
	json_t *n, *v, *c;
	size_t i;
	int k = 0;

	test_require_kvm();
	cluster_home();
	legoctl(&r, "up", "--memsrv-capacity", "512M", "--agent-capacity", "1G", "--agents", "2",
		NULL);
	ASSERT(r.status == 0, "legoctl up --agents 2: %s%s", r.out, r.err);
	proc_result_free(&r);
	n = legoctl_json("nodes", NULL);
	json_array_foreach(json_object_get(n, "components"), i, c)
	{
		if (!strcmp(JS(c, "role"), "agent") && k < 2)
			snprintf(agents[k++], sizeof(agents[0]), "%s", JS(c, "addr"));
	}
	json_decref(n);
	ASSERT_EQ(k, 2);
	legoctl(&r, "create", "mv", "--cpus", "2", "--memory", "64M", "--excache", "8M",
		"--payload", "touch", "--args", "op=verify mode=rand size=24M passes=100", NULL);
	ASSERT(r.status == 0, "create: %s%s", r.out, r.err);
	proc_result_free(&r);
	v = wait_vnode("mv", "running", 0);
	json_decref(v);

	legoctl(&r, "pause", "mv", NULL);
	ASSERT(r.status == 0, "pause: %s", r.err);
	proc_result_free(&r);
	json_decref(wait_vnode("mv", "paused", 0));
	legoctl(&r, "migrate", "mv", NULL);
	ASSERT(r.status != 0, "a paused vNode migrated");
	ASSERT_CONTAINS(r.err, "only a running one migrates");
	proc_result_free(&r);
	legoctl(&r, "resume", "mv", NULL);
	ASSERT(r.status == 0, "resume: %s", r.err);
	proc_result_free(&r);
	json_decref(wait_vnode("mv", "running", 0));

	for (int m = 0; m < 4; m++) { /* back and forth, while the guest verifies its memory */
		json_t *l;
		const char *from;
		char was[64];

		l = legoctl_json("list", NULL);
		from = JS(vnode(l, "mv"), "agent");
		snprintf(was, sizeof(was), "%s", from);
		json_decref(l);
		legoctl(&r, "migrate", "mv", NULL);
		ASSERT(r.status == 0, "migration %d: %s%s", m + 1, r.out, r.err);
		ASSERT_CONTAINS(r.out, "migrated from");
		printf("  %s", r.out);
		proc_result_free(&r);
		v = wait_vnode("mv", "running", 0);
		ASSERT(strcmp(JS(v, "agent"), was), "migration %d: still on %s", m + 1, was);
		ASSERT(!strcmp(JS(v, "agent"), agents[0]) || !strcmp(JS(v, "agent"), agents[1]));
		json_decref(v);
	}
	legoctl(&r, "migrate", "mv", "--to", "127.0.0.1:1", NULL);
	ASSERT(r.status != 0 && strstr(r.err, "not another host agent"),
	       "a migration to no agent: %d %s", r.status, r.err);
	proc_result_free(&r);

	/* Its agent killed and started again: it takes the running VMM back (nothing lost). */
	{
		json_t *l = legoctl_json("list", NULL);
		pid_t vmm_pid = (pid_t)JI(vnode(l, "mv"), "pid");
		char first_agent[64];
		bool first;

		cluster_cfg("agent", first_agent, sizeof(first_agent));
		first = !strcmp(JS(vnode(l, "mv"), "agent"), first_agent);
		json_decref(l);
		kill_and_wait(pid_of(first ? "agent" : "agent-2"));
		legoctl(&r, "up", NULL);
		ASSERT(r.status == 0, "up after the agent's death: %s%s", r.out, r.err);
		proc_result_free(&r);
		ASSERT(!gone(vmm_pid), "the VMM died with its agent");
		v = wait_vnode("mv", "running", 0);
		ASSERT_EQ((pid_t)JI(v, "pid"), vmm_pid);
		json_decref(v);
	}

	legoctl(&r, "snapshot", "mv", "s1", NULL);
	ASSERT(r.status == 0, "snapshot: %s%s", r.out, r.err);
	ASSERT_CONTAINS(r.out, "saved as s1");
	proc_result_free(&r);
	v = wait_vnode("mv", "saved", 0);
	ASSERT(!strcmp(JS(v, "snapshot"), "s1"));
	json_decref(v);
	legoctl(&r, "start", "mv", NULL);
	ASSERT(r.status != 0 && strstr(r.err, "legoctl restore"), "start of a saved vNode: %s",
	       r.err);
	proc_result_free(&r);
	/* A copy runs from the snapshot as a vNode of its own, its memory shared with the
	 * original's on the same memory servers; the original stays saved. */
	legoctl(&r, "restore", "mv", "--name", "mv", "--bogus", NULL);
	ASSERT(r.status == 2 && strstr(r.err, "unknown option '--bogus'"), "%d %s", r.status,
	       r.err);
	proc_result_free(&r);
	legoctl(&r, "restore", "mv", "--name", "../x", NULL);
	ASSERT(r.status != 0 && strstr(r.err, "a copy needs a name"), "%s", r.err);
	proc_result_free(&r);
	c = legoctl_json("restore", "mv", "--name", "mv2");
	ASSERT(JI(c, "pages_shared") > 0, "the copy shares no page with mv");
	ASSERT(!strcmp(JS(c, "state"), "running") && !strcmp(JS(c, "copy_of"), "mv"));
	printf("  the copy runs in %.0f ms, %lld pages shared\n",
	       json_number_value(json_object_get(c, "ms")), (long long)JI(c, "pages_shared"));
	v = wait_vnode("mv", "saved", 0);
	ASSERT(json_equal(json_object_get(v, "slabs"), json_object_get(c, "slabs")),
	       "the copy's slabs are not where the original's are");
	ASSERT(!strcmp(JS(v, "agent"), JS(c, "agent")));
	json_decref(v);
	json_decref(c);
	ASSERT(memsrv_most("shared", 0) > 0, "no memory server reports a shared page");
	legoctl(&r, "restore", "mv", "--name", "mv2", NULL);
	ASSERT(r.status != 0 && strstr(r.err, "exists already"), "a second mv2: %s", r.err);
	proc_result_free(&r);
	legoctl(&r, "restore", "mv2", "--name", "mv3", NULL);
	ASSERT(r.status != 0 && strstr(r.err, "only a saved one is copied"), "%s", r.err);
	proc_result_free(&r);
	/* A copy of the copy, whose original is then stopped while saved: its memory is
	 * dropped on the servers, and the second copy keeps every page it shares. */
	legoctl(&r, "snapshot", "mv2", "s2", NULL);
	ASSERT(r.status == 0, "snapshot of the copy: %s%s", r.out, r.err);
	proc_result_free(&r);
	json_decref(legoctl_json("restore", "mv2", "--name", "mv3"));
	ASSERT_EQ(memsrv_most("vnodes_held", 3), 3);
	legoctl(&r, "stop", "mv2", NULL);
	ASSERT(r.status == 0, "stop of the saved copy: %s%s", r.out, r.err);
	proc_result_free(&r);
	ASSERT_EQ(memsrv_most("vnodes_held", 2), 2);
	legoctl(&r, "restore", "mv", NULL);
	ASSERT(r.status == 0, "restore: %s%s", r.out, r.err);
	proc_result_free(&r);

	/* Both finish where they were brought back, without a mismatch. */
	json_decref(wait_vnode_for("mv", "exited", 0, 330));
	no_mismatches("mv", 2);
	json_decref(wait_vnode_for("mv3", "exited", 0, 330));
	no_mismatches("mv3", 2);
	legoctl(&r, "down", NULL);
	ASSERT(r.status == 0);
	ASSERT_CONTAINS(r.out, "agent-2");
	proc_result_free(&r);
}
