/*
 * virtio_blk.c - virtio-blk: requests checked against the disk and the
 * virtio rules, then handed to the backend with the guest's buffers; several
 * are in flight at once and complete in any order.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"
#include "log.h"
#include "virtio_blk.h"
#include "virtio_pci.h"

#define VIRTIO_BLK_F_SEG_MAX  (1ULL << 2)
#define VIRTIO_BLK_F_RO	      (1ULL << 5)
#define VIRTIO_BLK_F_BLK_SIZE (1ULL << 6)
#define VIRTIO_BLK_F_FLUSH    (1ULL << 9)
#define VIRTIO_BLK_F_DISCARD  (1ULL << 13)
#define VIRTIO_BLK_F_WZEROES  (1ULL << 14)

#define VIRTIO_BLK_T_IN	     0
#define VIRTIO_BLK_T_OUT     1
#define VIRTIO_BLK_T_FLUSH   4
#define VIRTIO_BLK_T_GET_ID  8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WZEROES 13

/* One range per discard or write-zeroes request, at most 2 GiB, 4 KiB aligned
 * (what a hole in the backend's file is made of). */
#define RANGE_MAX_SECTORS (1u << 22)
#define RANGE_ALIGN	  8

#define VIRTIO_BLK_S_OK	    0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2

#define SECTOR 512

struct virtio_blk {
	struct virtio_dev vd;
	struct blk_backend *be;
	_Atomic int inflight;
	_Atomic uint64_t requests, errors;
};

struct blk_req {
	struct blk_io io;
	struct virtio_blk *blk;
	uint16_t head;
	uint8_t *status;
	uint32_t written; /* bytes the device wrote into the guest's buffers */
	struct iovec iov[VIRTQ_MAX_SEGS];
};

struct blk_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

static struct virtio_blk *to_blk(struct virtio_dev *vd)
{
	return container_of(vd, struct virtio_blk, vd);
}

static uint64_t blk_features(struct virtio_dev *vd)
{
	struct virtio_blk *blk = to_blk(vd);

	return VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_FLUSH |
	       (blk->be->read_only ? VIRTIO_BLK_F_RO : VIRTIO_BLK_F_DISCARD | VIRTIO_BLK_F_WZEROES);
}

static void blk_config(struct virtio_dev *vd, uint32_t off, void *data, uint32_t len, bool is_write)
{
	struct virtio_blk *blk = to_blk(vd);
	uint8_t cfg[60] = {0};
	uint64_t capacity = blk->be->size / SECTOR;
	uint32_t seg_max = VIRTQ_MAX_SEGS - 2, blk_size = SECTOR, one = 1;
	uint32_t range_max = RANGE_MAX_SECTORS, align = RANGE_ALIGN;

	if (is_write)
		return; /* nothing writable that is negotiated */
	memcpy(cfg + 0, &capacity, 8);
	memcpy(cfg + 12, &seg_max, 4);
	memcpy(cfg + 20, &blk_size, 4);
	memcpy(cfg + 36, &range_max, 4); /* max_discard_sectors */
	memcpy(cfg + 40, &one, 4);	 /* max_discard_seg */
	memcpy(cfg + 44, &align, 4);	 /* discard_sector_alignment */
	memcpy(cfg + 48, &range_max, 4); /* max_write_zeroes_sectors */
	memcpy(cfg + 52, &one, 4);	 /* max_write_zeroes_seg */
	cfg[56] = 1;			 /* write_zeroes_may_unmap: zeros are a hole */
	memcpy(data, cfg + off, len);
}

static void blk_complete(struct blk_req *r, uint8_t status)
{
	struct virtio_blk *blk = r->blk;

	*r->status = status;
	blk->requests++;
	blk->errors += status != VIRTIO_BLK_S_OK;
	virtq_push(&blk->vd.vq[0], r->head, r->written + 1);
	virtio_used(&blk->vd, 0);
	blk->inflight--;
	free(r);
}

static void blk_done(struct blk_io *io, int result)
{
	struct blk_req *r = container_of(io, struct blk_req, io);

	if (result)
		log_debug("virtio-blk: %s at %llu failed: %s",
			  io->op == BLK_READ ? "read" : "write", (unsigned long long)io->offset,
			  strerror(-result));
	if (result && io->op == BLK_READ)
		r->written = 0;
	blk_complete(r, result ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK);
}

/*
 * A discard or write-zeroes: one range (max_discard_seg and
 * max_write_zeroes_seg are 1) in the request's data, copied out once.
 */
static bool blk_range(struct virtio_blk *blk, struct blk_req *r, uint32_t type, uint64_t bytes)
{
	struct {
		uint64_t sector;
		uint32_t num_sectors, flags;
	} range;
	uint64_t max = blk->be->size / SECTOR;

	if (bytes != sizeof(range) || r->io.iovcnt != 1) {
		blk_complete(r, VIRTIO_BLK_S_UNSUPP); /* more than one range */
		return true;
	}
	memcpy(&range, r->iov[0].iov_base, sizeof(range));
	if (range.flags & ~(type == VIRTIO_BLK_T_WZEROES ? 1u : 0u)) { /* only "unmap" */
		blk_complete(r, VIRTIO_BLK_S_UNSUPP);
		return true;
	}
	if (range.num_sectors > RANGE_MAX_SECTORS || range.sector > max ||
	    range.num_sectors > max - range.sector) {
		blk_complete(r, VIRTIO_BLK_S_IOERR);
		return true;
	}
	r->io.op = type == VIRTIO_BLK_T_DISCARD ? BLK_DISCARD : BLK_WRITE_ZEROES;
	r->io.offset = range.sector * SECTOR;
	r->io.len = (uint64_t)range.num_sectors * SECTOR;
	r->io.iovcnt = 0;
	r->written = 0;
	if (!r->io.len) {
		blk_complete(r, VIRTIO_BLK_S_OK);
		return true;
	}
	if (blk->be->ops->submit(blk->be, &r->io))
		blk_complete(r, VIRTIO_BLK_S_IOERR);
	return true;
}

/* One request: header, data, status. Returns false if the chain itself is malformed. */
static bool blk_request(struct virtio_blk *blk, const struct virtq_req *vr)
{
	const struct virtq_seg *hdr_seg = &vr->segs[0], *st = &vr->segs[vr->nr_segs - 1];
	struct blk_req *r;
	struct blk_hdr h;
	uint64_t bytes = 0;
	bool in;

	if (vr->nr_segs < 2 || hdr_seg->write || hdr_seg->len < sizeof(h) || !st->write ||
	    st->len < 1)
		return false;
	memcpy(&h, hdr_seg->hva, sizeof(h)); /* once: the guest may change it */
	r = calloc(1, sizeof(*r));
	if (!r)
		return false;
	r->blk = blk;
	r->head = vr->head;
	r->status = st->hva;
	r->io.opaque = r;
	r->io.done = blk_done;
	r->io.iov = r->iov;
	blk->inflight++;
	if (h.type != VIRTIO_BLK_T_IN && h.type != VIRTIO_BLK_T_OUT &&
	    h.type != VIRTIO_BLK_T_FLUSH && h.type != VIRTIO_BLK_T_GET_ID &&
	    ((h.type != VIRTIO_BLK_T_DISCARD && h.type != VIRTIO_BLK_T_WZEROES) ||
	     blk->be->read_only)) {
		blk_complete(r, VIRTIO_BLK_S_UNSUPP);
		return true;
	}
	in = h.type == VIRTIO_BLK_T_IN || h.type == VIRTIO_BLK_T_GET_ID;
	for (int i = 1; i < vr->nr_segs - 1; i++) {
		if (vr->segs[i].write != in) {
			blk_complete(r, VIRTIO_BLK_S_IOERR);
			return true;
		}
		r->iov[r->io.iovcnt++] = (struct iovec){vr->segs[i].hva, vr->segs[i].len};
		bytes += vr->segs[i].len;
	}
	switch (h.type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		if (bytes % SECTOR || h.sector > blk->be->size / SECTOR ||
		    bytes > blk->be->size - h.sector * SECTOR ||
		    (h.type == VIRTIO_BLK_T_OUT && blk->be->read_only)) {
			blk_complete(r, VIRTIO_BLK_S_IOERR);
			return true;
		}
		r->io.op = in ? BLK_READ : BLK_WRITE;
		r->io.offset = h.sector * SECTOR;
		r->written = in ? bytes : 0;
		if (!bytes) {
			blk_complete(r, VIRTIO_BLK_S_OK);
			return true;
		}
		break;
	case VIRTIO_BLK_T_FLUSH:
		r->io.op = BLK_FLUSH;
		r->io.iovcnt = 0;
		break;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WZEROES:
		return blk_range(blk, r, h.type, bytes);
	case VIRTIO_BLK_T_GET_ID: {
		/* The serial: at most 20 bytes, not NUL-terminated when all are used. */
		char id[21] = "lego-";
		const char *base = strrchr(blk->be->name, '/');
		size_t off = 0;

		base = base ? base + 1 : blk->be->name;
		memcpy(id + 5, base, strnlen(base, sizeof(id) - 6));
		for (int i = 0; i < r->io.iovcnt && off < 20; i++) {
			size_t n = r->iov[i].iov_len < 20 - off ? r->iov[i].iov_len : 20 - off;

			memcpy(r->iov[i].iov_base, id + off, n);
			off += n;
		}
		r->written = (uint32_t)off;
		blk_complete(r, VIRTIO_BLK_S_OK);
		return true;
	}
	}
	if (blk->be->ops->submit(blk->be, &r->io))
		blk_complete(r, VIRTIO_BLK_S_IOERR);
	return true;
}

static void blk_notify(struct virtio_dev *vd, int q)
{
	struct virtio_blk *blk = to_blk(vd);
	struct virtq_req *vr = malloc(sizeof(*vr));
	const char *why;
	int ret;

	if (!vr)
		return;
	blk_plug(blk->be); /* what the guest queued leaves together */
	while ((ret = virtq_pop(&vd->vq[q], vr, &why)) == 1) {
		if (!blk_request(blk, vr)) {
			virtio_fail(vd,
				    "a request without a readable header and a writable status");
			break;
		}
	}
	blk_unplug(blk->be);
	if (ret < 0)
		virtio_fail(vd, why);
	free(vr);
}

static void blk_reset(struct virtio_dev *vd)
{
	struct virtio_blk *blk = to_blk(vd);

	/* Requests in flight point into guest memory the driver is about to reuse:
	 * let them land before the queues are forgotten. */
	while (blk->inflight)
		usleep(100);
}

static const struct virtio_dev_ops blk_ops = {
	.name = "virtio-blk",
	.device_type = 2,
	.pci_class = 0x018000,
	.nr_queues = 1,
	.config_len = 60,
	.features = blk_features,
	.config = blk_config,
	.notify = blk_notify,
	.reset = blk_reset,
	.quiesce = blk_reset, /* the same wait: what is in flight lands */
};

struct virtio_blk *virtio_blk_create(struct vm *vm, struct pci *pci, struct blk_backend *backend)
{
	struct virtio_blk *blk = calloc(1, sizeof(*blk));

	if (!blk)
		return NULL;
	blk->be = backend;
	if (virtio_pci_init(&blk->vd, vm, pci, &blk_ops)) {
		log_err("cannot add a virtio-blk device for %s", backend->name);
		free(blk);
		return NULL;
	}
	return blk;
}

void virtio_blk_destroy(struct virtio_blk *blk)
{
	if (!blk)
		return;
	virtio_pci_exit(&blk->vd);
	blk->be->ops->close(blk->be); /* waits for what is in flight */
	free(blk);
}

struct virtio_dev *virtio_blk_dev(struct virtio_blk *blk)
{
	return &blk->vd;
}

void virtio_blk_stats(struct virtio_blk *blk, uint64_t *requests, uint64_t *errors)
{
	*requests = blk->requests;
	*errors = blk->errors;
}
