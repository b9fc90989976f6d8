/* xport.c - TCP transport for data-path clients, and request/response on top of it. */
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pki.h"
#include "util.h"
#include "xport.h"

struct tcp_xport {
	struct xport x;
	int fd;
};

static int tcp_sendv(struct xport *x, const struct iovec *iov_in, int iovcnt)
{
	struct tcp_xport *t = container_of(x, struct tcp_xport, x);
	struct iovec iov[XPORT_MAX_IOV];
	struct msghdr msg = {.msg_iov = iov};

	if (iovcnt > XPORT_MAX_IOV)
		return -EINVAL;
	memcpy(iov, iov_in, iovcnt * sizeof(*iov));
	msg.msg_iovlen = iovcnt;
	while (msg.msg_iovlen) {
		ssize_t n = sendmsg(t->fd, &msg, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		}
		while (n > 0 && msg.msg_iovlen) {
			if ((size_t)n >= msg.msg_iov->iov_len) {
				n -= msg.msg_iov->iov_len;
				msg.msg_iov++;
				msg.msg_iovlen--;
			} else {
				msg.msg_iov->iov_base = (char *)msg.msg_iov->iov_base + n;
				msg.msg_iov->iov_len -= n;
				n = 0;
			}
		}
	}
	return 0;
}

static int tcp_recv(struct xport *x, void *buf, size_t len)
{
	struct tcp_xport *t = container_of(x, struct tcp_xport, x);
	size_t off = 0;

	while (off < len) {
		ssize_t n = recv(t->fd, (char *)buf + off, len - off, MSG_WAITALL);

		if (n == 0)
			return -ECONNRESET;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		}
		off += n;
	}
	return 0;
}

static void tcp_close(struct xport *x)
{
	struct tcp_xport *t = container_of(x, struct tcp_xport, x);

	close(t->fd);
	free(t);
}

static long tcp_recv_some(struct xport *x, void *buf, size_t len)
{
	struct tcp_xport *t = container_of(x, struct tcp_xport, x);

	for (;;) {
		ssize_t n = recv(t->fd, buf, len, 0);

		if (n > 0)
			return n;
		if (n == 0)
			return -ECONNRESET;
		if (errno != EINTR)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
	}
}

/* Until @fd is readable (1), @timeout_ms passed (0), or -errno. */
static int wait_readable(int fd, int timeout_ms)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	int n;

	do
		n = poll(&pfd, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n > 0;
}

static int tcp_wait(struct xport *x, int timeout_ms)
{
	return wait_readable(container_of(x, struct tcp_xport, x)->fd, timeout_ms);
}

static void tcp_shutdown(struct xport *x)
{
	shutdown(container_of(x, struct tcp_xport, x)->fd, SHUT_RDWR);
}

/* ---- TLS over the same socket (GnuTLS, blocking, with the socket's timeouts) ---- */

struct tls_xport {
	struct xport x;
	int fd;
	gnutls_session_t s;
};

static gnutls_certificate_credentials_t tls_cred;

static int tls_errno(ssize_t r)
{
	switch (r) {
	case GNUTLS_E_AGAIN: /* the socket's timeout */
		return -ETIMEDOUT;
	case GNUTLS_E_PREMATURE_TERMINATION:
	case GNUTLS_E_PUSH_ERROR:
	case GNUTLS_E_PULL_ERROR:
	case 0:
		return -ECONNRESET;
	default:
		return -EPROTO;
	}
}

static int tls_sendv(struct xport *x, const struct iovec *iov, int iovcnt)
{
	struct tls_xport *t = container_of(x, struct tls_xport, x);
	ssize_t r;

	if (iovcnt > XPORT_MAX_IOV)
		return -EINVAL;
	/* one flight of records for the whole message, as sendmsg would */
	gnutls_record_cork(t->s);
	for (int i = 0; i < iovcnt; i++)
		if (iov[i].iov_len &&
		    (r = gnutls_record_send(t->s, iov[i].iov_base, iov[i].iov_len)) < 0)
			return tls_errno(r);
	do
		r = gnutls_record_uncork(t->s, GNUTLS_RECORD_WAIT);
	while (r == GNUTLS_E_INTERRUPTED);
	return r < 0 ? tls_errno(r) : 0;
}

static long tls_recv_some(struct xport *x, void *buf, size_t len)
{
	struct tls_xport *t = container_of(x, struct tls_xport, x);
	ssize_t r;

	do
		r = gnutls_record_recv(t->s, buf, len);
	while (r == GNUTLS_E_INTERRUPTED);
	return r > 0 ? (long)r : tls_errno(r);
}

static int tls_recv(struct xport *x, void *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		long n = tls_recv_some(x, (char *)buf + off, len - off);

		if (n < 0)
			return (int)n;
		off += (size_t)n;
	}
	return 0;
}

static void tls_close(struct xport *x)
{
	struct tls_xport *t = container_of(x, struct tls_xport, x);

	gnutls_deinit(t->s);
	close(t->fd);
	free(t);
}

static int tls_wait(struct xport *x, int timeout_ms)
{
	struct tls_xport *t = container_of(x, struct tls_xport, x);

	if (gnutls_record_check_pending(t->s))
		return 1; /* decrypted already */
	return wait_readable(t->fd, timeout_ms);
}

static void tls_shutdown(struct xport *x)
{
	shutdown(container_of(x, struct tls_xport, x)->fd, SHUT_RDWR);
}

static const struct xport_ops tls_ops = {
	.sendv = tls_sendv,
	.recv = tls_recv,
	.close = tls_close,
	.recv_some = tls_recv_some,
	.wait = tls_wait,
	.shutdown = tls_shutdown,
};

int xport_tls(const char *ca_pem, const char *cert_pem, const char *key_pem, char *err,
	      size_t errlen)
{
	gnutls_datum_t ca = {(unsigned char *)ca_pem, (unsigned)strlen(ca_pem)};
	gnutls_certificate_credentials_t cred;
	int r = gnutls_certificate_allocate_credentials(&cred);

	if (r >= 0) {
		r = gnutls_certificate_set_x509_trust_mem(cred, &ca, GNUTLS_X509_FMT_PEM);
		if (r == 0)
			r = GNUTLS_E_NO_CERTIFICATE_FOUND;
	}
	if (r >= 0 && cert_pem && key_pem) {
		gnutls_datum_t c = {(unsigned char *)cert_pem, (unsigned)strlen(cert_pem)};
		gnutls_datum_t k = {(unsigned char *)key_pem, (unsigned)strlen(key_pem)};

		r = gnutls_certificate_set_x509_key_mem(cred, &c, &k, GNUTLS_X509_FMT_PEM);
	}
	if (r < 0) {
		snprintf(err, errlen, "TLS: the cluster's CA%s: %s",
			 cert_pem ? " or our certificate" : "", gnutls_strerror(r));
		gnutls_certificate_free_credentials(cred);
		return -1;
	}
	/* the credentials before stay (kept, not lost): connections made with them
	 * may still be open */
	if (tls_cred) {
		static gnutls_certificate_credentials_t *retired;
		static size_t nr_retired;
		gnutls_certificate_credentials_t *more =
			realloc(retired, (nr_retired + 1) * sizeof(*retired));

		if (more) {
			retired = more;
			retired[nr_retired++] = tls_cred;
		}
	}
	tls_cred = cred;
	return 0;
}

int xport_tls_files(const struct pki_identity *id, char *err, size_t errlen)
{
	char *ca = pki_read(id->ca), *cert = pki_read(id->cert), *key = pki_read(id->key);
	int r = -1;

	if (!ca || !cert || !key)
		snprintf(err, errlen, "%s: %s",
			 !ca	 ? id->ca
			 : !cert ? id->cert
				 : id->key,
			 strerror(errno));
	else
		r = xport_tls(ca, cert, key, err, errlen);
	if (key)
		explicit_bzero(key, strlen(key));
	free(ca);
	free(cert);
	free(key);
	return r;
}

bool xport_tls_on(void)
{
	return tls_cred != NULL;
}

/* TLS on the connected @fd to @host: the handshake, the server checked. */
static int tls_start(int fd, const char *host, const char *addr, int timeout_ms, struct xport **out,
		     char *err, size_t errlen)
{
	struct tls_xport *t = calloc(1, sizeof(*t));
	int r;

	if (!t || gnutls_init(&t->s, GNUTLS_CLIENT) < 0) {
		free(t);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	gnutls_set_default_priority(t->s);
	gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, tls_cred);
	gnutls_session_set_verify_cert(t->s, host, 0); /* the cluster's, for this host */
	gnutls_transport_set_int(t->s, fd);
	gnutls_handshake_set_timeout(t->s, (unsigned)timeout_ms);
	do
		r = gnutls_handshake(t->s);
	while (r == GNUTLS_E_INTERRUPTED || r == GNUTLS_E_AGAIN);
	if (r < 0) {
		unsigned status = gnutls_session_get_verify_cert_status(t->s);
		gnutls_datum_t why = {0};

		if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR && status)
			gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why,
								     0);
		snprintf(err, errlen, "TLS with %s failed: %s%s%s", addr, gnutls_strerror(r),
			 why.data ? ": " : " (does the server speak TLS?)",
			 why.data ? (char *)why.data : "");
		gnutls_free(why.data);
		gnutls_deinit(t->s);
		free(t);
		return -ECONNREFUSED;
	}
	t->x.ops = &tls_ops;
	t->fd = fd;
	snprintf(t->x.peer, sizeof(t->x.peer), "tls://%s", addr);
	*out = &t->x;
	return 0;
}

static const struct xport_ops tcp_ops = {
	.sendv = tcp_sendv,
	.recv = tcp_recv,
	.close = tcp_close,
	.recv_some = tcp_recv_some,
	.wait = tcp_wait,
	.shutdown = tcp_shutdown,
};

static int tcp_connect_one(const struct addrinfo *ai, int timeout_ms)
{
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct pollfd pfd = {.fd = fd, .events = POLLOUT};
	int err = 0;
	socklen_t elen = sizeof(err);

	if (fd < 0)
		return -errno;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS)
		goto fail;
	if (poll(&pfd, 1, timeout_ms) != 1) {
		errno = ETIMEDOUT;
		goto fail;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || err) {
		errno = err ? err : errno;
		goto fail;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return fd;
fail:
	err = -errno;
	close(fd);
	return err;
}

int xport_connect(const char *addr, int timeout_ms, int io_timeout_ms, struct xport **out,
		  char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *ai;
	char host[256];
	const char *port, *a = addr;
	struct tcp_xport *t;
	int fd = -EHOSTUNREACH, one = 1, rc;

	if (strncmp(a, "tcp://", 6) == 0 || strncmp(a, "tls://", 6) == 0)
		a += 6;
	port = strrchr(a, ':');
	if (!port || port == a || (size_t)(port - a) >= sizeof(host) || !port[1]) {
		snprintf(err, errlen, "'%s' is not an address: use HOST:PORT, e.g. 127.0.0.1:7400",
			 addr);
		return -EINVAL;
	}
	memcpy(host, a, port - a);
	host[port - a] = '\0';
	if (host[0] == '[' && host[strlen(host) - 1] == ']') { /* [::1]:7400 */
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	rc = getaddrinfo(host, port + 1, &hints, &res);
	if (rc) {
		snprintf(err, errlen, "cannot resolve %s: %s", addr, gai_strerror(rc));
		return -EHOSTUNREACH;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = tcp_connect_one(ai, timeout_ms);
		if (fd >= 0)
			break;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(err, errlen, "cannot connect to %s: %s (is the server running?)", addr,
			 strerror(-fd));
		return fd;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (io_timeout_ms > 0) {
		struct timeval tv = {io_timeout_ms / 1000, (io_timeout_ms % 1000) * 1000};

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	if (tls_cred) {
		rc = tls_start(fd, host, a, timeout_ms, out, err, errlen);
		if (rc)
			close(fd);
		return rc;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		close(fd);
		return -ENOMEM;
	}
	t->x.ops = &tcp_ops;
	t->fd = fd;
	snprintf(t->x.peer, sizeof(t->x.peer), "tcp://%s", a);
	*out = &t->x;
	return 0;
}

int xport_send(struct xport *x, uint16_t type, uint64_t arg, const struct iovec *iov, int iovcnt,
	       uint64_t *id)
{
	struct iovec v[XPORT_MAX_IOV];
	struct lmp_hdr req;
	uint32_t len = 0;
	int ret;

	if (x->broken)
		return x->broken;
	if (iovcnt > XPORT_MAX_IOV - 1)
		return -EINVAL;
	for (int i = 0; i < iovcnt; i++) {
		len += iov[i].iov_len;
		v[i + 1] = iov[i];
	}
	lmp_hdr_init(&req, type, ++x->next_id, len, arg);
	v[0] = (struct iovec){&req, sizeof(req)};
	*id = req.id;
	ret = xport_sendv(x, v, iovcnt + 1);
	if (ret)
		x->broken = ret;
	return ret;
}

int xport_wait_response(struct xport *x, uint16_t type, uint64_t id, struct lmp_hdr *resp,
			void *body, size_t body_len)
{
	const char *why;
	int ret = x->broken ? x->broken : xport_recv(x, resp, sizeof(*resp));

	if (!ret &&
	    (lmp_hdr_check(resp, &why) || resp->id != id || resp->type != (type | LMP_RESPONSE) ||
	     resp->len > body_len || !lmp_status_ok(resp->status)))
		ret = -EPROTO;
	if (!ret && resp->len)
		ret = xport_recv(x, body, resp->len);
	if (ret)
		x->broken = ret;
	return ret;
}

int xport_call(struct xport *x, uint16_t type, uint64_t arg, const struct iovec *iov, int iovcnt,
	       struct lmp_hdr *resp, void *body, size_t body_len)
{
	uint64_t id;
	int ret = xport_send(x, type, arg, iov, iovcnt, &id);

	return ret ? ret : xport_wait_response(x, type, id, resp, body, body_len);
}
