/*
 * xport.h - the client side of a data-path connection, behind an ops table
 * so that an RDMA transport can stand beside TCP without its users changing.
 * Addresses are "HOST:PORT" or "tcp://HOST:PORT".
 */
#ifndef LEGO_XPORT_H
#define LEGO_XPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "proto.h"

struct xport;

/* Most iovecs in one send: a header plus LMP_MAX_PAGES (index, page) pairs. */
#define XPORT_MAX_IOV (2 * LMP_MAX_PAGES + 2)

struct xport_ops {
	/* sendv - send all of @iov (at most XPORT_MAX_IOV); 0 or -errno (the connection is
	 * then unusable). */
	int (*sendv)(struct xport *x, const struct iovec *iov, int iovcnt);
	/* recv - receive exactly @len bytes; 0, -ECONNRESET when the peer closed, or -errno. */
	int (*recv)(struct xport *x, void *buf, size_t len);
	/* recv_some - receive what has arrived, 1 to @len bytes (waits for the first);
	 * the count, -ECONNRESET when the peer closed, or -errno. */
	long (*recv_some)(struct xport *x, void *buf, size_t len);
	void (*close)(struct xport *x);
	/* wait - until a message can be received (1), @timeout_ms passed (0), or -errno. */
	int (*wait)(struct xport *x, int timeout_ms);
	/* shutdown - make every blocked and later send and receive fail at once
	 * (safe from another thread while one is blocked in recv). */
	void (*shutdown)(struct xport *x);
	/* read_pages - one-sided reads (RDMA; NULL for a transport without them): page i
	 * of @n (at most LMP_MAX_PAGES) from the peer's address @raddr[i] under its memory
	 * key @rkey[i], into @buf. 0 or -errno (-EKEYREVOKED: the peer revoked the key). */
	int (*read_pages)(struct xport *x, const uint64_t *raddr, const uint32_t *rkey, int n,
			  void *buf);
};

struct xport {
	const struct xport_ops *ops;
	char peer[128]; /* "tcp://127.0.0.1:7400", for messages */
	uint64_t next_id;
	/* The -errno that broke the request/response stream (a failed send or
	 * receive, a malformed or late answer): xport_send and
	 * xport_wait_response then fail with it at once, since what arrives next
	 * could be read out of step, as another request's answer. */
	int broken;
};

/*
 * xport_tls - every later connection of this process is TLS: the server
 * must hold a certificate of the cluster whose CA is @ca_pem for the host
 * it is reached at; @cert_pem and @key_pem (may be NULL: none) are this
 * process's own certificate, all PEM text. 0, or -1 with a sentence in
 * @err. Connections made before keep what they had.
 */
int xport_tls(const char *ca_pem, const char *cert_pem, const char *key_pem, char *err,
	      size_t errlen);

/* xport_tls_files - xport_tls with the member identity @id's files. */
struct pki_identity;
int xport_tls_files(const struct pki_identity *id, char *err, size_t errlen);

/* xport_tls_on - whether xport_tls was called. */
bool xport_tls_on(void);

/*
 * xport_connect - connect to @addr within @timeout_ms; replies must then
 * come within @io_timeout_ms (0: wait forever). On error returns -errno
 * and writes a sentence for a person into @err.
 */
int xport_connect(const char *addr, int timeout_ms, int io_timeout_ms, struct xport **out,
		  char *err, size_t errlen);

/*
 * xport_connect_rdma - connect over RDMA to "rdma://HOST:PORT" (rdma.h),
 * continuing the session that gave @ticket (RDMA_TICKET_LEN bytes: LMP_RDMA_TICKET
 * on a connection that authenticated). Timeouts and errors as xport_connect's.
 */
int xport_connect_rdma(const char *addr, const uint8_t *ticket, int timeout_ms, int io_timeout_ms,
		       struct xport **out, char *err, size_t errlen);

static inline int xport_sendv(struct xport *x, const struct iovec *iov, int iovcnt)
{
	return x->ops->sendv(x, iov, iovcnt);
}

static inline int xport_recv(struct xport *x, void *buf, size_t len)
{
	return x->ops->recv(x, buf, len);
}

static inline long xport_recv_some(struct xport *x, void *buf, size_t len)
{
	return x->ops->recv_some(x, buf, len);
}

static inline int xport_wait(struct xport *x, int timeout_ms)
{
	return x->ops->wait(x, timeout_ms);
}

static inline void xport_shutdown(struct xport *x)
{
	x->ops->shutdown(x);
}

static inline void xport_close(struct xport *x)
{
	if (x)
		x->ops->close(x);
}

/*
 * xport_call - one request/response exchange: send a request of @type with
 * @arg and the body in @iov, then read the response header into @resp and
 * its body into @body (at most @body_len bytes; a longer body is an error).
 * Returns 0 when the exchange worked (the server's verdict is resp->status,
 * 0 or -errno), or -errno when the connection failed or the response is
 * malformed (-EPROTO: not this request's, too long, a status not -errno).
 */
int xport_call(struct xport *x, uint16_t type, uint64_t arg, const struct iovec *iov, int iovcnt,
	       struct lmp_hdr *resp, void *body, size_t body_len);

/*
 * xport_send / xport_wait_response - xport_call in two halves, so that one
 * thread can have a request in flight on several connections at once: send
 * (the request's id in *@id), then later wait for its response.
 */
int xport_send(struct xport *x, uint16_t type, uint64_t arg, const struct iovec *iov, int iovcnt,
	       uint64_t *id);
int xport_wait_response(struct xport *x, uint16_t type, uint64_t id, struct lmp_hdr *resp,
			void *body, size_t body_len);

#endif
