/*
 * srv.h - the server side of the data-path protocol (proto.h) over TCP: one
 * io_uring accepts connections, receives requests, hands each complete and
 * checked request to the application, and sends its responses. lego-memsrv
 * answers at once; lego-storsrv answers later, after its own io_uring
 * operations (file reads and writes) complete on the same ring.
 *
 * Responses carry the request's id, so deferred ones may be sent in any
 * order. Every connection's transmit buffer has a fixed size and is never
 * reallocated while the kernel may read it: a deferred request reserves the
 * room its response will need (srv_defer), and no further request is read
 * from a connection until its buffer has room for the largest response.
 * A malformed header cannot be resynchronised: it is answered with -EPROTO,
 * nothing after it is read, and the connection is closed once that and the
 * answers to the requests before it (deferred ones too) are sent; everyone
 * else is served on.
 *
 * With an identity (srv_tls), every connection is TLS (GnuTLS, on the same
 * ring: ciphertext is received and sent by io_uring, and the session reads
 * and writes it from the connection's buffers): the server presents its
 * member certificate and asks for the client's. A client may present none
 * (a VMM proves itself with a credential inside the stream); one that
 * presents a certificate not of this cluster, or does not speak TLS, is
 * refused, and the others are served on.
 */
#ifndef LEGO_SRV_H
#define LEGO_SRV_H

#include <liburing.h>
#include <stddef.h>
#include <stdint.h>

#include "pki.h"
#include "proto.h"

/* The largest message: a header and the largest body. */
#define SRV_MSG_MAX (sizeof(struct lmp_hdr) + LMP_MAX_BODY)

struct srv_conn;

struct srv_ops {
	/* conn_open - a new connection; returns its session state, NULL to refuse it. */
	void *(*conn_open)(void *app);
	/* conn_close - the connection closed: no request of @session arrives any more.
	 * Deferred requests may still complete (their srv_respond is then dropped). */
	void (*conn_close)(void *app, void *session);
	/*
	 * request - serve @h (checked: magic, version, length) and its @body.
	 * Either write the whole response into @out (room for SRV_MSG_MAX) and
	 * return its length, or call srv_defer and return 0, and later answer
	 * with srv_respond.
	 */
	size_t (*request)(void *app, struct srv_conn *c, void *session, const struct lmp_hdr *h,
			  const uint8_t *body, uint8_t *out);
	/*
	 * spare - whether the connection may be closed to make room for a new
	 * one when the server is at its limit: it holds nothing its client would
	 * miss (no vNode said HELLO on it; a stateless server's). NULL: only
	 * connections that never sent a request are.
	 */
	bool (*spare)(void *app, void *session);
};

/*
 * Connections at once (srv.max_conns, 0: SRV_MAX_CONNS, within the open
 * files this process may have, which srv_listen raises to its hard limit).
 * At the limit, a new connection closes the spare one idle longest (at
 * least SRV_SPARE_IDLE_MS), or is refused. A connection that has sent no
 * complete request within SRV_FIRST_REQUEST_MS (half-open, or a slow
 * trickle of bytes) is closed.
 */
#define SRV_MAX_CONNS 4096
#define SRV_USAGE                                                                                  \
	"  --max-conns N       connections at once (default 4096, within the open files\n"         \
	"                      allowed); at the limit a new one replaces the spare one\n"          \
	"                      idle longest (no vNode on it), or is refused; one that sends\n"     \
	"                      no request within 10 s is closed\n"

/* srv_max_conns_arg - --max-conns @arg into *@max: 0, or -1 after saying why (usage_error). */
int srv_max_conns_arg(const char *arg, int *max);
#define SRV_SPARE_IDLE_MS    1000
#define SRV_FIRST_REQUEST_MS 10000

struct srv {
	const struct srv_ops *ops;
	void *app;
	int listen_fd;
	const char *listen_addr;
	struct io_uring ring;
	uint64_t nr_conns, nr_protocol_errors, nr_tls_refused;
	/* open connections: a list, the limit, and what the limit cost */
	struct srv_conn *conns;
	int nr_open, max_conns;
	uint64_t nr_refused, nr_evicted, nr_timed_out;
	bool accept_paused;		  /* out of descriptors: accept again at the next tick */
	struct __kernel_timespec tick_ts; /* the sweep's period */
	void *tls;			  /* gnutls_certificate_credentials_t; NULL: plain TCP */
	char *tls_ca;		/* the cluster's CA (PEM), to verify clients' certificates */
	struct srv_conn *kicks; /* answered by srv_respond in this batch of completions */
};

/*
 * An operation of the application's on the server's ring: embed it in the
 * application's own structure, prepare the sqe that srv_sqe returns, and
 * @done runs on the server's thread with the cqe's result.
 */
struct srv_op {
	void (*done)(struct srv_op *op, int res);
};

/* srv_listen - bind and listen on "HOST:PORT" (HOST may be empty: all). -errno, logged. */
int srv_listen(struct srv *s, const char *addr);

/* srv_tls - serve TLS only, as the member @id. 0, or -1 with a sentence in @err. */
int srv_tls(struct srv *s, const struct pki_identity *id, char *err, size_t errlen);

/* srv_conn_peer - the member @c's client proved to be (its certificate), or NULL. */
const struct pki_peer *srv_conn_peer(const struct srv_conn *c);

/* srv_run - serve with @ops until SIGTERM or SIGINT. 0 or -errno. */
int srv_run(struct srv *s, const struct srv_ops *ops, void *app);

/* srv_sqe - an sqe on the server's ring for @op (submitted by the loop). */
struct io_uring_sqe *srv_sqe(struct srv *s, struct srv_op *op);

/* srv_defer - the current request of @c will be answered later with at most
 * @max_len bytes (at most SRV_MSG_MAX); the connection is kept until then. */
void srv_defer(struct srv_conn *c, size_t max_len);

/* srv_respond - the response (@len bytes) to a deferred request of @c, which
 * reserved @max_len with srv_defer; dropped if the connection closed meanwhile.
 * Called from an srv_op's done (not from within ops->request). */
void srv_respond(struct srv_conn *c, const void *msg, size_t len, size_t max_len);

#endif
