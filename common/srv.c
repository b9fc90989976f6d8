/*
 * srv.c - the data-path server loop (see srv.h): one io_uring for every
 * connection. Each connection has at most one recv and one send in flight;
 * complete requests are handed to the application in arrival order; the
 * connection is freed only when nothing of it is in flight and no deferred
 * request is pending.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "srv.h"
#include "util.h"

#define RX_CAP		 (2 * SRV_MSG_MAX)
#define TX_CAP		 (8 * SRV_MSG_MAX)
#define RING_SIZE	 256
#define SRV_BIND_WAIT_MS 3000

enum op { OP_ACCEPT = 1, OP_RECV, OP_SEND, OP_SIGNAL, OP_APP };

struct srv_conn {
	struct srv *srv;
	int fd;
	void *session;
	int inflight; /* posted recv/send plus deferred requests */
	bool recv_posted, send_posted;
	bool hangup; /* close once the queued responses are sent */
	bool dead;   /* closed: waiting for what is in flight */
	size_t rx_len, tx_len;
	size_t tx_reserved; /* promised to deferred requests */
	uint8_t *rx, *tx;
};

static uint64_t tag(void *p, enum op op)
{
	return (uint64_t)(uintptr_t)p | op; /* pointers are 8-byte aligned */
}

static struct io_uring_sqe *get_sqe(struct srv *s)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);

	if (!sqe) {
		io_uring_submit(&s->ring);
		sqe = io_uring_get_sqe(&s->ring);
	}
	return sqe;
}

struct io_uring_sqe *srv_sqe(struct srv *s, struct srv_op *op)
{
	struct io_uring_sqe *sqe = get_sqe(s);

	if (sqe)
		io_uring_sqe_set_data64(sqe, tag(op, OP_APP));
	return sqe;
}

static void post_recv(struct srv_conn *c)
{
	struct io_uring_sqe *sqe = get_sqe(c->srv);

	io_uring_prep_recv(sqe, c->fd, c->rx + c->rx_len, RX_CAP - c->rx_len, 0);
	io_uring_sqe_set_data64(sqe, tag(c, OP_RECV));
	c->recv_posted = true;
	c->inflight++;
}

static void post_send(struct srv_conn *c)
{
	struct io_uring_sqe *sqe = get_sqe(c->srv);

	io_uring_prep_send(sqe, c->fd, c->tx, c->tx_len, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, tag(c, OP_SEND));
	c->send_posted = true;
	c->inflight++;
}

static void conn_close(struct srv_conn *c)
{
	struct srv *s = c->srv;

	if (!c->dead) {
		c->dead = true;
		shutdown(c->fd, SHUT_RDWR); /* completes whatever is still posted */
		s->ops->conn_close(s->app, c->session);
	}
	if (c->inflight == 0) {
		close(c->fd);
		free(c->rx);
		free(c->tx);
		free(c);
	}
}

static size_t tx_room(const struct srv_conn *c)
{
	return TX_CAP - c->tx_len - c->tx_reserved;
}

/* Serve every complete request in rx while tx has room for the largest response. */
static void conn_serve(struct srv_conn *c)
{
	struct srv *s = c->srv;
	size_t off = 0;

	while (!c->hangup && c->rx_len - off >= sizeof(struct lmp_hdr) &&
	       tx_room(c) >= SRV_MSG_MAX) {
		struct lmp_hdr h;
		const char *why;
		size_t n;

		memcpy(&h, c->rx + off, sizeof(h));
		if (lmp_hdr_check(&h, &why)) {
			/* The stream cannot be resynchronised: say why, then hang up. */
			struct lmp_hdr e;

			log_warn("closing a connection: %s", why);
			lmp_hdr_init(&e, LMP_RESPONSE, h.id, 0, 0);
			e.status = -EPROTO;
			memcpy(c->tx + c->tx_len, &e, sizeof(e));
			c->tx_len += sizeof(e);
			s->nr_protocol_errors++;
			c->rx_len = off = 0;
			c->hangup = true; /* after the error is sent */
			break;
		}
		if (c->rx_len - off < sizeof(h) + h.len)
			break;
		if (h.type == LMP_PING) { /* the loop's own: no application state involved */
			struct lmp_hdr pong;

			lmp_hdr_init(&pong, LMP_PING | LMP_RESPONSE, h.id, 0, 0);
			memcpy(c->tx + c->tx_len, &pong, sizeof(pong));
			n = sizeof(pong);
		} else {
			n = s->ops->request(s->app, c, c->session, &h, c->rx + off + sizeof(h),
					    c->tx + c->tx_len);
		}
		c->tx_len += n;
		off += sizeof(h) + h.len;
	}
	memmove(c->rx, c->rx + off, c->rx_len - off);
	c->rx_len -= off;
	if (c->tx_len && !c->send_posted)
		post_send(c);
	if (!c->hangup && !c->recv_posted && tx_room(c) >= SRV_MSG_MAX)
		post_recv(c);
}

void srv_defer(struct srv_conn *c, size_t max_len)
{
	c->tx_reserved += max_len;
	c->inflight++;
}

void srv_respond(struct srv_conn *c, const void *msg, size_t len, size_t max_len)
{
	c->tx_reserved -= max_len;
	c->inflight--;
	if (c->dead) {
		conn_close(c); /* frees it when this was the last thing in flight */
		return;
	}
	if (len > max_len) { /* an application bug; a cut response would corrupt the stream */
		log_err("a %zu-byte response where %zu were reserved: closing the connection", len,
			max_len);
		conn_close(c);
		return;
	}
	memcpy(c->tx + c->tx_len, msg, len);
	c->tx_len += len;
	if (!c->send_posted)
		post_send(c);
}

static void on_accept(struct srv *s, int fd)
{
	struct srv_conn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (!c || !(c->rx = malloc(RX_CAP)) || !(c->tx = malloc(TX_CAP)) ||
	    !(c->session = s->ops->conn_open(s->app))) {
		log_err("no memory for a new connection: refused");
		if (c) {
			free(c->rx);
			free(c->tx);
			free(c);
		}
		close(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->srv = s;
	c->fd = fd;
	s->nr_conns++;
	post_recv(c);
}

static void on_recv(struct srv_conn *c, int res)
{
	c->recv_posted = false;
	c->inflight--;
	if (res <= 0 || c->dead) {
		/* A peer that vanishes mid-message leaves a partial request: dropped unread. */
		conn_close(c);
		return;
	}
	c->rx_len += res;
	conn_serve(c);
	if (c->hangup && !c->send_posted)
		conn_close(c);
}

static void on_send(struct srv_conn *c, int res)
{
	c->send_posted = false;
	c->inflight--;
	if (res < 0 || c->dead) {
		conn_close(c);
		return;
	}
	memmove(c->tx, c->tx + res, c->tx_len - res);
	c->tx_len -= res;
	if (c->hangup) {
		if (c->tx_len && res > 0)
			post_send(c);
		else
			conn_close(c);
		return;
	}
	conn_serve(c); /* requests may be waiting for room in tx; more may be queued to send */
}

static void post_accept(struct srv *s)
{
	struct io_uring_sqe *sqe = get_sqe(s);

	io_uring_prep_multishot_accept(sqe, s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, tag(s, OP_ACCEPT));
}

int srv_listen(struct srv *s, const char *addr)
{
	char err[256];

	s->listen_fd = tcp_listen(addr, SRV_BIND_WAIT_MS, err, sizeof(err));
	if (s->listen_fd < 0) {
		log_err("%s", err);
		return s->listen_fd;
	}
	s->listen_addr = addr;
	return 0;
}

int srv_run(struct srv *s, const struct srv_ops *ops, void *app)
{
	struct signalfd_siginfo si;
	struct io_uring_sqe *sqe;
	sigset_t sigs;
	int sfd, ret;

	s->ops = ops;
	s->app = app;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	ret = io_uring_queue_init(RING_SIZE, &s->ring, 0);
	if (ret < 0) {
		log_err("io_uring_queue_init: %s", strerror(-ret));
		close(sfd);
		return ret;
	}
	post_accept(s);
	sqe = get_sqe(s);
	io_uring_prep_read(sqe, sfd, &si, sizeof(si), 0);
	io_uring_sqe_set_data64(sqe, tag(s, OP_SIGNAL));
	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		bool stop = false;

		io_uring_submit_and_wait(&s->ring, 1);
		io_uring_for_each_cqe(&s->ring, head, cqe)
		{
			uint64_t d = io_uring_cqe_get_data64(cqe);
			void *p = (void *)(uintptr_t)(d & ~7ULL);

			seen++;
			switch (d & 7) {
			case OP_ACCEPT:
				if (cqe->res >= 0)
					on_accept(s, cqe->res);
				if (!(cqe->flags & IORING_CQE_F_MORE))
					post_accept(s);
				break;
			case OP_RECV:
				on_recv(p, cqe->res);
				break;
			case OP_SEND:
				on_send(p, cqe->res);
				break;
			case OP_APP:
				((struct srv_op *)p)->done(p, cqe->res);
				break;
			case OP_SIGNAL:
				log_info("%s: stopping", strsignal(si.ssi_signo));
				stop = true;
				break;
			}
		}
		io_uring_cq_advance(&s->ring, seen);
		if (stop)
			break;
	}
	io_uring_queue_exit(&s->ring);
	close(sfd);
	return 0;
}
