/*
 * server.c - lego-memsrv's TCP transport: one io_uring for every connection.
 * Each connection has at most one recv and one send in flight; requests are
 * served in order as they complete, responses gathered in a send buffer that
 * is never reallocated while the kernel may read it.
 */
#include <errno.h>
#include <liburing.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "memsrv.h"

#define MSG_MAX	  (sizeof(struct lmp_hdr) + LMP_MAX_BODY)
#define RX_CAP	  (2 * MSG_MAX)
#define TX_CAP	  (8 * MSG_MAX)
#define RING_SIZE 256

enum op { OP_ACCEPT = 1, OP_RECV, OP_SEND, OP_SIGNAL };

struct conn {
	int fd;
	struct memsrv_session ss;
	int inflight;
	bool recv_posted, send_posted;
	bool hangup; /* close once the queued responses are sent */
	bool dead;   /* closing: waiting for what is in flight */
	size_t rx_len, tx_len;
	uint8_t *rx, *tx;
};

static struct io_uring ring;

static uint64_t tag(void *p, enum op op)
{
	return (uint64_t)(uintptr_t)p | op; /* pointers are 8-byte aligned */
}

static struct io_uring_sqe *get_sqe(void)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

	if (!sqe) {
		io_uring_submit(&ring);
		sqe = io_uring_get_sqe(&ring);
	}
	return sqe;
}

static void post_recv(struct conn *c)
{
	struct io_uring_sqe *sqe = get_sqe();

	io_uring_prep_recv(sqe, c->fd, c->rx + c->rx_len, RX_CAP - c->rx_len, 0);
	io_uring_sqe_set_data64(sqe, tag(c, OP_RECV));
	c->recv_posted = true;
	c->inflight++;
}

static void post_send(struct conn *c)
{
	struct io_uring_sqe *sqe = get_sqe();

	io_uring_prep_send(sqe, c->fd, c->tx, c->tx_len, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, tag(c, OP_SEND));
	c->send_posted = true;
	c->inflight++;
}

static void conn_close(struct memsrv *m, struct conn *c)
{
	if (!c->dead) {
		c->dead = true;
		shutdown(c->fd, SHUT_RDWR); /* completes whatever is still posted */
		memsrv_session_end(m, &c->ss);
	}
	if (c->inflight == 0) {
		close(c->fd);
		free(c->rx);
		free(c->tx);
		free(c);
	}
}

/* Serve every complete request in rx while tx has room for the largest response. */
static void conn_serve(struct memsrv *m, struct conn *c)
{
	size_t off = 0;

	while (c->rx_len - off >= sizeof(struct lmp_hdr) && TX_CAP - c->tx_len >= MSG_MAX) {
		struct lmp_hdr h;
		const char *why;

		memcpy(&h, c->rx + off, sizeof(h));
		if (lmp_hdr_check(&h, &why)) {
			/* The stream cannot be resynchronised: say why, then hang up. */
			struct lmp_hdr e;

			log_warn("closing a connection: %s", why);
			lmp_hdr_init(&e, LMP_RESPONSE, h.id, 0, 0);
			e.status = -EPROTO;
			memcpy(c->tx + c->tx_len, &e, sizeof(e));
			c->tx_len += sizeof(e);
			m->nr_errors++;
			c->rx_len = off = 0;
			c->hangup = true; /* after the error is sent */
			break;
		}
		if (c->rx_len - off < sizeof(h) + h.len)
			break;
		c->tx_len +=
			memsrv_handle(m, &c->ss, &h, c->rx + off + sizeof(h), c->tx + c->tx_len);
		off += sizeof(h) + h.len;
	}
	memmove(c->rx, c->rx + off, c->rx_len - off);
	c->rx_len -= off;
	if (c->tx_len && !c->send_posted)
		post_send(c);
	if (!c->hangup && !c->recv_posted && TX_CAP - c->tx_len >= MSG_MAX)
		post_recv(c);
}

static void on_accept(struct memsrv *m, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (!c || !(c->rx = malloc(RX_CAP)) || !(c->tx = malloc(TX_CAP))) {
		log_err("out of memory for a new connection");
		if (c) {
			free(c->rx);
			free(c);
		}
		close(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->fd = fd;
	m->nr_conns++;
	post_recv(c);
}

static void on_recv(struct memsrv *m, struct conn *c, int res)
{
	c->recv_posted = false;
	c->inflight--;
	if (res <= 0 || c->dead) {
		/* A peer that vanishes mid-message leaves a partial request: dropped unread. */
		conn_close(m, c);
		return;
	}
	c->rx_len += res;
	conn_serve(m, c);
	if (c->hangup && !c->send_posted)
		conn_close(m, c);
}

static void on_send(struct memsrv *m, struct conn *c, int res)
{
	c->send_posted = false;
	c->inflight--;
	if (res < 0 || c->dead) {
		conn_close(m, c);
		return;
	}
	memmove(c->tx, c->tx + res, c->tx_len - res);
	c->tx_len -= res;
	if (c->hangup) {
		if (c->tx_len && res > 0)
			post_send(c);
		else
			conn_close(m, c);
		return;
	}
	conn_serve(m, c); /* there may be requests waiting for room in tx */
}

static void post_accept(struct memsrv *m)
{
	struct io_uring_sqe *sqe = get_sqe();

	io_uring_prep_multishot_accept(sqe, m->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, tag(m, OP_ACCEPT));
}

int memsrv_listen(struct memsrv *m, const char *addr)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
	char host[256];
	const char *port = strrchr(addr, ':');
	int one = 1, rc;

	if (!port || (size_t)(port - addr) >= sizeof(host)) {
		log_err("--listen '%s' is not HOST:PORT (e.g. 127.0.0.1:7400)", addr);
		return -EINVAL;
	}
	memcpy(host, addr, port - addr);
	host[port - addr] = '\0';
	rc = getaddrinfo(host[0] ? host : NULL, port + 1, &hints, &res);
	if (rc) {
		log_err("cannot resolve %s: %s", addr, gai_strerror(rc));
		return -EINVAL;
	}
	m->listen_fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(m->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (m->listen_fd < 0 || bind(m->listen_fd, res->ai_addr, res->ai_addrlen) < 0 ||
	    listen(m->listen_fd, 128) < 0) {
		rc = -errno;
		log_err("cannot listen on %s: %s", addr, strerror(errno));
		freeaddrinfo(res);
		return rc;
	}
	freeaddrinfo(res);
	m->listen_addr = addr;
	return 0;
}

int memsrv_run(struct memsrv *m)
{
	struct signalfd_siginfo si;
	struct io_uring_sqe *sqe;
	sigset_t sigs;
	int sfd, ret;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	ret = io_uring_queue_init(RING_SIZE, &ring, 0);
	if (ret < 0) {
		log_err("io_uring_queue_init: %s", strerror(-ret));
		return ret;
	}
	post_accept(m);
	sqe = get_sqe();
	io_uring_prep_read(sqe, sfd, &si, sizeof(si), 0);
	io_uring_sqe_set_data64(sqe, tag(m, OP_SIGNAL));
	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		bool stop = false;

		io_uring_submit_and_wait(&ring, 1);
		io_uring_for_each_cqe(&ring, head, cqe)
		{
			uint64_t d = io_uring_cqe_get_data64(cqe);
			void *p = (void *)(uintptr_t)(d & ~7ULL);

			seen++;
			switch (d & 7) {
			case OP_ACCEPT:
				if (cqe->res >= 0)
					on_accept(m, cqe->res);
				if (!(cqe->flags & IORING_CQE_F_MORE))
					post_accept(m);
				break;
			case OP_RECV:
				on_recv(m, p, cqe->res);
				break;
			case OP_SEND:
				on_send(m, p, cqe->res);
				break;
			case OP_SIGNAL:
				log_info("%s: stopping", strsignal(si.ssi_signo));
				stop = true;
				break;
			}
		}
		io_uring_cq_advance(&ring, seen);
		if (stop)
			break;
	}
	io_uring_queue_exit(&ring);
	close(sfd);
	return 0;
}
