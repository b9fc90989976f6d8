/*
 * test_hardening.c - what was found by trying the cluster as an attacker and
 * as a careless user would (issue 20's list), each against real daemons:
 * the agent outlives a delete that lands while a VMM starts; a vNode that
 * finishes at once is a vNode that ran, and a NUL byte in its console does
 * not stop legoctl console; servers with a manager stop
 * cleanly on SIGTERM; /metrics stays parseable whatever a component calls
 * its address.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "ctl.h"
#include "http.h"
#include "pki.h"
#include "proto.h"
#include "test.h"
#include "util.h"

static char agent_url[300];

/* A TCP port that accepts connections (the kernel's backlog) and never answers. */
static int blackhole(int *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ASSERT(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 16) == 0);
	ASSERT(getsockname(fd, (struct sockaddr *)&sa, &sl) == 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

struct run_call {
	struct pki_identity *id;
	char body[1024], out[2048];
	int status;
};

static void *post_order(void *arg)
{
	struct run_call *c = arg;

	c->status =
		call_as(c->id, "POST", agent_url, "/v1/vnodes", c->body, c->out, sizeof(c->out));
	return NULL;
}

/*
 * A delete through the agent's API while the VMM it ordered is still
 * starting (its memory server does not answer yet): the agent used to
 * dereference the forgotten VMM and die. The order is refused with why,
 * and the agent goes on answering.
 */
TEST_TIMEOUT(the_agent_outlives_a_delete_while_a_vmm_starts, 180)
{
	struct pki_identity mgr;
	struct run_call run = {0};
	char a[256], out[2048];
	pthread_t t;
	int port, hole, s;

	test_require_kvm();
	cluster_home();
	up("256M");
	cluster_cfg("agent", a, sizeof(a));
	snprintf(agent_url, sizeof(agent_url), "https://%s", a);
	mgr = member_identity("manager");
	hole = blackhole(&port);
	run.id = &mgr;
	snprintf(run.body, sizeof(run.body),
		 "{\"name\":\"slow\",\"memory\":%lld,\"cpus\":1,\"payload\":\"hello\","
		 "\"excache\":%lld,\"vnode\":4242,\"memsrv\":[\"127.0.0.1:%d\"],"
		 "\"token\":\"%064d\"}",
		 16 * MiB, 8 * MiB, port, 7);
	pthread_create(&t, NULL, post_order, &run);
	for (int ms = 0;; ms += 50) { /* until the agent knows the VMM */
		ASSERT(ms < 10000, "the agent never listed the starting vNode");
		s = call_as(&mgr, "GET", agent_url, "/v1/vnodes", NULL, out, sizeof(out));
		if (s == 200 && strstr(out, "\"slow\""))
			break;
		usleep(50 * 1000);
	}
	s = call_as(&mgr, "DELETE", agent_url, "/v1/vnodes/slow", NULL, out, sizeof(out));
	ASSERT(s == 200, "DELETE: %d %s", s, out);
	pthread_join(t, NULL);
	ASSERT(run.status == 409, "the order: %d %s", run.status, run.out);
	ASSERT_CONTAINS(run.out, "was stopped while its lego-vmm started");
	s = call_as(&mgr, "GET", agent_url, "/v1/vnodes", NULL, out, sizeof(out));
	ASSERT(s == 200, "the agent after the delete: %d %s", s, out);
	ASSERT(pid_of("agent") > 0 && !gone(pid_of("agent")), "the agent died");
	close(hole);
	down_leaves_nothing(NULL, 0);
}

/* legoctl create of a payload that is done before its control socket could be looked for. */
TEST_TIMEOUT(a_vnode_that_finishes_at_once_is_a_vnode_that_ran, 180)
{
	struct proc_result r;
	json_t *v;

	test_require_kvm();
	cluster_home();
	setenv("LEGO_TEST_SYSCALL_PROBE", "1", 1); /* the agent's VMMs open the probe port */
	up("256M");
	legoctl(&r, "create", "quick", "--payload", "hello", "--memory", "16M", "--no-net", NULL);
	ASSERT(r.status == 0, "create of a payload that ends at once: %s%s", r.out, r.err);
	proc_result_free(&r);
	v = wait_vnode("quick", "exited", 0);
	json_decref(v);
	{
		char *out = console_of("quick");

		ASSERT_CONTAINS(out, "hello");
		free(out);
	}
	/* A NUL byte in a console (a guest can write any byte to its UART) used to
	 * end what legoctl console printed, and to stop it from ever going past. */
	{
		char path[600];
		FILE *f;

		snprintf(path, sizeof(path), "%s/vnodes/quick/console.log", getenv("LEGO_HOME"));
		f = fopen(path, "a");
		ASSERT(f, "%s", path);
		fwrite("before\0after the NUL\n", 1, 22, f);
		fclose(f);
		legoctl(&r, "console", "quick", "--once", NULL);
		ASSERT(r.status == 0, "console: %s", r.err);
		ASSERT(memmem(r.out, r.out_len, "after the NUL", 13),
		       "legoctl console stopped at a NUL byte");
		proc_result_free(&r);
	}
	/* A VMM that fails after it started says why in legoctl list: its last line (a
	 * guest's fault, a system call outside a thread's seccomp filter, ...); one killed
	 * here, whose last line is what it said before */
	legoctl(&r, "create", "victim", "--payload", "touch", "--args",
		"op=verify mode=seq size=4M passes=100000", "--memory", "16M", "--no-net", NULL);
	ASSERT(r.status == 0, "create: %s%s", r.out, r.err);
	proc_result_free(&r);
	v = wait_vnode("victim", "running", 0);
	kill((pid_t)JI(v, "pid"), SIGKILL);
	json_decref(v);
	v = wait_vnode("victim", "failed", 0);
	ASSERT(*JS(v, "last_words"), "a failed VMM left no last words");
	legoctl(&r, "list", NULL);
	ASSERT_CONTAINS(r.out, "victim: lego-vmm ended with status 137: ");
	ASSERT_CONTAINS(r.out, JS(v, "last_words"));
	proc_result_free(&r);
	json_decref(v);
	/* a guest that makes its (jailed) VMM make a system call outside the vCPU thread's
	 * filter: the vNode fails, and says so */
	legoctl(&r, "create", "probe", "--payload", "hello", "--args", "probe=1 spin=1", "--memory",
		"16M", "--no-net", NULL);
	if (r.status) { /* it stopped before its control socket was up: the create says why */
		ASSERT_CONTAINS(r.err,
				"lego-vmm for probe exited at once with status 125: "
				"lego-vmm: error: thread vcpu0 made system call getppid (110), "
				"which its seccomp filter does not allow");
	} else { /* or just after: legoctl list does */
		proc_result_free(&r);
		json_decref(wait_vnode("probe", "failed", 0));
		legoctl(&r, "list", NULL);
		ASSERT_CONTAINS(r.out, "probe: lego-vmm ended with status 125: lego-vmm: error: "
				       "thread vcpu0 made system call getppid (110), which its "
				       "seccomp filter does not allow");
	}
	proc_result_free(&r);
	down_leaves_nothing(NULL, 0);
}

/* The log of the case's daemon @name. */
static char *daemon_log(const char *name)
{
	char path[600];

	snprintf(path, sizeof(path), "%s/logs/%s.log", getenv("LEGO_HOME"), name);
	return slurp(path);
}

/*
 * A memory or storage server with a manager stops cleanly on SIGTERM: its
 * heartbeat thread no longer takes the signal (which killed the process
 * outright, exit 143), the request loop does, and says what it served.
 */
TEST_TIMEOUT(servers_with_a_manager_stop_cleanly_on_sigterm, 180)
{
	const char *names[] = {"memsrv-1", "storsrv"};

	cluster_home();
	up("256M");
	for (int i = 0; i < 2; i++) {
		pid_t pid = pid_of(names[i]);
		char *log;

		ASSERT(pid > 0, "no %s", names[i]);
		kill(pid, SIGTERM);
		for (int ms = 0; !gone(pid); ms += 50) {
			ASSERT(ms < 10000, "%s still runs 10 s after SIGTERM", names[i]);
			usleep(50 * 1000);
		}
		log = daemon_log(names[i]);
		ASSERT(log, "no log of %s", names[i]);
		ASSERT(strstr(log, "Terminated: stopping") && strstr(log, "served "),
		       "%s did not stop cleanly:\n%s", names[i], log);
		free(log);
	}
	down_leaves_nothing(NULL, 0);
}

/*
 * A member that names itself with a quote in its address is refused (it
 * used to be registered, and its label broke every Prometheus scrape);
 * every sample line of /metrics stays name{labels} value.
 */
TEST_TIMEOUT(metrics_stay_parseable_whatever_a_member_calls_itself, 180)
{
	static char ans[1 << 16];
	struct pki_identity ms, reader;
	char manager[300];
	int s;

	cluster_home();
	up("256M");
	cluster_cfg("manager", manager, sizeof(manager));
	ms = member_identity("memsrv-1");
	s = call_as(&ms, "POST", manager, "/v1/heartbeat",
		    "{\"role\":\"memsrv\",\"addr\":\"x\\\"} 1\\nevil:1\",\"capacity\":1}", ans,
		    sizeof(ans));
	ASSERT(s == 400, "a heartbeat with a quote in its address: %d %s", s, ans);
	ASSERT_CONTAINS(ans, "HOST:PORT");
	reader = member_identity("reader");
	s = call_as(&reader, "GET", manager, "/metrics", NULL, ans, sizeof(ans));
	ASSERT(s == 200, "GET /metrics: %d %s", s, ans);
	ASSERT(strlen(ans) < sizeof(ans) - 1, "/metrics did not fit in %zu bytes", sizeof(ans));
	ASSERT(!strstr(ans, "evil"), "the refused member is in /metrics");
	for (char *line = strtok(ans, "\n"); line; line = strtok(NULL, "\n")) {
		char *brace = strchr(line, '{'), *close = strrchr(line, '}');

		if (line[0] == '#')
			continue;
		ASSERT(!brace || (close && close > brace && close[1] == ' '),
		       "a sample line that does not parse: %s", line);
	}
	down_leaves_nothing(NULL, 0);
}

/* A TCP connection to "HOST:PORT", or -1. */
static int tcp_to(const char *addr)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	const char *colon = strrchr(addr, ':');
	char host[64];
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = {.tv_sec = 2};

	snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	inet_pton(AF_INET, host, &sa.sin_addr);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* A frame of garbage: random bytes, or a protocol header with random fields. */
static size_t garbage(uint8_t *buf, size_t cap, unsigned *seed)
{
	size_t n = (size_t)rand_r(seed) % cap;

	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)rand_r(seed);
	if (n >= sizeof(struct lmp_hdr) && rand_r(seed) % 2) {
		struct lmp_hdr h;

		memcpy(&h, buf, sizeof(h));
		h.magic = LMP_MAGIC;
		h.version = LMP_VERSION;
		h.type = (uint16_t)(rand_r(seed) % 32);
		h.len = rand_r(seed) % 3 ? (uint32_t)(n - sizeof(h)) : h.len; /* or a huge one */
		memcpy(buf, &h, sizeof(h));
	}
	return n;
}

/* Whether the peer of @fd has closed it (EOF, or a reset), waiting at most @ms; what it
 * sends before (a TLS alert) is read and dropped. */
static bool closed_by_peer(int fd, int ms)
{
	uint64_t end = now_ns() + (uint64_t)ms * 1000000;
	char buf[512];

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		uint64_t now = now_ns();
		int left = now < end ? (int)((end - now) / 1000000) : 0;
		ssize_t n;

		if (poll(&p, 1, left) != 1)
			return false;
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return true;
	}
}

/*
 * 1,100 connections opened and left idle at the manager's and the agent's API
 * (more than select(2) could watch): while every one is open, legoctl is
 * served by the manager, the agent answers the manager's calls, and the
 * vNode runs on; once they have said nothing for HTTP_IDLE_S, both servers
 * have closed every one.
 */
static void idle_flood(const char *manager, const char *agent)
{
	enum { N = 1100 };
	static int fds[2][N];
	static uint64_t opened[2][N];
	const char *addrs[2] = {manager, agent};
	struct pki_identity mgr = member_identity("manager");
	struct proc_result r;
	uint64_t t0 = now_ns(), t1;
	char url[300], out[2048];
	int s;

	for (int k = 0; k < 2; k++)
		for (int i = 0; i < N; i++) {
			fds[k][i] = tcp_to(addrs[k]);
			opened[k][i] = now_ns();
			ASSERT(fds[k][i] >= 0, "%s refused idle connection %d", addrs[k], i);
		}
	t1 = now_ns();
	legoctl(&r, "list", NULL);
	ASSERT(r.status == 0, "legoctl list with %d idle connections open: %s", N, r.err);
	proc_result_free(&r);
	snprintf(url, sizeof(url), "https://%s", agent);
	s = call_as(&mgr, "GET", url, "/v1/vnodes", NULL, out, sizeof(out));
	ASSERT(s == 200 && strstr(out, "\"g1\""), "the agent with %d idle connections: %d %s", N, s,
	       out);
	/* All served while every idle one was still open: none closed before it had been
	 * silent HTTP_IDLE_S (on a slow run, the first ones may have been by now). */
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < N; i++)
			ASSERT(!closed_by_peer(fds[k][i], 0) ||
				       now_ns() - opened[k][i] >=
					       (uint64_t)HTTP_IDLE_S * 1000000000,
			       "%s closed idle connection %d after %.1f s, before %d s of silence",
			       addrs[k], i, (double)(now_ns() - opened[k][i]) / 1e9, HTTP_IDLE_S);
	printf("  manager and agent served with %d idle connections open at each (opened in "
	       "%.1f s, served %.1f s later)\n",
	       (int)N, (double)(t1 - t0) / 1e9, (double)(now_ns() - t1) / 1e9);
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < N; i++) {
			ASSERT(closed_by_peer(fds[k][i], (HTTP_IDLE_S + 20) * 1000),
			       "%s kept idle connection %d open past %d s", addrs[k], i,
			       HTTP_IDLE_S + 20);
			close(fds[k][i]);
		}
	printf("  and both closed every one after %d s of silence\n", HTTP_IDLE_S);
}

/*
 * 2,000 frames of garbage (random bytes; headers with random types, huge
 * lengths, cut short) at every listening port of a running cluster — both
 * memory servers, the storage server, the manager, the agent — and 2,000
 * malformed commands at a VMM's control socket: afterwards every one of them
 * answers a valid request, and the vNode still runs. Then idle_flood. Under
 * SANITIZE=1, any report from any of those processes fails the run as well.
 */
TEST_TIMEOUT(garbage_at_every_port_leaves_every_server_serving, 300)
{
	static uint8_t buf[9000];
	const char *keys[] = {"manager", "agent"};
	char addrs[6][256], sock[600], err[256];
	unsigned seed = 20261203;
	int nr = 0;
	json_t *v, *req, *ans;
	struct proc_result r;

	test_require_kvm();
	cluster_home();
	up("256M");
	create_payload("g1", "1", NULL);
	json_decref(wait_vnode("g1", "running", 0));
	memsrv_addr(1, addrs[nr++], sizeof(addrs[0]));
	memsrv_addr(2, addrs[nr++], sizeof(addrs[0]));
	{
		json_t *nodes = legoctl_json("nodes", NULL);

		snprintf(addrs[nr++], sizeof(addrs[0]), "%s",
			 JS(component(nodes, "storsrv", 0), "addr"));
		json_decref(nodes);
	}
	for (int k = 0; k < 2; k++) {
		char a[256];

		cluster_cfg(keys[k], a, sizeof(a));
		snprintf(addrs[nr++], sizeof(addrs[0]), "%s",
			 strstr(a, "://") ? strstr(a, "://") + 3 : a);
	}
	for (int i = 0; i < nr; i++) {
		int sent = 0;

		for (int c = 0; c < 40; c++) { /* 40 connections of 50 frames */
			int fd = tcp_to(addrs[i]);

			ASSERT(fd >= 0, "cannot reach %s", addrs[i]);
			for (int f = 0; f < 50; f++, sent++)
				if (send(fd, buf, garbage(buf, sizeof(buf), &seed), MSG_NOSIGNAL) <
				    0)
					break; /* it hung up on us: the next connection goes on */
			close(fd);
		}
		printf("  %s: 2000 frames of garbage sent\n", addrs[i]);
	}
	/* the VMM's control socket: malformed JSON and commands */
	snprintf(sock, sizeof(sock), "%s/vnodes/g1/control.sock", getenv("LEGO_HOME"));
	for (int i = 0; i < 2000; i++) {
		char text[256];
		int n = snprintf(text, sizeof(text),
				 i % 2 ? "{\"cmd\":\"%08x\",\"x\":[%u" : "%08x%08x", rand_r(&seed),
				 rand_r(&seed));

		{ /* not JSON, or a command that does not exist, or cut short */
			int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
			struct sockaddr_un sa = {.sun_family = AF_UNIX};

			ASSERT(strlen(sock) < sizeof(sa.sun_path), "%s: too long a path", sock);
			memcpy(sa.sun_path, sock, strlen(sock) + 1);
			ASSERT(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0,
			       "the control socket went away after %d commands", i);
			send(fd, text, (size_t)n, MSG_NOSIGNAL);
			send(fd, "\n", 1, MSG_NOSIGNAL);
			close(fd);
		}
	}
	/* everyone answers */
	req = json_pack("{s:s}", "cmd", "status");
	ans = ctl_call(sock, req, 10000, err, sizeof(err));
	json_decref(req);
	ASSERT(ans && json_is_true(json_object_get(ans, "ok")), "the VMM: %s", err);
	json_decref(ans);
	for (int i = 0; i < 3; i++)
		ASSERT_EQ(wait_health(i < 2 ? "memsrv" : "storsrv", addrs[i], "up", 10000) >= 0, 1);
	legoctl(&r, "list", NULL);
	ASSERT(r.status == 0, "legoctl list after the garbage: %s", r.err);
	proc_result_free(&r);
	v = wait_vnode("g1", "running", 0);
	json_decref(v);
	idle_flood(addrs[3], addrs[4]);
	{ /* the memory servers still serve the vNode: its verifying payload reports on */
		char *out = console_of("g1");
		int before = console_count(out, "REPORT"), now = before;

		free(out);
		for (int ms = 0; now == before; ms += 500) {
			ASSERT(ms < 60000,
			       "the vNode reported nothing more in 60 s after the garbage");
			usleep(500 * 1000);
			out = console_of("g1");
			now = console_count(out, "REPORT");
			free(out);
		}
	}
	down_leaves_nothing(NULL, 0);
}
