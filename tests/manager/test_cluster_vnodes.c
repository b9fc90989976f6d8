/*
 * test_cluster_vnodes.c - payload vNodes in a whole cluster (KVM): spread
 * placement, live ExCache resize, XML round trip, the manager restarted under
 * running vNodes, stop/start/destroy, a memory server killed under them (they
 * fail over to the other and keep running), and the manager restarted during
 * that failover, which still restores redundancy when the server returns.
 */
#include <ctype.h>
#include <dirent.h>
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
#include "jail.h"
#include "cluster.h"
#include "test.h"
#include "util.h"

/*
 * A VMM's command line and environment, as any local user reads them: the
 * order came through a descriptor, and no credential (64 hex digits) shows.
 */
static void assert_no_secret_in_argv(pid_t pid)
{
	const char *files[] = {"cmdline", "environ"};

	for (size_t f = 0; f < ARRAY_SIZE(files); f++) {
		char path[64], buf[8192];
		int fd, run = 0;
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, files[f]);
		fd = open(path, O_RDONLY);
		ASSERT(fd >= 0, "%s", path);
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		ASSERT(n > 0, "%s is empty", path);
		for (ssize_t i = 0; i < n; i++) {
			run = isxdigit((unsigned char)buf[i]) ? run + 1 : 0;
			ASSERT(run < 64, "%s holds 64 hex digits: a credential", path);
			if (!buf[i])
				buf[i] = ' ';
		}
		buf[n] = '\0';
		if (!f)
			ASSERT_CONTAINS(buf, "--order-fd 3");
	}
}

/*
 * An agent's heartbeat is built, then its VMMs are asked for their figures,
 * then it is sent: one built before a stop can arrive after it. Send such a
 * report of @name (stopped) running, as its agent would: it stays stopped.
 */
static void stale_report_of_a_stopped_vnode(const char *name)
{
	char p[700], url[400], err[256];
	json_t *cfg, *beat, *nodes, *agent;
	int s;

	snprintf(p, sizeof(p), "%s/cluster.json", home);
	cfg = json_load_file(p, 0, NULL);
	ASSERT(cfg);
	nodes = legoctl_json("nodes", NULL);
	agent = component(nodes, "agent", 0);
	ASSERT(agent && !strcmp(JS(agent, "addr"), JS(cfg, "agent")));
	beat = json_pack("{s:s,s:s,s:I,s:{s:{s:s,s:i}}}", "role", "agent", "addr", JS(cfg, "agent"),
			 "capacity", (json_int_t)JI(agent, "capacity"), "vnodes", name, "state",
			 "running", "pid", 1);
	snprintf(url, sizeof(url), "%s/v1/heartbeat", JS(cfg, "manager"));
	as_member("agent"); /* a late heartbeat of the agent's own */
	s = http_call("POST", url, beat, NULL, 5000, err, sizeof(err));
	as_member("admin");
	ASSERT(s == 200, "heartbeat: %d %s", s, err);
	json_decref(beat);
	json_decref(nodes);
	json_decref(cfg);
	json_t *l = legoctl_json("list", NULL), *v = vnode(l, name);

	ASSERT(v && !strcmp(JS(v, "state"), "stopped"), "a stale report made %s %s", name,
	       v ? JS(v, "state") : "unlisted");
	json_decref(l);
}

/* The line of /proc/@pid/status that starts with @key, without it. */
static void status_line(pid_t pid, const char *key, char *out, size_t len)
{
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	ASSERT(f, "%s", path);
	out[0] = '\0';
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key))) {
			snprintf(out, len, "%s", line + strlen(key));
			out[strcspn(out, "\n")] = '\0';
		}
	fclose(f);
}

/* The agent's jail (agent/jail.h) around the VMM @pid: a user of its own, no capability,
 * and of the cluster's home only the way to its vNode's directory. */
static void assert_jailed(pid_t pid)
{
	char want[128], got[256], path[700];
	int outside = 0, inside = 0;
	struct dirent *e;
	DIR *d;

	snprintf(want, sizeof(want), "\t%u\t%u\t%u\t%u", jail_id(pid), jail_id(pid), jail_id(pid),
		 jail_id(pid));
	status_line(pid, "Uid:", got, sizeof(got));
	ASSERT(!strcmp(got, want), "VMM %d runs as Uid:%s", (int)pid, got);
	status_line(pid, "Gid:", got, sizeof(got));
	ASSERT(!strcmp(got, want), "VMM %d runs as Gid:%s", (int)pid, got);
	status_line(pid, "CapEff:", got, sizeof(got));
	ASSERT(!strcmp(got, "\t0000000000000000"), "VMM %d has CapEff:%s", (int)pid, got);
	status_line(pid, "CapBnd:", got, sizeof(got));
	ASSERT(!strcmp(got, "\t0000000000000000"), "VMM %d has CapBnd:%s", (int)pid, got);
	status_line(pid, "NoNewPrivs:", got, sizeof(got));
	ASSERT(!strcmp(got, "\t1"), "VMM %d has NoNewPrivs:%s", (int)pid, got);
	/* what lego-vmm needs of the host's sysfs: whether it is a kvm_pvm host */
	snprintf(path, sizeof(path), "/proc/%d/root/sys/module/kvm_pvm", (int)pid);
	ASSERT(access(path, F_OK) == access("/sys/module/kvm_pvm", F_OK),
	       "kvm_pvm host or not: the jail says otherwise");
	snprintf(path, sizeof(path), "/proc/%d/root/etc/shadow", (int)pid);
	ASSERT(access(path, F_OK) && errno == ENOENT, "the VMM sees /etc/shadow");
	ASSERT((d = opendir(home)));
	while ((e = readdir(d)))
		outside += e->d_name[0] != '.';
	closedir(d);
	snprintf(path, sizeof(path), "/proc/%d/root%s", (int)pid, home);
	ASSERT((d = opendir(path)), "%s", path);
	while ((e = readdir(d)))
		inside += e->d_name[0] != '.';
	closedir(d);
	ASSERT(outside > 1 && inside == 1, "of the cluster's home (%d entries) the VMM sees %d",
	       outside, inside);
}

TEST_TIMEOUT(cluster_runs_payload_vnodes_through_restarts_and_failures, 300)
{
	const char *names[] = {"a", "b", "c"};
	struct proc_result r;
	json_t *l, *v, *s;
	pid_t vmm[4];
	int primaries[2] = {0, 0};
	char mem[2][64], p[700];
	size_t i;

	test_require_kvm();
	cluster_home();
	up("1G");
	memsrv_addr(1, mem[0], sizeof(mem[0]));
	memsrv_addr(2, mem[1], sizeof(mem[1]));
	create_payload("a", "2", "16M");
	create_payload("b", "1", NULL);
	create_payload("c", "1", NULL);

	/* Placement: each slab's primary and secondary apart; primaries spread. */
	l = legoctl_json("list", NULL);
	ASSERT_EQ(json_array_size(json_object_get(l, "vnodes")), 3);
	for (int k = 0; k < 3; k++) {
		v = vnode(l, names[k]);
		ASSERT(v, "vNode %s not listed", names[k]);
		json_array_foreach(json_object_get(v, "slabs"), i, s)
		{
			ASSERT(strcmp(JS(s, "primary"), JS(s, "secondary")),
			       "%s: slab %zu has primary and secondary on %s", names[k], i,
			       JS(s, "primary"));
			primaries[!strcmp(JS(s, "primary"), mem[1])]++;
		}
	}
	ASSERT(primaries[0] && primaries[1], "every primary on one server (%d, %d)", primaries[0],
	       primaries[1]);
	ASSERT(*JS(vnode(l, "a"), "storsrv"), "a's disk has no storage server");
	json_decref(l);

	/* Running, with ExCache figures coming in through the agent's heartbeats. */
	for (int k = 0; k < 3; k++) {
		v = wait_vnode(names[k], "running", 16 * MiB);
		vmm[k] = (pid_t)JI(v, "pid");
		ASSERT(vmm[k] > 0 && !gone(vmm[k]), "%s: no live VMM pid", names[k]);
		assert_no_secret_in_argv(vmm[k]);
		assert_jailed(vmm[k]);
		json_decref(v);
	}

	/* The ExCache resized live: the running VMM reports the new size. */
	legoctl(&r, "resize", "a", "--excache", "8M", NULL);
	ASSERT(r.status == 0, "%s", r.err);
	proc_result_free(&r);
	v = wait_vnode("a", "running", 8 * MiB);
	ASSERT_EQ(JI(v, "pid"), vmm[0]);
	json_decref(v);
	/* vCPUs and memory: at the next start, and said so. */
	legoctl(&r, "resize", "b", "--cpus", "2", "--memory", "96M", NULL);
	ASSERT(r.status == 0 && strstr(r.out, "next start"), "%s%s", r.out, r.err);
	proc_result_free(&r);

	/* libvirt XML out and back in: a copy of a, under another name. */
	legoctl(&r, "dumpxml", "a", NULL);
	ASSERT(r.status == 0, "%s", r.err);
	ASSERT_CONTAINS(r.out, "<lego:excache unit=\"bytes\">8388608</lego:excache>");
	{
		char *x = strstr(r.out, "<name>a</name>"), *u = strstr(r.out, "<uuid>");
		char *ue = u ? strstr(u, "</uuid>") : NULL;
		FILE *f;

		ASSERT(x && u && ue);
		snprintf(p, sizeof(p), "%s/x.xml", test_tmpdir());
		f = fopen(p, "w");
		fprintf(f, "%.*s<name>x</name>%.*s%s", (int)(x - r.out), r.out,
			(int)(u - x - strlen("<name>a</name>")), x + strlen("<name>a</name>"),
			ue + strlen("</uuid>"));
		fclose(f);
	}
	proc_result_free(&r);
	legoctl(&r, "create", "--from", p, NULL);
	ASSERT(r.status == 0, "create --from dumpxml's output: %s", r.err);
	proc_result_free(&r);
	v = wait_vnode("x", "running", 0);
	vmm[3] = (pid_t)JI(v, "pid");
	l = legoctl_json("list", NULL);
	{
		json_t *sa = json_deep_copy(json_object_get(vnode(l, "a"), "spec"));
		json_t *sx = json_deep_copy(json_object_get(vnode(l, "x"), "spec"));

		json_object_del(sa, "name");
		json_object_del(sx, "name");
		json_object_del(sa, "uuid");
		json_object_del(sx, "uuid");
		ASSERT(json_equal(sa, sx), "round trip: %s vs %s", json_dumps(sa, 0),
		       json_dumps(sx, 0));
		json_decref(sa);
		json_decref(sx);
	}
	json_decref(l);
	json_decref(v);

	/* The manager restarted: the same vNodes, still running, the same VMMs. */
	kill_and_wait(pid_of("manager"));
	up("1G");
	for (int k = 0; k < 3; k++) {
		v = wait_vnode(names[k], "running", 0);
		ASSERT_EQ(JI(v, "pid"), vmm[k]);
		ASSERT(!gone(vmm[k]), "%s's VMM died across the manager's restart", names[k]);
		json_decref(v);
	}
	ASSERT_EQ(nr_vnodes(), 4);

	/* A reset (reboot --force): the same VMM boots the guest again, on the same memory servers. */
	legoctl(&r, "reboot", "b", "--force", NULL);
	ASSERT(r.status == 0, "%s", r.err);
	ASSERT_CONTAINS(r.out, "b: reset");
	proc_result_free(&r);
	{
		char sock[600], err[256];
		json_t *st = NULL;

		snprintf(sock, sizeof(sock), "%s/vnodes/b/control.sock", home);
		/* the socket is made again as the machine comes back */
		for (int n = 0; n < 200; n++) {
			json_t *req = json_pack("{s:s}", "cmd", "status");

			json_decref(st);
			st = ctl_call(sock, req, 2000, err, sizeof(err));
			json_decref(req);
			if (st && JI(st, "resets") == 1)
				break;
			usleep(50000);
		}
		ASSERT(st != NULL, "b's VMM does not answer after its reset: %s", err);
		ASSERT_EQ(JI(st, "resets"), 1);
		json_decref(st);
	}
	ASSERT(!gone(vmm[1]), "a reset must not end the VMM");
	v = wait_vnode("b", "running", 0);
	ASSERT_EQ(JI(v, "pid"), vmm[1]);
	json_decref(v);
	/* a payload has no power button: a graceful reboot is refused, a stop cuts the power */
	legoctl(&r, "reboot", "b", NULL);
	ASSERT_EQ(r.status, 1);
	ASSERT_CONTAINS(r.err, "cannot reboot");
	proc_result_free(&r);
	legoctl(&r, "stop", "b", "--timeout", "0", NULL);
	ASSERT_EQ(r.status, 2);
	ASSERT_CONTAINS(r.err, "--timeout");
	proc_result_free(&r);

	/* Stop and start: the new vCPU count takes effect. */
	legoctl(&r, "stop", "b", NULL);
	ASSERT(r.status == 0, "%s", r.err);
	ASSERT_CONTAINS(r.out, "no graceful shutdown");
	proc_result_free(&r);
	ASSERT(gone(vmm[1]), "stop left b's VMM running");
	stale_report_of_a_stopped_vnode("b");
	legoctl(&r, "start", "b", NULL);
	ASSERT(r.status == 0, "%s", r.err);
	proc_result_free(&r);
	v = wait_vnode("b", "running", 0);
	vmm[1] = (pid_t)JI(v, "pid");
	ASSERT_EQ(JI(json_object_get(v, "spec"), "cpus"), 2);
	ASSERT_EQ(JI(v, "memory"), 96 * MiB);
	json_decref(v);
	{ /* its memory's backup volume followed the new size */
		struct stat bst;

		snprintf(p, sizeof(p), "%s/volumes/b.mem.vol", home);
		ASSERT(stat(p, &bst) == 0, "no backup volume %s", p);
		ASSERT_EQ((long long)bst.st_size, 96 * (long long)MiB + 4096);
	}

	/* Destroy frees what c held. */
	long long before = total_reserved();
	legoctl(&r, "destroy", "c", NULL);
	ASSERT(r.status == 0, "%s", r.err);
	proc_result_free(&r);
	ASSERT(gone(vmm[2]), "destroy left c's VMM running");
	/* memory on two servers, ExCache on the agent, the memory's backup volume */
	ASSERT_EQ(total_reserved(), before - 2 * 64 * (long long)MiB - 16 * (long long)MiB -
					    (64 * (long long)MiB + 4096));
	ASSERT_EQ(nr_vnodes(), 3);

	/* A memory server killed under running vNodes (every vNode's memory is on both):
	 * marked down; the vNodes keep running on the other server alone. */
	kill_and_wait(pid_of("memsrv-1"));
	ASSERT(wait_health("memsrv", mem[0], "down", 8000) >= 0, "memsrv-1 not marked down");
	const char *running[] = {"a", "b", "x"};
	pid_t pids[] = {vmm[0], vmm[1], vmm[3]};
	for (int k = 0; k < 3; k++)
		ASSERT(vnode_on_servers(running[k], mem[1], "", 15000),
		       "%s did not fail over to %s alone", running[k], mem[1]);
	for (int k = 0; k < 3; k++)
		ASSERT(!gone(pids[k]), "%s's VMM died with a memory server", running[k]);
	legoctl(&r, "list", NULL);
	ASSERT_CONTAINS(r.out, "NO SECONDARY");
	ASSERT_CONTAINS(r.out, "lost");
	proc_result_free(&r);
	/* The manager dies in the middle of the recovery, and comes back (with the
	 * server, empty, where it was): from its database and the VMMs' reports it
	 * carries on, and has the server filled as every vNode's secondary again. */
	kill_and_wait(pid_of("manager"));
	up("1G");
	for (int k = 0; k < 3; k++)
		ASSERT(vnode_on_servers(running[k], mem[1], mem[0], 30000),
		       "%s's redundancy was not restored on %s", running[k], mem[0]);
	pid_t all[4] = {vmm[0], vmm[1], vmm[2], vmm[3]};
	down_leaves_nothing(all, 4);
}
