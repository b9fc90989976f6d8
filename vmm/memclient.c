/* memclient.c - requests to a memory server over an xport. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "memclient.h"

int memclient_transport_parse(const char *name)
{
	if (!name || !strcmp(name, "tcp"))
		return MEMCLIENT_TCP;
	if (!strcmp(name, "rdma"))
		return MEMCLIENT_RDMA;
	return strcmp(name, "auto") ? -1 : MEMCLIENT_AUTO;
}

/*
 * The session that said HELLO over TCP continues over RDMA: a ticket from the
 * server, then an RDMA connection to its host that presents it. 0 (mc->x is
 * the RDMA connection), 1 when auto found no RDMA (mc->x unchanged), or
 * -errno with a sentence in @err.
 */
static int switch_to_rdma(struct memclient *mc, enum memclient_transport mode, int io_timeout_ms,
			  char *err, size_t errlen)
{
	uint8_t ticket[LMP_TOKEN_LEN];
	struct lmp_hdr resp;
	struct xport *rx;
	char host[128], addr[160];
	const char *a = mc->addr, *colon;
	int ret;

	if (!strncmp(a, "tcp://", 6) || !strncmp(a, "tls://", 6))
		a += 6;
	colon = strrchr(a, ':');
	if (!colon || (size_t)(colon - a) >= sizeof(host))
		return -EINVAL;
	memcpy(host, a, colon - a);
	host[colon - a] = '\0';
	ret = xport_call(mc->x, LMP_RDMA_TICKET, 0, NULL, 0, &resp, ticket, sizeof(ticket));
	if (!ret && resp.status == -EOPNOTSUPP && mode == MEMCLIENT_AUTO)
		return 1;
	if (!ret && (ret = resp.status) == 0 && resp.len != sizeof(ticket))
		ret = -EPROTO;
	if (ret) {
		snprintf(err, errlen, "memory server %s: no RDMA%s", mc->addr,
			 ret == -EOPNOTSUPP ? " there (it listens on TCP only)" : "");
		if (ret != -EOPNOTSUPP)
			snprintf(err, errlen, "memory server %s gave no RDMA ticket: %s", mc->addr,
				 memclient_strerror(ret));
		return ret;
	}
	snprintf(addr, sizeof(addr), "rdma://%s:%llu", host, (unsigned long long)resp.arg);
	ret = xport_connect_rdma(addr, ticket, 5000, io_timeout_ms, &rx, err, errlen);
	if (ret)
		return mode == MEMCLIENT_AUTO ? 1 : ret;
	xport_close(mc->x); /* the RDMA connection holds the session now */
	mc->x = rx;
	mc->rdma = true;
	return 0;
}

int memclient_open(struct memclient *mc, const char *addr, const struct memclient_cred *cred,
		   char *err, size_t errlen)
{
	return memclient_open_at(mc, addr, cred, cred->epoch, 0, 30000, err, errlen);
}

int memclient_open_at(struct memclient *mc, const char *addr, const struct memclient_cred *cred,
		      uint64_t since, uint32_t flags, int io_timeout_ms, char *err, size_t errlen)
{
	struct lmp_hello hello = {.vnode = cred->vnode,
				  .nr_pages = cred->nr_pages,
				  .epoch = cred->epoch,
				  .since = since,
				  .flags = flags};
	struct iovec iov = {&hello, sizeof(hello)};
	struct lmp_hdr resp;
	int ret;

	memset(mc, 0, sizeof(*mc));
	snprintf(mc->addr, sizeof(mc->addr), "%s", addr);
	memcpy(hello.token, cred->token, LMP_TOKEN_LEN);
	ret = xport_connect(addr, 5000, io_timeout_ms, &mc->x, err, errlen);
	if (ret)
		return ret;
	ret = xport_call(mc->x, LMP_HELLO, 0, &iov, 1, &resp, NULL, 0);
	if (!ret)
		ret = resp.status;
	if (ret) {
		if (ret == -ESTALE)
			snprintf(err, errlen,
				 "memory server %s fenced vNode %llu at epoch %llu: its copy is at "
				 "epoch %llu, not current for this placement",
				 addr, (unsigned long long)cred->vnode,
				 (unsigned long long)cred->epoch, (unsigned long long)resp.arg);
		else if (ret == -EACCES)
			snprintf(err, errlen,
				 "memory server %s refused the token of vNode %llu: is that vNode "
				 "already served there for another VMM?",
				 addr, (unsigned long long)cred->vnode);
		else
			snprintf(err, errlen, "memory server %s refused vNode %llu: %s", addr,
				 (unsigned long long)cred->vnode, memclient_strerror(ret));
		xport_close(mc->x);
		mc->x = NULL;
		return ret;
	}
	if (cred->transport != MEMCLIENT_TCP) {
		ret = switch_to_rdma(mc, cred->transport, io_timeout_ms, err, errlen);
		if (ret < 0) {
			xport_close(mc->x);
			mc->x = NULL;
			return ret;
		}
	}
	return 0;
}

void memclient_close(struct memclient *mc)
{
	xport_close(mc->x);
	mc->x = NULL;
}

int memclient_read(struct memclient *mc, uint64_t first, uint32_t count, void *buf)
{
	struct iovec iov = {&count, sizeof(count)};
	struct lmp_hdr resp;
	int ret = xport_call(mc->x, LMP_READ, first, &iov, 1, &resp, buf, (size_t)count * LMP_PAGE);

	if (ret)
		return ret;
	if (resp.status)
		return resp.status;
	if (resp.len != count * LMP_PAGE)
		return -EPROTO;
	mc->bytes_in += resp.len;
	return 0;
}

int memclient_write(struct memclient *mc, const uint64_t *pages, void *const *data, uint32_t count)
{
	for (uint32_t done = 0; done < count;) {
		uint32_t n = count - done < LMP_MAX_PAGES ? count - done : LMP_MAX_PAGES;
		uint64_t id;
		int ret = memclient_write_send(mc, pages + done, data + done, n, &id);

		if (!ret)
			ret = memclient_write_wait(mc, id, n);
		if (ret)
			return ret;
		done += n;
	}
	return 0;
}

int memclient_write_send(struct memclient *mc, const uint64_t *pages, void *const *data,
			 uint32_t count, uint64_t *id)
{
	struct iovec iov[2 * LMP_MAX_PAGES];

	if (count == 0 || count > LMP_MAX_PAGES)
		return -EINVAL;
	for (uint32_t i = 0; i < count; i++) {
		iov[2 * i] = (struct iovec){(void *)&pages[i], sizeof(uint64_t)};
		iov[2 * i + 1] = (struct iovec){data[i], LMP_PAGE};
	}
	return xport_send(mc->x, LMP_WRITE, count, iov, 2 * count, id);
}

int memclient_write_wait(struct memclient *mc, uint64_t id, uint32_t count)
{
	struct lmp_hdr resp;
	int ret = xport_wait_response(mc->x, LMP_WRITE, id, &resp, NULL, 0);

	if (ret)
		return ret;
	if (resp.status)
		return resp.status;
	mc->bytes_out += (uint64_t)count * LMP_PAGE;
	return 0;
}

int memclient_discard(struct memclient *mc, uint64_t first, uint32_t count)
{
	struct iovec iov = {&count, sizeof(count)};
	struct lmp_hdr resp;
	int ret = xport_call(mc->x, LMP_DISCARD, first, &iov, 1, &resp, NULL, 0);

	return ret ? ret : resp.status;
}

int memclient_release(struct memclient *mc)
{
	struct lmp_hdr resp;
	int ret = xport_call(mc->x, LMP_RELEASE, 0, NULL, 0, &resp, NULL, 0);

	return ret ? ret : resp.status;
}

int memclient_backup(struct memclient *mc, const struct lmp_backup *b)
{
	struct iovec iov = {(void *)b, sizeof(*b)};
	struct lmp_hdr resp;
	int ret = xport_call(mc->x, LMP_BACKUP, 0, &iov, 1, &resp, NULL, 0);

	return ret ? ret : resp.status;
}

/* A request without a body whose answer is a fixed-size @out of @len bytes. */
static int call_for(struct memclient *mc, uint16_t type, void *out, size_t len)
{
	struct lmp_hdr resp;
	int ret = xport_call(mc->x, type, 0, NULL, 0, &resp, out, len);

	if (ret)
		return ret;
	return resp.status ? resp.status : resp.len == len ? 0 : -EPROTO;
}

int memclient_backup_stat(struct memclient *mc, struct lmp_backup_stat *st)
{
	return call_for(mc, LMP_BACKUP_STAT, st, sizeof(*st));
}

int memclient_stat(struct memclient *mc, struct lmp_stat *st)
{
	return call_for(mc, LMP_STAT, st, sizeof(*st));
}

const char *memclient_strerror(int err)
{
	switch (err) {
	case -ENOSPC:
		return "the memory server is full (its --capacity is reached)";
	case -EACCES:
		return "the memory server refused the vNode's credentials";
	case -ERANGE:
		return "page outside the vNode's memory";
	case -ECONNRESET:
		return "the memory server closed the connection";
	case -ETIMEDOUT:
		return "the memory server did not answer in time";
	case -EPROTO:
		return "the memory server sent something that is not the lego protocol";
	case -EHOSTDOWN:
		return "declared down by the manager";
	case -ESTALE:
		return "fenced: a newer placement of the vNode exists (another VMM took over?)";
	}
	return strerror(-err);
}
