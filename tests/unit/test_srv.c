/*
 * test_srv.c - the common data-path server loop (srv.h) in a child process
 * with a small application: requests of type T_NOW are answered at once,
 * T_LATER later (after an io_uring timeout on the server's own ring, so
 * responses overtake each other), from a client that pipelines them; a
 * malformed header gets -EPROTO and a hang-up while another connection is
 * served on; a PING is answered by the loop itself, ahead of slow requests.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "srv.h"
#include "test.h"
#include "xport.h"

/* types the protocol does not use, so that the loop passes them on */
#define T_NOW	100
#define T_LATER 101

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
	if (h->type != T_NOW)
		r.status = -EOPNOTSUPP;
	memcpy(out, &r, sizeof(r));
	return sizeof(r);
}

static const struct srv_ops app_ops = {app_open, app_close, app_request};

static pid_t spawn_server(char *addr, size_t len)
{
	pid_t pid;

	for (int tries = 0; tries < 20; tries++) {
		snprintf(addr, len, "127.0.0.1:%d", 20000 + rand() % 30000);
		if (srv_listen(&server, addr) == 0)
			break;
	}
	ASSERT(server.listen_fd >= 0, "no free port");
	pid = fork();
	if (pid == 0)
		_exit(srv_run(&server, &app_ops, NULL) ? 1 : 0);
	close(server.listen_fd);
	return pid;
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
	struct lmp_hdr h, resp;
	struct iovec v = {&h, sizeof(h)};
	int status;

	lmp_hdr_init(&h, T_NOW, 5, 0, 0);
	h.magic = 0x12345678;
	ASSERT_EQ(xport_sendv(bad, &v, 1), 0);
	ASSERT_EQ(xport_recv(bad, &resp, sizeof(resp)), 0);
	ASSERT_EQ(resp.status, -EPROTO);
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
