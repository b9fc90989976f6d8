/* cluster.c - a whole cluster on loopback for a test case (see cluster.h). */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "http.h"
#include "pki.h"

char home[512];

/* Run legoctl ARGS... under this case's LEGO_HOME. */
void legoctl(struct proc_result *r, const char *a0, ...)
{
	char *argv[24], bin[600];
	va_list ap;
	int n = 0;

	snprintf(bin, sizeof(bin), "%s", test_path("bin/legoctl"));
	argv[n++] = bin;
	va_start(ap, a0);
	for (const char *a = a0; a && n < 23; a = va_arg(ap, const char *))
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	proc_run(argv, 120, r);
}

json_t *legoctl_json_(int line, const char *cmd, const char *arg, ...)
{
	const char *a[8] = {arg};
	struct proc_result r;
	va_list ap;
	json_t *j;

	va_start(ap, arg);
	for (int n = 0; a[n] && n < 7; n++)
		a[n + 1] = va_arg(ap, const char *);
	va_end(ap);
	legoctl(&r, "--json", cmd, a[0], a[1], a[2], a[3], a[4], a[5], a[6], NULL);
	ASSERT(r.status == 0, "line %d: legoctl %s failed (%d): %s", line, cmd, r.status, r.err);
	j = json_loads(r.out, 0, NULL);
	ASSERT(j, "line %d: legoctl --json %s printed no JSON: [%s] (stderr: [%s], %zu bytes out)",
	       line, cmd, r.out, r.err, strlen(r.out));
	proc_result_free(&r);
	return j;
}

void cluster_home_here(void)
{
	snprintf(home, sizeof(home), "%s/home", test_tmpdir());
	setenv("LEGO_HOME", home, 1);
}

void cluster_home(void)
{
	cluster_home_here();
	/* The cluster's bridge and TAPs in a network namespace of the case's own:
	 * they go with it, whatever happens (without root, no network: said so). */
	if (geteuid() == 0 && unshare(CLONE_NEWNET) == 0 && system("ip link set lo up") != 0)
		test_fail(__FILE__, __LINE__, "cannot bring up the namespace's loopback");
}

pid_t pid_of(const char *daemon)
{
	char p[700];
	FILE *f;
	int pid = 0;

	snprintf(p, sizeof(p), "%s/run/%s.pid", home, daemon);
	f = fopen(p, "r");
	if (f) {
		if (fscanf(f, "%d", &pid) != 1)
			pid = 0;
		fclose(f);
	}
	return pid;
}

/* The address `legoctl up` gave memsrv-@nth (1 or 2), from $LEGO_HOME/cluster.json. */
void memsrv_addr(int nth, char *out, size_t len)
{
	char p[700];
	json_t *cfg;

	snprintf(p, sizeof(p), "%s/cluster.json", home);
	cfg = json_load_file(p, 0, NULL);
	ASSERT(cfg, "no %s", p);
	snprintf(out, len, "%s",
		 json_string_value(json_array_get(json_object_get(cfg, "memsrv"), nth - 1)));
	json_decref(cfg);
}

void cluster_cfg(const char *key, char *out, size_t len)
{
	char p[700];
	json_t *cfg;

	snprintf(p, sizeof(p), "%s/cluster.json", home);
	cfg = json_load_file(p, 0, NULL);
	ASSERT(cfg, "no %s", p);
	ASSERT(json_string_value(json_object_get(cfg, key)), "no \"%s\" in %s", key, p);
	snprintf(out, len, "%s", json_string_value(json_object_get(cfg, key)));
	json_decref(cfg);
}

struct pki_identity member_identity(const char *name)
{
	struct pki_identity id;
	char prefix[700], err[2048];

	snprintf(prefix, sizeof(prefix), "%s/pki/%s", home, name);
	if (pki_identity(prefix, &id, err, sizeof(err)))
		test_fail(__FILE__, __LINE__, "%s", err);
	return id;
}

void vnode_field(const char *name, const char *field, char *out, size_t len)
{
	char cmd[900];
	FILE *f;

	snprintf(cmd, sizeof(cmd),
		 "sqlite3 '%s/manager.db' \"select json_extract(data, '$.%s') from vnodes where "
		 "name = '%s'\"",
		 home, field, name);
	f = popen(cmd, "r");
	ASSERT(f && fgets(out, (int)len, f), "no %s of %s", field, name);
	pclose(f);
	out[strcspn(out, "\n")] = '\0';
}

void memsrv_join_argv(char *argv[16], const char *listen, const char *advertise, const char *prefix,
		      const char *tokfile)
{
	static char bin[700], manager[300], listen_s[64], advertise_s[64], prefix_s[700],
		tok_s[700];
	int n = 0;

	snprintf(bin, sizeof(bin), "%s", test_path("bin/lego-memsrv"));
	cluster_cfg("manager", manager, sizeof(manager));
	snprintf(listen_s, sizeof(listen_s), "%s", listen);
	snprintf(advertise_s, sizeof(advertise_s), "%s", advertise ? advertise : listen);
	snprintf(prefix_s, sizeof(prefix_s), "%s", prefix);
	snprintf(tok_s, sizeof(tok_s), "%s", tokfile);
	const char *a[] = {bin,		 "--listen", listen_s,	  "--advertise", advertise_s,
			   "--capacity", "256M",     "--manager", manager,	 "--identity",
			   prefix_s,	 "--join",   tok_s};

	for (; n < (int)(sizeof(a) / sizeof(a[0])); n++)
		argv[n] = (char *)a[n];
	argv[n] = NULL;
}

json_t *component(json_t *nodes, const char *role, int nth)
{
	size_t i;
	json_t *c;

	json_array_foreach(json_object_get(nodes, "components"), i, c)
	{
		if (!strcmp(json_string_value(json_object_get(c, "role")), role) && nth-- == 0)
			return c;
	}
	return NULL;
}

long long total_reserved(void)
{
	json_t *n = legoctl_json("nodes", NULL), *c;
	long long sum = 0;
	size_t i;

	json_array_foreach(json_object_get(n, "components"), i, c) sum += JI(c, "reserved");
	json_decref(n);
	return sum;
}

size_t nr_vnodes(void)
{
	json_t *l = legoctl_json("list", NULL);
	size_t n = json_array_size(json_object_get(l, "vnodes"));

	json_decref(l);
	return n;
}

void up(const char *memsrv_capacity)
{
	struct proc_result r;

	legoctl(&r, "up", "--memsrv-capacity", memsrv_capacity, "--agent-capacity", "2G", NULL);
	ASSERT(r.status == 0, "legoctl up: %s%s", r.out, r.err);
	ASSERT_CONTAINS(r.out, "cluster up");
	proc_result_free(&r);
	as_member("admin");
}

void as_member(const char *name)
{
	struct pki_identity id = member_identity(name);

	http_identity(&id);
}

/* Wait until @addr of @role has health @health; returns the ms it took, or -1. */
int wait_health(const char *role, const char *addr, const char *health, int max_ms)
{
	for (int ms = 0; ms <= max_ms; ms += 100) {
		json_t *n = legoctl_json("nodes", NULL), *c;
		bool hit = false;
		size_t i;

		json_array_foreach(json_object_get(n, "components"), i, c)
		{
			hit |= !strcmp(JS(c, "role"), role) && !strcmp(JS(c, "addr"), addr) &&
			       !strcmp(JS(c, "health"), health);
		}
		json_decref(n);
		if (hit)
			return ms;
		usleep(100 * 1000);
	}
	return -1;
}

/* Gone, or a zombie waiting for init: the process no longer runs. */
bool gone(pid_t pid)
{
	char p[64], buf[512], *rp;
	FILE *f;
	bool dead = true;

	snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
	f = fopen(p, "r");
	if (f && fgets(buf, sizeof(buf), f) && (rp = strrchr(buf, ')')))
		dead = rp[2] == 'Z' || rp[2] == 'X';
	if (f)
		fclose(f);
	return dead;
}

void kill_and_wait(pid_t pid)
{
	ASSERT(pid > 0 && kill(pid, SIGKILL) == 0, "cannot kill pid %d", pid);
	for (int ms = 0; !gone(pid) && ms < 5000; ms += 20)
		usleep(20 * 1000);
	ASSERT(gone(pid), "pid %d survived SIGKILL for 5 s", pid);
}

void down_leaves_nothing(pid_t *extra, int nr_extra)
{
	const char *names[] = {"manager", "memsrv-1", "memsrv-2", "storsrv", "agent"};
	pid_t pids[5];
	struct proc_result r;

	for (int i = 0; i < 5; i++) {
		pids[i] = pid_of(names[i]);
		ASSERT(pids[i] > 0, "no pid file for %s", names[i]);
	}
	legoctl(&r, "down", NULL);
	ASSERT(r.status == 0, "legoctl down: %s", r.err);
	proc_result_free(&r);
	for (int i = 0; i < 5; i++)
		ASSERT(gone(pids[i]), "%s (pid %d) survived down", names[i], pids[i]);
	for (int i = 0; i < nr_extra; i++)
		ASSERT(gone(extra[i]), "a VMM (pid %d) survived down", extra[i]);
	ASSERT(pid_of("manager") == 0, "down left its pid files");
}

void create_payload(const char *name, const char *cpus, const char *extra)
{
	struct proc_result r;

	legoctl(&r, "create", name, "--cpus", cpus, "--memory", "64M", "--excache", "16M",
		"--payload", "touch", "--args", "op=verify mode=rand size=24M passes=100000000",
		extra ? "--disk" : NULL, extra, NULL);
	ASSERT(r.status == 0, "create %s: %s%s", name, r.out, r.err);
	ASSERT_CONTAINS(r.out, "primary");
	proc_result_free(&r);
}

json_t *vnode(json_t *list, const char *name)
{
	size_t i;
	json_t *v;

	json_array_foreach(json_object_get(list, "vnodes"), i, v)
	{
		if (!strcmp(JS(v, "name"), name))
			return v;
	}
	return NULL;
}

/* Wait for a vNode's state (and, if @xc_size, its ExCache to report that size). */
json_t *wait_vnode(const char *name, const char *state, long long xc_size)
{
	return wait_vnode_for(name, state, xc_size, 15);
}

json_t *wait_vnode_for(const char *name, const char *state, long long xc_size, int max_s)
{
	char seen[128] = "not listed";

	for (int ms = 0; ms < max_s * 1000; ms += 200) {
		json_t *l = legoctl_json("list", NULL), *v = vnode(l, name);

		if (v)
			snprintf(seen, sizeof(seen), "%s, pid %lld, ExCache %lld", JS(v, "state"),
				 JI(v, "pid"), JI(json_object_get(v, "excache_use"), "size_bytes"));
		if (v && !strcmp(JS(v, "state"), state) &&
		    (strcmp(state, "running") || JI(v, "pid") > 0) &&
		    (!xc_size || JI(json_object_get(v, "excache_use"), "size_bytes") == xc_size)) {
			json_incref(v);
			json_decref(l);
			return v;
		}
		json_decref(l);
		usleep(200 * 1000);
	}
	ASSERT(0, "vNode %s never reached state %s (ExCache %lld) in %d s; last seen: %s", name,
	       state, xc_size, max_s, seen);
	return NULL;
}

char *console_of(const char *name)
{
	struct proc_result r;
	char *out;

	legoctl(&r, "console", name, "--once", NULL);
	ASSERT(r.status == 0, "console %s: %s", name, r.err);
	out = strdup(r.out);
	proc_result_free(&r);
	return out;
}

void no_mismatches(const char *name, int cpus)
{
	char *con = console_of(name);

	for (int cpu = 0; cpu < cpus; cpu++) {
		uint64_t mism = 1;

		ASSERT(report_get(con, cpu, "mismatches", &mism),
		       "%s: no report of vCPU %d in:\n%s", name, cpu, con);
		ASSERT(mism == 0, "%s: vCPU %d found %llu mismatches", name, cpu,
		       (unsigned long long)mism);
	}
	free(con);
}

void join_token_file(const char *role, const char *path)
{
	json_t *t = legoctl_json("token", "create", "--role", role, NULL);
	const char *tok = JS(t, "token");

	ASSERT(tok && !strncmp(tok, "lj1.", 4), "a join token: %s", tok ? tok : "none");
	ASSERT(pki_write(path, tok, strlen(tok), 0600) == 0, "%s", path);
	json_decref(t);
}

int call_as(const struct pki_identity *id, const char *method, const char *base, const char *path,
	    const char *body, char *out, size_t len)
{
	char url[512], err[1024], *ans = NULL;
	int s;

	snprintf(url, sizeof(url), "%s%s", base, path);
	s = http_call_with(id, method, url, body ? "application/json" : NULL, body, &ans, 30000,
			   err, sizeof(err));
	snprintf(out, len, "%s", s < 0 ? err : ans ? ans : "");
	free(ans);
	return s;
}

/* Wait until every slab of @name has @primary and @secondary ("" for none). */
bool vnode_on_servers(const char *name, const char *primary, const char *secondary, int max_ms)
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
