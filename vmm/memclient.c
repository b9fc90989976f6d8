/* memclient.c - requests to a memory server over an xport. */
#include <errno.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <stdio.h>
#include <stdlib.h>
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
	ret = memclient_locs_init(&mc->own, mc->nr_pages);
	if (ret) {
		xport_close(rx);
		snprintf(err, errlen, "out of memory for the page locations of %s", mc->addr);
		return ret;
	}
	xport_close(mc->x); /* the RDMA connection holds the session now */
	mc->x = rx;
	mc->rdma = true;
	mc->locs = &mc->own;
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
	mc->nr_pages = cred->nr_pages;
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

int memclient_locs_init(struct memclient_locs *l, uint64_t nr)
{
	void *e = mmap(NULL, nr * sizeof(uint64_t), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (e == MAP_FAILED)
		return -ENOMEM;
	l->e = e;
	l->nr = nr;
	atomic_store(&l->base, 0);
	return 0;
}

void memclient_locs_reset(struct memclient_locs *l)
{
	if (!l->e)
		return;
	madvise((void *)l->e, l->nr * sizeof(uint64_t), MADV_DONTNEED); /* zeros: unknown */
	atomic_store(&l->base, 0);
}

void memclient_locs_free(struct memclient_locs *l)
{
	if (l->e)
		munmap((void *)l->e, l->nr * sizeof(uint64_t));
	l->e = NULL;
}

void memclient_share(struct memclient *mc, struct memclient_locs *l)
{
	if (!mc->rdma)
		return;
	memclient_locs_free(&mc->own);
	mc->locs = l;
}

void memclient_close(struct memclient *mc)
{
	xport_close(mc->x);
	mc->x = NULL;
	memclient_locs_free(&mc->own);
	mc->locs = NULL;
	free(mc->tmp);
	mc->tmp = NULL;
}

/* Ask where pages [@first, +@n) are; the table learns what it did not know. */
static int locate(struct memclient *mc, uint64_t first, uint32_t n, uint64_t *loc)
{
	struct iovec iov = {&n, sizeof(n)};
	struct lmp_hdr resp;
	int ret = xport_call(mc->x, LMP_LOCATE, first, &iov, 1, &resp, loc, n * sizeof(*loc));

	if (!ret && !(ret = resp.status) && resp.len != n * sizeof(*loc))
		ret = -EPROTO;
	if (ret)
		return ret;
	atomic_store(&mc->locs->base, resp.arg);
	for (uint32_t i = 0; i < n; i++) {
		uint64_t unknown = LMP_LOC_UNKNOWN;

		if (loc[i] == LMP_LOC_UNKNOWN)
			return -EPROTO;
		/* a write acknowledged since we asked has set where the page is now */
		atomic_compare_exchange_strong(&mc->locs->e[first + i], &unknown, loc[i]);
	}
	return 0;
}

static int read_message(struct memclient *mc, uint64_t first, uint32_t count, void *buf);

/*
 * Read pages over RDMA: where each is (asking the server for a window of
 * them when one is not known), then one-sided reads of the exposed ones;
 * zeros are not read; a page not exposed (a copy's, shared) comes by message.
 */
static int read_one_sided(struct memclient *mc, uint64_t first, uint32_t count, void *buf)
{
	struct memclient_locs *l = mc->locs;
	uint64_t loc[LMP_LOC_MAX], raddr[LMP_MAX_PAGES], base = atomic_load(&l->base);
	uint32_t rkey[LMP_MAX_PAGES], n = 0;
	uint8_t *dst[LMP_MAX_PAGES];
	bool unknown = !base;
	int ret;

	if (count == 0 || count > LMP_MAX_PAGES || first >= l->nr || count > l->nr - first)
		return read_message(mc, first, count, buf); /* the server says why */
	for (uint32_t i = 0; i < count; i++)
		unknown |= (loc[i] = atomic_load(&l->e[first + i])) == LMP_LOC_UNKNOWN;
	if (unknown) { /* a window around them: the neighbours are likely next */
		uint64_t w = first & ~(uint64_t)(LMP_MAX_PAGES - 1);
		uint32_t wn = (uint32_t)(first + count - w);

		wn = wn < LMP_MAX_PAGES * 2 ? LMP_MAX_PAGES * 2 : wn;
		if (wn > l->nr - w)
			wn = (uint32_t)(l->nr - w);
		ret = locate(mc, w, wn, loc);
		if (ret)
			return ret;
		memmove(loc, loc + (first - w), count * sizeof(loc[0]));
		base = atomic_load(&l->base);
	}
	for (uint32_t i = 0; i < count; i++) {
		uint8_t *page = (uint8_t *)buf + (size_t)i * LMP_PAGE;

		if (loc[i] == LMP_LOC_ZERO) {
			memset(page, 0, LMP_PAGE);
		} else if (loc[i] == LMP_LOC_MESSAGE) {
			ret = read_message(mc, first + i, 1, page);
			if (ret)
				return ret;
			mc->two_sided++;
		} else {
			raddr[n] = base + (uint64_t)((uint32_t)loc[i] - LMP_LOC_SLOT0) * LMP_PAGE;
			rkey[n] = (uint32_t)(loc[i] >> 32);
			dst[n++] = page;
		}
	}
	if (!n)
		return 0;
	if (n == count) { /* the common case: every page read one-sided, in place */
		ret = mc->x->ops->read_pages(mc->x, raddr, rkey, (int)n, buf);
	} else { /* some zeros or messages among them: the others land apart first */
		if (!mc->tmp && !(mc->tmp = malloc((size_t)LMP_MAX_PAGES * LMP_PAGE)))
			return -ENOMEM;
		ret = mc->x->ops->read_pages(mc->x, raddr, rkey, (int)n, mc->tmp);
		for (uint32_t i = 0; !ret && i < n; i++)
			memcpy(dst[i], mc->tmp + (size_t)i * LMP_PAGE, LMP_PAGE);
	}
	if (ret) {
		mc->x->broken = ret; /* the queue pair failed with it */
		return ret;
	}
	mc->one_sided += n;
	atomic_fetch_add_explicit(&l->one_sided, n, memory_order_relaxed);
	mc->bytes_in += (uint64_t)n * LMP_PAGE;
	return 0;
}

int memclient_read(struct memclient *mc, uint64_t first, uint32_t count, void *buf)
{
	if (mc->rdma && mc->x->ops->read_pages && !mc->x->broken)
		return read_one_sided(mc, first, count, buf);
	return read_message(mc, first, count, buf);
}

static int read_message(struct memclient *mc, uint64_t first, uint32_t count, void *buf)
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
	if (!mc->rdma)
		return xport_send(mc->x, LMP_WRITE, count, iov, 2 * count, id);
	/* these pages may move: forgotten now, set again from the acknowledgement */
	for (uint32_t i = 0; i < count; i++) {
		mc->wpages[i] = pages[i];
		if (pages[i] < mc->locs->nr)
			atomic_store(&mc->locs->e[pages[i]], LMP_LOC_UNKNOWN);
	}
	mc->nr_wpages = count;
	return xport_send(mc->x, LMP_WRITE, count | LMP_WRITE_LOC, iov, 2 * count, id);
}

int memclient_write_wait(struct memclient *mc, uint64_t id, uint32_t count)
{
	uint64_t loc[LMP_MAX_PAGES];
	struct lmp_hdr resp;
	int ret = xport_wait_response(mc->x, LMP_WRITE, id, &resp, mc->rdma ? loc : NULL,
				      mc->rdma ? sizeof(loc) : 0);

	if (ret)
		return ret;
	if (resp.status)
		return resp.status;
	if (mc->rdma) {
		if (resp.len != count * sizeof(uint64_t) || count != mc->nr_wpages)
			return -EPROTO;
		for (uint32_t i = 0; i < count; i++)
			if (mc->wpages[i] < mc->locs->nr && loc[i] != LMP_LOC_UNKNOWN)
				atomic_store(&mc->locs->e[mc->wpages[i]], loc[i]);
	}
	mc->bytes_out += (uint64_t)count * LMP_PAGE;
	return 0;
}

int memclient_discard(struct memclient *mc, uint64_t first, uint32_t count)
{
	struct iovec iov = {&count, sizeof(count)};
	struct lmp_hdr resp;
	bool known = mc->rdma && first < mc->locs->nr && count <= mc->locs->nr - first;
	int ret;

	for (uint32_t i = 0; known && i < count; i++)
		atomic_store(&mc->locs->e[first + i], LMP_LOC_UNKNOWN);
	ret = xport_call(mc->x, LMP_DISCARD, first, &iov, 1, &resp, NULL, 0);
	if (!ret && !resp.status)
		for (uint32_t i = 0; known && i < count; i++)
			atomic_store(&mc->locs->e[first + i], LMP_LOC_ZERO);
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
	case -EKEYREVOKED:
		return "the memory server revoked its RDMA key (fenced by a newer placement, or "
		       "going away)";
	}
	return strerror(-err);
}
