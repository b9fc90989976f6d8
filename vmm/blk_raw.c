/* blk_raw.c - a raw image file as a block backend, many requests in flight with io_uring. */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"
#include "blk.h"
#include "log.h"
#include "sandbox.h"

#define RAW_RING 128

struct blk_raw {
	struct blk_backend b;
	int fd;
	struct io_uring ring;
	pthread_mutex_t sq_lock; /* submitters: the device's threads */
	pthread_t reaper;
	int inflight;
	bool closing;
};

static int raw_submit(struct blk_backend *b, struct blk_io *io)
{
	struct blk_raw *r = container_of(b, struct blk_raw, b);
	struct io_uring_sqe *sqe;
	int ret;

	pthread_mutex_lock(&r->sq_lock);
	sqe = io_uring_get_sqe(&r->ring);
	if (!sqe) {
		pthread_mutex_unlock(&r->sq_lock);
		return -EBUSY;
	}
	switch (io->op) {
	case BLK_READ:
		io_uring_prep_readv(sqe, r->fd, io->iov, io->iovcnt, io->offset);
		break;
	case BLK_WRITE:
		io_uring_prep_writev(sqe, r->fd, io->iov, io->iovcnt, io->offset);
		break;
	case BLK_FLUSH:
		io_uring_prep_fsync(sqe, r->fd, IORING_FSYNC_DATASYNC);
		break;
	case BLK_DISCARD:
	case BLK_WRITE_ZEROES: /* a hole: the space goes back, and it reads as zeros */
		io_uring_prep_fallocate(sqe, r->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					(off_t)io->offset, (off_t)io->len);
		break;
	}
	io_uring_sqe_set_data(sqe, io);
	ret = io_uring_submit(&r->ring);
	pthread_mutex_unlock(&r->sq_lock);
	return ret < 0 ? ret : 0;
}

static size_t iov_bytes(const struct blk_io *io)
{
	size_t n = 0;

	for (int i = 0; i < io->iovcnt; i++)
		n += io->iov[i].iov_len;
	return n;
}

static void *raw_reaper(void *arg)
{
	struct blk_raw *r = arg;

	sandbox_enter(SB_DEVICE, "disk-reaper");
	for (;;) {
		struct io_uring_cqe *cqe;
		struct blk_io *io;
		int res;

		if (io_uring_wait_cqe(&r->ring, &cqe) < 0)
			continue;
		io = io_uring_cqe_get_data(cqe);
		res = cqe->res;
		io_uring_cqe_seen(&r->ring, cqe);
		if (!io) /* the close marker */
			return NULL;
		/* A short transfer is an error for a block device: past the end, or I/O trouble. */
		if (res >= 0 && (io->op == BLK_READ || io->op == BLK_WRITE) &&
		    (size_t)res != iov_bytes(io))
			res = -EIO;
		io->done(io, res < 0 ? res : 0);
	}
}

static void raw_close(struct blk_backend *b)
{
	struct blk_raw *r = container_of(b, struct blk_raw, b);
	struct io_uring_sqe *sqe;

	pthread_mutex_lock(&r->sq_lock);
	sqe = io_uring_get_sqe(&r->ring);
	/* A no-op after everything submitted: the reaper stops when it sees it.
	 * IOSQE_IO_DRAIN makes it complete after all that came before. */
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_flags(sqe, IOSQE_IO_DRAIN);
	io_uring_sqe_set_data(sqe, NULL);
	io_uring_submit(&r->ring);
	pthread_mutex_unlock(&r->sq_lock);
	pthread_join(r->reaper, NULL);
	io_uring_queue_exit(&r->ring);
	close(r->fd);
	free(r);
}

static const struct blk_backend_ops raw_ops = {
	.submit = raw_submit,
	.close = raw_close,
};

int blk_raw_open(const char *path, bool read_only, struct blk_backend **out)
{
	struct blk_raw *r = calloc(1, sizeof(*r));
	struct stat st;
	int ret;

	if (!r)
		return -ENOMEM;
	r->fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (r->fd < 0 || fstat(r->fd, &st) < 0) {
		ret = -errno;
		log_err("cannot open disk image %s: %s", path, strerror(errno));
		goto fail;
	}
	if (st.st_size < 512 || st.st_size % 512) {
		log_err("disk image %s is %lld bytes: a disk is a multiple of 512 bytes", path,
			(long long)st.st_size);
		ret = -EINVAL;
		goto fail;
	}
	ret = io_uring_queue_init(RAW_RING, &r->ring, 0);
	if (ret < 0) {
		log_err("io_uring for %s: %s", path, strerror(-ret));
		goto fail;
	}
	pthread_mutex_init(&r->sq_lock, NULL);
	r->b.ops = &raw_ops;
	r->b.size = st.st_size;
	r->b.read_only = read_only;
	snprintf(r->b.name, sizeof(r->b.name), "%s", path);
	pthread_create(&r->reaper, NULL, raw_reaper, r);
	*out = &r->b;
	return 0;
fail:
	if (r->fd >= 0)
		close(r->fd);
	free(r);
	return ret;
}
