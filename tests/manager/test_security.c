/*
 * test_security.c - a cluster only its members can drive: every attack on
 * the control plane the way an outsider, a monitor or a compromised
 * component would try it, each refused with its reason, against a real
 * cluster (legoctl up) whose servers go on serving everyone else.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster.h"
#include "http.h"
#include "pki.h"
#include "storclient.h"
#include "tcpproxy.h"
#include "util.h"
#include "xport.h"

static char manager[300], agent[300];

/* The manager's URL and the agent's, from the case's cluster.json. */
static void addresses(void)
{
	char p[700];
	json_t *cfg;

	snprintf(p, sizeof(p), "%s/cluster.json", home);
	cfg = json_load_file(p, 0, NULL);
	ASSERT(cfg);
	snprintf(manager, sizeof(manager), "%s", JS(cfg, "manager"));
	snprintf(agent, sizeof(agent), "https://%s", JS(cfg, "agent"));
	json_decref(cfg);
}

/* A call as @id (NULL: plain HTTP) to @base@path: its status, and its answer in @out. */
static int call_as(const struct pki_identity *id, const char *method, const char *base,
		   const char *path, const char *body, char *out, size_t len)
{
	char url[512], err[1024], *ans = NULL;
	int s;

	snprintf(url, sizeof(url), "%s%s", base, path);
	s = http_call_with(id, method, url, body ? "application/json" : NULL, body, &ans, 10000,
			   err, sizeof(err));
	snprintf(out, len, "%s", s < 0 ? err : ans ? ans : "");
	free(ans);
	return s;
}

/* The identity of the case's pki/@name. */
static struct pki_identity member(const char *name)
{
	struct pki_identity id;
	char prefix[700], err[2048];

	snprintf(prefix, sizeof(prefix), "%s/pki/%s", home, name);
	ASSERT(pki_identity(prefix, &id, err, sizeof(err)) == 0, "%s", err);
	return id;
}

#define EXPECT(id, method, base, path, body, status, words)                                        \
	do {                                                                                       \
		char o_[2048];                                                                     \
		int s_ = call_as(id, method, base, path, body, o_, sizeof(o_));                    \
		ASSERT(s_ == (status), "%s %s: %d, not %d: %s", method, path, s_, status, o_);     \
		const char *w_ = (words);                                                          \
		if (w_)                                                                            \
			ASSERT(strstr(o_, w_), "%s %s: no \"%s\" in %s", method, path, w_, o_);    \
	} while (0)

TEST_TIMEOUT(apis_refuse_all_but_members, 180)
{
	struct pki_identity admin, reader, memsrv, nobody, stranger, old;
	char err[2048], other[600], p[700];
	const char *create = "{\"name\":\"evil\",\"payload\":\"hello\",\"memory\":16777216}";

	cluster_home();
	up("256M");
	addresses();
	admin = member("admin");
	reader = member("reader");
	memsrv = member("memsrv-1");

	/* no certificate at all (the server is checked, the caller presents none) */
	nobody = admin;
	nobody.cert[0] = nobody.key[0] = '\0';
	EXPECT(&nobody, "GET", manager, "/v1/vnodes", NULL, 401, "presented none");
	EXPECT(&nobody, "POST", manager, "/v1/vnodes", create, 401, "presented none");
	EXPECT(&nobody, "POST", agent, "/v1/vnodes", create, 401, "presented none");
	EXPECT(&nobody, "POST", manager, "/v1/heartbeat",
	       "{\"role\":\"memsrv\",\"addr\":\"10.9.9.9:1\",\"capacity\":1099511627776}", 401,
	       "presented none");

	/* an admin of another cluster */
	snprintf(other, sizeof(other), "%s/other", test_tmpdir());
	ASSERT(pki_init_cluster(other, "elsewhere", NULL, err, sizeof(err)) == 0, "%s", err);
	snprintf(p, sizeof(p), "%s/admin", other);
	ASSERT(pki_identity(p, &stranger, err, sizeof(err)) == 0, "%s", err);
	snprintf(stranger.ca, sizeof(stranger.ca), "%s", admin.ca);
	EXPECT(&stranger, "POST", manager, "/v1/vnodes", create, 403,
	       "not a member of this cluster");
	EXPECT(&stranger, "GET", agent, "/v1/vnodes", NULL, 403, "signed by 'elsewhere'");

	/* a member whose certificate expired an hour ago */
	snprintf(p, sizeof(p), "%s/pki", home);
	struct pki_cert_req req = {.name = "old-admin",
				   .role = PKI_ADMIN,
				   .not_before = time(NULL) - 7200,
				   .not_after = time(NULL) - 3600};
	ASSERT(pki_issue(p, &req, err, sizeof(err)) == 0, "%s", err);
	old = member("old-admin");
	EXPECT(&old, "POST", manager, "/v1/vnodes", create, 403, "expired");

	/* the read-only credential reads, and changes nothing */
	EXPECT(&reader, "GET", manager, "/v1/vnodes", NULL, 200, "vnodes");
	EXPECT(&reader, "GET", manager, "/metrics", NULL, 200, "lego_component_up");
	EXPECT(&reader, "POST", manager, "/v1/vnodes", create, 403, "is for: admin");
	EXPECT(&reader, "POST", manager, "/v1/tokens", "{\"role\":\"memsrv\"}", 403, "reader");
	EXPECT(&reader, "DELETE", manager, "/v1/vnodes/x", NULL, 403, "reader");
	EXPECT(&reader, "POST", agent, "/v1/vnodes/x/console", "ls", 403, "reader");

	/* a component: heartbeats in its own role only, and gives no orders */
	EXPECT(&memsrv, "POST", manager, "/v1/vnodes", create, 403, "memsrv");
	EXPECT(&memsrv, "POST", manager, "/v1/heartbeat",
	       "{\"role\":\"agent\",\"addr\":\"127.0.0.1:1\",\"capacity\":1}", 403,
	       "cannot register in the role agent");
	EXPECT(&admin, "POST", manager, "/v1/heartbeat",
	       "{\"role\":\"memsrv\",\"addr\":\"127.0.0.1:1\",\"capacity\":1}", 403, "admin");
	/* the admin drives the cluster, but gives the agents no orders: the manager does */
	EXPECT(&admin, "POST", agent, "/v1/vnodes", create, 403, "is for: manager");

	/* plain HTTP to the HTTPS port, and a client that never finishes its handshake:
	 * refused, and the server serves the others on */
	char plain[300];
	snprintf(plain, sizeof(plain), "http://%s", manager + strlen("https://"));
	EXPECT(NULL, "POST", plain, "/v1/vnodes", create, -1, NULL);
	int fd = tcp_connect(manager + strlen("https://"), 2000, err, sizeof(err));
	ASSERT(fd >= 0, "%s", err);
	ASSERT(write(fd, "\x16\x03\x01\x00\x05hello", 10) == 10);
	EXPECT(&admin, "GET", manager, "/v1/components", NULL, 200, "memsrv");
	close(fd);

	/* legoctl says who it is, and why it is refused */
	struct proc_result r;
	legoctl(&r, "--as", "reader", "create", "evil", "--payload", "hello", NULL);
	ASSERT(r.status == 1, "legoctl as reader: %d %s", r.status, r.err);
	ASSERT_CONTAINS(r.err, "'reader' is a reader");
	proc_result_free(&r);
	legoctl(&r, "--as", "nobody", "list", NULL);
	ASSERT(r.status == 1);
	ASSERT_CONTAINS(r.err, "who are you to this cluster?");
	proc_result_free(&r);

	/* nothing was created, and no stranger registered */
	ASSERT_EQ(nr_vnodes(), 0);
	json_t *nodes = legoctl_json("nodes", NULL);
	ASSERT_EQ(json_array_size(json_object_get(nodes, "components")), 4);
	json_decref(nodes);
	down_leaves_nothing(NULL, 0);
}

/* Every file under @dir that others may read is a certificate (public). */
static void no_secret_readable(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	ASSERT(d, "%s", dir);
	while ((e = readdir(d))) {
		char p[1200];
		struct stat st;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (lstat(p, &st))
			continue;
		if (S_ISDIR(st.st_mode)) {
			ASSERT((st.st_mode & 077) == 0, "%s is mode %04o", p, st.st_mode & 07777);
			no_secret_readable(p);
		} else if (S_ISREG(st.st_mode) && (st.st_mode & 044)) {
			const char *dot = strrchr(e->d_name, '.');

			ASSERT(dot && !strcmp(dot, ".pem"), "%s is readable by others (%04o)", p,
			       st.st_mode & 07777);
		}
	}
	closedir(d);
}

/* Does any process's command line or environment hold @secret? */
static bool anywhere_in_proc(const char *secret)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	bool found = false;

	while (d && (e = readdir(d)) && !found) {
		const char *what[] = {"cmdline", "environ"};

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		for (int w = 0; w < 2 && !found; w++) {
			char p[300], buf[65536];
			ssize_t n;
			int fd;

			snprintf(p, sizeof(p), "/proc/%s/%s", e->d_name, what[w]);
			fd = open(p, O_RDONLY);
			if (fd < 0)
				continue;
			n = read(fd, buf, sizeof(buf) - 1);
			close(fd);
			for (ssize_t i = 0; i < n; i++)
				if (!buf[i])
					buf[i] = '\n';
			if (n > 0) {
				buf[n] = '\0';
				found = strstr(buf, secret) != NULL;
			}
		}
	}
	if (d)
		closedir(d);
	return found;
}

TEST_TIMEOUT(joining_takes_a_good_token_once, 180)
{
	struct proc_result r;
	char tok[200], tokfile[600], prefix[700], addr[64], log[600];
	json_t *t, *nodes;

	cluster_home();
	up("256M");
	addresses();

	/* a token for a memory server, made by the admin; a new host's server joins with it */
	t = legoctl_json("token", "create", "--role", "memsrv", NULL);
	snprintf(tok, sizeof(tok), "%s", JS(t, "token"));
	json_decref(t);
	ASSERT(!strncmp(tok, "lj1.", 4), "%s", tok);
	snprintf(tokfile, sizeof(tokfile), "%s/token", test_tmpdir());
	ASSERT(pki_write(tokfile, tok, strlen(tok), 0600) == 0);
	snprintf(log, sizeof(log), "%s/newhost", test_tmpdir());
	ASSERT(mkdir(log, 0700) == 0);
	snprintf(prefix, sizeof(prefix), "%s/memsrv-3", log);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", test_free_port());
	char *argv[] = {(char *)test_path("bin/lego-memsrv"),
			"--listen",
			addr,
			"--capacity",
			"64M",
			"--manager",
			manager,
			"--identity",
			prefix,
			"--join",
			tokfile,
			NULL};
	pid_t pid = proc_spawn(argv);
	ASSERT(wait_health("memsrv", addr, "up", 15000) >= 0, "the new memory server did not join");
	ASSERT(!anywhere_in_proc(tok), "the join token is in a command line or environment");
	nodes = legoctl_json("nodes", NULL);
	ASSERT_EQ(json_array_size(json_object_get(nodes, "components")), 5);
	json_decref(nodes);
	kill(pid, SIGTERM);
	proc_collect(pid, 10, &r);
	proc_result_free(&r);

	/* the same token again, on another host: used already */
	char prefix2[600], addr2[64], pem[700];
	snprintf(prefix2, sizeof(prefix2), "%s/newhost/memsrv-4", test_tmpdir());
	snprintf(addr2, sizeof(addr2), "127.0.0.1:%d", test_free_port());
	argv[2] = addr2;
	argv[8] = prefix2;
	proc_run(argv, 30, &r);
	ASSERT(r.status == 1, "a spent token: %d", r.status);
	ASSERT_CONTAINS(r.err, "was used already");
	snprintf(pem, sizeof(pem), "%s.pem", prefix2);
	ASSERT(access(pem, F_OK), "a certificate was written for a spent token");
	proc_result_free(&r);

	/* one that was never made (the right cluster, a made-up id and secret) */
	snprintf(tok + 4 + 16 + 1, sizeof(tok) - 21, "%s",
		 "0123456789abcdef.0123456789abcdef0123456789abcdef");
	ASSERT(pki_write(tokfile, tok, strlen(tok), 0600) == 0);
	proc_run(argv, 30, &r);
	ASSERT(r.status == 1);
	ASSERT_CONTAINS(r.err, "not one this cluster made");
	proc_result_free(&r);

	/* one for another cluster's CA: the new host does not trust this manager */
	tok[4] = tok[4] == '0' ? '1' : '0';
	ASSERT(pki_write(tokfile, tok, strlen(tok), 0600) == 0);
	proc_run(argv, 30, &r);
	ASSERT(r.status == 1);
	ASSERT_CONTAINS(r.err, "not the one the token names");
	proc_result_free(&r);

	/* one for a storage server, and one that expired */
	t = legoctl_json("token", "create", "--role", "storsrv", NULL);
	ASSERT(pki_write(tokfile, JS(t, "token"), strlen(JS(t, "token")), 0600) == 0);
	json_decref(t);
	proc_run(argv, 30, &r);
	ASSERT(r.status == 1);
	ASSERT_CONTAINS(r.err, "is for a storsrv, not a memsrv");
	proc_result_free(&r);
	t = legoctl_json("token", "create", "--role", "memsrv", "--ttl", "1", NULL);
	ASSERT(pki_write(tokfile, JS(t, "token"), strlen(JS(t, "token")), 0600) == 0);
	json_decref(t);
	sleep(2);
	proc_run(argv, 30, &r);
	ASSERT(r.status == 1);
	ASSERT_CONTAINS(r.err, "expired");
	proc_result_free(&r);

	/* a component must say where it is reached, and be a member to register */
	char *bad[] = {(char *)test_path("bin/lego-memsrv"),
		       "--listen",
		       "0.0.0.0:0",
		       "--manager",
		       manager,
		       "--identity",
		       prefix,
		       NULL};
	proc_run(bad, 30, &r);
	ASSERT(r.status == 1);
	ASSERT_CONTAINS(r.err, "give --advertise");
	proc_result_free(&r);
	char *noid[] = {(char *)test_path("bin/lego-memsrv"),
			"--listen",
			addr2,
			"--manager",
			manager,
			NULL};
	proc_run(noid, 30, &r);
	ASSERT(r.status == 1);
	ASSERT_CONTAINS(r.err, "--manager needs --identity");
	proc_result_free(&r);

	/* a vNode's credentials: in no command line, environment or file others read */
	create_payload("t1", "1", NULL);
	json_t *v = wait_vnode("t1", "running", 0);
	json_decref(v);
	char cmd[800];
	snprintf(cmd, sizeof(cmd),
		 "sqlite3 '%s/manager.db' \"select json_extract(data, "
		 "'$.token') from vnodes where name = 't1'\"",
		 home);
	FILE *f = popen(cmd, "r");
	char vtok[128] = "";
	ASSERT(f && fgets(vtok, sizeof(vtok), f));
	pclose(f);
	vtok[strcspn(vtok, "\n")] = '\0';
	ASSERT(strlen(vtok) == 64, "the vNode's token: '%s'", vtok);
	ASSERT(!anywhere_in_proc(vtok), "a vNode's token is in a command line or environment");
	no_secret_readable(home);
	nodes = legoctl_json("nodes", NULL);
	ASSERT_EQ(json_array_size(json_object_get(nodes, "components")), 5);
	json_decref(nodes);
	down_leaves_nothing(NULL, 0);
}

/* A field of vNode @name's record in the manager's database (its credentials are there). */
static void vnode_field(const char *name, const char *field, char *out, size_t len)
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

/* This process's data-path connections are made as a VMM of @vnode (@name) from @epoch. */
static void as_vmm(const char *name, uint64_t vnode, uint64_t epoch)
{
	struct pki_cert_req req = {.name = name, .role = PKI_VMM, .vnode = vnode, .epoch = epoch};
	char dir[700], cap[720], err[1024], *cert, *key, *ca;

	snprintf(dir, sizeof(dir), "%s/pki", home);
	snprintf(cap, sizeof(cap), "%s/ca.pem", dir);
	ASSERT(pki_issue_pem(dir, &req, &cert, &key, err, sizeof(err)) == 0, "%s", err);
	ca = pki_read(cap);
	ASSERT(ca && xport_tls(ca, cert, key, err, sizeof(err)) == 0, "%s", err);
	free(ca);
	free(cert);
	free(key);
}

/* HELLO for @vnode with @token_hex and @pages at @epoch: the server's status, or -errno. */
static int hello(const char *addr, uint64_t vnode, const char *token_hex, uint64_t pages,
		 uint64_t epoch)
{
	/* (since 0: the client has had this server in its placement all along) */
	struct lmp_hello h = {.vnode = vnode, .nr_pages = pages, .epoch = epoch};
	struct iovec iov = {&h, sizeof(h)};
	struct lmp_hdr resp;
	struct xport *x;
	char err[512];
	int r;

	lmp_token_parse(token_hex, h.token);
	r = xport_connect(addr, 2000, 5000, &x, err, sizeof(err));
	if (r)
		return r;
	r = xport_call(x, LMP_HELLO, 0, &iov, 1, &resp, NULL, 0);
	xport_close(x);
	return r ? r : resp.status;
}

/* Does @buf hold a page the touch payload wrote (words stepping by its constant)? */
static bool holds_a_page(const uint8_t *buf, size_t len)
{
	for (size_t o = 0; o + 24 <= len; o++) {
		uint64_t w[3];

		memcpy(w, buf + o, sizeof(w));
		if (w[1] - w[0] == 0x100000001b3ULL && w[2] - w[1] == 0x100000001b3ULL)
			return true;
	}
	return false;
}

TEST_TIMEOUT(data_path_tls_and_credentials, 300)
{
	char tok[200], tokfile[600], prefix[700], listen[64], proxied[64], cap_path[600];
	char vtok[128], voltok[128], id[32], epoch[32], mem2[128], storsrv[128], err[1024];
	struct proc_result r;
	struct tcpproxy *px;
	json_t *t, *v;
	int cap_fd;

	cluster_home();
	up("256M");
	addresses();

	/* a third memory server, on a new host, reached through a relay that records the wire */
	t = legoctl_json("token", "create", "--role", "memsrv", NULL);
	snprintf(tok, sizeof(tok), "%s", JS(t, "token"));
	json_decref(t);
	snprintf(tokfile, sizeof(tokfile), "%s/token", test_tmpdir());
	ASSERT(pki_write(tokfile, tok, strlen(tok), 0600) == 0);
	snprintf(prefix, sizeof(prefix), "%s/memsrv-3", test_tmpdir());
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", test_free_port());
	px = tcpproxy_start(listen, proxied);
	snprintf(cap_path, sizeof(cap_path), "%s/wire", test_tmpdir());
	cap_fd = open(cap_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ASSERT(cap_fd >= 0);
	tcpproxy_record(px, cap_fd);
	char *argv[] = {(char *)test_path("bin/lego-memsrv"),
			"--listen",
			listen,
			"--advertise",
			proxied,
			"--capacity",
			"256M",
			"--manager",
			manager,
			"--identity",
			prefix,
			"--join",
			tokfile,
			NULL};
	pid_t m3 = proc_spawn(argv);
	ASSERT(wait_health("memsrv", proxied, "up", 15000) >= 0, "memsrv-3 did not join");
	/* memsrv-1 goes: the vNode's slab lands on memsrv-2 and memsrv-3 (through the relay) */
	memsrv_addr(2, mem2, sizeof(mem2));
	char mem1[128];
	memsrv_addr(1, mem1, sizeof(mem1));
	kill_and_wait(pid_of("memsrv-1"));
	ASSERT(wait_health("memsrv", mem1, "down", 8000) >= 0);

	/* a vNode that writes and verifies its memory, with a disk */
	struct proc_result c;
	legoctl(&c, "create", "p1", "--memory", "64M", "--excache", "8M", "--payload", "touch",
		"--args", "op=verify mode=rand size=40M passes=4", "--disk", "16M", NULL);
	ASSERT(c.status == 0, "create: %s%s", c.out, c.err);
	ASSERT_CONTAINS(c.out, proxied);
	proc_result_free(&c);
	for (int s = 0;; s++) {
		json_t *l = legoctl_json("list", NULL);
		bool done = !strcmp(JS(vnode(l, "p1"), "state"), "exited");

		json_decref(l);
		if (done)
			break;
		ASSERT(s < 240, "p1 never finished");
		sleep(1);
	}
	char *con = console_of("p1");
	uint64_t mism = 1;
	ASSERT(report_get(con, 0, "mismatches", &mism) && mism == 0, "p1: %s", con);
	free(con);

	/* what crossed the wire: pages went by, and neither a page nor a token can be read */
	vnode_field("p1", "token", vtok, sizeof(vtok));
	ASSERT(strlen(vtok) == 64);
	tcpproxy_record(px, -1);
	close(cap_fd);
	uint8_t bin[LMP_TOKEN_LEN], *wire;
	struct stat st;
	ASSERT(stat(cap_path, &st) == 0);
	size_t len = (size_t)st.st_size;
	FILE *wf = fopen(cap_path, "r");
	wire = malloc(len + 1);
	ASSERT(wf && wire && fread(wire, 1, len, wf) == len);
	fclose(wf);
	printf("  %zu bytes crossed the relay to memsrv-3\n", len);
	ASSERT(len > (1u << 20), "only %zu bytes went through memsrv-3's relay", len);
	ASSERT(!holds_a_page(wire, len), "a guest page crossed the wire in plain text");
	lmp_token_parse(vtok, bin);
	ASSERT(!memmem(wire, len, bin, sizeof(bin)), "the vNode's token crossed in plain text");
	ASSERT(!memmem(wire, len, vtok, 64));
	/* the detector works: a page as the payload writes it is found */
	uint64_t page[512];
	for (int w = 0; w < 512; w++)
		page[w] = 12345 + w * 0x100000001b3ULL;
	ASSERT(holds_a_page((uint8_t *)page, sizeof(page)));
	free(wire);
	tcpproxy_stop(px);

	/* the memory server: only p1's own VMM, of the newest start */
	vnode_field("p1", "id", id, sizeof(id));
	vnode_field("p1", "epoch", epoch, sizeof(epoch));
	uint64_t vid = strtoull(id, NULL, 10), e = strtoull(epoch, NULL, 10);
	uint64_t pages = 64 * MiB / 4096;
	/* plain TCP to a TLS port: refused, nothing answered */
	ASSERT(hello(mem2, vid, vtok, pages, e) < 0, "plain TCP was answered");
	/* a member that is no VMM, even with the token */
	snprintf(prefix, sizeof(prefix), "%s/pki/admin", home);
	struct pki_identity admin;
	ASSERT(pki_identity(prefix, &admin, err, sizeof(err)) == 0);
	ASSERT(xport_tls_files(&admin, err, sizeof(err)) == 0, "%s", err);
	ASSERT_EQ(hello(mem2, vid, vtok, pages, e), -EACCES);
	/* vNode q's VMM on p1's pages, with p1's token */
	as_vmm("q1", vid + 1000, e);
	ASSERT_EQ(hello(mem2, vid, vtok, pages, e), -EACCES);
	/* p1's own VMM (the control case), then a deposed one: started before one that came */
	as_vmm("p1", vid, e);
	ASSERT_EQ(hello(mem2, vid, vtok, pages, e), 0);
	as_vmm("p1", vid, e + 5);
	ASSERT_EQ(hello(mem2, vid, vtok, pages, e + 5), 0);
	as_vmm("p1", vid, e);
	ASSERT_EQ(hello(mem2, vid, vtok, pages, e + 9), -ESTALE);
	/* a credential signed by another cluster, claiming any epoch: not even a handshake */
	{
		char other[600], ocap[700], *ca, *cert, *key;
		struct pki_cert_req req = {
			.name = "p1", .role = PKI_VMM, .vnode = vid, .epoch = 99};

		snprintf(other, sizeof(other), "%s/other", test_tmpdir());
		ASSERT(pki_init(other, "forger", err, sizeof(err)) == 0, "%s", err);
		ASSERT(pki_issue_pem(other, &req, &cert, &key, err, sizeof(err)) == 0, "%s", err);
		snprintf(ocap, sizeof(ocap), "%s/pki/ca.pem", home);
		ca = pki_read(ocap);
		ASSERT(xport_tls(ca, cert, key, err, sizeof(err)) == 0, "%s", err);
		ASSERT(hello(mem2, vid, vtok, pages, 99) < 0, "a forged credential was accepted");
		free(ca);
		free(cert);
		free(key);
	}

	/* the storage server: p1's volume for p1's VMM only; administration for the manager */
	v = vnode(t = legoctl_json("list", NULL), "p1");
	ASSERT(v);
	json_decref(t);
	{
		char p[700];
		json_t *cfg;

		snprintf(p, sizeof(p), "%s/cluster.json", home);
		cfg = json_load_file(p, 0, NULL);
		snprintf(storsrv, sizeof(storsrv), "%s", JS(cfg, "storsrv"));
		json_decref(cfg);
	}
	vnode_field("p1", "vol_token", voltok, sizeof(voltok));
	uint8_t vt[LMP_TOKEN_LEN], block[4096];
	struct xport *x;
	lmp_token_parse(voltok, vt);
	as_vmm("q1", vid + 1000, e);
	ASSERT(xport_connect(storsrv, 2000, 5000, &x, err, sizeof(err)) == 0, "%s", err);
	ASSERT_EQ(stor_blk(x, LMP_BLK_READ, "p1", vt, 0, block, sizeof(block), 0), -EACCES);
	struct lmp_vol vol = {.size = 1 << 20};
	snprintf(vol.name, sizeof(vol.name), "q1.d7");
	ASSERT_EQ(stor_vol(x, LMP_VOL_CREATE, &vol), -EACCES);
	xport_close(x);
	as_vmm("p1", vid, e);
	ASSERT(xport_connect(storsrv, 2000, 5000, &x, err, sizeof(err)) == 0, "%s", err);
	ASSERT_EQ(stor_blk(x, LMP_BLK_READ, "p1", vt, 0, block, sizeof(block), 0), 0);
	ASSERT_EQ(stor_vol(x, LMP_VOL_CREATE, &vol), -EACCES); /* a VMM administers nothing */
	xport_close(x);
	ASSERT(xport_tls_files(&admin, err, sizeof(err)) == 0, "%s", err);
	ASSERT(xport_connect(storsrv, 2000, 5000, &x, err, sizeof(err)) == 0, "%s", err);
	ASSERT_EQ(stor_vol(x, LMP_VOL_CREATE, &vol), 0);
	ASSERT_EQ(stor_vol(x, LMP_VOL_DELETE, &vol), 0);
	xport_close(x);
	/* lego-storsrv volume list: refused without the manager's (or an admin's) certificate */
	char *list[] = {(char *)test_path("bin/lego-storsrv"), "volume", "list", storsrv, NULL};
	proc_run(list, 30, &r);
	ASSERT(r.status != 0, "a volume list without a certificate: %s", r.out);
	proc_result_free(&r);
	char *list2[] = {(char *)test_path("bin/lego-storsrv"),
			 "volume",
			 "--identity",
			 prefix,
			 "list",
			 storsrv,
			 NULL};
	proc_run(list2, 30, &r);
	ASSERT(r.status == 0, "volume list as admin: %s", r.err);
	ASSERT_CONTAINS(r.out, "p1");
	proc_result_free(&r);

	kill(m3, SIGTERM);
	proc_collect(m3, 10, &r);
	proc_result_free(&r);
	down_leaves_nothing(NULL, 0);
}
