/*
 * vnetbench.c - virtio-net at speed, from ring 3 (tests/bench/bench_net.c
 * is the host side): mode=tx sends count frames of size bytes, QSIZE at a
 * time, and reports how long that took; mode=rx receives count frames and
 * reports the time from the first to the last; mode=echo sends back every
 * frame it receives (to the sender's MAC), count of them.
 */
#include "rt.h"
#include "vdev.h"

#define QSIZE 256
#define BUF   2048
#define HDR   12

static struct vdev dev;
static struct vq *rxq, *txq;
static uint8_t *rxbufs, *txbufs;

static void post_rx(uint16_t i)
{
	rxq->desc[i] = (struct vdesc){(uint64_t)(rxbufs + (uint64_t)i * BUF), BUF, VDESC_WRITE, 0};
	vq_add(rxq, i);
}

static int setup(uint64_t mem)
{
	/* MRG_RXBUF: one buffer per frame of this size, as a driver would */
	if (vdev_find(&dev, 0x1041, "vnetbench") || vdev_negotiate(&dev, 1ULL << 15, NULL) ||
	    vdev_queue(&dev, 0, QSIZE, (void *)mem) ||
	    vdev_queue(&dev, 1, QSIZE, (void *)(mem + 16384)))
		return -1;
	rxq = &dev.vq[0];
	txq = &dev.vq[1];
	rxbufs = (uint8_t *)(mem + 32768);
	txbufs = rxbufs + QSIZE * BUF;
	vdev_ready(&dev);
	for (uint16_t i = 0; i < QSIZE; i++)
		post_rx(i);
	vq_kick(rxq);
	return 0;
}

/* Send @count frames of @size bytes, keeping the queue full; the cycles it took. */
static uint64_t tx(uint64_t count, uint32_t size)
{
	uint64_t t0 = rt_rdtsc(), sent = 0, done = 0;
	uint32_t id, len;

	for (uint16_t i = 0; i < QSIZE; i++) {
		uint8_t *b = txbufs + (uint64_t)i * BUF;

		memset(b, 0, HDR + size);
		memset(b + HDR, 0xff, 6); /* broadcast */
		b[HDR + 12] = 0x88;
		b[HDR + 13] = 0xb5;
		txq->desc[i] = (struct vdesc){(uint64_t)b, HDR + size, 0, 0};
	}
	while (done < count) {
		while (sent < count && sent - done < QSIZE) {
			vq_add(txq, (uint16_t)(sent % QSIZE));
			sent++;
		}
		vq_kick(txq);
		while (vq_used(txq, &id, &len))
			done++;
	}
	return rt_rdtsc() - t0;
}

/* The next frame's buffer index (or -1 at the deadline); its length in *@len. */
static int next_frame(uint64_t deadline, uint32_t *len)
{
	uint32_t id;

	while (!vq_used(rxq, &id, len)) {
		if (rt_rdtsc() > deadline)
			return -1;
		__asm__ volatile("pause");
	}
	return (int)id;
}

int main(unsigned vcpu)
{
	uint64_t count = rt_arg_u64("count", 10000), size = rt_arg_u64("size", 1514);
	uint64_t mem = (rt_info()->free_base + 0xfff) & ~0xfffULL, khz = rt_info()->tsc_khz;
	uint64_t deadline, t0 = 0, got = 0;
	uint32_t len;

	if (vcpu != 0)
		return 0;
	if (setup(mem))
		return 3;
	rt_report("ready", 1);
	if (rt_arg_is("mode", "tx", 0)) {
		rt_report("tx_ns", tx(count, (uint32_t)size) * 1000000 / khz);
		return 0;
	}
	deadline = rt_rdtsc() + khz * 60000;
	while (got < count) {
		int id = next_frame(deadline, &len);
		uint8_t *b;

		if (id < 0)
			break;
		if (!got)
			t0 = rt_rdtsc();
		got++;
		b = rxbufs + (uint64_t)id * BUF;
		if (rt_arg_is("mode", "echo", 0) && len > HDR + 14) {
			uint8_t *o = txbufs + (uint64_t)(txq->avail_idx % QSIZE) * BUF;
			uint32_t tid, tlen;

			memcpy(o, b, len);
			memset(o, 0, HDR);
			memcpy(o + HDR, b + HDR + 6, 6); /* back to its sender */
			txq->desc[txq->avail_idx % QSIZE] = (struct vdesc){(uint64_t)o, len, 0, 0};
			vq_add(txq, txq->avail_idx % QSIZE);
			vq_kick(txq);
			while (vq_used(txq, &tid, &tlen))
				;
		}
		post_rx((uint16_t)id);
		if (got % 32 == 0 || rt_arg_is("mode", "echo", 0))
			vq_kick(rxq);
	}
	rt_report("rx_frames", got);
	rt_report("rx_ns", got ? (rt_rdtsc() - t0) * 1000000 / khz : 0);
	return 0;
}
