/* memclient.c - requests to a memory server over an xport. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memclient.h"

int memclient_open(struct memclient *mc, const char *addr, const struct memclient_cred *cred,
		   char *err, size_t errlen)
{
	struct lmp_hello hello = {.vnode = cred->vnode, .nr_pages = cred->nr_pages};
	struct iovec iov = {&hello, sizeof(hello)};
	struct lmp_hdr resp;
	int ret;

	memset(mc, 0, sizeof(*mc));
	snprintf(mc->addr, sizeof(mc->addr), "%s", addr);
	memcpy(hello.token, cred->token, LMP_TOKEN_LEN);
	ret = xport_connect(addr, 5000, 30000, &mc->x, err, errlen);
	if (ret)
		return ret;
	ret = xport_call(mc->x, LMP_HELLO, 0, &iov, 1, &resp, NULL, 0);
	if (!ret)
		ret = resp.status;
	if (ret) {
		if (ret == -EACCES)
			snprintf(err, errlen,
				 "memory server %s refused the token of vNode %llu: is that vNode "
				 "already served there for another VMM?",
				 addr, (unsigned long long)cred->vnode);
		else
			snprintf(err, errlen, "memory server %s refused vNode %llu: %s", addr,
				 (unsigned long long)cred->vnode, memclient_strerror(ret));
		xport_close(mc->x);
		mc->x = NULL;
	}
	return ret;
}

void memclient_close(struct memclient *mc)
{
	for (int i = 0; i < mc->nr_servers; i++)
		memclient_close(&mc->servers[i]);
	free(mc->servers);
	free(mc->slab_server);
	mc->servers = NULL;
	mc->slab_server = NULL;
	if (mc->nr_servers)
		mc->x = NULL; /* it was servers[0]'s */
	mc->nr_servers = 0;
	xport_close(mc->x);
	mc->x = NULL;
}

int memclient_open_slabs(struct memclient *mc, const char *addrs, uint64_t slab_pages,
			 const struct memclient_cred *cred, char *err, size_t errlen)
{
	char list[4096], *save = NULL, *a;
	uint64_t n = 0;
	int ret = 0;

	if (!strchr(addrs, ','))
		return memclient_open(mc, addrs, cred, err, errlen);
	memset(mc, 0, sizeof(*mc));
	snprintf(list, sizeof(list), "%s", addrs);
	for (const char *p = addrs; *p; p++)
		n += *p == ',';
	n++;
	if (!slab_pages || n * slab_pages < cred->nr_pages ||
	    (n - 1) * slab_pages >= cred->nr_pages) {
		snprintf(err, errlen,
			 "%llu memory servers listed for %llu pages of memory in slabs of %llu "
			 "pages: give one per slab",
			 (unsigned long long)n, (unsigned long long)cred->nr_pages,
			 (unsigned long long)slab_pages);
		return -EINVAL;
	}
	mc->slab_server = calloc(n, sizeof(*mc->slab_server));
	mc->servers = calloc(n, sizeof(*mc->servers));
	if (!mc->slab_server || !mc->servers) {
		memclient_close(mc);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	mc->nr_slabs = n;
	mc->slab_pages = slab_pages;
	n = 0;
	for (a = strtok_r(list, ",", &save); a && !ret; a = strtok_r(NULL, ",", &save), n++) {
		int s;

		for (s = 0; s < mc->nr_servers; s++)
			if (!strcmp(mc->servers[s].addr, a))
				break;
		if (s == mc->nr_servers) {
			ret = memclient_open(&mc->servers[s], a, cred, err, errlen);
			mc->nr_servers++;
		}
		mc->slab_server[n] = (uint16_t)s;
	}
	if (ret) {
		memclient_close(mc);
		return ret;
	}
	mc->x = mc->servers[0].x;
	snprintf(mc->addr, sizeof(mc->addr), "%s", mc->servers[0].addr);
	return 0;
}

static struct memclient *server_of(struct memclient *mc, uint64_t page)
{
	uint64_t slab = page / mc->slab_pages;

	return slab < mc->nr_slabs ? &mc->servers[mc->slab_server[slab]] : NULL;
}

int memclient_read(struct memclient *mc, uint64_t first, uint32_t count, void *buf)
{
	if (mc->nr_servers) {
		while (count) {
			struct memclient *s = server_of(mc, first);
			uint64_t end = (first / mc->slab_pages + 1) * mc->slab_pages;
			uint32_t n = end - first < count ? (uint32_t)(end - first) : count;
			int ret = s ? memclient_read(s, first, n, buf) : -ERANGE;

			if (ret)
				return ret;
			mc->bytes_in += (uint64_t)n * LMP_PAGE;
			first += n;
			count -= n;
			buf = (uint8_t *)buf + (size_t)n * LMP_PAGE;
		}
		return 0;
	}

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

/* Write the pages of @count that live on server @s, in batches. */
static int write_routed(struct memclient *mc, int s, const uint64_t *pages, void *const *data,
			uint32_t count)
{
	uint64_t sel[LMP_MAX_PAGES];
	void *sel_data[LMP_MAX_PAGES];
	uint32_t n = 0;

	for (uint32_t i = 0; i <= count; i++) {
		if (i < count) {
			uint64_t slab = pages[i] / mc->slab_pages;

			if (slab >= mc->nr_slabs)
				return -ERANGE;
			if (mc->slab_server[slab] != s)
				continue;
			sel[n] = pages[i];
			sel_data[n++] = data[i];
		}
		if (n == LMP_MAX_PAGES || (i == count && n)) {
			int ret = memclient_write(&mc->servers[s], sel, sel_data, n);

			if (ret)
				return ret;
			mc->bytes_out += (uint64_t)n * LMP_PAGE;
			n = 0;
		}
	}
	return 0;
}

int memclient_write(struct memclient *mc, const uint64_t *pages, void *const *data, uint32_t count)
{
	struct iovec iov[2 * LMP_MAX_PAGES];
	struct lmp_hdr resp;
	uint32_t done = 0;

	for (int s = 0; s < mc->nr_servers; s++) {
		int ret = write_routed(mc, s, pages, data, count);

		if (ret)
			return ret;
	}
	if (mc->nr_servers)
		return 0;

	while (done < count) {
		uint32_t n = count - done < LMP_MAX_PAGES ? count - done : LMP_MAX_PAGES;
		int ret;

		for (uint32_t i = 0; i < n; i++) {
			iov[2 * i] = (struct iovec){(void *)&pages[done + i], sizeof(uint64_t)};
			iov[2 * i + 1] = (struct iovec){data[done + i], LMP_PAGE};
		}
		ret = xport_call(mc->x, LMP_WRITE, n, iov, 2 * n, &resp, NULL, 0);
		if (ret)
			return ret;
		if (resp.status)
			return resp.status;
		mc->bytes_out += (uint64_t)n * LMP_PAGE;
		done += n;
	}
	return 0;
}

int memclient_release(struct memclient *mc)
{
	struct lmp_hdr resp;
	int ret = 0;

	for (int s = 0; s < mc->nr_servers; s++) {
		int r = memclient_release(&mc->servers[s]);

		ret = ret ? ret : r;
	}
	if (mc->nr_servers)
		return ret;
	ret = xport_call(mc->x, LMP_RELEASE, 0, NULL, 0, &resp, NULL, 0);
	return ret ? ret : resp.status;
}

int memclient_stat(struct memclient *mc, struct lmp_stat *st)
{
	struct lmp_hdr resp;
	int ret = xport_call(mc->x, LMP_STAT, 0, NULL, 0, &resp, st, sizeof(*st));

	if (ret)
		return ret;
	return resp.status ? resp.status : resp.len == sizeof(*st) ? 0 : -EPROTO;
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
	}
	return strerror(-err);
}
