/*
 * test_security.c - a cluster only its members can drive: every attack on
 * the control plane the way an outsider, a monitor or a compromised
 * component would try it, each refused with its reason, against a real
 * cluster (legoctl up) whose servers go on serving everyone else; joining
 * with tokens; no secret in a command line, an environment or a file
 * others can read. The data path's own checks are in test_datapath.c.
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
#include "util.h"
#include "xport.h"

static char manager[300], agent[300];

/* The manager's URL and the agent's, from the case's cluster.json. */
static void addresses(void)
{
	char a[256];

	cluster_cfg("manager", manager, sizeof(manager));
	cluster_cfg("agent", a, sizeof(a));
	snprintf(agent, sizeof(agent), "https://%s", a);
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
	admin = member_identity("admin");
	reader = member_identity("reader");
	memsrv = member_identity("memsrv-1");

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
	old = member_identity("old-admin");
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

	/* a memory server copies a vNode's pages for the manager's credential only */
	{
		json_t *nodes = legoctl_json("nodes", NULL), *c;
		struct pki_identity *who[] = {&admin, &memsrv};
		struct lmp_clone clone = {.src = 1, .dst = 2, .dst_epoch = 1};
		struct iovec iov = {&clone, sizeof(clone)};
		char addr[128] = "";
		size_t i;

		json_array_foreach(json_object_get(nodes, "components"), i, c)
		{
			if (!strcmp(JS(c, "role"), "memsrv"))
				snprintf(addr, sizeof(addr), "%s", JS(c, "addr"));
		}
		json_decref(nodes);
		for (size_t k = 0; k < sizeof(who) / sizeof(who[0]); k++) {
			struct lmp_hdr resp;
			struct xport *x;

			ASSERT(xport_tls_files(who[k], err, sizeof(err)) == 0, "%s", err);
			ASSERT(xport_connect(addr, 2000, 5000, &x, err, sizeof(err)) == 0, "%s",
			       err);
			ASSERT_EQ(xport_call(x, LMP_CLONE, 0, &iov, 1, &resp, NULL, 0), 0);
			ASSERT_EQ(resp.status, -EPERM);
			xport_close(x);
		}
	}

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
	char tokfile[600], prefix[700], addr[64], dir[600], *tok, *argv[16];
	json_t *t, *nodes;

	cluster_home();
	up("256M");
	addresses();

	/* a token for a memory server, made by the admin; a new host's server joins with it */
	snprintf(tokfile, sizeof(tokfile), "%s/token", test_tmpdir());
	join_token_file("memsrv", tokfile);
	tok = pki_read(tokfile);
	ASSERT(tok);
	snprintf(dir, sizeof(dir), "%s/newhost", test_tmpdir());
	ASSERT(mkdir(dir, 0700) == 0);
	snprintf(prefix, sizeof(prefix), "%s/memsrv-3", dir);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", test_free_port());
	memsrv_join_argv(argv, addr, NULL, prefix, tokfile);
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
	char prefix2[700], addr2[64], pem[720];
	snprintf(prefix2, sizeof(prefix2), "%s/memsrv-4", dir);
	snprintf(addr2, sizeof(addr2), "127.0.0.1:%d", test_free_port());
	memsrv_join_argv(argv, addr2, NULL, prefix2, tokfile);
	proc_run(argv, 30, &r);
	ASSERT(r.status == 1, "a spent token: %d", r.status);
	ASSERT_CONTAINS(r.err, "was used already");
	snprintf(pem, sizeof(pem), "%s.pem", prefix2);
	ASSERT(access(pem, F_OK), "a certificate was written for a spent token");
	proc_result_free(&r);

	/* one that was never made (the right cluster, a made-up id and secret) */
	ASSERT(strlen(tok) == 4 + 16 + 1 + 16 + 1 + 32, "%s", tok);
	memcpy(tok + 4 + 16 + 1, "0123456789abcdef.0123456789abcdef0123456789abcdef", 49);
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
	join_token_file("storsrv", tokfile);
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
	json_decref(wait_vnode("t1", "running", 0));
	char vtok[128];
	vnode_field("t1", "token", vtok, sizeof(vtok));
	ASSERT(strlen(vtok) == 64, "the vNode's token: '%s'", vtok);
	ASSERT(!anywhere_in_proc(vtok), "a vNode's token is in a command line or environment");
	no_secret_readable(home);
	nodes = legoctl_json("nodes", NULL);
	ASSERT_EQ(json_array_size(json_object_get(nodes, "components")), 5);
	json_decref(nodes);
	free(tok);
	down_leaves_nothing(NULL, 0);
}
