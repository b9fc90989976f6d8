/*
 * test_cluster.c - a whole cluster on loopback, driven the way a person
 * drives it: through legoctl, against real lego-manager, lego-memsrv,
 * lego-storsrv, lego-agent and lego-vmm processes.
 *
 * The first case needs no KVM: registration, refusal at capacity, a create
 * that fails at the VMM and leaves nothing behind, bad XML and bad command
 * lines, a killed memory server marked down, a restarted manager that knows
 * the cluster again, and down. The second runs payload vNodes (KVM): spread
 * placement, live ExCache resize, XML round trip, the manager restarted under
 * running vNodes, stop/start/destroy, a memory server killed under them (they
 * fail over to the other and keep running), and the manager restarted during
 * that failover, which still restores redundancy when the server returns.
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

TEST_TIMEOUT(cluster_registers_refuses_rolls_back_detects_down_and_restarts, 180)
{
	struct proc_result r;
	json_t *n, *c;
	char xml[700], mem2[64], url[300], err[256], *metrics = NULL;
	FILE *f;

	cluster_home();
	up("256M");
	/* Registered: two memory servers, a storage server and an agent, all up. */
	n = legoctl_json("nodes", NULL);
	ASSERT_EQ(json_array_size(json_object_get(n, "components")), 4);
	for (int i = 0; i < 2; i++) {
		c = component(n, "memsrv", i);
		ASSERT(c && !strcmp(JS(c, "health"), "up"));
		ASSERT_EQ(JI(c, "capacity"), 256 * MiB);
	}
	ASSERT(component(n, "storsrv", 0) && component(n, "agent", 0));
	memsrv_addr(2, mem2, sizeof(mem2));
	json_decref(n);
	/* A second up finds everything running and says so. */
	legoctl(&r, "up", NULL);
	ASSERT(r.status == 0 && strstr(r.out, "runs already"), "%s%s", r.out, r.err);
	proc_result_free(&r);

	/* Refused at capacity: a clear message, nothing created or reserved. */
	legoctl(&r, "create", "big", "--memory", "1G", "--payload", "hello", NULL);
	ASSERT_EQ(r.status, 1);
	ASSERT_CONTAINS(r.err, "not enough memory-server capacity");
	proc_result_free(&r);
	ASSERT_EQ(nr_vnodes(), 0);
	ASSERT_EQ(total_reserved(), 0);

	/* Placed, its volume made, then its VMM cannot start: all of it is undone. */
	legoctl(&r, "create", "bad", "--memory", "64M", "--disk", "16M", "--payload",
		"no-such-payload", NULL);
	ASSERT_EQ(r.status, 1);
	ASSERT_CONTAINS(r.err, "lego-vmm");
	proc_result_free(&r);
	ASSERT_EQ(nr_vnodes(), 0);
	ASSERT_EQ(total_reserved(), 0);
	snprintf(xml, sizeof(xml), "%s/volumes/bad.vol", home);
	ASSERT(access(xml, F_OK) < 0, "the failed create left its volume behind");
	snprintf(xml, sizeof(xml), "%s/volumes/bad.mem.vol", home);
	ASSERT(access(xml, F_OK) < 0, "the failed create left its memory backup behind");

	/* A vNode without a kernel boots the boot kit's: the VMM's command line names it. */
	legoctl(&r, "create", "kit", "--memory", "64M", "--excache", "16M", NULL);
	{
		char p[PATH_MAX], *log = NULL, want[2 * PATH_MAX + 100];
		size_t len = 0;
		FILE *lf;

		snprintf(p, sizeof(p), "%s/vnodes/kit/vmm.log", home);
		lf = fopen(p, "r");
		ASSERT(lf, "the agent wrote no %s", p);
		ASSERT(getdelim(&log, &len, '\0', lf) > 0);
		fclose(lf);
		ASSERT(realpath(test_path("guest"), p), "no boot kit");
		snprintf(want, sizeof(want), "\"kernel\":\"%s/vmlinuz\"", p);
		ASSERT_CONTAINS(log, want);
		snprintf(want, sizeof(want), "\"initrd\":\"%s/initrd.img\"", p);
		ASSERT_CONTAINS(log, want);
		/* what ran is logged, its credentials not */
		ASSERT_CONTAINS(log, "--order-fd 3 with the order {");
		ASSERT_CONTAINS(log, "\"token\":\"(secret)\"");
		free(log);
	}
	if (r.status == 0) { /* with KVM it boots: enough to know it started */
		proc_result_free(&r);
		legoctl(&r, "destroy", "kit", NULL);
		ASSERT(r.status == 0, "%s", r.err);
	} else {
		ASSERT_CONTAINS(r.err, "lego-vmm");
	}
	proc_result_free(&r);
	ASSERT_EQ(nr_vnodes(), 0);
	ASSERT_EQ(total_reserved(), 0);

	/* Domain XML that libvirt rejects is refused with libvirt's reason. */
	snprintf(xml, sizeof(xml), "%s/bad.xml", test_tmpdir());
	f = fopen(xml, "w");
	fprintf(f, "<domain type='kvm'><name>x</name><memory>lots</memory></domain>\n");
	fclose(f);
	legoctl(&r, "create", "--from", xml, NULL);
	ASSERT_EQ(r.status, 1);
	ASSERT_CONTAINS(r.err, "not a valid libvirt domain");
	proc_result_free(&r);

	/* Wrong command lines: status 2 and a pointer to --help; every --help works. */
	const char *bad[][4] = {{"frobnicate"},
				{"create"},
				{"resize", "x", "--excache", "lots"},
				{"create", "x", "--cpus", "0"},
				{"list", "extra"},
				{"--nope"},
				{"demo"},
				{"demo", "failover", "--guest", "windows"}};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		legoctl(&r, bad[i][0], bad[i][1], bad[i][2], bad[i][3], NULL);
		ASSERT(r.status == 2, "legoctl %s: status %d", bad[i][0], r.status);
		ASSERT_CONTAINS(r.err, "--help");
		proc_result_free(&r);
	}
	const char *cmds[] = {"up",   "down",  "create",  "list",    "nodes", "console", "resize",
			      "stop", "start", "destroy", "dumpxml", "demo",  "reboot"};
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++) {
		legoctl(&r, cmds[i], "--help", NULL);
		ASSERT(r.status == 0, "legoctl %s --help: %d", cmds[i], r.status);
		ASSERT_CONTAINS(r.out, "usage: legoctl");
		proc_result_free(&r);
	}
	legoctl(&r, "destroy", "nobody", NULL);
	ASSERT_EQ(r.status, 1);
	ASSERT_CONTAINS(r.err, "no vNode named nobody");
	proc_result_free(&r);

	/* kill -9 a memory server: down within the heartbeat timeout (3 s). */
	uint64_t t0 = now_ns();
	kill_and_wait(pid_of("memsrv-2"));
	ASSERT(wait_health("memsrv", mem2, "down", 8000) >= 0, "memsrv %s not marked down", mem2);
	double secs = (now_ns() - t0) / 1e9;
	ASSERT(secs < 3.0 + 1.0 + 1.5, "marked down after %.1f s", secs);
	printf("  memory server marked down %.1f s after kill -9\n", secs);
	snprintf(url, sizeof(url), "http://%s/metrics",
		 strstr(getenv("LEGO_MANAGER") ?: "", "http") ? getenv("LEGO_MANAGER") : "");
	{
		char p[700];
		json_t *cfg;

		snprintf(p, sizeof(p), "%s/cluster.json", home);
		cfg = json_load_file(p, 0, NULL);
		snprintf(url, sizeof(url), "%s/metrics", JS(cfg, "manager"));
		json_decref(cfg);
	}
	ASSERT_EQ(http_call_raw("GET", url, NULL, NULL, &metrics, 5000, err, sizeof(err)), 200);
	char want[200];
	snprintf(want, sizeof(want), "lego_component_up{role=\"memsrv\",addr=\"%s\"} 0", mem2);
	ASSERT_CONTAINS(metrics, want);
	ASSERT_CONTAINS(metrics, "# TYPE lego_component_capacity_bytes gauge");
	free(metrics);

	/* The manager killed: legoctl says what to do; up brings it (and memsrv-2) back,
	 * and it knows the cluster from its database. */
	kill_and_wait(pid_of("manager"));
	legoctl(&r, "nodes", NULL);
	ASSERT_EQ(r.status, 1);
	ASSERT_CONTAINS(r.err, "legoctl up");
	proc_result_free(&r);
	up("256M");
	n = legoctl_json("nodes", NULL);
	ASSERT_EQ(json_array_size(json_object_get(n, "components")), 4);
	json_decref(n);
	ASSERT(wait_health("memsrv", mem2, "up", 5000) >= 0, "the restarted memsrv is not up");

	/* An agent killed leaves its VMMs running; down stops them all the same, and
	 * only them: a vmm.pid whose process is not lego-vmm (a reused pid) is left be.
	 * The stray VMM here is a sleeping process named lego-vmm: no KVM needed. */
	char vmm_link[700], dir[700], pidpath[800];
	pid_t orphan, other;

	snprintf(vmm_link, sizeof(vmm_link), "%s/lego-vmm", test_tmpdir());
	ASSERT_EQ(symlink("/bin/sleep", vmm_link), 0);
	{
		char *o_argv[] = {vmm_link, "300", NULL}, *s_argv[] = {"/bin/sleep", "300", NULL};

		orphan = proc_spawn(o_argv);
		other = proc_spawn(s_argv);
	}
	const struct {
		const char *name;
		pid_t pid;
	} pidfiles[] = {{"orphan", orphan}, {"reused", other}};
	for (size_t i = 0; i < ARRAY_SIZE(pidfiles); i++) {
		FILE *pf;

		snprintf(dir, sizeof(dir), "%s/vnodes/%s", home, pidfiles[i].name);
		mkdir(dir, 0700);
		snprintf(pidpath, sizeof(pidpath), "%s/vmm.pid", dir);
		pf = fopen(pidpath, "w");
		ASSERT(pf);
		fprintf(pf, "%d\n", (int)pidfiles[i].pid);
		fclose(pf);
	}
	kill_and_wait(pid_of("agent"));
	{
		pid_t extra[] = {orphan};

		legoctl(&r, "up", NULL); /* a new agent, which does not know the orphan */
		ASSERT(r.status == 0, "%s", r.err);
		proc_result_free(&r);
		down_leaves_nothing(extra, 1);
	}
	ASSERT(!gone(other), "down killed a process that was not a lego-vmm");
	kill(other, SIGKILL);
}

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

/* Wait until every slab of @name has @primary and @secondary ("" for none). */
static bool on_servers(const char *name, const char *primary, const char *secondary, int max_ms)
{
	for (int ms = 0; ms <= max_ms; ms += 250) {
		json_t *l = legoctl_json("list", NULL), *v = vnode(l, name), *s;
		bool all = v && json_array_size(json_object_get(v, "slabs")) > 0;
		size_t i;

		json_array_foreach(json_object_get(v, "slabs"), i, s)
		{
			all &= !strcmp(JS(s, "primary"), primary) &&
			       !strcmp(JS(s, "secondary"), secondary);
		}
		json_decref(l);
		if (all)
			return true;
		usleep(250 * 1000);
	}
	return false;
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
		ASSERT(on_servers(running[k], mem[1], "", 15000),
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
		ASSERT(on_servers(running[k], mem[1], mem[0], 30000),
		       "%s's redundancy was not restored on %s", running[k], mem[0]);
	pid_t all[4] = {vmm[0], vmm[1], vmm[2], vmm[3]};
	down_leaves_nothing(all, 4);
}

/* A JSON API answers bad requests with a status and an error, and goes on serving. */
static void expect(const char *method, const char *url, const char *type, const char *body,
		   int status, const char *words)
{
	char err[512], *out = NULL;
	int s = http_call_raw(method, url, type, body, &out, 10000, err, sizeof(err));

	ASSERT(s == status, "%s %s: status %d, not %d (%s)", method, url, s, status,
	       out ? out : err);
	if (words)
		ASSERT(out && strstr(out, words), "%s %s: no \"%s\" in %s", method, url, words,
		       out ? out : "(nothing)");
	free(out);
}

TEST_TIMEOUT(the_manager_and_agent_apis_refuse_bad_requests_and_go_on, 120)
{
	char m[300], a[300], url[400], p[700];
	json_t *cfg;
	char *big;

	cluster_home();
	up("256M");
	snprintf(p, sizeof(p), "%s/cluster.json", home);
	cfg = json_load_file(p, 0, NULL);
	ASSERT(cfg);
	snprintf(m, sizeof(m), "%s", JS(cfg, "manager"));
	snprintf(a, sizeof(a), "https://%s", JS(cfg, "agent"));
	json_decref(cfg);

	snprintf(url, sizeof(url), "%s/v1/vnodes", m);
	expect("POST", url, "application/json", "{not json", 400, "not JSON");
	expect("POST", url, "application/json", "[1,2]", 400, "JSON object");
	expect("POST", url, "application/json", "{\"name\":\"../x\"}", 400, "name");
	expect("POST", url, "application/json", "{\"name\":\"x\",\"cpus\":0}", 400, "cpus");
	expect("POST", url, "application/json", "{\"name\":\"x\",\"memory\":12345}", 400, "memory");
	expect("POST", url, "application/json",
	       "{\"name\":\"x\",\"payload\":\"hello\",\"kernel\":\"/k\"}", 400, "not both");
	expect("POST", url, "application/xml", "<domain", 400, "libvirt");
	big = malloc(5 << 20);
	memset(big, ' ', 5 << 20);
	big[(5 << 20) - 1] = '\0';
	expect("POST", url, "application/json", big, 413, "larger");
	free(big);
	snprintf(url, sizeof(url), "%s/v1/vnodes?limit=0", m);
	expect("GET", url, NULL, NULL, 400, "limit");
	snprintf(url, sizeof(url), "%s/v1/vnodes/nobody/frobnicate", m);
	expect("POST", url, "application/json", "{}", 404, "no such operation");
	snprintf(url, sizeof(url), "%s/v1/vnodes/nobody/resize", m);
	expect("POST", url, "application/json", "{\"excache\":\"lots\"}", 400, "excache");
	snprintf(url, sizeof(url), "%s/v1/nope", m);
	expect("GET", url, NULL, NULL, 404, "no such resource");
	snprintf(url, sizeof(url), "%s/v1/components", m);
	expect("DELETE", url, NULL, NULL, 405, "not allowed");
	snprintf(url, sizeof(url), "%s/v1/heartbeat", m);
	as_member("memsrv-1");
	expect("POST", url, "application/json", "{\"role\":\"memsrv\",\"addr\":\"x:1\"}", 400,
	       "role");
	/* The agent: an order it cannot run is refused before anything starts. */
	as_member("manager");
	snprintf(url, sizeof(url), "%s/v1/vnodes", a);
	expect("POST", url, "application/json", "{\"name\":\"x\"}", 400, "name, memory and cpus");
	expect("POST", url, "application/json",
	       "{\"name\":\"x\",\"memory\":16777216,\"cpus\":1,\"payload\":\"hello\","
	       "\"excache\":4194304,\"memsrv\":[\"a:1\",\"b:2\"],\"memsrv_secondary\":[\"c:3\"]}",
	       400, "one secondary per slab");
	expect("POST", url, "application/json",
	       "{\"name\":\"x\",\"memory\":16777216,\"cpus\":1,\"bogus\":1}", 400,
	       "unknown key 'bogus'");
	expect("POST", url, "application/json",
	       "{\"name\":\"x\",\"memory\":16777216,\"cpus\":1,\"token\":\"xyz\"}", 400,
	       "64 hex digits");
	snprintf(url, sizeof(url), "%s/v1/vnodes/nobody/console?from=0", a);
	expect("GET", url, NULL, NULL, 404, "no vNode");
	as_member("admin");
	/* Still serving, and nothing was created. */
	ASSERT_EQ(nr_vnodes(), 0);
	ASSERT_EQ(total_reserved(), 0);
	down_leaves_nothing(NULL, 0);
}

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

/* Whether the files @a and @b hold the same bytes (the shorter padded with zeros). */
static bool same_bytes(const char *a, const char *b)
{
	FILE *fa = fopen(a, "r"), *fb = fopen(b, "r");
	bool same = fa && fb;

	while (same) {
		int ca = fgetc(fa), cb = fgetc(fb);

		if (ca == EOF && cb == EOF)
			break;
		same = (ca == EOF ? 0 : ca) == (cb == EOF ? 0 : cb);
	}
	if (fa)
		fclose(fa);
	if (fb)
		fclose(fb);
	return same;
}

/*
 * `create --image`: the image goes into the first disk's volume before the
 * vNode starts (the boot kit's rootfs is such an image); more --disk give
 * more volumes (vdb, ...), each freed with the vNode.
 */
TEST_TIMEOUT(an_image_becomes_the_first_disk_and_more_disks_follow, 120)
{
	char vol[700], vol1[700], image[700];
	struct proc_result r;
	struct stat st;

	kit_require(); /* its rootfs.img is the image */
	cluster_home();
	up("256M");
	snprintf(image, sizeof(image), "%s", test_path("guest/rootfs.img"));
	legoctl(&r, "create", "img", "--payload", "hello", "--args", "spin=1", "--memory", "64M",
		"--excache", "16M", "--image", image, "--disk", "4M", "--disk", "8M", NULL);
	ASSERT(r.status == 0, "create: %s%s", r.out, r.err);
	ASSERT_CONTAINS(r.out, "importing: 100%");
	ASSERT_CONTAINS(r.out, "disk vdb: 8 MiB, volume img.d1");
	ASSERT(!strstr(r.out, "token"), "the volume's token was printed");
	proc_result_free(&r);
	json_decref(wait_vnode("img", "running", 0));
	snprintf(vol, sizeof(vol), "%s/volumes/img.vol", home);
	snprintf(vol1, sizeof(vol1), "%s/volumes/img.d1.vol", home);
	ASSERT(same_bytes(vol, image), "the first volume does not hold the image");
	ASSERT(stat(vol1, &st) == 0 && st.st_size == 8 << 20, "no 8 MiB second volume");
	legoctl(&r, "destroy", "img", NULL);
	ASSERT(r.status == 0, "%s", r.err);
	proc_result_free(&r);
	ASSERT(access(vol, F_OK) && access(vol1, F_OK), "a volume outlived its vNode");
	down_leaves_nothing(NULL, 0);
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

/* The console of vNode @name, as legoctl prints it once. */
/*
 * Two host agents: a verifying payload vNode paused and resumed, migrated
 * back and forth while it runs, saved into a snapshot and restored; it
 * finishes with zero mismatches, and each step shows in legoctl list.
 */
TEST_TIMEOUT(lifecycle_pause_migrate_snapshot, 420)
{
	struct proc_result r;
	char agents[2][64], *con;
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
		json_t *l = legoctl_json("list", NULL), *cfg;
		pid_t vmm_pid = (pid_t)JI(vnode(l, "mv"), "pid");
		char p[700];
		bool first;

		snprintf(p, sizeof(p), "%s/cluster.json", home);
		cfg = json_load_file(p, 0, NULL);
		ASSERT(cfg, "no %s", p);
		first = !strcmp(JS(vnode(l, "mv"), "agent"), JS(cfg, "agent"));
		json_decref(cfg);
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
	legoctl(&r, "restore", "mv", NULL);
	ASSERT(r.status == 0, "restore: %s%s", r.out, r.err);
	proc_result_free(&r);

	/* It finishes where it was brought back, without a mismatch. */
	for (int s = 0; s < 330; s++) {
		json_t *l = legoctl_json("list", NULL);
		bool done = !strcmp(JS(vnode(l, "mv"), "state"), "exited");

		json_decref(l);
		if (done)
			break;
		ASSERT(s < 329, "the restored vNode never finished");
		sleep(1);
	}
	con = console_of("mv");
	for (int cpu = 0; cpu < 2; cpu++) {
		uint64_t mism = 1;

		ASSERT(report_get(con, cpu, "mismatches", &mism), "no report of vCPU %d in:\n%s",
		       cpu, con);
		ASSERT(mism == 0, "vCPU %d found %llu mismatches", cpu, (unsigned long long)mism);
	}
	free(con);
	legoctl(&r, "down", NULL);
	ASSERT(r.status == 0);
	ASSERT_CONTAINS(r.out, "agent-2");
	proc_result_free(&r);
}
