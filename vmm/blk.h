/*
 * blk.h - the block backend interface: what a virtio-blk device asks of
 * wherever its disk lives (a local file here; a storage server later). The
 * device never opens a file; a backend never sees a virtqueue.
 */
#ifndef LEGO_VMM_BLK_H
#define LEGO_VMM_BLK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

/* BLK_DISCARD: the range's data may go (it reads as zeros after, here);
 * BLK_WRITE_ZEROES: the range reads as zeros. Both carry no buffers: the
 * range is offset and len. */
enum blk_op { BLK_READ, BLK_WRITE, BLK_FLUSH, BLK_DISCARD, BLK_WRITE_ZEROES };

struct blk_io {
	enum blk_op op;
	uint64_t offset; /* bytes */
	uint64_t len;	 /* bytes, for BLK_DISCARD and BLK_WRITE_ZEROES */
	struct iovec *iov;
	int iovcnt;
	/* done - called once, on any thread, with 0 or -errno when the I/O is over
	 * (for BLK_WRITE and BLK_FLUSH: durable as far as the backend promises). */
	void (*done)(struct blk_io *io, int result);
	void *opaque;
};

struct blk_backend;

struct blk_backend_ops {
	/* submit - start @io; it completes through io->done. -errno if it cannot start. */
	int (*submit)(struct blk_backend *b, struct blk_io *io);
	/* plug, unplug - optional: between them (counted, if nested) submit may
	 * hold I/Os back, to start them together at the last unplug (one send
	 * for many requests). A backend without them starts each in submit. */
	void (*plug)(struct blk_backend *b);
	void (*unplug)(struct blk_backend *b);
	/* close - wait for what is in flight, then free @b. */
	void (*close)(struct blk_backend *b);
};

struct blk_backend {
	const struct blk_backend_ops *ops;
	uint64_t size; /* bytes */
	bool read_only;
	char name[128];
};

static inline void blk_plug(struct blk_backend *b)
{
	if (b->ops->plug)
		b->ops->plug(b);
}

static inline void blk_unplug(struct blk_backend *b)
{
	if (b->ops->unplug)
		b->ops->unplug(b);
}

/* blk_raw_open - a raw image file at @path, I/O through io_uring. -errno, logged. */
int blk_raw_open(const char *path, bool read_only, struct blk_backend **out);

#define BLK_NET_SCHEME "storsrv://"

/*
 * blk_net_open - the volume at @url ("storsrv://HOST:PORT/VOLUME") on
 * lego-storsrv, with its 32-byte @token. Survives the server's restarts:
 * reconnects and sends unacknowledged requests again; a request fails (-EIO)
 * only after @deadline_ms without an answer. -errno, logged.
 */
int blk_net_open(const char *url, const uint8_t *token, int deadline_ms, struct blk_backend **out);

/* Of a blk_net_open backend: reconnections, requests sent again, requests failed
 * (deadline), and sendmsg calls that carried requests. */
struct blk_net_stats {
	uint64_t reconnects, resent, failed, sends;
};
void blk_net_stats(struct blk_backend *b, struct blk_net_stats *st);

#endif
