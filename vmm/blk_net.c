/*
 * blk_net.c - a block backend whose disk is a volume on lego-storsrv.
 *
 * Requests are split into chunks of at most LMP_BLK_MAX bytes, each one
 * self-contained wire request (volume, token, offset, length) with its own
 * id; many are in flight on one connection. A receiver thread owns the
 * connection: it matches responses to requests by id, and when the
 * connection breaks (the server was killed, restarted, or the network
 * dropped) it reconnects with exponential backoff and sends every request
 * that was not acknowledged again, in the order they were first sent.
 * That is safe because every request is idempotent (a write carries its
 * bytes; a read or flush can be repeated). A connection that stays silent
 * while requests wait is not trusted: after PROBE_MS it is asked for a PING
 * (every lego server answers one at once, even with slow I/O under way),
 * and after SILENT_MS without a byte from it, it is dropped the same way. Only a
 * request that stays unacknowledged for the deadline fails, with -EIO, to
 * the guest.
 *
 * Between blk_plug and blk_unplug (a virtio queue's notification: all the
 * guest queued at once) requests are held back and leave in as few sendmsg
 * calls as the iovec limit allows; the receiver completes every response a
 * recv brought under one lock. No bounce buffer: a write's bytes go out
 * from the caller's iovecs (again after a reconnect: they stay the
 * caller's until done), a read's land in them from the receive buffer.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blk.h"
#include "log.h"
#include "util.h"
#include "xport.h"
#include "sandbox.h"

#define CONNECT_TIMEOUT_MS 1000
#define BACKOFF_MIN_MS	   10
#define BACKOFF_MAX_MS	   1000
#define POLL_MS		   100	/* how often deadlines and silence are checked while waiting */
#define PROBE_MS	   1000 /* requests waiting and nothing heard for this long: PING */
#define SILENT_MS	   3000 /* ... and for this long: the connection is given up */

struct net_io { /* one blk_io, in one or more chunks */
	struct blk_io *io;
	int remaining, result;
};

struct net_req { /* one chunk: one wire request */
	struct net_io *nio;
	uint64_t deadline_ns; /* CLOCK_MONOTONIC: fails to the guest unanswered by then */
	struct net_req *next;
	const uint8_t *body; /* the answer's bytes (in the receive buffer) while it completes */
	struct lmp_hdr h;    /* the wire request: header, then the block request */
	struct lmp_blk b;
	int iovcnt; /* the caller's bytes of this chunk: a write's data, a read's room */
	struct iovec iov[];
};

struct blk_net {
	struct blk_backend be;
	char addr[128], volume[LMP_VOL_NAME_LEN];
	uint8_t token[LMP_TOKEN_LEN];
	int deadline_ms;
	pthread_mutex_t lock;		/* everything below */
	pthread_cond_t idle;		/* signalled when nothing is left unacknowledged */
	struct xport *x;		/* NULL while disconnected; closed only by the receiver */
	struct net_req *head, *tail;	/* unacknowledged, in the order first sent */
	struct net_req *unsent;		/* the first of the tail held back by a plug, or NULL */
	int plugged;			/* blk_plug calls not yet unplugged */
	struct iovec tx[XPORT_MAX_IOV]; /* a batch being gathered for one sendmsg */
	int txcnt;
	uint64_t next_id;
	uint64_t heard_ns; /* last byte from the server, or when waiting for it began */
	uint64_t ping_id;  /* the PING in flight on this connection, 0 if none */
	bool stopping;
	pthread_t rx;
	uint64_t reconnects, resent, failed, sends;
};

/* Called locked: add @len bytes at @base to the batch, sending it first when full. */
static int tx_add(struct blk_net *n, struct xport *x, void *base, size_t len)
{
	if (n->txcnt == XPORT_MAX_IOV) {
		int ret = xport_sendv(x, n->tx, n->txcnt);

		n->txcnt = 0;
		n->sends++;
		if (ret)
			return ret;
	}
	n->tx[n->txcnt++] = (struct iovec){base, len};
	return 0;
}

/*
 * Called locked: send @r and every request after it on @x, gathered into as
 * few sendmsg calls as XPORT_MAX_IOV allows. -errno if the connection broke.
 */
static int send_from(struct blk_net *n, struct xport *x, struct net_req *r)
{
	int ret = 0;

	n->txcnt = 0;
	for (; r && !ret; r = r->next) {
		ret = tx_add(n, x, &r->h, sizeof(r->h));
		if (!ret)
			ret = tx_add(n, x, &r->b, sizeof(r->b));
		for (int i = 0; i < r->iovcnt && !ret && r->h.type == LMP_BLK_WRITE; i++)
			ret = tx_add(n, x, r->iov[i].iov_base, r->iov[i].iov_len);
	}
	if (!ret && n->txcnt) {
		ret = xport_sendv(x, n->tx, n->txcnt);
		n->sends++;
	}
	n->txcnt = 0;
	return ret;
}

/* Called locked: send what a plug held back, if connected; a failed send
 * breaks the connection (the receiver reconnects and sends it all again). */
static void send_unsent(struct blk_net *n)
{
	struct net_req *r = n->unsent;

	n->unsent = NULL;
	if (r && n->x && send_from(n, n->x, r))
		xport_shutdown(n->x);
}

/* Copy @len bytes from @src into @iov[@cnt]. */
static void scatter(const struct iovec *iov, int cnt, const uint8_t *src, size_t len)
{
	for (int i = 0; i < cnt && len; i++) {
		size_t k = iov[i].iov_len < len ? iov[i].iov_len : len;

		memcpy(iov[i].iov_base, src, k);
		src += k;
		len -= k;
	}
}

/*
 * The part of @io's buffers from byte @off, @len bytes long, as iovecs into
 * @out (NULL: only count them). Returns how many.
 */
static int slice(const struct blk_io *io, size_t off, size_t len, struct iovec *out)
{
	int n = 0;

	for (int i = 0; i < io->iovcnt && len; i++) {
		size_t have = io->iov[i].iov_len, k;

		if (off >= have) {
			off -= have;
			continue;
		}
		k = have - off < len ? have - off : len;
		if (out)
			out[n] = (struct iovec){(uint8_t *)io->iov[i].iov_base + off, k};
		n++;
		len -= k;
		off = 0;
	}
	return n;
}

static void chunk_done(struct net_req *r, int result)
{
	struct net_io *nio = r->nio;

	if (result && !nio->result)
		nio->result = result;
	free(r);
	if (--nio->remaining)
		return;
	nio->io->done(nio->io, nio->result);
	free(nio);
}

/* Called locked: take request @id off the list (NULL if not there). */
static struct net_req *take(struct blk_net *n, uint64_t id)
{
	struct net_req *prev = NULL;

	for (struct net_req *r = n->head; r; prev = r, r = r->next) {
		if (r->h.id != id)
			continue;
		if (prev)
			prev->next = r->next;
		else
			n->head = r->next;
		if (n->tail == r)
			n->tail = prev;
		if (n->unsent == r)
			n->unsent = r->next;
		if (!n->head)
			pthread_cond_broadcast(&n->idle);
		return r;
	}
	return NULL;
}

/*
 * Fail what waited past its deadline (on the receiver's thread). The time is
 * read under the lock and compared with absolute deadlines: a request added
 * between a clock read and the lock must not look older than the clock (it
 * once did, by an unsigned wrap-around, and failed at once).
 */
static void expire(struct blk_net *n)
{
	struct net_req *done = NULL;
	uint64_t now;

	pthread_mutex_lock(&n->lock);
	now = now_ns();
	while (n->head && now >= n->head->deadline_ns) {
		struct net_req *r = take(n, n->head->h.id);

		r->next = done;
		done = r;
		n->failed++;
	}
	pthread_mutex_unlock(&n->lock);
	while (done) {
		struct net_req *next = done->next;

		log_warn("%s: %s at %llu unanswered for %d ms: an I/O error for the guest",
			 n->be.name, lmp_type_name(done->h.type),
			 (unsigned long long)done->b.offset, n->deadline_ms);
		chunk_done(done, -EIO);
		done = next;
	}
}

/*
 * Connect and send everything unacknowledged again; false if the server is
 * not there. A PING goes first: the server closes a connection that sends
 * no request within SRV_FIRST_REQUEST_MS, and an idle disk has none to send.
 */
static bool reconnect(struct blk_net *n)
{
	struct lmp_hdr ping;
	struct iovec iov = {&ping, sizeof(ping)};
	struct xport *x;
	char err[256];

	if (xport_connect(n->addr, CONNECT_TIMEOUT_MS, SILENT_MS, &x, err, sizeof(err)))
		return false;
	pthread_mutex_lock(&n->lock);
	n->ping_id = ++n->next_id;
	lmp_hdr_init(&ping, LMP_PING, n->ping_id, 0, 0);
	if (xport_sendv(x, &iov, 1)) {
		pthread_mutex_unlock(&n->lock);
		xport_close(x);
		return false;
	}
	n->x = x;
	n->heard_ns = now_ns();
	n->reconnects++;
	n->unsent = NULL; /* everything goes now, held back by a plug or not */
	for (struct net_req *r = n->head; r; r = r->next)
		n->resent++;
	if (n->head && send_from(n, x, n->head))
		xport_shutdown(x);
	pthread_mutex_unlock(&n->lock);
	log_info("%s: connected again to %s", n->be.name, n->addr);
	return true;
}

/* The receiver's buffer: responses arrive many per recv at depth. */
#define RX_BUF (2 * (sizeof(struct lmp_hdr) + LMP_BLK_MAX))

/*
 * Receive what has arrived into @buf (holding *@len bytes already) and
 * complete every whole response in it, all taken off the list under one
 * lock; a partial one stays for the next call. -errno when the connection
 * broke or sent something malformed (what came before it still completes).
 */
static int receive(struct blk_net *n, struct xport *x, uint8_t *buf, size_t *len)
{
	long got = xport_recv_some(x, buf + *len, RX_BUF - *len);
	struct net_req *done = NULL, **link = &done;
	size_t off = 0;
	int ret = 0;

	if (got < 0)
		return (int)got;
	*len += (size_t)got;
	pthread_mutex_lock(&n->lock);
	n->heard_ns = now_ns();
	while (*len - off >= sizeof(struct lmp_hdr)) {
		struct lmp_hdr h;
		struct net_req *r;
		const char *why = NULL;

		memcpy(&h, buf + off, sizeof(h));
		if (!lmp_hdr_check(&h, &why) && h.len > LMP_BLK_MAX)
			why = "too long";
		else if (!why && !lmp_status_ok(h.status))
			why = "a status that is not 0 or -errno";
		if (why) {
			log_warn("%s: a malformed response (%s): reconnecting", n->be.name, why);
			ret = -EPROTO;
			break;
		}
		if (*len - off < sizeof(h) + h.len)
			break;
		r = take(n, h.id);
		if (!r && h.id == n->ping_id)
			n->ping_id = 0;
		if (r) { /* else a PING, or answered twice (sent again after a reconnect) */
			/* its header is not sent again: it carries the answer's status now */
			r->body = buf + off + sizeof(h);
			r->h.status = h.status;
			if (!h.status && r->h.type == LMP_BLK_READ && h.len != r->b.length)
				r->h.status = -EIO;
			*link = r;
			link = &r->next;
		}
		off += sizeof(h) + h.len;
	}
	pthread_mutex_unlock(&n->lock);
	*link = NULL;
	while (done) {
		struct net_req *r = done;

		done = r->next;
		if (!r->h.status && r->h.type == LMP_BLK_READ)
			scatter(r->iov, r->iovcnt, r->body, r->b.length);
		chunk_done(r, r->h.status);
	}
	if (ret)
		return ret;
	memmove(buf, buf + off, *len - off);
	*len -= off;
	return 0;
}

/*
 * With requests waiting, a connection that says nothing is asked for a PING
 * after PROBE_MS, and given up (-ETIMEDOUT) after SILENT_MS: a server that
 * hangs, or a listening socket that lingers after its server died with
 * nobody to accept from it, must not hold requests until their deadline.
 */
static int watch(struct blk_net *n, struct xport *x)
{
	uint64_t quiet;
	int ret = 0;

	pthread_mutex_lock(&n->lock);
	quiet = n->head ? (now_ns() - n->heard_ns) / 1000000 : 0;
	if (quiet >= SILENT_MS) {
		log_warn("%s: %s said nothing for %llu ms with requests waiting", n->be.name,
			 n->addr, (unsigned long long)quiet);
		ret = -ETIMEDOUT;
	} else if (quiet >= PROBE_MS && !n->ping_id) {
		struct lmp_hdr h;
		struct iovec iov = {&h, sizeof(h)};

		n->ping_id = ++n->next_id;
		lmp_hdr_init(&h, LMP_PING, n->ping_id, 0, 0);
		ret = xport_sendv(x, &iov, 1);
	}
	pthread_mutex_unlock(&n->lock);
	return ret;
}

static void *rx_thread(void *arg)
{
	struct blk_net *n = arg;
	uint8_t *buf;
	size_t len = 0;
	int backoff = BACKOFF_MIN_MS;

	sandbox_enter(SB_DEVICE, "disk-rx");
	buf = malloc(RX_BUF);

	for (;;) {
		struct xport *x;
		int ret;

		pthread_mutex_lock(&n->lock);
		x = n->x;
		if (n->stopping) {
			pthread_mutex_unlock(&n->lock);
			break;
		}
		pthread_mutex_unlock(&n->lock);
		expire(n);
		if (!x) {
			len = 0; /* a partial response of the old connection is worthless */
			if (reconnect(n)) {
				backoff = BACKOFF_MIN_MS;
			} else {
				usleep((useconds_t)backoff * 1000);
				backoff =
					backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
			}
			continue;
		}
		ret = xport_wait(x, POLL_MS);
		if (ret > 0)
			ret = buf ? receive(n, x, buf, &len) : -ENOMEM;
		if (ret >= 0)
			ret = watch(n, x);
		if (ret < 0) {
			pthread_mutex_lock(&n->lock);
			if (!n->stopping)
				log_warn("%s: lost %s (%s); reconnecting, %s", n->be.name, n->addr,
					 strerror(-ret),
					 n->head ? "requests in flight will be sent again"
						 : "nothing in flight");
			xport_close(n->x);
			n->x = NULL;
			pthread_mutex_unlock(&n->lock);
		}
	}
	free(buf);
	return NULL;
}

static int net_submit(struct blk_backend *b, struct blk_io *io)
{
	struct blk_net *n = container_of(b, struct blk_net, be);
	struct net_io *nio = calloc(1, sizeof(*nio));
	struct net_req *first = NULL, **link = &first;
	uint16_t type = io->op == BLK_READ	     ? LMP_BLK_READ
			: io->op == BLK_WRITE	     ? LMP_BLK_WRITE
			: io->op == BLK_DISCARD	     ? LMP_BLK_DISCARD
			: io->op == BLK_WRITE_ZEROES ? LMP_BLK_WRITE_ZEROES
						     : LMP_BLK_FLUSH;
	bool ranged = io->op == BLK_DISCARD || io->op == BLK_WRITE_ZEROES;
	size_t len = 0, off = 0;

	if (!nio)
		return -ENOMEM;
	if (!ranged && io->op != BLK_FLUSH)
		for (int i = 0; i < io->iovcnt; i++)
			len += io->iov[i].iov_len;
	nio->io = io;
	/* chunks: a flush, a discard or zeroes is one; reads and writes at most LMP_BLK_MAX each */
	do {
		uint32_t chunk = len - off > LMP_BLK_MAX ? LMP_BLK_MAX : (uint32_t)(len - off);
		int cnt = slice(io, off, chunk, NULL);
		struct net_req *r = calloc(1, sizeof(*r) + (size_t)cnt * sizeof(struct iovec));

		if (!r)
			goto nomem;
		r->nio = nio;
		r->h.type = type;
		memcpy(r->b.volume, n->volume, sizeof(r->b.volume));
		memcpy(r->b.token, n->token, sizeof(r->b.token));
		r->b.offset = io->offset + off;
		/* a discard or zeroes names its range; no data travels */
		r->b.length = ranged ? (uint32_t)io->len : chunk;
		r->iovcnt = slice(io, off, chunk, r->iov);
		*link = r;
		link = &r->next;
		nio->remaining++;
		off += chunk;
	} while (off < len);

	pthread_mutex_lock(&n->lock);
	if (!n->head) /* the server owes nothing until now: silence counts from here */
		n->heard_ns = now_ns();
	while (first) {
		struct net_req *r = first;

		first = r->next;
		r->next = NULL;
		lmp_hdr_init(
			&r->h, r->h.type, ++n->next_id,
			(uint32_t)(sizeof(r->b) + (r->h.type == LMP_BLK_WRITE ? r->b.length : 0)),
			0);
		r->deadline_ns = now_ns() + (uint64_t)n->deadline_ms * 1000000;
		if (n->tail)
			n->tail->next = r;
		else
			n->head = r;
		n->tail = r;
		if (!n->unsent)
			n->unsent = r;
	}
	if (!n->plugged)
		send_unsent(n);
	pthread_mutex_unlock(&n->lock);
	return 0;
nomem:
	while (first) {
		struct net_req *r = first;

		first = r->next;
		free(r);
	}
	free(nio);
	return -ENOMEM;
}

static void net_plug(struct blk_backend *b)
{
	struct blk_net *n = container_of(b, struct blk_net, be);

	pthread_mutex_lock(&n->lock);
	n->plugged++;
	pthread_mutex_unlock(&n->lock);
}

static void net_unplug(struct blk_backend *b)
{
	struct blk_net *n = container_of(b, struct blk_net, be);

	pthread_mutex_lock(&n->lock);
	if (n->plugged && !--n->plugged)
		send_unsent(n);
	pthread_mutex_unlock(&n->lock);
}

static void net_close(struct blk_backend *b)
{
	struct blk_net *n = container_of(b, struct blk_net, be);

	/* what is in flight completes (or expires) first */
	pthread_mutex_lock(&n->lock);
	while (n->head)
		pthread_cond_wait(&n->idle, &n->lock);
	n->stopping = true;
	if (n->x)
		xport_shutdown(n->x);
	pthread_mutex_unlock(&n->lock);
	pthread_join(n->rx, NULL);
	if (n->x)
		xport_close(n->x);
	log_debug("%s: %llu reconnects, %llu requests sent again, %llu failed, %llu sends",
		  n->be.name, (unsigned long long)n->reconnects, (unsigned long long)n->resent,
		  (unsigned long long)n->failed, (unsigned long long)n->sends);
	pthread_cond_destroy(&n->idle);
	pthread_mutex_destroy(&n->lock);
	free(n);
}

void blk_net_stats(struct blk_backend *b, struct blk_net_stats *st)
{
	struct blk_net *n = container_of(b, struct blk_net, be);

	pthread_mutex_lock(&n->lock);
	*st = (struct blk_net_stats){.reconnects = n->reconnects,
				     .resent = n->resent,
				     .failed = n->failed,
				     .sends = n->sends};
	pthread_mutex_unlock(&n->lock);
}

static const struct blk_backend_ops net_ops = {
	.submit = net_submit, .plug = net_plug, .unplug = net_unplug, .close = net_close};

int blk_net_open(const char *url, const uint8_t *token, int deadline_ms, struct blk_backend **out)
{
	struct blk_net *n = calloc(1, sizeof(*n));
	const char *rest = url + strlen(BLK_NET_SCHEME), *slash;
	struct lmp_vol req = {0};
	struct lmp_vol_info info;
	struct iovec iov = {&req, sizeof(req)};
	struct lmp_hdr resp;
	char err[256];
	int ret;

	if (!n)
		return -ENOMEM;
	slash = strchr(rest, '/');
	if (strncmp(url, BLK_NET_SCHEME, strlen(BLK_NET_SCHEME)) || !slash || slash == rest ||
	    (size_t)(slash - rest) >= sizeof(n->addr) || !lmp_vol_name_ok(slash + 1)) {
		log_err("'%s' is not a volume: use storsrv://HOST:PORT/VOLUME", url);
		free(n);
		return -EINVAL;
	}
	memcpy(n->addr, rest, slash - rest);
	snprintf(n->volume, sizeof(n->volume), "%s", slash + 1);
	memcpy(n->token, token, LMP_TOKEN_LEN);
	n->deadline_ms = deadline_ms;
	snprintf(n->be.name, sizeof(n->be.name), "volume %s", n->volume);
	pthread_mutex_init(&n->lock, NULL);
	pthread_cond_init(&n->idle, NULL);

	ret = xport_connect(n->addr, CONNECT_TIMEOUT_MS * 5, SILENT_MS, &n->x, err, sizeof(err));
	if (ret) {
		log_err("%s: %s", url, err);
		goto fail;
	}
	memcpy(req.name, n->volume, sizeof(req.name));
	memcpy(req.token, n->token, LMP_TOKEN_LEN);
	ret = xport_call(n->x, LMP_VOL_STAT, 0, &iov, 1, &resp, &info, sizeof(info));
	if (!ret && resp.status)
		ret = resp.status;
	if (ret || resp.len != sizeof(info)) {
		log_err("%s: %s", url,
			ret == -ENOENT	 ? "no such volume on the storage server"
			: ret == -EACCES ? "the token is not this volume's"
					 : strerror(ret ? -ret : EPROTO));
		xport_close(n->x);
		ret = ret ? ret : -EPROTO;
		goto fail;
	}
	n->be.ops = &net_ops;
	n->be.size = info.size;
	ret = -pthread_create(&n->rx, NULL, rx_thread, n);
	if (ret) {
		xport_close(n->x);
		goto fail;
	}
	*out = &n->be;
	return 0;
fail:
	pthread_cond_destroy(&n->idle);
	pthread_mutex_destroy(&n->lock);
	free(n);
	return ret;
}
