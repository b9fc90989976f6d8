/*
 * vmem.c - a virtio-mem driver in ring 3: reads the device's region and
 * requested size, checks that bad requests are answered with the
 * specification's errors, plugs what is requested, writes and verifies a
 * pattern in the plugged memory, unplugs and plugs again, follows a resize
 * the host makes while it waits (resize=N: N of them, one after the other),
 * unplugs everything, and at last (touch=1) reads an unplugged block, which
 * must stop it; touch=edge reads, right after the first fill, the unplugged
 * block that follows the filled ones (a writer in order is given pages ahead
 * of it: never past what is plugged).
 *
 * args: seed=N, resize=N, fill=0 (resizes: plug and unplug only), touch=1|edge
 * Reports the configuration, each check's response, plugged sizes and
 * mismatches.
 */
#include "rt.h"
#include "vdev.h"

enum { PLUG, UNPLUG, UNPLUG_ALL, STATE };
enum { ACK, NACK, BUSY, ERROR };
enum { PLUGGED, UNPLUGGED, MIXED };

struct req {
	uint16_t type, pad[3];
	uint64_t addr;
	uint16_t nb_blocks, pad2[3];
} __attribute__((packed));

struct resp {
	uint16_t type, pad[3];
	uint16_t state;
} __attribute__((packed));

static struct vdev dev;
static struct vq *q;
static struct req *rq;
static struct resp *rs;
static uint64_t bs, base, usable, seed;
static int failed;

static uint64_t cfg(unsigned off)
{
	return *(volatile uint64_t *)(dev.devcfg + off);
}

#define CFG_PLUGGED   40
#define CFG_REQUESTED 48

/* One request, waited for: the response type (0xffff if the device never answered). */
static uint16_t request(uint16_t type, uint64_t addr, uint16_t nb)
{
	uint64_t deadline = rt_rdtsc() + rt_info()->tsc_khz * 10000;
	uint32_t id, len;

	*rq = (struct req){.type = type, .addr = addr, .nb_blocks = nb};
	*rs = (struct resp){.type = 0xffff};
	q->desc[0] = (struct vdesc){(uint64_t)rq, sizeof(*rq), VDESC_NEXT, 1};
	q->desc[1] = (struct vdesc){(uint64_t)rs, sizeof(*rs), VDESC_WRITE, 0};
	vq_add(q, 0);
	vq_kick(q);
	while (!vq_used(q, &id, &len)) {
		if (rt_rdtsc() > deadline) {
			rt_print("vmem: the device did not answer within 10 s\n");
			return 0xffff;
		}
		__asm__ volatile("pause");
	}
	return rs->type;
}

static void expect(const char *key, uint16_t got, uint16_t want)
{
	rt_report(key, got);
	if (got != want) {
		rt_printf("vmem: %s: response %u, expected %u\n", key, got, want);
		failed = 1;
	}
}

static uint16_t state(uint64_t addr, uint64_t blocks)
{
	return request(STATE, addr, (uint16_t)blocks) == ACK ? rs->state : 0xffff;
}

/* Plug (or unplug) blocks [@from, @to), at most 16 per request. */
static int set_blocks(uint64_t from, uint64_t to, int plug)
{
	for (uint64_t b = from; b < to; b += 16) {
		uint64_t n = to - b < 16 ? to - b : 16;
		uint16_t r = request(plug ? PLUG : UNPLUG, base + b * bs, (uint16_t)n);

		if (r != ACK) {
			rt_printf("vmem: %s of blocks %lu-%lu: response %u\n",
				  plug ? "plug" : "unplug", (unsigned long)b,
				  (unsigned long)(b + n - 1), r);
			return -1;
		}
	}
	return 0;
}

static uint64_t pattern(uint64_t addr)
{
	return (addr * 0x9e3779b97f4a7c15ULL) ^ seed;
}

static void fill(uint64_t from, uint64_t to)
{
	for (uint64_t a = base + from * bs; a < base + to * bs; a += 8)
		*(volatile uint64_t *)a = pattern(a);
}

static uint64_t check(uint64_t from, uint64_t to)
{
	uint64_t bad = 0;

	for (uint64_t a = base + from * bs; a < base + to * bs; a += 8)
		bad += *(volatile uint64_t *)a != pattern(a);
	return bad;
}

/* Wait (at most 120 s) for the host to ask for another size than @was; the new one. */
static uint64_t wait_resize(uint64_t was)
{
	uint64_t deadline = rt_rdtsc() + rt_info()->tsc_khz * 120000;

	rt_print("vmem: waiting for a resize\n");
	while (cfg(CFG_REQUESTED) == was && rt_rdtsc() < deadline)
		__asm__ volatile("pause");
	return cfg(CFG_REQUESTED);
}

/* Plug @blocks from the start, fill, give half back, take it again, check. */
static int plug_and_use(uint64_t blocks, uint64_t *mismatches)
{
	if (set_blocks(0, blocks, 1))
		return 1;
	rt_report("plugged_after_plug", cfg(CFG_PLUGGED));
	failed |= cfg(CFG_PLUGGED) != blocks * bs;
	expect("state_plugged", state(base, blocks), PLUGGED);
	expect("plug_when_all_plugged", request(PLUG, base, 1), NACK);
	fill(0, blocks);
	*mismatches += check(0, blocks);

	/* give half back, take it again: the half kept keeps its contents */
	if (set_blocks(blocks / 2, blocks, 0))
		return 1;
	rt_report("plugged_after_unplug", cfg(CFG_PLUGGED));
	failed |= cfg(CFG_PLUGGED) != blocks / 2 * bs;
	expect("state_mixed", state(base, blocks), MIXED);
	expect("plug_plugged", request(PLUG, base, 1), ERROR);
	if (set_blocks(blocks / 2, blocks, 1))
		return 1;
	*mismatches += check(0, blocks / 2);
	fill(blocks / 2, blocks);
	*mismatches += check(0, blocks);
	return 0;
}

int main(unsigned vcpu)
{
	const struct lp_info *info = rt_info();
	uint64_t mem = (info->free_base + 0xfff) & ~0xfffULL, requested, blocks, mismatches = 0;

	if (vcpu != 0)
		return 0;
	seed = rt_arg_u64("seed", 1);
	if (vdev_find(&dev, 0x1058, "vmem") || vdev_negotiate(&dev, 1u << 1, NULL) ||
	    vdev_queue(&dev, 0, 16, (void *)mem))
		return 3;
	q = &dev.vq[0];
	rq = (struct req *)(mem + 16384);
	rs = (struct resp *)(mem + 16384 + 64);
	vdev_ready(&dev);
	bs = cfg(0);
	base = cfg(16);
	usable = cfg(32);
	requested = cfg(CFG_REQUESTED);
	rt_report("block_size", bs);
	rt_report("addr", base);
	rt_report("region_size", cfg(24));
	rt_report("usable_size", usable);
	rt_report("requested_size", requested);
	rt_report("plugged_at_start", cfg(CFG_PLUGGED));
	if (!bs || !usable || requested % bs || requested >= usable)
		return 2; /* (room to plug past the request is needed for the checks) */
	blocks = requested / bs;

	/* what the device must refuse, changing nothing */
	expect("misaligned_plug", request(PLUG, base + 4096, 1), ERROR);
	expect("plug_past_usable", request(PLUG, base + usable, 1), ERROR);
	expect("plug_below_region", request(PLUG, base - bs, 1), ERROR);
	expect("plug_zero_blocks", request(PLUG, base, 0), ERROR);
	expect("unplug_unplugged", request(UNPLUG, base, 1), ERROR);
	expect("plug_past_requested", request(PLUG, base, (uint16_t)(blocks + 1)), NACK);
	expect("unknown_request", request(9, base, 1), ERROR);
	expect("state_at_start", state(base, usable / bs), UNPLUGGED);
	rt_report("plugged_after_refusals", cfg(CFG_PLUGGED));
	failed |= cfg(CFG_PLUGGED) != 0;

	/* plug what is requested, use it (if anything is at first) */
	if (blocks)
		failed |= plug_and_use(blocks, &mismatches);
	/* touch=edge: the unplugged block just after the ones filled in order */
	if (blocks && blocks < usable / bs && rt_arg_is("touch", "edge", 0)) {
		rt_print("vmem: reading the unplugged block after the filled ones\n");
		rt_report("read_unplugged", *(volatile uint64_t *)(base + blocks * bs));
		return 5; /* it should not have come back */
	}

	/* follow the resizes the host makes now, one after the other */
	for (uint64_t i = 0, n = rt_arg_u64("resize", 0); i < n; i++) {
		uint64_t want = wait_resize(blocks * bs) / bs, kept = want < blocks ? want : blocks;
		char key[32];

		if (want > blocks ? set_blocks(blocks, want, 1) : set_blocks(want, blocks, 0))
			return 4;
		rt_snprintf(key, sizeof(key), "plugged_after_resize_%lu", (unsigned long)i);
		rt_report(key, cfg(CFG_PLUGGED));
		failed |= cfg(CFG_PLUGGED) != want * bs;
		if (rt_arg_u64("fill", 1)) { /* fill=0: plug only (a benchmark's timing) */
			mismatches += check(0, kept);
			fill(kept, want);
			mismatches += check(0, want);
		}
		blocks = want;
		rt_printf("vmem: resized to %lu MiB\n", (unsigned long)(want * bs >> 20));
	}
	rt_report("mismatches", mismatches);

	expect("unplug_all", request(UNPLUG_ALL, 0, 0), ACK);
	rt_report("plugged_after_unplug_all", cfg(CFG_PLUGGED));
	failed |= cfg(CFG_PLUGGED) != 0;
	expect("state_after_unplug_all", state(base, usable / bs), UNPLUGGED);

	if (rt_arg_u64("touch", 0)) {
		rt_print("vmem: reading an unplugged block\n");
		rt_report("read_unplugged", *(volatile uint64_t *)base);
		return 5; /* it should not have come back */
	}
	return failed || mismatches ? 1 : 0;
}
