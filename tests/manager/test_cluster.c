/*
 * test_cluster.c - a whole cluster on loopback, driven the way a person
 * drives it: through legoctl, against real lego-manager, lego-memsrv,
 * lego-storsrv, lego-agent and lego-vmm processes.
 *
 * The first case needs no KVM: registration, refusal at capacity, a create
 * that fails at the VMM and leaves nothing behind, bad XML and bad command
 * lines, a killed memory server marked down, a restarted manager that knows
 * the cluster again, and down. Then the APIs' answers to bad requests, and
 * an image imported as a vNode's first disk. vNodes under failures are in
 * test_cluster_vnodes.c, the cluster's network in test_cluster_net.c, pause,
 * migration and snapshots in test_cluster_lifecycle.c.
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
				{"up", "--jail", "maybe"},
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
	{
		char m[300];

		cluster_cfg("manager", m, sizeof(m));
		snprintf(url, sizeof(url), "%.280s/metrics", m);
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

		char cmdline[4096] = "", path[64];
		ssize_t len;
		int fd;

		/* a new agent, which does not know the orphan, told not to jail its VMMs */
		legoctl(&r, "up", "--jail", "off", NULL);
		ASSERT(r.status == 0, "%s", r.err);
		proc_result_free(&r);
		snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid_of("agent"));
		fd = open(path, O_RDONLY);
		ASSERT(fd >= 0);
		len = read(fd, cmdline, sizeof(cmdline) - 1);
		close(fd);
		for (ssize_t i = 0; i < len; i++) /* its arguments, one string */
			cmdline[i] = cmdline[i] ? cmdline[i] : ' ';
		ASSERT_CONTAINS(cmdline, "--jail off");
		down_leaves_nothing(extra, 1);
	}
	ASSERT(!gone(other), "down killed a process that was not a lego-vmm");
	kill(other, SIGKILL);
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
	char m[300], agent[256], a[300], url[400];
	char *big;

	cluster_home();
	up("256M");
	cluster_cfg("manager", m, sizeof(m));
	cluster_cfg("agent", agent, sizeof(agent));
	snprintf(a, sizeof(a), "https://%s", agent);

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
	/* a spec that fits the API's bound but not a record's */
	snprintf(big, 200 << 10, "{\"name\":\"x\",\"note\":\"%0*d\"}", 100 << 10, 0);
	expect("POST", url, "application/json", big, 400, "at most 64 KiB");
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
