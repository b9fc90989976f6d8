/*
 * demo.c - `legoctl demo failover`: a vNode runs a memory workload that
 * writes and verifies its own data; its primary memory server is killed
 * (kill -9) in the middle of it; the demo shows, live, the pause the VMM
 * saw, the new primary, the killed server coming back empty and being filled
 * as the new secondary, and at the end the workload's own verdict.
 *
 *   --guest payload   the touch payload on 2 vCPUs (seconds)
 *   --guest linux     Debian's stock kernel running /bin/lego-verify from the
 *                     boot kit (minutes on machines without hardware
 *                     virtualisation)
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "legoctl.h"
#include "util.h"

#define DEMO "failover-demo"

static double since(uint64_t t0)
{
	return (now_ns() - t0) / 1e9;
}

/* The local daemon (memsrv-1 or memsrv-2) listening on @addr, from cluster.json. */
static const char *local_memsrv(struct legoctl *lc, const char *addr)
{
	char p[PATH_MAX];
	json_t *c;
	const char *name = NULL;

	snprintf(p, sizeof(p), "%s/cluster.json", lc->home);
	c = json_load_file(p, 0, NULL);
	for (int i = 0; c && i < 2; i++)
		if (!strcmp(json_string_value(json_array_get(json_object_get(c, "memsrv"), i))
				    ?: "",
			    addr))
			name = i ? "memsrv-2" : "memsrv-1";
	json_decref(c);
	return name;
}

/* `legoctl up`: start the cluster, or whatever part of it has stopped. */
static int up_again(struct legoctl *lc, char **up_argv)
{
	int ret;

	optind = 0; /* getopt starts afresh */
	lc->up_quietly = true;
	ret = cmd_up(lc, 1, up_argv);
	lc->up_quietly = false;
	return ret;
}

static json_t *vnode_route(json_t *v)
{
	return json_object_get(json_object_get(v, "excache_use"), "route");
}

/* The workload's own verdict, from the console: 0 clean, 1 mismatches, -1 none found. */
static int verdict(const char *agent, bool linux_guest, char *line, size_t len)
{
	long long off = 0;
	char *out = console_fetch(agent, DEMO, &off, NULL);
	int ret = -1;

	line[0] = '\0';
	if (!out)
		return -1;
	if (linux_guest) {
		char *p = strstr(out, "lego-verify: ");
		char *last = NULL;

		for (; p; p = strstr(p + 1, "lego-verify: "))
			if (strstr(p, " mismatches in ") &&
			    strstr(p, " mismatches in ") < strchr(p, '\n'))
				last = p;
		if (last) {
			snprintf(line, len, "%.*s", (int)strcspn(last, "\r\n"), last);
			ret = strncmp(last, "lego-verify: 0 mismatches", 25) != 0;
		}
	} else {
		int n = 0, bad = 0;

		for (char *p = strstr(out, "mismatches="); p; p = strstr(p + 1, "mismatches=")) {
			n++;
			bad += atoll(p + strlen("mismatches=")) != 0;
		}
		if (n) {
			snprintf(line, len, "%d vCPU(s) reported; %d found mismatches", n, bad);
			ret = bad != 0;
		}
	}
	free(out);
	return ret;
}

static void help(void)
{
	printf("usage: legoctl demo failover [--guest payload|linux]\n"
	       "\n"
	       "A vNode writes and verifies its own memory; its primary memory server is\n"
	       "killed with SIGKILL in the middle of it. Shown live: the pause its VMM saw,\n"
	       "the new primary, the killed server restarted empty and filled as the new\n"
	       "secondary; then the workload's own verdict. Starts the local cluster if it\n"
	       "is not up. --guest payload (default) takes seconds; --guest linux boots\n"
	       "Debian's stock kernel and runs lego-verify in it (minutes without hardware\n"
	       "virtualisation).\n");
}

int cmd_demo(struct legoctl *lc, int argc, char **argv)
{
	bool linux_guest = false, killed = false, failed_over = false, refilling = false;
	bool restored = false;
	char agent[256] = "", primary[128] = "", line[512], *up_argv[] = {"up", NULL};
	json_t *spec, *out, *v, *last_route = NULL;
	uint64_t t0, t_kill = 0;
	long long exit_status = -1;
	int ret = 1;

	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))
		return help(), 0;
	if (argc < 2 || strcmp(argv[1], "failover"))
		return usage_fail("demo", "%s", "the demo there is: legoctl demo failover");
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return help(), 0;
		if (!strcmp(argv[i], "--guest") && i + 1 < argc &&
		    (!strcmp(argv[i + 1], "payload") || !strcmp(argv[i + 1], "linux"))) {
			linux_guest = !strcmp(argv[++i], "linux");
			continue;
		}
		return usage_fail("demo", "unexpected argument '%s' (--guest payload|linux)",
				  argv[i]);
	}
	printf("== the cluster (legoctl up)\n");
	optind = 0;
	if (cmd_up(lc, 1, up_argv))
		return 1;
	{ /* a demo vNode left over from an earlier run goes, quietly */
		char err[256];

		api_call(lc, "DELETE", "/v1/vnodes/" DEMO, NULL, NULL, 30000, err, sizeof(err));
	}
	if (linux_guest)
		spec = json_pack("{s:s,s:i,s:I,s:I,s:s}", "name", DEMO, "cpus", 2, "memory",
				 (json_int_t)(512 * MiB), "excache", (json_int_t)(64 * MiB),
				 "cmdline", "console=ttyS0 lego.run=\"/bin/lego-verify 256M 6\"");
	else
		spec = json_pack("{s:s,s:i,s:I,s:I,s:s,s:s}", "name", DEMO, "cpus", 2, "memory",
				 (json_int_t)(160 * MiB), "excache", (json_int_t)(16 * MiB),
				 "payload", "touch", "args",
				 "op=verify mode=rand size=128M passes=12");
	printf("\n== a vNode writing and verifying its memory (%s)\n",
	       linux_guest ? "Debian's kernel running lego-verify 256M, 6 passes"
			   : "the touch payload on 2 vCPUs, 128 MiB, 12 passes");
	out = api(lc, "POST", "/v1/vnodes", spec);
	json_decref(spec);
	if (!out)
		return 1;
	snprintf(agent, sizeof(agent), "%s", JS(out, "agent"));
	json_decref(out);
	/* Linux: the kill comes once lego-verify has written all its memory and
	 * verifies it (most of it on the memory servers, the ExCache being 64 MiB). */
	if (linux_guest &&
	    (wait_ready(lc, DEMO, agent) ||
	     wait_console(lc, DEMO, agent, "lego-verify: pass 1/", "running lego-verify in",
			  "has written its memory once (pass 1)")))
		goto out;
	t0 = now_ns();
	for (;;) {
		json_t *route, *slab0;
		char now_primary[128], secondary[128];
		long long done, total;

		v = api(lc, "GET", "/v1/vnodes/" DEMO, NULL);
		if (!v)
			goto out;
		route = vnode_route(v);
		if (route) {
			json_decref(last_route);
			last_route = json_incref(route);
		}
		if (strcmp(JS(v, "state"), "running")) {
			exit_status = JI(v, "exit_status");
			json_decref(v);
			break;
		}
		slab0 = json_array_get(json_object_get(route, "slabs"), 0);
		snprintf(now_primary, sizeof(now_primary), "%s", JS(slab0, "primary"));
		snprintf(secondary, sizeof(secondary), "%s", JS(slab0, "secondary"));
		done = JI(route, "fill_done");
		total = JI(route, "fill_total");
		if (!killed && route && JI(json_object_get(v, "excache_use"), "misses") > 1000) {
			const char *d = local_memsrv(lc, now_primary);
			pid_t pid = d ? read_pid(lc, d) : 0;

			if (!pid) {
				fail("the primary %s is not a memory server of this machine's cluster",
				     now_primary);
				json_decref(v);
				goto out;
			}
			printf("+%5.1f s  primary %s (%s, pid %d), secondary %s; killing the "
			       "primary: kill -9 %d\n",
			       since(t0), now_primary, d, (int)pid, secondary, (int)pid);
			fflush(stdout);
			kill(pid, SIGKILL);
			snprintf(primary, sizeof(primary), "%s", now_primary);
			killed = true;
			t_kill = now_ns();
		} else if (killed && !failed_over && JI(route, "failovers") > 0) {
			printf("+%5.1f s  failed over: primary now %s, no secondary; the longest "
			       "any vCPU waited: %.1f ms (epoch %lld)\n",
			       since(t0), now_primary, JI(route, "pause_max_ns") / 1e6,
			       JI(route, "epoch"));
			printf("+%5.1f s  restarting the killed server (legoctl up): it comes back "
			       "empty\n",
			       since(t0));
			fflush(stdout);
			failed_over = true;
			up_again(lc, up_argv);
		} else if (failed_over && total && done < total && !refilling) {
			printf("+%5.1f s  filling %s as the new secondary: %lld of %lld pages\n",
			       since(t0), secondary, done, total);
			refilling = true;
		} else if (failed_over && !restored && *secondary && done >= total) {
			if (!refilling)
				printf("+%5.1f s  filled %s as the new secondary: %lld pages, "
				       "done before the demo looked again\n",
				       since(t0), secondary, total);
			printf("+%5.1f s  redundancy restored: primary %s, secondary %s, filled "
			       "with %lld pages (epoch %lld)\n",
			       since(t0), now_primary, secondary, total, JI(route, "epoch"));
			restored = true;
		} else if (killed && !failed_over && now_ns() - t_kill > 30000000000ULL) {
			fail("no failover reported 30 s after the kill: %s",
			     JS(route, "last_event"));
			json_decref(v);
			goto out;
		}
		fflush(stdout);
		json_decref(v);
		if (since(t0) > (linux_guest ? 3600 : 600)) {
			fail("the workload has not finished after %.0f s", since(t0));
			goto out;
		}
		usleep(250 * 1000);
	}
	printf("+%5.1f s  the workload finished (lego-vmm exit status %lld)\n", since(t0),
	       exit_status);
	if (last_route)
		printf("          %s\n", JS(last_route, "last_event"));
	if (!killed)
		printf("          it finished before the kill: nothing was shown (a faster machine?)\n");
	ret = verdict(agent, linux_guest, line, sizeof(line));
	printf("\n== the workload's verdict: %s\n", ret < 0 ? "none found on the console" : line);
	if (ret == 0 && exit_status == 0 && killed && failed_over) {
		printf("zero mismatches: the guest kept running through the loss of its primary "
		       "memory server (%s).\n",
		       primary);
	} else {
		ret = 1;
		fprintf(stderr,
			"legoctl: the demo did not end as it should: see its console: "
			"legoctl console %s --once\n",
			DEMO);
		json_decref(last_route);
		return 1;
	}
out:
	json_decref(last_route);
	json_decref(api(lc, "DELETE", "/v1/vnodes/" DEMO, NULL));
	up_again(lc, up_argv); /* whatever was killed runs again */
	return ret ? 1 : 0;
}
