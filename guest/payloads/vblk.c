/*
 * vblk.c - a virtio-blk driver in ring 3: finds the device in PCI
 * configuration space, negotiates virtio 1.x, sets up a split virtqueue and
 * writes, flushes and reads back a pattern with several requests in flight;
 * then checks that bad requests get errors and that a malformed descriptor
 * makes the device ask for a reset instead of harming anything.
 *
 * With discard=1 it then discards the first half of what it wrote and
 * writes zeros over the next quarter, and reads both back as zeros.
 *
 * args: size=BYTES to write (default 8M), chunk=BYTES per request (64K),
 *       inflight=N requests at once (8), seed=N, evil=1 (the malformed part),
 *       discard=1
 * Reports capacity_sectors, requests, mismatches, the discard checks and the
 * error checks.
 */
#include "rt.h"
#include "vdev.h"

#define WL_POW rt_pow
#include "workload.h"

#define QSIZE 64

struct hdr {
	uint32_t type, reserved;
	uint64_t sector;
};

static struct vdev dev;
static struct vq *q;
static struct hdr *hdrs;
static uint8_t *statuses;
static uint8_t *bufs;
static uint64_t chunk;

static int setup(uint64_t mem)
{
	if (vdev_find(&dev, 0x1042, "vblk"))
		return -1;
	if (vdev_negotiate(&dev, 1u << 9 | 1u << 13 | 1u << 14 /* FLUSH, DISCARD, WRITE_ZEROES */,
			   NULL)) {
		rt_print("vblk: FEATURES_OK refused\n");
		return -1;
	}
	if (vdev_queue(&dev, 0, QSIZE, (void *)mem)) {
		rt_print("vblk: queue too small\n");
		return -1;
	}
	q = &dev.vq[0];
	hdrs = (struct hdr *)(mem + 16384);
	statuses = (uint8_t *)(mem + 20480);
	bufs = (uint8_t *)(mem + 24576);
	vdev_ready(&dev);
	return 0;
}

/* Queue request @slot (3 descriptors) of @type on @sector with @len bytes of buffer @buf. */
static void queue_req(unsigned slot, uint32_t type, uint64_t sector, void *buf, uint32_t len,
		      int device_writes)
{
	unsigned d = slot * 3;

	hdrs[slot] = (struct hdr){type, 0, sector};
	statuses[slot] = 0xff;
	q->desc[d] = (struct vdesc){(uint64_t)&hdrs[slot], sizeof(struct hdr), VDESC_NEXT, d + 1};
	q->desc[d + 1] =
		(struct vdesc){(uint64_t)buf, len,
			       (uint16_t)(VDESC_NEXT | (device_writes ? VDESC_WRITE : 0)), d + 2};
	q->desc[d + 2] = (struct vdesc){(uint64_t)&statuses[slot], 1, VDESC_WRITE, 0};
	if (type == 4) /* flush: no data descriptor */
		q->desc[d].next = d + 2;
	vq_add(q, d);
}

/* Publish what was queued, notify, and wait until the device used it all. */
static int kick_and_wait(void)
{
	uint64_t deadline = rt_rdtsc() + rt_info()->tsc_khz * 10000; /* 10 s */
	uint32_t id, len;

	vq_kick(q);
	while (q->used_seen != q->avail_idx) {
		if (vq_used(q, &id, &len))
			continue;
		if (rt_rdtsc() > deadline) {
			rt_print("vblk: the device did not complete the requests within 10 s\n");
			return -1;
		}
		__asm__ volatile("pause");
	}
	return 0;
}

/* A range request (discard 11, write zeroes 13) of @n sectors at @sector: its status. */
static uint8_t range_req(uint32_t type, uint64_t sector, uint32_t n, uint32_t flags)
{
	struct {
		uint64_t sector;
		uint32_t num, flags;
	} *range = (void *)(bufs + (1 << 20));

	range->sector = sector;
	range->num = n;
	range->flags = flags;
	queue_req(0, type, 0, range, sizeof(*range), 0);
	if (kick_and_wait())
		return 0xff;
	return statuses[0];
}

/* Discard the first half of @sectors, zero the next quarter; both must read back as zeros. */
static int discard_check(uint64_t sectors)
{
	uint64_t zeros = 0, half = sectors / 2, quarter = sectors / 4;
	uint8_t d = range_req(11, 0, (uint32_t)half, 0);
	uint8_t z = range_req(13, half, (uint32_t)quarter, 1 /* may unmap */);
	uint8_t bad = range_req(11, 0, 8, 1); /* discard with a flag: not supported */

	for (uint64_t s = 0; s < half + quarter; s += chunk / 512) {
		memset(bufs, 0xa5, chunk);
		queue_req(0, 0, s, bufs, chunk, 1);
		if (kick_and_wait())
			return 1;
		for (uint64_t w = 0; w < chunk / 8; w++)
			if (((uint64_t *)bufs)[w]) {
				zeros++;
				break;
			}
	}
	rt_report("discard_status", d);
	rt_report("write_zeroes_status", z);
	rt_report("discard_flag_status", bad);
	rt_report("nonzero_after_discard", zeros);
	return d != 0 || z != 0 || bad != 2 || zeros != 0;
}

int main(unsigned vcpu)
{
	const struct lp_info *info = rt_info();
	uint64_t size = rt_arg_u64("size", 8 << 20), seed = rt_arg_u64("seed", 1);
	uint64_t inflight = rt_arg_u64("inflight", 8), capacity, mismatches = 0, requests = 0;
	uint64_t sectors_per_chunk, nchunks;
	int failed = 0;

	chunk = rt_arg_u64("chunk", 65536);
	if (vcpu != 0)
		return 0;
	if (inflight > QSIZE / 3 || chunk % 512 || !chunk || size % chunk)
		rt_exit(2);
	if (setup((info->free_base + 0xfff) & ~0xfffULL))
		return 3;
	capacity = *(volatile uint64_t *)dev.devcfg;
	rt_report("capacity_sectors", capacity);
	if (size / 512 > capacity) {
		rt_print("vblk: size= is larger than the disk\n");
		return 2;
	}
	sectors_per_chunk = chunk / 512;
	nchunks = size / chunk;
	/* write, several in flight */
	for (uint64_t c = 0; c < nchunks; c += inflight) {
		for (uint64_t k = 0; k < inflight && c + k < nchunks; k++) {
			uint64_t *b = (uint64_t *)(bufs + k * chunk);

			for (uint64_t w = 0; w < chunk / 8; w++)
				b[w] = wl_blk_pattern(seed, (c + k) * sectors_per_chunk, w);
			queue_req(k, 1, (c + k) * sectors_per_chunk, b, chunk, 0);
			requests++;
		}
		if (kick_and_wait())
			return 4;
		for (uint64_t k = 0; k < inflight && c + k < nchunks; k++)
			failed |= statuses[k] != 0;
	}
	queue_req(0, 4, 0, 0, 0, 0); /* flush */
	if (kick_and_wait() || statuses[0] != 0)
		failed = 1;
	/* read back */
	for (uint64_t c = 0; c < nchunks; c += inflight) {
		for (uint64_t k = 0; k < inflight && c + k < nchunks; k++) {
			memset(bufs + k * chunk, 0, chunk);
			queue_req(k, 0, (c + k) * sectors_per_chunk, bufs + k * chunk, chunk, 1);
			requests++;
		}
		if (kick_and_wait())
			return 4;
		for (uint64_t k = 0; k < inflight && c + k < nchunks; k++) {
			uint64_t *b = (uint64_t *)(bufs + k * chunk);

			failed |= statuses[k] != 0;
			for (uint64_t w = 0; w < chunk / 8; w++)
				if (b[w] != wl_blk_pattern(seed, (c + k) * sectors_per_chunk, w)) {
					mismatches++;
					break;
				}
		}
	}
	rt_report("requests", requests);
	rt_report("mismatches", mismatches);
	if (rt_arg_u64("discard", 0))
		failed |= discard_check(size / 512);
	/* requests the device must refuse, with the right status */
	queue_req(0, 1, capacity, bufs, 512, 0); /* past the end: IOERR */
	queue_req(1, 99, 0, bufs, 512, 1);	 /* unknown type: UNSUPP */
	queue_req(2, 8, 0, bufs + 4096, 20, 1);	 /* GET_ID */
	if (kick_and_wait())
		return 4;
	rt_report("past_end_status", statuses[0]);
	rt_report("unknown_type_status", statuses[1]);
	rt_report("get_id_ok", memcmp(bufs + 4096, "lego-", 5) == 0);
	failed |= statuses[0] != 1 || statuses[1] != 2 || memcmp(bufs + 4096, "lego-", 5);
	if (rt_arg_u64("evil", 0)) {
		/* a data buffer far outside guest RAM: the device must ask for a reset */
		uint64_t deadline = rt_rdtsc() + info->tsc_khz * 5000;

		queue_req(0, 0, 0, (void *)(1ULL << 40), 512, 1);
		vq_kick(q);
		while (!(vdev_status(&dev) & 64) && rt_rdtsc() < deadline)
			__asm__ volatile("pause");
		rt_report("needs_reset", (vdev_status(&dev) & 64) != 0);
		failed |= !(vdev_status(&dev) & 64);
		vdev_reset(&dev); /* reset: the device must come back clean */
		rt_report("status_after_reset", vdev_status(&dev));
		/* a queue whose rings lie far outside guest RAM, enabled: the device
		 * must ask for a reset, and this write must return (it once
		 * deadlocked the vCPU on the device's lock) */
		*(volatile uint16_t *)(dev.common + 0x16) = 0;
		*(volatile uint32_t *)(dev.common + 0x20) = 0;
		*(volatile uint32_t *)(dev.common + 0x24) = 0x100; /* 1 TiB */
		*(volatile uint16_t *)(dev.common + 0x1c) = 1;
		rt_report("bad_ring_needs_reset", (vdev_status(&dev) & 64) != 0);
		failed |= !(vdev_status(&dev) & 64);
		vdev_reset(&dev);
	}
	return failed || mismatches ? 1 : 0;
}
