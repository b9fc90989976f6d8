/*
 * xport_rdma.c - the client transport over RDMA (rdma.h): the xport's byte
 * stream served from whole received messages, each request one SEND.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdma.h"
#include "util.h"
#include "xport.h"

struct rdma_xport {
	struct xport x;
	struct rdma_event_channel *ch;
	struct rdma_ep ep;
	uint32_t off; /* bytes of the oldest message already read */
	int io_timeout_ms;
	bool down;
};

static struct rdma_xport *rx_of(struct xport *x)
{
	return container_of(x, struct rdma_xport, x);
}

/* Wait for completions within the connection's I/O timeout. 0 or -errno. */
static int rx_wait(struct rdma_xport *r)
{
	int n;

	if (r->down)
		return -ECONNRESET;
	n = rdma_ep_wait(&r->ep, r->io_timeout_ms > 0 ? r->io_timeout_ms : -1);
	return n < 0 ? n : n == 0 ? -ETIMEDOUT : 0;
}

static int rx_sendv(struct xport *x, const struct iovec *iov, int iovcnt)
{
	struct rdma_xport *r = rx_of(x);
	size_t len = 0;
	uint8_t *buf;
	int slot, ret;

	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	if (iovcnt > XPORT_MAX_IOV || len > RDMA_MSG_MAX)
		return -EMSGSIZE;
	while ((slot = rdma_ep_send_slot(&r->ep)) < 0) {
		ret = rx_wait(r);
		if (ret)
			return ret;
	}
	buf = rdma_ep_send_buf(&r->ep, slot);
	for (int i = 0, off = 0; i < iovcnt; off += iov[i].iov_len, i++)
		memcpy(buf + off, iov[i].iov_base, iov[i].iov_len);
	return r->down ? -ECONNRESET : rdma_ep_send(&r->ep, slot, len);
}

/* Up to @len bytes of what has been received (waiting for a message if none). */
static long rx_read(struct rdma_xport *r, void *buf, size_t len)
{
	uint8_t *msg;
	uint32_t mlen;
	size_t n;
	int ret;

	while (!(msg = rdma_ep_msg(&r->ep, &mlen))) {
		ret = rx_wait(r);
		if (ret)
			return ret;
	}
	n = mlen - r->off < len ? mlen - r->off : len;
	memcpy(buf, msg + r->off, n);
	r->off += n;
	if (r->off == mlen) {
		r->off = 0;
		ret = rdma_ep_consume(&r->ep);
		if (ret)
			return ret;
	}
	return (long)n;
}

static int rx_recv(struct xport *x, void *buf, size_t len)
{
	struct rdma_xport *r = rx_of(x);
	size_t got = 0;

	while (got < len) {
		long n = rx_read(r, (uint8_t *)buf + got, len - got);

		if (n < 0)
			return (int)n;
		got += n;
	}
	return 0;
}

static long rx_recv_some(struct xport *x, void *buf, size_t len)
{
	return rx_read(rx_of(x), buf, len);
}

static int rx_wait_op(struct xport *x, int timeout_ms)
{
	struct rdma_xport *r = rx_of(x);
	uint64_t end = mono_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
	uint32_t mlen;

	while (!rdma_ep_msg(&r->ep, &mlen)) {
		int left = timeout_ms < 0 ? -1 : (int)(end > mono_ms() ? end - mono_ms() : 0);
		int n;

		if (r->down)
			return -ECONNRESET;
		n = rdma_ep_wait(&r->ep, left);
		if (n < 0)
			return n;
		if (n == 0)
			return 0;
	}
	return 1;
}

static void rx_shutdown(struct xport *x)
{
	struct rdma_xport *r = rx_of(x);
	struct ibv_qp_attr attr = {.qp_state = IBV_QPS_ERR};

	/* every posted request completes in error: a waiter wakes up and sees it */
	__atomic_store_n(&r->down, true, __ATOMIC_RELEASE);
	if (r->ep.id && r->ep.id->qp)
		ibv_modify_qp(r->ep.id->qp, &attr, IBV_QP_STATE);
}

static void rx_close(struct xport *x)
{
	struct rdma_xport *r = rx_of(x);

	if (r->ep.id) {
		rdma_disconnect(r->ep.id);
		rdma_ep_destroy(&r->ep);
		rdma_destroy_id(r->ep.id);
	}
	if (r->ch)
		rdma_destroy_event_channel(r->ch);
	free(r);
}

static int rx_read_pages(struct xport *x, const uint64_t *raddr, const uint32_t *rkey, int n,
			 void *buf)
{
	struct rdma_xport *r = rx_of(x);
	uint64_t end = mono_ms() + (r->io_timeout_ms > 0 ? (uint64_t)r->io_timeout_ms : 30000);
	int ret = r->down ? -ECONNRESET : 0;

	if (n <= 0 || n > RDMA_MAX_READ)
		return -EINVAL;
	for (int i = 0; i < n && !ret; i++)
		ret = rdma_ep_read(&r->ep, i, raddr[i], rkey[i]);
	/* every posted read completes (or, after an error, is flushed) before its buffer is
	 * used again; past the I/O timeout the connection is given up */
	while (r->ep.reads_pending > 0) {
		int w = rdma_ep_wait(&r->ep, 100);

		if (w <= 0 && mono_ms() > end)
			return w < 0 ? w : -ETIMEDOUT;
	}
	if (ret || r->ep.error)
		return ret ? ret : r->ep.error;
	for (int i = 0; i < n; i++)
		memcpy((uint8_t *)buf + (size_t)i * LMP_PAGE, rdma_ep_read_buf(&r->ep, i),
		       LMP_PAGE);
	return 0;
}

static const struct xport_ops rdma_ops = {
	.read_pages = rx_read_pages,
	.sendv = rx_sendv,
	.recv = rx_recv,
	.recv_some = rx_recv_some,
	.close = rx_close,
	.wait = rx_wait_op,
	.shutdown = rx_shutdown,
};

int xport_connect_rdma(const char *addr, const uint8_t *ticket, int timeout_ms, int io_timeout_ms,
		       struct xport **out, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	struct rdma_conn_param cp = {
		.private_data = ticket,
		.private_data_len = RDMA_TICKET_LEN,
		.responder_resources = 1,
		.initiator_depth = RDMA_RD_ATOM,
		.retry_count = 7,
		.rnr_retry_count = 7, /* a receiver without a buffer posted holds us back */
	};
	struct rdma_cm_id *id = NULL;
	struct rdma_xport *r;
	char host[256], port[16];
	int32_t reject = 0;
	int ret;

	if (rdma_parse_addr(addr, host, sizeof(host), port, sizeof(port))) {
		snprintf(err, errlen, "'%s' is not an RDMA address: use rdma://HOST:PORT", addr);
		return -EINVAL;
	}
	ret = getaddrinfo(host, port, &hints, &res);
	if (ret) {
		snprintf(err, errlen, "cannot resolve %s: %s", addr, gai_strerror(ret));
		return -EHOSTUNREACH;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		freeaddrinfo(res);
		return -ENOMEM;
	}
	r->x.ops = &rdma_ops;
	r->io_timeout_ms = io_timeout_ms;
	snprintf(r->x.peer, sizeof(r->x.peer), "rdma://%.100s:%s", host, port);
	r->ch = rdma_create_event_channel();
	if (!r->ch) { /* (no system call beyond this: it may run in the VMM's sandbox) */
		ret = errno == ENOENT || errno == ENODEV ? -ENODEV : -errno;
		snprintf(
			err, errlen,
			"cannot reach %s over RDMA: %s (no RDMA device here, or the rdma_ucm module "
			"is not loaded)",
			addr, strerror(errno));
		goto fail;
	}
	ret = rdma_create_id(r->ch, &id, NULL, RDMA_PS_TCP);
	if (ret) {
		ret = -errno;
		snprintf(err, errlen, "cannot reach %s over RDMA: %s", addr, strerror(-ret));
		goto fail;
	}
	ret = rdma_resolve_addr(id, NULL, res->ai_addr, timeout_ms) ? -errno : 0;
	if (!ret)
		ret = rdma_cm_wait(r->ch, RDMA_CM_EVENT_ADDR_RESOLVED, timeout_ms, NULL);
	if (!ret)
		ret = rdma_resolve_route(id, timeout_ms) ? -errno : 0;
	if (!ret)
		ret = rdma_cm_wait(r->ch, RDMA_CM_EVENT_ROUTE_RESOLVED, timeout_ms, NULL);
	if (ret) {
		snprintf(err, errlen,
			 "cannot reach %s over RDMA: %s (no RDMA device on the way to that "
			 "address?)",
			 addr, strerror(-ret));
		goto fail;
	}
	ret = rdma_ep_setup(&r->ep, id, NULL);
	if (ret) {
		snprintf(err, errlen, "cannot set up an RDMA queue pair for %s: %s", addr,
			 strerror(-ret));
		goto fail;
	}
	ret = rdma_connect(id, &cp) ? -errno : 0;
	if (!ret)
		ret = rdma_cm_wait(r->ch, RDMA_CM_EVENT_ESTABLISHED, timeout_ms, &reject);
	if (ret) {
		if (reject < 0)
			ret = reject;
		snprintf(err, errlen, "%s refused the RDMA connection: %s", addr,
			 ret == -EACCES ? "the ticket is not one it gave (or it expired)"
					: strerror(-ret));
		goto fail;
	}
	freeaddrinfo(res);
	fcntl(r->ch->fd, F_SETFL, fcntl(r->ch->fd, F_GETFL) | O_NONBLOCK);
	r->ep.cm_ch = r->ch;
	*out = &r->x;
	return 0;
fail:
	freeaddrinfo(res);
	if (id) {
		rdma_ep_destroy(&r->ep);
		rdma_destroy_id(id);
	}
	if (r->ch)
		rdma_destroy_event_channel(r->ch);
	free(r);
	return ret;
}
