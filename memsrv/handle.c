/* handle.c - lego-memsrv's request handling, independent of the transport. */
#include <errno.h>
#include <string.h>

#include "log.h"
#include "memsrv.h"
#include "util.h"

static size_t reply(uint8_t *out, const struct lmp_hdr *req, int status, uint32_t len, uint64_t arg)
{
	struct lmp_hdr h;

	lmp_hdr_init(&h, req->type | LMP_RESPONSE, req->id, len, arg);
	h.status = status;
	memcpy(out, &h, sizeof(h));
	return sizeof(h) + len;
}

static size_t handle_hello(struct memsrv *m, struct memsrv_session *ss, const struct lmp_hdr *h,
			   const uint8_t *body, uint8_t *out)
{
	const struct pki_peer *p = ss->peer;
	struct lmp_hello hello;
	struct store_vnode *vn;
	uint64_t before;
	int ret;

	if (h->len != sizeof(hello))
		return reply(out, h, -EINVAL, 0, 0);
	memcpy(&hello, body, sizeof(hello));
	if (ss->vn) /* one vNode per connection, for its whole life */
		return reply(out, h, ss->vnode_id == hello.vnode ? 0 : -EPERM, 0, 0);
	/* in a cluster (TLS), only a VMM the manager started for this vNode */
	if (m->srv.tls && (!p || p->role != PKI_VMM || p->vnode != hello.vnode)) {
		log_warn("refused a connection for vNode %llu: %s %s %llu",
			 (unsigned long long)hello.vnode,
			 !p		      ? "no credential: a client without a certificate"
			 : p->role != PKI_VMM ? "not a VMM's credential, but a member's:"
					      : "the credential is for vNode",
			 p && p->role != PKI_VMM ? p->name : "",
			 (unsigned long long)(p ? p->vnode : 0));
		return reply(out, h, -EACCES, 0, 0);
	}
	ret = store_attach(&m->store, hello.vnode, hello.nr_pages, hello.token, &vn);
	if (ret) {
		log_warn("refused a connection for vNode %llu: %s", (unsigned long long)hello.vnode,
			 ret == -EACCES ? "wrong token" : "its size does not match");
		return reply(out, h, ret, 0, 0);
	}
	if (hello.flags & ~(LMP_HELLO_FRESH | LMP_HELLO_TAKEOVER)) {
		store_detach(&m->store, vn);
		return reply(out, h, -EINVAL, 0, 0);
	}
	/* where a VMM starts is the manager's word (its credential); where it goes from
	 * there (a failover) its own */
	before = vn->epoch;
	ret = store_epoch(&m->store, vn, hello.epoch, hello.since, hello.flags, p ? p->epoch : 0);
	if (ret) {
		log_warn("fenced a connection for vNode %llu at epoch %llu (started at %llu): this "
			 "copy is at epoch %llu, the newest VMM seen started at %llu",
			 (unsigned long long)hello.vnode, (unsigned long long)hello.epoch,
			 (unsigned long long)(p ? p->epoch : 0), (unsigned long long)vn->epoch,
			 (unsigned long long)vn->incarnation);
		store_detach(&m->store, vn);
		return reply(out, h, ret, 0, vn->epoch);
	}
	if (vn->epoch != before)
		memsrv_rdma_revoke(m, vn); /* the older placement's clients read no more */
	if (hello.flags & LMP_HELLO_FRESH)
		log_info("vNode %llu: copy dropped for a refill at epoch %llu",
			 (unsigned long long)hello.vnode, (unsigned long long)hello.epoch);
	ss->vn = vn;
	ss->vnode_id = hello.vnode;
	ss->epoch = hello.epoch;
	return reply(out, h, 0, 0, vn->epoch);
}

static size_t handle_read(struct memsrv *m, struct memsrv_session *ss, const struct lmp_hdr *h,
			  const uint8_t *body, uint8_t *out)
{
	uint8_t *data = out + sizeof(struct lmp_hdr);
	uint64_t first = h->arg;
	uint32_t count;

	if (h->len != sizeof(count))
		return reply(out, h, -EINVAL, 0, 0);
	memcpy(&count, body, sizeof(count));
	if (count == 0 || count > LMP_MAX_PAGES)
		return reply(out, h, -EINVAL, 0, 0);
	if (first >= ss->vn->nr_pages || count > ss->vn->nr_pages - first)
		return reply(out, h, -ERANGE, 0, 0);
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *p = store_page(&m->store, ss->vn, first + i);

		if (p)
			memcpy(data + (size_t)i * LMP_PAGE, p, LMP_PAGE);
		else
			memset(data + (size_t)i * LMP_PAGE, 0, LMP_PAGE);
	}
	return reply(out, h, 0, count * LMP_PAGE, first);
}

static size_t handle_write(struct memsrv *m, struct memsrv_session *ss, const struct lmp_hdr *h,
			   const uint8_t *body, uint8_t *out)
{
	const size_t entry = sizeof(uint64_t) + LMP_PAGE;
	uint64_t pages[LMP_MAX_PAGES];
	uint64_t count = h->arg & ~LMP_WRITE_LOC, need;
	uint64_t *loc = (uint64_t *)(out + sizeof(struct lmp_hdr));
	char cap[32];

	if (count == 0 || count > LMP_MAX_PAGES || h->len != count * entry)
		return reply(out, h, -EINVAL, 0, 0);
	if ((h->arg & LMP_WRITE_LOC) && !ss->rdma)
		return reply(out, h, -EOPNOTSUPP, 0, 0); /* locations are for one-sided reads */
	for (uint64_t i = 0; i < count; i++) {
		memcpy(&pages[i], body + i * entry, sizeof(uint64_t));
		if (pages[i] >= ss->vn->nr_pages)
			return reply(out, h, -ERANGE, 0, 0);
	}
	/* All or nothing: a batch either fits in the capacity or is refused whole. */
	need = store_pages_needed(&m->store, ss->vn, pages, count);
	if (need > m->store.capacity_pages - m->store.used_pages) {
		log_warn("capacity of %s reached: refusing %llu new page(s) of vNode %llu",
			 format_size(m->store.capacity_pages * LMP_PAGE, cap, sizeof(cap)),
			 (unsigned long long)need, (unsigned long long)ss->vnode_id);
		return reply(out, h, -ENOSPC, 0, 0);
	}
	for (uint64_t i = 0; i < count; i++)
		store_write(&m->store, ss->vn, pages[i], body + i * entry + sizeof(uint64_t));
	if (!(h->arg & LMP_WRITE_LOC))
		return reply(out, h, 0, 0, count);
	/* where they are now (a first write, or a copy's shared page, moved them) */
	for (uint64_t i = 0; i < count; i++)
		loc[i] = memsrv_rdma_locate(m, ss, pages[i]);
	return reply(out, h, 0, (uint32_t)(count * sizeof(uint64_t)), count);
}

/* LMP_LOCATE: where pages are, for one-sided reads (over RDMA only). */
static size_t handle_locate(struct memsrv *m, struct memsrv_session *ss, const struct lmp_hdr *h,
			    const uint8_t *body, uint8_t *out)
{
	uint64_t *loc = (uint64_t *)(out + sizeof(struct lmp_hdr));
	uint64_t first = h->arg;
	uint32_t count;

	if (!ss->rdma)
		return reply(out, h, -EOPNOTSUPP, 0, 0);
	if (h->len != sizeof(count))
		return reply(out, h, -EINVAL, 0, 0);
	memcpy(&count, body, sizeof(count));
	if (count == 0 || count > LMP_LOC_MAX)
		return reply(out, h, -EINVAL, 0, 0);
	if (first >= ss->vn->nr_pages || count > ss->vn->nr_pages - first)
		return reply(out, h, -ERANGE, 0, 0);
	for (uint32_t i = 0; i < count; i++)
		loc[i] = memsrv_rdma_locate(m, ss, first + i);
	return reply(out, h, 0, count * (uint32_t)sizeof(uint64_t), (uintptr_t)m->store.pool);
}

static size_t handle_backup(struct memsrv *m, struct memsrv_session *ss, const struct lmp_hdr *h,
			    const uint8_t *body, uint8_t *out)
{
	struct lmp_backup b;
	int ret;

	if (h->len != sizeof(b))
		return reply(out, h, -EINVAL, 0, 0);
	memcpy(&b, body, sizeof(b));
	if (!memchr(b.storsrv, '\0', sizeof(b.storsrv)) || !strchr(b.storsrv, ':') ||
	    !memchr(b.volume, '\0', sizeof(b.volume)) || !lmp_vol_name_ok(b.volume) ||
	    b.interval_ms < 100)
		return reply(out, h, -EINVAL, 0, 0);
	ret = store_backup_scope(&m->store, ss->vn, &b);
	if (!ret)
		log_info("vNode %llu: pages %llu-%llu backed up to %s/%s every %u ms",
			 (unsigned long long)ss->vnode_id, (unsigned long long)b.first_page,
			 (unsigned long long)(b.first_page + b.nr_pages - 1), b.storsrv, b.volume,
			 b.interval_ms);
	return reply(out, h, ret, 0, ss->vn->backup ? ss->vn->backup->seq : 0);
}

static size_t handle_backup_stat(struct memsrv_session *ss, const struct lmp_hdr *h, uint8_t *out)
{
	struct store_backup *b = ss->vn->backup;
	struct lmp_backup_stat st = {0};

	if (b)
		st = (struct lmp_backup_stat){b->seq, b->start_ms, b->writes_since, b->pages};
	memcpy(out + sizeof(struct lmp_hdr), &st, sizeof(st));
	return reply(out, h, 0, sizeof(st), 0);
}

/* LMP_CLONE: see struct lmp_clone. */
static size_t handle_clone(struct memsrv *m, struct memsrv_session *ss, const struct lmp_hdr *h,
			   const uint8_t *body, uint8_t *out)
{
	const struct pki_peer *p = ss->peer;
	struct store_vnode *src, *dst;
	struct lmp_clone c;
	int ret;

	if (h->len != sizeof(c))
		return reply(out, h, -EINVAL, 0, 0);
	memcpy(&c, body, sizeof(c));
	if (c.flags & ~LMP_CLONE_DROP)
		return reply(out, h, -EINVAL, 0, 0);
	if (ss->vn || (m->srv.tls && (!p || !(p->role & PKI_MANAGER)))) {
		log_warn("refused to clone vNode %llu: %s", (unsigned long long)c.src,
			 ss->vn ? "asked on a vNode's connection" : "not the manager's credential");
		return reply(out, h, -EPERM, 0, 0);
	}
	if (c.flags & LMP_CLONE_DROP) {
		dst = store_find(&m->store, c.dst);
		if (!dst)
			return reply(out, h, -ENOENT, 0, 0);
		if (!lmp_token_equal(dst->token, c.dst_token))
			return reply(out, h, -EACCES, 0, 0);
		if (dst->refs)
			return reply(out, h, -EBUSY, 0, 0); /* a VMM has it: it is a vNode now */
		memsrv_rdma_revoke(m, dst);
		store_release(&m->store, dst);
		log_info("vNode %llu: the copy of vNode %llu dropped", (unsigned long long)c.dst,
			 (unsigned long long)c.src);
		return reply(out, h, 0, 0, 0);
	}
	src = store_find(&m->store, c.src);
	if (!src)
		return reply(out, h, -ENOENT, 0, 0);
	if (!lmp_token_equal(src->token, c.src_token))
		return reply(out, h, -EACCES, 0, 0);
	ret = store_clone(&m->store, src, c.src_epoch, c.dst, c.dst_token, c.dst_epoch, &dst);
	if (ret) {
		log_warn("refused to clone vNode %llu (epoch %llu here, %llu asked): %s",
			 (unsigned long long)c.src, (unsigned long long)src->epoch,
			 (unsigned long long)c.src_epoch, strerror(-ret));
		return reply(out, h, ret, 0, 0);
	}
	log_info("vNode %llu: a copy of vNode %llu, %llu pages shared", (unsigned long long)c.dst,
		 (unsigned long long)c.src, (unsigned long long)dst->used);
	return reply(out, h, 0, 0, dst->used);
}

static size_t handle(struct memsrv *m, struct memsrv_session *ss, const struct lmp_hdr *h,
		     const uint8_t *body, uint8_t *out)
{
	struct lmp_stat st;

	m->nr_requests++;
	if (h->type & LMP_RESPONSE)
		return reply(out, h, -EPROTO, 0, 0);
	if (h->type == LMP_HELLO)
		return handle_hello(m, ss, h, body, out);
	if (ss->vn && ss->epoch != ss->vn->epoch && h->type != LMP_STAT &&
	    h->type != LMP_BACKUP_STAT)
		return reply(out, h, -ESTALE, 0, ss->vn->epoch); /* fenced by a newer placement */
	if (!ss->vn || ss->vn->released) {
		switch (h->type) {
		case LMP_READ:
		case LMP_WRITE:
		case LMP_RELEASE:
		case LMP_DISCARD:
		case LMP_STAT:
		case LMP_BACKUP:
		case LMP_BACKUP_STAT:
		case LMP_RDMA_TICKET:
		case LMP_LOCATE:
			/* say HELLO first; or the vNode was released by another connection */
			return reply(out, h, ss->vn ? -ESTALE : -EACCES, 0, 0);
		}
	}
	switch (h->type) {
	case LMP_READ:
		return handle_read(m, ss, h, body, out);
	case LMP_LOCATE:
		return handle_locate(m, ss, h, body, out);
	case LMP_WRITE:
		return handle_write(m, ss, h, body, out);
	case LMP_RELEASE:
		memsrv_rdma_revoke(m, ss->vn);
		store_release(&m->store, ss->vn);
		return reply(out, h, 0, 0, 0);
	case LMP_DISCARD: {
		uint32_t count;

		if (h->len != sizeof(count))
			return reply(out, h, -EINVAL, 0, 0);
		memcpy(&count, body, sizeof(count));
		return reply(out, h, store_discard(&m->store, ss->vn, h->arg, count), 0, 0);
	}
	case LMP_BACKUP:
		return handle_backup(m, ss, h, body, out);
	case LMP_BACKUP_STAT:
		return handle_backup_stat(ss, h, out);
	case LMP_CLONE:
		return handle_clone(m, ss, h, body, out);
	case LMP_RDMA_TICKET: {
		uint16_t port = 0;
		int ret = memsrv_rdma_ticket(m, ss, out + sizeof(struct lmp_hdr), &port);

		return reply(out, h, ret, ret ? 0 : LMP_TOKEN_LEN, port);
	}
	case LMP_STAT:
		st = (struct lmp_stat){m->store.capacity_pages, m->store.used_pages, ss->vn->used,
				       m->store.nr_vnodes};
		memcpy(out + sizeof(struct lmp_hdr), &st, sizeof(st));
		return reply(out, h, 0, sizeof(st), 0);
	}
	m->nr_errors++;
	return reply(out, h, -EOPNOTSUPP, 0, 0);
}

size_t memsrv_handle(struct memsrv *m, struct memsrv_session *ss, const struct lmp_hdr *h,
		     const uint8_t *body, uint8_t *out)
{
	size_t n;

	pthread_mutex_lock(&m->lock); /* against the backup thread; never contended otherwise */
	n = handle(m, ss, h, body, out);
	pthread_mutex_unlock(&m->lock);
	return n;
}

void memsrv_session_end(struct memsrv *m, struct memsrv_session *ss)
{
	pthread_mutex_lock(&m->lock);
	if (ss->vn)
		store_detach(&m->store, ss->vn);
	ss->vn = NULL;
	pthread_mutex_unlock(&m->lock);
}
