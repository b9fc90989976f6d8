/*
 * srv.c - the data-path server loop (see srv.h): one io_uring for every
 * connection. Each connection has at most one recv and one send in flight;
 * complete requests are handed to the application in arrival order; the
 * connection is freed only when nothing of it is in flight and no deferred
 * request is pending.
 *
 * TLS sits between the socket and the request buffers: io_uring receives
 * ciphertext into crx, the session decrypts it into rx (its pull function
 * reads crx), requests are served from rx as without TLS, and responses
 * queued in tx are encrypted into ctx (its push function appends there)
 * only as far as ctx has room, so that tx's room still holds a slow
 * reader back.
 */
#include <errno.h>
#include <gnutls/gnutls.h>
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
#include "srv.h"
#include "util.h"

#define RX_CAP		 (2 * SRV_MSG_MAX)
#define TX_CAP		 (8 * SRV_MSG_MAX)
#define RING_SIZE	 256
#define TLS_CHUNK	 16384		    /* the most plaintext in one TLS record */
#define TLS_ROOM	 (TLS_CHUNK + 1024) /* a record's ciphertext, with room to spare */
#define CRX_CAP		 (4 * TLS_ROOM)
#define CTX_CAP		 (8 * TLS_ROOM)
#define SRV_BIND_WAIT_MS 3000

enum op { OP_ACCEPT = 1, OP_RECV, OP_SEND, OP_SIGNAL, OP_APP, OP_TICK };

struct srv_conn {
	struct srv *srv;
	struct srv_conn *prev, *next;  /* srv->conns, while open */
	uint64_t opened_ms, active_ms; /* accepted; the last request completed */
	uint64_t requests;
	int fd;
	void *session;
	int inflight; /* posted recv/send plus deferred requests */
	int deferred; /* requests to be answered with srv_respond */
	bool recv_posted, send_posted;
	bool hangup; /* close once every response is sent, the deferred ones too */
	bool dead;   /* closed: waiting for what is in flight */
	size_t rx_len, tx_len;
	size_t tx_reserved; /* promised to deferred requests */
	uint8_t *rx, *tx;
	/* TLS (srv->tls): the session, and ciphertext as received and to send */
	gnutls_session_t tls;
	bool handshaken;
	uint8_t *crx, *ctx;
	size_t crx_off, crx_len, ctx_len;
	struct pki_peer peer; /* the client's certificate (role 0: it presented none) */
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

/* The session's transport: ciphertext from crx, to ctx (never blocking). */
static ssize_t tls_pull(gnutls_transport_ptr_t p, void *data, size_t len)
{
	struct srv_conn *c = p;
	size_t n = c->crx_len - c->crx_off;

	if (!n) {
		gnutls_transport_set_errno(c->tls, EAGAIN);
		return -1;
	}
	n = n < len ? n : len;
	memcpy(data, c->crx + c->crx_off, n);
	c->crx_off += n;
	return (ssize_t)n;
}

static ssize_t tls_push(gnutls_transport_ptr_t p, const void *data, size_t len)
{
	struct srv_conn *c = p;

	if (len > CTX_CAP - c->ctx_len) { /* cannot happen: room is checked before a send */
		gnutls_transport_set_errno(c->tls, ENOBUFS);
		return -1;
	}
	memcpy(c->ctx + c->ctx_len, data, len);
	c->ctx_len += len;
	return (ssize_t)len;
}

/* Send what is queued: with TLS, encrypt tx into ctx as far as ctx has room. */
static void kick_send(struct srv_conn *c)
{
	size_t off = 0; /* encrypted so far: tx is moved down once, after the loop */

	while (c->tls && c->handshaken && off < c->tx_len && CTX_CAP - c->ctx_len >= TLS_ROOM) {
		size_t left = c->tx_len - off;
		ssize_t n = gnutls_record_send(c->tls, c->tx + off,
					       left < TLS_CHUNK ? left : TLS_CHUNK);

		if (n <= 0) {
			log_warn("TLS: cannot encrypt a response: %s", gnutls_strerror((int)n));
			c->hangup = true;
			off = c->tx_len;
			break;
		}
		off += (size_t)n;
	}
	if (off) {
		memmove(c->tx, c->tx + off, c->tx_len - off);
		c->tx_len -= off;
	}
	if (!c->send_posted && (c->tls ? c->ctx_len : c->tx_len))
		post_send(c);
}

static void conn_close(struct srv_conn *c)
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
		conn_close(c);
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
		c->requests++;
		c->active_ms = mono_ms();
	}
	memmove(c->rx, c->rx + off, c->rx_len - off);
	c->rx_len -= off;
	kick_send(c);
	if (!c->hangup && !c->recv_posted && tx_room(c) >= SRV_MSG_MAX)
		post_recv(c);
}

/* The client's certificate, if it presented one: a member of this cluster, or refused. */
static int tls_check_peer(struct srv_conn *c)
{
	const gnutls_datum_t *certs;
	unsigned n = 0;
	char why[512];

	certs = gnutls_certificate_get_peers(c->tls, &n);
	if (!n)
		return 0; /* a VMM: it proves itself with a credential */
	if (pki_verify(c->srv->tls_ca, certs[0].data, certs[0].size, &c->peer, why, sizeof(why))) {
		log_warn("refused a TLS client: %s", why);
		memset(&c->peer, 0, sizeof(c->peer));
		return -1;
	}
	return 0;
}

/*
 * Ciphertext arrived, or room did: finish the handshake, then decrypt into
 * rx and serve, for as long as that makes progress. False if @c was closed
 * (and may be freed).
 */
static bool tls_pump(struct srv_conn *c)
{
	if (!c->handshaken) {
		int r = gnutls_handshake(c->tls);

		if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
			kick_send(c);
			if (!c->recv_posted)
				post_recv(c);
			return true;
		}
		if (r < 0 || tls_check_peer(c)) {
			if (r < 0)
				log_warn("a TLS handshake failed: %s", gnutls_strerror(r));
			c->srv->nr_tls_refused++;
			c->hangup = true; /* after the alert the session may have queued */
			kick_send(c);
			if (c->send_posted)
				return true;
			conn_close(c);
			return false;
		}
		c->handshaken = true;
	}
	for (;;) {
		size_t filled;

		while (c->rx_len < RX_CAP) {
			ssize_t n =
				gnutls_record_recv(c->tls, c->rx + c->rx_len, RX_CAP - c->rx_len);

			if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
				break;
			if (n <= 0) { /* the client closed, or sent what does not decrypt */
				if (n < 0)
					log_warn("TLS: %s: closing the connection",
						 gnutls_strerror((int)n));
				conn_close(c);
				return false;
			}
			c->rx_len += (size_t)n;
		}
		filled = c->rx_len;
		conn_serve(c);
		/* on while serving made room and there is more to decrypt */
		if (c->hangup || c->rx_len == filled ||
		    (c->crx_off == c->crx_len && !gnutls_record_check_pending(c->tls)))
			return true;
	}
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
	kick_send(c);
	hangup_when_done(c);
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
	conn_close(victim);
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
	if (c->tls) {
		gnutls_set_default_priority(c->tls);
		gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, s->tls);
		gnutls_certificate_server_set_request(c->tls, GNUTLS_CERT_REQUEST);
		gnutls_transport_set_ptr(c->tls, c);
		gnutls_transport_set_pull_function(c->tls, tls_pull);
		gnutls_transport_set_push_function(c->tls, tls_push);
	}
	s->nr_conns++;
	c->opened_ms = mono_ms();
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nr_open++;
	post_recv(c);
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
			conn_close(c);
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

int srv_tls(struct srv *s, const struct pki_identity *id, char *err, size_t errlen)
{
	gnutls_certificate_credentials_t cred;
	int r = gnutls_certificate_allocate_credentials(&cred);

	if (r >= 0)
		r = gnutls_certificate_set_x509_key_file(cred, id->cert, id->key,
							 GNUTLS_X509_FMT_PEM);
	if (r >= 0)
		r = gnutls_certificate_set_x509_trust_file(cred, id->ca, GNUTLS_X509_FMT_PEM);
	if (r < 0) {
		snprintf(err, errlen, "TLS with %s and %s: %s", id->cert, id->key,
			 gnutls_strerror(r));
		gnutls_certificate_free_credentials(cred);
		return -1;
	}
	s->tls_ca = pki_read(id->ca);
	if (!s->tls_ca) {
		snprintf(err, errlen, "%s: %s", id->ca, strerror(errno));
		gnutls_certificate_free_credentials(cred);
		return -1;
	}
	s->tls = cred;
	return 0;
}

const struct pki_peer *srv_conn_peer(const struct srv_conn *c)
{
	return c->peer.role ? &c->peer : NULL;
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
	if (c->tls) {
		c->crx_len += res;
		if (tls_pump(c))
			hangup_when_done(c);
		return;
	}
	c->rx_len += res;
	conn_serve(c);
	hangup_when_done(c);
}

static void on_send(struct srv_conn *c, int res)
{
	c->send_posted = false;
	c->inflight--;
	if (res < 0 || c->dead) {
		conn_close(c);
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
			conn_close(c);
		else
			kick_send(c);
		hangup_when_done(c);
		return;
	}
	/* requests may be waiting for room in tx; more may be queued to send */
	if (c->tls)
		tls_pump(c);
	else
		conn_serve(c);
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
