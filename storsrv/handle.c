/*
 * handle.c - lego-storsrv's requests: volume management answered at once,
 * block I/O as io_uring operations on the server's ring, answered when they
 * complete (srv_defer/srv_respond). Every field the client sends is checked
 * before it is used.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"
#include "log.h"
#include "volume.h"

struct blk_op {
	struct srv_op op; /* first: the loop hands this pointer back */
	struct storsrv *s;
	struct srv_conn *conn;
	struct volume *vol;
	uint16_t type;
	uint32_t length;
	size_t reserved;
	struct lmp_hdr resp; /* followed by the data of a read */
	uint8_t data[];
};

static size_t respond_now(struct storsrv *s, const struct lmp_hdr *h, int status, uint8_t *out)
{
	struct lmp_hdr r;

	lmp_hdr_init(&r, h->type | LMP_RESPONSE, h->id, 0, 0);
	r.status = status;
	if (status)
		s->nr_errors++;
	memcpy(out, &r, sizeof(r));
	return sizeof(r);
}

static void blk_done(struct srv_op *op, int res)
{
	struct blk_op *b = container_of(op, struct blk_op, op);
	struct storsrv *s = b->s;
	size_t len = sizeof(b->resp);

	if (res < 0) {
		b->resp.status = res;
		log_warn("volume %s: %s failed: %s", b->vol->name, lmp_type_name(b->type),
			 strerror(-res));
	} else if ((b->type == LMP_BLK_READ || b->type == LMP_BLK_WRITE) &&
		   (uint32_t)res != b->length) {
		b->resp.status = -EIO; /* short: the file changed under us */
	} else if (b->type == LMP_BLK_READ) {
		b->resp.len = b->length;
		len += b->length;
		s->bytes_read += b->length;
	} else if (b->type == LMP_BLK_WRITE) {
		s->bytes_written += b->length;
	}
	if (b->resp.status)
		s->nr_errors++;
	srv_respond(b->conn, &b->resp, len, b->reserved);
	volume_put(b->vol);
	free(b);
}

/*
 * On a cluster's server (TLS), whose is volume @name to use? A VMM's
 * credential is for its own vNode's volumes only (NAME, NAME.dK, NAME.mem);
 * a member (the manager, an admin importing an image, a memory server
 * writing a backup) may use any, with its token; a client without a
 * certificate, none.
 */
static bool volume_allowed(struct storsrv *s, struct srv_conn *c, const char *name)
{
	const struct pki_peer *p = srv_conn_peer(c);
	size_t n = p ? strlen(p->name) : 0;
	const char *rest = name + n;

	if (!s->srv.tls || (p && p->role != PKI_VMM))
		return true;
	if (p && !strncmp(name, p->name, n) &&
	    (!*rest || !strcmp(rest, ".mem") ||
	     (rest[0] == '.' && rest[1] == 'd' && rest[2] &&
	      strspn(rest + 2, "0123456789") == strlen(rest + 2))))
		return true;
	log_warn("refused volume %s to %s", name, p ? p->name : "a client without a certificate");
	return false;
}

static size_t blk_request(struct storsrv *s, struct srv_conn *c, const struct lmp_hdr *h,
			  const uint8_t *body, uint8_t *out)
{
	struct lmp_blk req;
	struct volume *v;
	struct blk_op *b;
	struct io_uring_sqe *sqe;
	size_t data_len;
	bool ranged;
	int ret;

	if (h->len < sizeof(req))
		return respond_now(s, h, -EBADMSG, out);
	memcpy(&req, body, sizeof(req));
	req.volume[LMP_VOL_NAME_LEN - 1] = 0;
	if (!volume_allowed(s, c, req.volume))
		return respond_now(s, h, -EACCES, out);
	ret = volume_get(s, req.volume, req.token, &v);
	if (ret)
		return respond_now(s, h, ret, out);
	ranged = h->type == LMP_BLK_DISCARD || h->type == LMP_BLK_WRITE_ZEROES;
	if (h->type == LMP_BLK_FLUSH) {
		req.offset = req.length = 0;
	} else if (req.offset % 512 || req.length % 512 || req.length == 0 ||
		   (req.length > LMP_BLK_MAX && !ranged)) {
		return respond_now(s, h, -EINVAL, out);
	} else if (req.offset > v->size || req.length > v->size - req.offset) {
		return respond_now(s, h, -ERANGE, out); /* past the end of the volume */
	}
	if (h->len != sizeof(req) + (h->type == LMP_BLK_WRITE ? req.length : 0))
		return respond_now(s, h, -EBADMSG, out);
	data_len = h->type == LMP_BLK_READ || h->type == LMP_BLK_WRITE ? req.length : 0;
	b = malloc(sizeof(*b) + data_len);
	if (!b)
		return respond_now(s, h, -ENOMEM, out);
	*b = (struct blk_op){.op.done = blk_done,
			     .s = s,
			     .conn = c,
			     .vol = v,
			     .type = h->type,
			     .length = req.length,
			     .reserved =
				     sizeof(b->resp) + (h->type == LMP_BLK_READ ? data_len : 0)};
	lmp_hdr_init(&b->resp, h->type | LMP_RESPONSE, h->id, 0, 0);
	/* the request's bytes live in the connection's buffer only until we return */
	if (h->type == LMP_BLK_WRITE)
		memcpy(b->data, body + sizeof(req), data_len);
	sqe = srv_sqe(&s->srv, &b->op);
	if (!sqe) {
		free(b);
		return respond_now(s, h, -EBUSY, out);
	}
	volume_hold(v);
	srv_defer(c, b->reserved);
	if (h->type == LMP_BLK_READ) {
		io_uring_prep_read(sqe, v->fd, b->data, req.length, req.offset);
	} else if (h->type == LMP_BLK_WRITE) {
		io_uring_prep_write(sqe, v->fd, b->data, req.length, req.offset);
		if (req.flags & LMP_BLK_FUA)
			sqe->rw_flags = RWF_DSYNC;
	} else if (ranged) { /* a hole: the space goes back to the file system, zeros read */
		io_uring_prep_fallocate(sqe, v->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					(off_t)req.offset, (off_t)req.length);
	} else {
		io_uring_prep_fsync(sqe, v->fd, IORING_FSYNC_DATASYNC);
	}
	return 0;
}

static size_t vol_request(struct storsrv *s, struct srv_conn *c, const struct lmp_hdr *h,
			  const uint8_t *body, uint8_t *out)
{
	struct lmp_vol req;
	int ret;

	if (h->len != sizeof(req))
		return respond_now(s, h, -EBADMSG, out);
	memcpy(&req, body, sizeof(req));
	req.name[LMP_VOL_NAME_LEN - 1] = 0;
	if (!volume_allowed(s, c, req.name))
		return respond_now(s, h, -EACCES, out);
	switch (h->type) {
	case LMP_VOL_CREATE:
		ret = volume_create(s, &req);
		break;
	case LMP_VOL_DELETE:
		ret = volume_delete(s, &req);
		break;
	case LMP_VOL_STAT: {
		struct lmp_vol_info info = {0};
		struct lmp_hdr r;
		struct volume *v;

		ret = volume_get(s, req.name, req.token, &v);
		if (ret)
			break;
		memcpy(info.name, v->name, sizeof(info.name));
		info.size = v->size;
		lmp_hdr_init(&r, h->type | LMP_RESPONSE, h->id, sizeof(info), 0);
		memcpy(out, &r, sizeof(r));
		memcpy(out + sizeof(r), &info, sizeof(info));
		return sizeof(r) + sizeof(info);
	}
	default:
		ret = volume_resize(s, &req);
		break;
	}
	return respond_now(s, h, ret, out);
}

static size_t clone_request(struct storsrv *s, struct srv_conn *c, const struct lmp_hdr *h,
			    const uint8_t *body, uint8_t *out)
{
	struct lmp_vol_clone req;

	if (h->len != sizeof(req))
		return respond_now(s, h, -EBADMSG, out);
	memcpy(&req, body, sizeof(req));
	req.dst.name[LMP_VOL_NAME_LEN - 1] = 0;
	if (!memchr(req.src, '\0', sizeof(req.src)))
		return respond_now(s, h, -EINVAL, out);
	if (!volume_allowed(s, c, req.dst.name) || !volume_allowed(s, c, req.src))
		return respond_now(s, h, -EACCES, out);
	return respond_now(s, h, volume_clone(s, &req), out);
}

static size_t list_request(struct storsrv *s, const struct lmp_hdr *h, uint8_t *out)
{
	struct lmp_hdr r;
	size_t n = volume_list(s, (struct lmp_vol_info *)(out + sizeof(r)),
			       LMP_MAX_BODY / sizeof(struct lmp_vol_info));

	lmp_hdr_init(&r, h->type | LMP_RESPONSE, h->id, (uint32_t)(n * sizeof(struct lmp_vol_info)),
		     n);
	memcpy(out, &r, sizeof(r));
	return sizeof(r) + r.len;
}

/*
 * Volume administration (create, delete, resize, list) on a server of a
 * cluster is for the manager and the admin: their certificates say so. A
 * vNode's own requests carry its volume's token instead.
 */
static bool admin_allowed(struct storsrv *s, struct srv_conn *c, const struct lmp_hdr *h)
{
	const struct pki_peer *p = srv_conn_peer(c);

	if (!s->srv.tls || (p && (p->role & (PKI_MANAGER | PKI_ADMIN))))
		return true;
	log_warn("refused %s to %s: volumes are administered by the manager (or an admin) only",
		 h->type == LMP_VOL_LIST ? "a volume list" : "a volume change",
		 p ? p->name : "a client without a certificate");
	return false;
}

static size_t storsrv_request(void *app, struct srv_conn *c, void *session, const struct lmp_hdr *h,
			      const uint8_t *body, uint8_t *out)
{
	struct storsrv *s = app;

	(void)session;
	s->nr_requests++;
	if ((h->type == LMP_VOL_CREATE || h->type == LMP_VOL_DELETE || h->type == LMP_VOL_RESIZE ||
	     h->type == LMP_VOL_LIST || h->type == LMP_VOL_CLONE) &&
	    !admin_allowed(s, c, h))
		return respond_now(s, h, -EACCES, out);
	switch (h->type) {
	case LMP_BLK_READ:
	case LMP_BLK_WRITE:
	case LMP_BLK_FLUSH:
	case LMP_BLK_DISCARD:
	case LMP_BLK_WRITE_ZEROES:
		return blk_request(s, c, h, body, out);
	case LMP_VOL_CREATE:
	case LMP_VOL_DELETE:
	case LMP_VOL_RESIZE:
	case LMP_VOL_STAT:
		return vol_request(s, c, h, body, out);
	case LMP_VOL_LIST:
		return list_request(s, h, out);
	case LMP_VOL_CLONE:
		return clone_request(s, c, h, body, out);
	default:
		return respond_now(s, h, -EOPNOTSUPP, out);
	}
}

/* No per-connection state: every request stands alone. */
static void *storsrv_conn_open(void *app)
{
	return app;
}

static void storsrv_conn_close(void *app, void *session)
{
	(void)app, (void)session;
}

/* Every idle connection is spare: requests are stateless, and clients connect again. */
static bool storsrv_spare(void *app, void *session)
{
	(void)app, (void)session;
	return true;
}

static const struct srv_ops storsrv_ops = {
	.conn_open = storsrv_conn_open,
	.conn_close = storsrv_conn_close,
	.request = storsrv_request,
	.spare = storsrv_spare,
};

int storsrv_run(struct storsrv *s, const char *addr)
{
	int ret = srv_listen(&s->srv, addr);

	if (ret)
		return ret;
	log_info("serving volumes of %s on %s%s", s->dir, s->srv.tls ? "tls://" : "", addr);
	ret = srv_run(&s->srv, &storsrv_ops, s);
	close(s->srv.listen_fd);
	return ret;
}
