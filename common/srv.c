/*
 * srv.c - the data-path server loop (see srv.h): one io_uring for every
 * connection. Each connection has at most one recv and one send in flight;
 * complete requests are handed to the application in arrival order; the
 * connection is freed only when nothing of it is in flight and no deferred
 * request is pending.
 *
 * TLS, between the socket and the request buffers, is srv_tls.c's.
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
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "srv_int.h"
#include "util.h"

#define SRV_BIND_WAIT_MS 3000

enum op { OP_ACCEPT = 1, OP_RECV, OP_SEND, OP_SIGNAL, OP_APP, OP_TICK };

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

void srv_post_recv(struct srv_conn *c)
{
	struct io_uring_sqe *sqe;

	if (c->tls) { /* ciphertext, after what the session has not read yet */
		memmove(c->crx, c->crx + c->crx_off, c->crx_len - c->crx_off);
		c->crx_len -= c->crx_off;
		c->crx_off = 0;
		if (c->crx_len == CRX_CAP)
			return; /* the session reads it first */
	}
	sqe = get_sqe(c->srv);
	if (c->tls)
		io_uring_prep_recv(sqe, c->fd, c->crx + c->crx_len, CRX_CAP - c->crx_len, 0);
	else
		io_uring_prep_recv(sqe, c->fd, c->rx + c->rx_len, RX_CAP - c->rx_len, 0);
	io_uring_sqe_set_data64(sqe, tag(c, OP_RECV));
	c->recv_posted = true;
	c->inflight++;
}

static void post_send(struct srv_conn *c)
{
	struct io_uring_sqe *sqe = get_sqe(c->srv);

	if (c->tls)
		io_uring_prep_send(sqe, c->fd, c->ctx, c->ctx_len, MSG_NOSIGNAL);
	else
		io_uring_prep_send(sqe, c->fd, c->tx, c->tx_len, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, tag(c, OP_SEND));
	c->send_posted = true;
	c->inflight++;
}

/* Send what is queued (with TLS, what srv_tls_encrypt made of it). */
void srv_kick_send(struct srv_conn *c)
{
	if (c->tls)
		srv_tls_encrypt(c);
	if (!c->send_posted && (c->tls ? c->ctx_len : c->tx_len))
		post_send(c);
}

void srv_conn_close(struct srv_conn *c)
{
	struct srv *s = c->srv;

	if (!c->dead) {
		c->dead = true;
		shutdown(c->fd, SHUT_RDWR); /* completes whatever is still posted */
		s->ops->conn_close(s->app, c->session);
		if (c->prev)
			c->prev->next = c->next;
		else
			s->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
		s->nr_open--;
	}
	if (c->inflight == 0) {
		close(c->fd);
		if (c->tls)
			gnutls_deinit(c->tls);
		free(c->rx);
		free(c->tx);
		free(c->crx);
		free(c->ctx);
		free(c);
	}
}

/* A connection to hang up on closes once nothing is left to send or to answer. */
static void hangup_when_done(struct srv_conn *c)
{
	bool queued = c->tls ? c->ctx_len || c->tx_len : c->tx_len;

	if (!c->dead && c->hangup && !c->send_posted && !queued && !c->deferred)
		srv_conn_close(c);
}

static size_t tx_room(const struct srv_conn *c)
{
	return TX_CAP - c->tx_len - c->tx_reserved;
}

/* Serve every complete request in rx while tx has room for the largest response. */
void srv_conn_serve(struct srv_conn *c)
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
		c->requests++;
		c->active_ms = mono_ms();
	}
	memmove(c->rx, c->rx + off, c->rx_len - off);
	c->rx_len -= off;
	srv_kick_send(c);
	if (!c->hangup && !c->recv_posted && tx_room(c) >= SRV_MSG_MAX)
		srv_post_recv(c);
}

void srv_defer(struct srv_conn *c, size_t max_len)
{
	c->tx_reserved += max_len;
	c->inflight++;
	c->deferred++;
}

void srv_respond(struct srv_conn *c, const void *msg, size_t len, size_t max_len)
{
	c->tx_reserved -= max_len;
	c->inflight--;
	c->deferred--;
	if (c->dead) {
		srv_conn_close(c); /* frees it when this was the last thing in flight */
		return;
	}
	if (len > max_len) { /* an application bug; a cut response would corrupt the stream */
		log_err("a %zu-byte response where %zu were reserved: closing the connection", len,
			max_len);
		srv_conn_close(c);
		return;
	}
	memcpy(c->tx + c->tx_len, msg, len);
	c->tx_len += len;
	/* Without TLS it goes at once when the socket is idle (the client starts
	 * on the first answer while the rest queue behind it, measured faster
	 * than one send for the batch). With TLS it waits for the end of the
	 * batch of completions it came in: encrypted at once, every answer would
	 * be a record of its own (bench-storsrv over TLS: 44-58k -> 72-84k
	 * reads/s). The queue holds the connection like anything in flight. */
	if (!c->tls) {
		srv_kick_send(c);
		hangup_when_done(c);
	} else if (!c->kick_queued) {
		c->kick_queued = true;
		c->inflight++;
		c->kick_next = c->srv->kicks;
		c->srv->kicks = c;
	}
}

/* Send what srv_respond queued during the batch of completions just handled. */
static void flush_kicks(struct srv *s)
{
	while (s->kicks) {
		struct srv_conn *c = s->kicks;

		s->kicks = c->kick_next;
		c->kick_queued = false;
		c->inflight--;
		if (c->dead) {
			srv_conn_close(c); /* frees it when this was the last thing in flight */
			continue;
		}
		srv_kick_send(c);
		hangup_when_done(c);
	}
}

static bool conn_spare(struct srv *s, struct srv_conn *c)
{
	return s->ops->spare ? s->ops->spare(s->app, c->session) : c->requests == 0;
}

/* Close the spare connection idle longest (at least SRV_SPARE_IDLE_MS): true if one was. */
static bool evict_one(struct srv *s)
{
	uint64_t now = mono_ms();
	struct srv_conn *victim = NULL;

	for (struct srv_conn *c = s->conns; c; c = c->next) {
		uint64_t since = c->active_ms ? c->active_ms : c->opened_ms;

		if (now - since >= SRV_SPARE_IDLE_MS && conn_spare(s, c) &&
		    (!victim ||
		     since < (victim->active_ms ? victim->active_ms : victim->opened_ms)))
			victim = c;
	}
	if (!victim)
		return false;
	s->nr_evicted++;
	srv_conn_close(victim);
	return true;
}

static void on_accept(struct srv *s, int fd)
{
	struct srv_conn *c;
	int one = 1;

	if (s->nr_open >= s->max_conns && !evict_one(s)) {
		if (!s->nr_refused++ || !(s->nr_refused & 1023))
			log_warn("%d connections open, the most (--max-conns), none of them spare: "
				 "a new one refused (%llu so far)",
				 s->nr_open, (unsigned long long)s->nr_refused);
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c || !(c->rx = malloc(RX_CAP)) || !(c->tx = malloc(TX_CAP)) ||
	    (s->tls && (!(c->crx = malloc(CRX_CAP)) || !(c->ctx = malloc(CTX_CAP)) ||
			gnutls_init(&c->tls, GNUTLS_SERVER | GNUTLS_NO_TICKETS) < 0)) ||
	    !(c->session = s->ops->conn_open(s->app))) {
		log_err("no memory for a new connection: refused");
		if (c) {
			if (c->tls)
				gnutls_deinit(c->tls);
			free(c->rx);
			free(c->tx);
			free(c->crx);
			free(c->ctx);
			free(c);
		}
		close(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->srv = s;
	c->fd = fd;
	if (c->tls)
		srv_tls_session(c);
	s->nr_conns++;
	c->opened_ms = mono_ms();
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nr_open++;
	srv_post_recv(c);
}

/* Every second: half-open and trickling connections go; a paused accept resumes. */
static void post_tick(struct srv *s)
{
	struct io_uring_sqe *sqe = get_sqe(s);

	s->tick_ts = (struct __kernel_timespec){.tv_sec = 1};
	io_uring_prep_timeout(sqe, &s->tick_ts, 0, 0);
	io_uring_sqe_set_data64(sqe, tag(s, OP_TICK));
}

static void post_accept(struct srv *s);

static void on_tick(struct srv *s)
{
	uint64_t now = mono_ms();

	for (struct srv_conn *c = s->conns, *next; c; c = next) {
		next = c->next;
		if (!c->requests && now - c->opened_ms >= SRV_FIRST_REQUEST_MS) {
			s->nr_timed_out++;
			srv_conn_close(c);
		}
	}
	if (s->accept_paused) {
		s->accept_paused = false;
		post_accept(s);
	}
	post_tick(s);
}

/* accept failed: out of descriptors (or memory) makes room if it can, else waits a tick. */
static void on_accept_error(struct srv *s, int res, bool more)
{
	static uint64_t warned;

	if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
		if (!warned++ || !(warned & 1023))
			log_warn("accepting a connection: %s (%d open)", strerror(-res),
				 s->nr_open);
		if (!evict_one(s) && !more) {
			s->accept_paused = true; /* no spin on a full descriptor table */
			return;
		}
	}
	if (!more)
		post_accept(s);
}

static void on_recv(struct srv_conn *c, int res)
{
	c->recv_posted = false;
	c->inflight--;
	if (res <= 0 || c->dead) {
		/* A peer that vanishes mid-message leaves a partial request: dropped unread. */
		srv_conn_close(c);
		return;
	}
	if (c->tls) {
		c->crx_len += res;
		if (srv_tls_pump(c))
			hangup_when_done(c);
		return;
	}
	c->rx_len += res;
	srv_conn_serve(c);
	hangup_when_done(c);
}

static void on_send(struct srv_conn *c, int res)
{
	c->send_posted = false;
	c->inflight--;
	if (res < 0 || c->dead) {
		srv_conn_close(c);
		return;
	}
	if (c->tls) {
		memmove(c->ctx, c->ctx + res, c->ctx_len - res);
		c->ctx_len -= res;
	} else {
		memmove(c->tx, c->tx + res, c->tx_len - res);
		c->tx_len -= res;
	}
	if (c->hangup) {
		if (res == 0) /* the peer takes nothing more */
			srv_conn_close(c);
		else
			srv_kick_send(c);
		hangup_when_done(c);
		return;
	}
	/* requests may be waiting for room in tx; more may be queued to send */
	if (c->tls)
		srv_tls_pump(c);
	else
		srv_conn_serve(c);
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
	unsigned long nofile;

	s->listen_fd = tcp_listen(addr, SRV_BIND_WAIT_MS, err, sizeof(err));
	if (s->listen_fd < 0) {
		log_err("%s", err);
		return s->listen_fd;
	}
	s->listen_addr = addr;
	/* as many descriptors as this process may have; the connections within them */
	nofile = nofile_raise();
	if (nofile) {
		int room = nofile > 128 ? (int)(nofile - 64) : 64;

		if (!s->max_conns)
			s->max_conns = SRV_MAX_CONNS;
		if (s->max_conns > room) {
			log_warn("--max-conns %d: this process may open %llu files; %d connections "
				 "at most",
				 s->max_conns, (unsigned long long)nofile, room);
			s->max_conns = room;
		}
	} else if (!s->max_conns) {
		s->max_conns = SRV_MAX_CONNS;
	}
	return 0;
}

/* Wait for SIGTERM or SIGINT on @sfd (a signalfd) into @si. */
static void post_signal_read(struct srv *s, int sfd, struct signalfd_siginfo *si)
{
	struct io_uring_sqe *sqe = get_sqe(s);

	io_uring_prep_read(sqe, sfd, si, sizeof(*si), 0);
	io_uring_sqe_set_data64(sqe, tag(s, OP_SIGNAL));
}

int srv_run(struct srv *s, const struct srv_ops *ops, void *app)
{
	struct signalfd_siginfo si;
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
	post_tick(s);
	post_signal_read(s, sfd, &si);
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
				if (cqe->res >= 0) {
					on_accept(s, cqe->res);
					if (!(cqe->flags & IORING_CQE_F_MORE))
						post_accept(s);
				} else {
					on_accept_error(s, cqe->res,
							cqe->flags & IORING_CQE_F_MORE);
				}
				break;
			case OP_TICK:
				on_tick(s);
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
				/* The read is an io-wq worker's, and a stop and continue
				 * (SIGSTOP, a debugger) interrupts it: only SIGTERM or
				 * SIGINT ends the loop, anything else reads again. */
				if (cqe->res != (int)sizeof(si)) {
					post_signal_read(s, sfd, &si);
					break;
				}
				log_info("%s: stopping", strsignal(si.ssi_signo));
				stop = true;
				break;
			}
		}
		io_uring_cq_advance(&s->ring, seen);
		flush_kicks(s);
		if (stop)
			break;
	}
	io_uring_queue_exit(&s->ring);
	close(sfd);
	return 0;
}

int srv_max_conns_arg(const char *arg, int *max)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(arg, &end, 10);
	if (errno || *end || end == arg || n < 1 || n > 1048576) {
		usage_error("--max-conns: '%s' is not a number from 1 to 1048576", arg);
		return -1;
	}
	*max = (int)n;
	return 0;
}
