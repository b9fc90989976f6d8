/*
 * test_srv.c - the common data-path server loop (srv.h) in a child process
 * with a small application: requests of type T_NOW are answered at once,
 * T_LATER later (after an io_uring timeout on the server's own ring, so
 * responses overtake each other), from a client that pipelines them; a
 * malformed header gets -EPROTO and a hang-up, once the slow request before
 * it is answered, while another connection is served on; a PING is answered
 * by the loop itself, ahead of slow requests.
 * The same loop speaking TLS: bodies of every size echoed through records
 * while deferred responses interleave, with a reader slower than the writer;
 * a client of another cluster and one that speaks plain TCP are refused
 * while the others are served on.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pki.h"
#include "srv.h"
#include "test.h"
#include "util.h"
#include "xport.h"

/* types the protocol does not use, so that the loop passes them on */
#define T_NOW	100
#define T_LATER 101
#define T_ECHO	102 /* answered at once with the request's body */
#define T_WHO	103 /* answered with the client's role (srv_conn_peer) in arg */
#define T_ODD	104 /* answered out of step: status arg, and id + 1 if arg is 0 */

struct later {
	struct srv_op op; /* first: the loop hands this pointer back */
	struct srv_conn *conn;
	struct lmp_hdr resp;
	struct __kernel_timespec ts;
};

static struct srv server;

static void *app_open(void *app)
{
	(void)app;
	return malloc(1);
}

static void app_close(void *app, void *session)
{
	(void)app;
	free(session);
}

static void later_done(struct srv_op *op, int res)
{
	struct later *l = (struct later *)op;

	(void)res; /* -ETIME: the timeout expired, as intended */
	srv_respond(l->conn, &l->resp, sizeof(l->resp), sizeof(l->resp));
	free(l);
}

static size_t app_request(void *app, struct srv_conn *c, void *session, const struct lmp_hdr *h,
			  const uint8_t *body, uint8_t *out)
{
	struct lmp_hdr r;
	struct later *l;

	(void)app, (void)session, (void)body;
	lmp_hdr_init(&r, h->type | LMP_RESPONSE, h->id, 0, h->arg);
	if (h->type == T_LATER && (l = calloc(1, sizeof(*l)))) {
		struct io_uring_sqe *sqe;

		l->op.done = later_done;
		l->conn = c;
		l->resp = r;
		/* a larger arg waits longer: later requests answered first */
		l->ts.tv_nsec = (long long)(h->arg % 100) * 1000000;
		srv_defer(c, sizeof(l->resp));
		sqe = srv_sqe(&server, &l->op);
		io_uring_prep_timeout(sqe, &l->ts, 0, 0);
		return 0;
	}
	if (h->type == T_ODD) {
		r.status = (int32_t)h->arg;
		r.id += !h->arg;
		memcpy(out, &r, sizeof(r));
		return sizeof(r);
	}
	if (h->type == T_WHO) {
		r.arg = srv_conn_peer(c) ? srv_conn_peer(c)->role : 0;
		memcpy(out, &r, sizeof(r));
		return sizeof(r);
	}
	if (h->type == T_ECHO) {
		r.len = h->len;
		memcpy(out, &r, sizeof(r));
		memcpy(out + sizeof(r), body, h->len);
		return sizeof(r) + h->len;
	}
	if (h->type != T_NOW)
		r.status = -EOPNOTSUPP;
	memcpy(out, &r, sizeof(r));
	return sizeof(r);
}

static const struct srv_ops app_ops = {app_open, app_close, app_request};

static void on_alarm(int sig)
{
	(void)sig;
}

/* The server in a child; with @ticking, a handled SIGALRM every 2 ms interrupts it. */
static pid_t spawn_server_ticking(char *addr, size_t len, bool ticking)
{
	pid_t pid;

	for (int tries = 0; tries < 20; tries++) {
		snprintf(addr, len, "127.0.0.1:%d", 20000 + rand() % 30000);
		if (srv_listen(&server, addr) == 0)
			break;
	}
	ASSERT(server.listen_fd >= 0, "no free port");
	pid = fork();
	if (pid == 0) {
		if (ticking) {
			struct itimerval it = {{0, 2000}, {0, 2000}};

			sigaction(SIGALRM, &(struct sigaction){.sa_handler = on_alarm}, NULL);
			setitimer(ITIMER_REAL, &it, NULL);
		}
		_exit(srv_run(&server, &app_ops, NULL) ? 1 : 0);
	}
	close(server.listen_fd);
	return pid;
}

static pid_t spawn_server(char *addr, size_t len)
{
	return spawn_server_ticking(addr, len, false);
}

static struct xport *connect_to(const char *addr)
{
	struct xport *x;
	char err[256];

	ASSERT(xport_connect(addr, 2000, 5000, &x, err, sizeof(err)) == 0, "%s", err);
	return x;
}

TEST(deferred_responses_overtake_and_every_request_is_answered_once)
{
	enum { N = 40 };
	char addr[64];
	pid_t pid = spawn_server(addr, sizeof(addr));
	struct xport *x = connect_to(addr);
	struct lmp_hdr req[N], resp;
	int seen[N] = {0}, out_of_order = 0, status;
	uint64_t last = 0;

	/* pipelined: all requests first, then all responses */
	for (int i = 0; i < N; i++) {
		struct iovec v = {&req[i], sizeof(req[i])};

		/* every other one deferred, the earlier ones waiting longest */
		lmp_hdr_init(&req[i], i % 2 ? T_LATER : T_NOW, (uint64_t)i + 1, 0,
			     (uint64_t)(N - i) * 2);
		ASSERT_EQ(xport_sendv(x, &v, 1), 0);
	}
	for (int i = 0; i < N; i++) {
		const char *why;

		ASSERT_EQ(xport_recv(x, &resp, sizeof(resp)), 0);
		ASSERT_EQ(lmp_hdr_check(&resp, &why), 0);
		ASSERT(resp.id >= 1 && resp.id <= N, "an unknown id %llu",
		       (unsigned long long)resp.id);
		ASSERT_EQ(resp.type, req[resp.id - 1].type | LMP_RESPONSE);
		ASSERT_EQ(resp.status, 0);
		seen[resp.id - 1]++;
		out_of_order += resp.id < last;
		last = resp.id;
	}
	for (int i = 0; i < N; i++)
		ASSERT_EQ(seen[i], 1);
	ASSERT(out_of_order > 0, "deferred responses never overtook each other");
	xport_close(x);
	kill(pid, SIGTERM);
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the server did not stop cleanly");
}

TEST(a_malformed_header_is_refused_and_others_are_served)
{
	char addr[64];
	pid_t pid = spawn_server(addr, sizeof(addr));
	struct xport *bad = connect_to(addr), *good = connect_to(addr);
	struct lmp_hdr h, resp, two[2];
	struct iovec v = {&h, sizeof(h)}, v2 = {two, sizeof(two)};
	bool later_answered = false, refused = false;
	int status;

	/* a slow request, then garbage: the request is answered before the hang-up */
	lmp_hdr_init(&two[0], T_LATER, 4, 0, 30);
	lmp_hdr_init(&two[1], T_NOW, 5, 0, 0);
	two[1].magic = 0x12345678;
	ASSERT_EQ(xport_sendv(bad, &v2, 1), 0);
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(xport_recv(bad, &resp, sizeof(resp)), 0);
		if (resp.id == 4) {
			ASSERT_EQ(resp.status, 0);
			later_answered = true;
		} else {
			ASSERT_EQ(resp.id, 5);
			ASSERT_EQ(resp.status, -EPROTO);
			refused = true;
		}
	}
	ASSERT(later_answered && refused);
	ASSERT(xport_recv(bad, &resp, sizeof(resp)) < 0, "the connection stays open");
	/* an unknown type is answered, and a deferred request still completes */
	ASSERT_EQ(xport_call(good, 99, 0, NULL, 0, &resp, NULL, 0), 0);
	ASSERT_EQ(resp.status, -EOPNOTSUPP);
	ASSERT_EQ(xport_call(good, T_LATER, 3, NULL, 0, &resp, NULL, 0), 0);
	ASSERT_EQ(resp.status, 0);
	/* a client that leaves with a deferred request pending does not upset the server */
	lmp_hdr_init(&h, T_LATER, 77, 0, 50);
	ASSERT_EQ(xport_sendv(good, &v, 1), 0);
	xport_close(good);
	xport_close(bad);
	good = connect_to(addr);
	ASSERT_EQ(xport_call(good, T_NOW, 0, NULL, 0, &resp, NULL, 0), 0);
	ASSERT_EQ(resp.status, 0);
	usleep(100000); /* the abandoned deferred response comes due meanwhile */
	ASSERT_EQ(xport_call(good, T_NOW, 0, NULL, 0, &resp, NULL, 0), 0);
	xport_close(good);
	kill(pid, SIGTERM);
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the server did not survive");
}

/*
 * A server stopped and continued (SIGSTOP or ^Z, then SIGCONT; a debugger)
 * while signals it handles keep arriving (a timer's, a profiler's) serves on,
 * and only SIGTERM or SIGINT ends its loop. Those signals push the loop's
 * read of its signalfd to an io-wq worker, whose read the stop interrupts
 * with -EINTR. Was: that ended the loop, with status 0 (found by
 * fuzz_storsrv, whose libFuzzer ticks SIGALRM).
 */
TEST(a_stopped_and_continued_server_serves_on_and_stops_at_sigterm)
{
	char addr[64];
	pid_t pid = spawn_server_ticking(addr, sizeof(addr), true);
	struct xport *x = connect_to(addr);
	struct lmp_hdr resp;
	int status;

	for (int i = 0; i < 50; i++) {
		int ret = xport_call(x, i % 2 ? T_LATER : T_NOW, 5, NULL, 0, &resp, NULL, 0);

		ASSERT(ret == 0, "request %d, after %d stops: %s", i, i, strerror(-ret));
		ASSERT_EQ(resp.status, 0);
		kill(pid, SIGSTOP);
		usleep(2000);
		kill(pid, SIGCONT);
		usleep(10000);
	}
	ASSERT(waitpid(pid, &status, WNOHANG) == 0, "the server stopped");
	xport_close(x);
	kill(pid, SIGTERM);
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the server did not stop cleanly");
}

/*
 * The client's side (xport): an answer that is not the request's (another
 * id) or whose status is not 0 or -errno is -EPROTO, and the connection is
 * not used again: what arrives next could be read out of step. A refusal
 * (a -errno status) leaves it usable.
 */
static void out_of_step(uint64_t arg)
{
	char addr[64];
	pid_t pid = spawn_server(addr, sizeof(addr));
	struct xport *x = connect_to(addr);
	struct lmp_hdr resp;
	int status;

	ASSERT_EQ(xport_call(x, T_ODD, (uint64_t)-ENOENT & 0xffffffff, NULL, 0, &resp, NULL, 0), 0);
	ASSERT_EQ(resp.status, -ENOENT);
	ASSERT_EQ(xport_call(x, T_NOW, 0, NULL, 0, &resp, NULL, 0), 0);
	ASSERT_EQ(xport_call(x, T_ODD, arg, NULL, 0, &resp, NULL, 0), -EPROTO);
	ASSERT_EQ(xport_call(x, T_NOW, 0, NULL, 0, &resp, NULL, 0), -EPROTO);
	xport_close(x);
	x = connect_to(addr); /* the server is fine: a new connection is served */
	ASSERT_EQ(xport_call(x, T_NOW, 0, NULL, 0, &resp, NULL, 0), 0);
	xport_close(x);
	kill(pid, SIGTERM);
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
}

TEST(an_answer_to_another_request_breaks_the_client_connection)
{
	out_of_step(0);
}

TEST(a_status_that_is_not_errno_breaks_the_client_connection)
{
	out_of_step(5);
}

TEST(a_ping_is_answered_by_the_loop_while_a_slow_request_waits)
{
	char addr[64];
	pid_t pid = spawn_server(addr, sizeof(addr));
	struct xport *x = connect_to(addr);
	struct lmp_hdr slow, ping, resp;
	struct iovec v[2] = {{&slow, sizeof(slow)}, {&ping, sizeof(ping)}};
	int status;

	lmp_hdr_init(&slow, T_LATER, 1, 0, 90); /* answered after 90 ms */
	lmp_hdr_init(&ping, LMP_PING, 2, 0, 0);
	ASSERT_EQ(xport_sendv(x, v, 2), 0);
	ASSERT_EQ(xport_recv(x, &resp, sizeof(resp)), 0);
	ASSERT_EQ(resp.id, 2);
	ASSERT_EQ(resp.type, LMP_PING | LMP_RESPONSE);
	ASSERT_EQ(resp.status, 0);
	ASSERT_EQ(resp.len, 0);
	ASSERT_EQ(xport_recv(x, &resp, sizeof(resp)), 0);
	ASSERT_EQ(resp.id, 1);
	xport_close(x);
	kill(pid, SIGTERM);
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the server did not stop cleanly");
}

/* ---- over TLS ---- */

static char pki_dir[600];

/* A cluster of the test's own in the case's directory; the server speaks TLS as its member. */
static void tls_cluster(void)
{
	static const char *const local[] = {"127.0.0.1", NULL};
	struct pki_cert_req srv = {.name = "srv", .role = PKI_MEMSRV, .hosts = local};
	struct pki_identity id;
	char err[1024], prefix[700];

	snprintf(pki_dir, sizeof(pki_dir), "%s/pki", test_tmpdir());
	ASSERT(pki_init_cluster(pki_dir, "t", NULL, err, sizeof(err)) == 0, "%s", err);
	ASSERT(pki_issue(pki_dir, &srv, err, sizeof(err)) == 0, "%s", err);
	snprintf(prefix, sizeof(prefix), "%s/srv", pki_dir);
	ASSERT(pki_identity(prefix, &id, err, sizeof(err)) == 0, "%s", err);
	memset(&server, 0, sizeof(server));
	ASSERT(srv_tls(&server, &id, err, sizeof(err)) == 0, "%s", err);
}

/* This process's connections: TLS as @name of the case's cluster (NULL: no certificate). */
static void client_as(const char *dir, const char *name)
{
	char p[700], err[1024], *ca, *cert = NULL, *key = NULL;

	snprintf(p, sizeof(p), "%s/ca.pem", pki_dir);
	ca = pki_read(p);
	if (name) {
		snprintf(p, sizeof(p), "%s/%s.pem", dir, name);
		cert = pki_read(p);
		snprintf(p, sizeof(p), "%s/%s.key", dir, name);
		key = pki_read(p);
	}
	ASSERT(ca && xport_tls(ca, cert, key, err, sizeof(err)) == 0, "%s", err);
	free(ca);
	free(cert);
	free(key);
}

enum { ECHOES = 48 };
static uint8_t echo_out[ECHOES][LMP_MAX_BODY];

static size_t echo_len(int i)
{
	/* whole records, one byte over them, and sizes in between */
	return i % 3 == 0   ? LMP_MAX_BODY
	       : i % 3 == 1 ? 1 + (size_t)i * 977
			    : ((size_t)i * 16384 + 1) % LMP_MAX_BODY;
}

static void *echo_reader(void *arg)
{
	struct xport *x = arg;
	static uint8_t body[LMP_MAX_BODY];
	long bad = 0;

	usleep(200 * 1000); /* the writer runs ahead: the server must hold back, not pile up */
	for (int i = 0; i < ECHOES + ECHOES / 4; i++) {
		struct lmp_hdr resp;

		if (xport_recv(x, &resp, sizeof(resp)) ||
		    (resp.len && xport_recv(x, body, resp.len))) {
			bad = -1;
			break;
		}
		if (resp.type == (T_ECHO | LMP_RESPONSE))
			bad += resp.len != echo_len((int)resp.id - 1) ||
			       memcmp(body, echo_out[resp.id - 1], resp.len) != 0;
	}
	return (void *)bad;
}

TEST(over_tls_every_body_comes_back_whole_and_strangers_are_refused)
{
	char addr[64], err[1024], other[700];
	pid_t pid;
	struct xport *x;
	pthread_t reader;
	void *bad;
	int status;

	tls_cluster();
	pid = spawn_server(addr, sizeof(addr));
	/* who the client is: a member by its certificate; one of another cluster is no one
	 * (served as a client without a certificate: the application decides what it may) */
	snprintf(other, sizeof(other), "%s/other", test_tmpdir());
	ASSERT(pki_init_cluster(other, "other", NULL, err, sizeof(err)) == 0, "%s", err);
	for (int k = 0; k < 2; k++) {
		struct lmp_hdr resp;

		client_as(k ? pki_dir : other, "admin");
		x = connect_to(addr);
		ASSERT_EQ(xport_call(x, T_WHO, 0, NULL, 0, &resp, NULL, 0), 0);
		ASSERT_EQ(resp.arg, k ? (uint64_t)PKI_ADMIN : 0);
		xport_close(x);
	}
	/* one that speaks plain TCP: no answer, and the others are served on */
	{
		int fd = tcp_connect(addr, 2000, err, sizeof(err));
		struct lmp_hdr req;
		char buf[64];

		ASSERT(fd >= 0, "%s", err);
		lmp_hdr_init(&req, T_NOW, 1, 0, 0);
		ASSERT(write(fd, &req, sizeof(req)) == sizeof(req));
		ASSERT(read(fd, buf, sizeof(buf)) <= 0 || memcmp(buf, "\x15", 1) == 0,
		       "plain TCP was answered in plain");
		close(fd);
	}
	/* a member, without a certificate of its own (as a VMM before its credential) */
	client_as(pki_dir, NULL);
	x = connect_to(addr);
	ASSERT(!strncmp(x->peer, "tls://", 6), "%s", x->peer);
	for (int i = 0; i < ECHOES; i++)
		for (size_t b = 0; b < echo_len(i); b++)
			echo_out[i][b] = (uint8_t)(i * 131 + b * 7);
	ASSERT(pthread_create(&reader, NULL, echo_reader, x) == 0);
	for (int i = 0; i < ECHOES; i++) {
		struct lmp_hdr req;
		struct iovec v[2] = {{&req, sizeof(req)}, {echo_out[i], echo_len(i)}};

		lmp_hdr_init(&req, T_ECHO, (uint64_t)i + 1, (uint32_t)echo_len(i), 0);
		ASSERT_EQ(xport_sendv(x, v, 2), 0);
		if (i % 4 == 0) { /* a deferred one between them */
			struct lmp_hdr later;
			struct iovec lv = {&later, sizeof(later)};

			lmp_hdr_init(&later, T_LATER, 1000 + (uint64_t)i, 0, 5);
			ASSERT_EQ(xport_sendv(x, &lv, 1), 0);
		}
	}
	pthread_join(reader, &bad);
	ASSERT(bad == NULL, "%ld responses were wrong or lost", (long)bad);
	xport_close(x);
	kill(pid, SIGTERM);
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the server did not stop cleanly");
}
