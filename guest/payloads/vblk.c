/*
 * vblk.c - a virtio-blk driver in ring 3: finds the device in PCI
 * configuration space, negotiates virtio 1.x, sets up a split virtqueue and
 * writes, flushes and reads back a pattern with several requests in flight;
 * then checks that bad requests get errors and that a malformed descriptor
 * makes the device ask for a reset instead of harming anything.
 *
 * args: size=BYTES to write (default 8M), chunk=BYTES per request (64K),
 *       inflight=N requests at once (8), seed=N, evil=1 (the malformed part)
 * Reports capacity_sectors, requests, mismatches, and the error checks.
 */
#include "rt.h"

#define WL_POW rt_pow
#include "workload.h"

#define QSIZE 64

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

struct hdr {
	uint32_t type, reserved;
	uint64_t sector;
};

static volatile uint8_t *common, *isr, *devcfg, *notify;
static struct desc *descs;
static volatile uint16_t *avail, *used;
static uint16_t avail_idx, used_seen;
static struct hdr *hdrs;
static uint8_t *statuses;
static uint8_t *bufs;
static uint64_t chunk;

static uint32_t cfg_read(unsigned slot, unsigned reg)
{
	rt_outl(0xcf8, 0x80000000u | slot << 11 | (reg & 0xfc));
	return rt_inl(0xcfc);
}

#define W8(p, off, v)  (*(volatile uint8_t *)((p) + (off)) = (v))
#define W16(p, off, v) (*(volatile uint16_t *)((p) + (off)) = (v))
#define W32(p, off, v) (*(volatile uint32_t *)((p) + (off)) = (v))
#define R8(p, off)     (*(volatile uint8_t *)((p) + (off)))
#define R16(p, off)    (*(volatile uint16_t *)((p) + (off)))
#define R32(p, off)    (*(volatile uint32_t *)((p) + (off)))

static int find_device(void)
{
	unsigned slot;
	uint64_t bar;
	uint32_t ptr;

	for (slot = 0; slot < 32; slot++)
		if (cfg_read(slot, 0) == 0x10421af4)
			break;
	if (slot == 32) {
		rt_print("vblk: no virtio-blk device on PCI bus 0\n");
		return -1;
	}
	bar = cfg_read(slot, 0x10) & ~0xfULL;
	for (ptr = cfg_read(slot, 0x34) & 0xff; ptr; ptr = (cfg_read(slot, ptr) >> 8) & 0xff) {
		uint32_t head = cfg_read(slot, ptr), type = (head >> 24) & 0xff;
		volatile uint8_t *where = (volatile uint8_t *)(bar + cfg_read(slot, ptr + 8));

		if ((head & 0xff) != 0x09)
			continue;
		if (type == 1)
			common = where;
		else if (type == 2)
			notify = where; /* queue 0: notify_off 0 */
		else if (type == 3)
			isr = where;
		else if (type == 4)
			devcfg = where;
	}
	if (!common || !notify || !isr || !devcfg) {
		rt_print("vblk: the device lacks a virtio capability\n");
		return -1;
	}
	rt_printf("vblk: virtio-blk in slot %u, BAR0 at %p\n", slot, (void *)bar);
	return 0;
}

static int negotiate(uint64_t mem)
{
	uint32_t hi;

	W8(common, 0x14, 0);
	W8(common, 0x14, 1 | 2); /* ACKNOWLEDGE | DRIVER */
	W32(common, 0x00, 1);
	hi = R32(common, 0x04);
	if (!(hi & 1)) {
		rt_print("vblk: device does not offer VIRTIO_F_VERSION_1\n");
		return -1;
	}
	W32(common, 0x08, 0);
	W32(common, 0x0c, 1u << 9); /* FLUSH */
	W32(common, 0x08, 1);
	W32(common, 0x0c, 1); /* VERSION_1 */
	W8(common, 0x14, 1 | 2 | 8);
	if (!(R8(common, 0x14) & 8)) {
		rt_print("vblk: FEATURES_OK refused\n");
		return -1;
	}
	W16(common, 0x16, 0);
	if (R16(common, 0x18) < QSIZE) {
		rt_print("vblk: queue too small\n");
		return -1;
	}
	W16(common, 0x18, QSIZE);
	descs = (struct desc *)mem;
	avail = (volatile uint16_t *)(mem + 4096);
	used = (volatile uint16_t *)(mem + 8192);
	hdrs = (struct hdr *)(mem + 12288);
	statuses = (uint8_t *)(mem + 16384);
	bufs = (uint8_t *)(mem + 20480);
	W32(common, 0x20, (uint32_t)(uint64_t)descs);
	W32(common, 0x24, 0);
	W32(common, 0x28, (uint32_t)(uint64_t)avail);
	W32(common, 0x2c, 0);
	W32(common, 0x30, (uint32_t)(uint64_t)used);
	W32(common, 0x34, 0);
	W16(common, 0x1c, 1);
	W8(common, 0x14, 1 | 2 | 8 | 4); /* DRIVER_OK */
	return 0;
}

/* Queue request @slot (3 descriptors) of @type on @sector with @len bytes of buffer @buf. */
static void queue_req(unsigned slot, uint32_t type, uint64_t sector, void *buf, uint32_t len,
		      int device_writes)
{
	unsigned d = slot * 3;

	hdrs[slot] = (struct hdr){type, 0, sector};
	statuses[slot] = 0xff;
	descs[d] = (struct desc){(uint64_t)&hdrs[slot], sizeof(struct hdr), 1, d + 1};
	descs[d + 1] =
		(struct desc){(uint64_t)buf, len, (uint16_t)(1 | (device_writes ? 2 : 0)), d + 2};
	descs[d + 2] = (struct desc){(uint64_t)&statuses[slot], 1, 2, 0};
	if (type == 4) /* flush: no data descriptor */
		descs[d].next = d + 2;
	avail[2 + avail_idx % QSIZE] = d;
	avail_idx++;
}

/* Publish what was queued, notify, and wait until the device used it all. */
static int kick_and_wait(void)
{
	uint64_t deadline = rt_rdtsc() + rt_info()->tsc_khz * 10000; /* 10 s */

	__atomic_store_n(&avail[1], avail_idx, __ATOMIC_RELEASE);
	W16(notify, 0, 0);
	while (__atomic_load_n(&used[1], __ATOMIC_ACQUIRE) != avail_idx) {
		if (rt_rdtsc() > deadline) {
			rt_print("vblk: the device did not complete the requests within 10 s\n");
			return -1;
		}
		__asm__ volatile("pause");
	}
	used_seen = avail_idx;
	return 0;
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
	if (find_device() || negotiate((info->free_base + 0xfff) & ~0xfffULL))
		return 3;
	capacity = *(volatile uint64_t *)devcfg;
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
		__atomic_store_n(&avail[1], avail_idx, __ATOMIC_RELEASE);
		W16(notify, 0, 0);
		while (!(R8(common, 0x14) & 64) && rt_rdtsc() < deadline)
			__asm__ volatile("pause");
		rt_report("needs_reset", (R8(common, 0x14) & 64) != 0);
		failed |= !(R8(common, 0x14) & 64);
		W8(common, 0x14, 0); /* reset: the device must come back clean */
		rt_report("status_after_reset", R8(common, 0x14));
	}
	(void)isr;
	(void)used_seen;
	return failed || mismatches ? 1 : 0;
}
