/*
 * vnet.c - a virtio-net driver in ring 3: negotiates checksum and
 * segmentation offloads and mergeable receive buffers, sends numbered
 * frames (and a UDP frame whose checksum it leaves to the host), then
 * receives numbered frames and a large segmentation-offloaded TCP frame
 * from the host, each checked byte for byte; then checks that a malformed
 * chain and an oversized frame make the device ask for a reset.
 *
 * Frames are Ethernet with EtherType 0x88b5 (local experimental): 4 bytes
 * sequence number, 4 bytes length, then byte i = (seq * 7 + i) & 0xff. The
 * host side is tests/vmm/test_virtio_net.c.
 *
 * args: tx=N frames to send (64), rx=N frames to receive (64), size=BYTES
 *       per frame (1000), gso=1 (the large frame), evil=1 (the malformed part),
 *       csum=0 (no UDP frame), first=rx (receive before sending: the second
 *       of two vNodes that talk to each other)
 */
#include "rt.h"
#include "vdev.h"

#define QSIZE	 128
#define RXBUF	 2048
#define HDR	 12
#define ETHERTYP 0x88b5

/* feature bits (virtio 1.2, 5.1.3) */
#define F_CSUM	     (1ULL << 0)
#define F_GUEST_CSUM (1ULL << 1)
#define F_MAC	     (1ULL << 5)
#define F_GUEST_TSO4 (1ULL << 7)
#define F_HOST_TSO4  (1ULL << 11)
#define F_MRG_RXBUF  (1ULL << 15)

struct net_hdr {
	uint8_t flags, gso_type;
	uint16_t hdr_len, gso_size, csum_start, csum_offset, num_buffers;
} __attribute__((packed));

static struct vdev dev;
static struct vq *rxq, *txq;
static uint8_t *rxbufs, *txbufs, *frame;
static uint8_t mac[6];

static void post_rx(uint16_t i)
{
	rxq->desc[i] =
		(struct vdesc){(uint64_t)(rxbufs + (uint64_t)i * RXBUF), RXBUF, VDESC_WRITE, 0};
	vq_add(rxq, i);
}

static int setup(uint64_t mem, uint64_t *features)
{
	uint64_t want = F_CSUM | F_GUEST_CSUM | F_MAC | F_GUEST_TSO4 | F_HOST_TSO4 | F_MRG_RXBUF;

	if (vdev_find(&dev, 0x1041, "vnet"))
		return -1;
	if (vdev_negotiate(&dev, want, features) || (*features & want) != want) {
		rt_printf("vnet: the device does not take the offloads (offered %#llx)\n",
			  (unsigned long long)*features);
		return -1;
	}
	if (vdev_queue(&dev, 0, QSIZE, (void *)mem) ||
	    vdev_queue(&dev, 1, QSIZE, (void *)(mem + 16384)))
		return -1;
	rxq = &dev.vq[0];
	txq = &dev.vq[1];
	rxbufs = (uint8_t *)(mem + 32768);
	txbufs = rxbufs + QSIZE * RXBUF;
	frame = txbufs + QSIZE * RXBUF;
	vdev_ready(&dev);
	for (uint16_t i = 0; i < QSIZE; i++)
		post_rx(i);
	vq_kick(rxq);
	for (int i = 0; i < 6; i++)
		mac[i] = *(dev.devcfg + i);
	return 0;
}

static void fill(uint8_t *eth, uint32_t seq, uint32_t len)
{
	for (int i = 0; i < 6; i++)
		eth[i] = 0xff; /* broadcast: the host, or every vNode on the bridge */
	memcpy(eth + 6, mac, 6);
	eth[12] = ETHERTYP >> 8;
	eth[13] = ETHERTYP & 0xff;
	memcpy(eth + 14, &seq, 4);
	memcpy(eth + 18, &len, 4);
	for (uint32_t i = 22; i < len; i++)
		eth[i] = (uint8_t)(seq * 7 + i);
}

static int check(const uint8_t *eth, uint32_t len, uint32_t *seq)
{
	uint32_t l;

	if (len < 22 || eth[12] != (ETHERTYP >> 8) || eth[13] != (ETHERTYP & 0xff))
		return 1; /* not ours: the host's own chatter */
	memcpy(seq, eth + 14, 4);
	memcpy(&l, eth + 18, 4);
	if (l != len)
		return -1;
	for (uint32_t i = 22; i < len; i++)
		if (eth[i] != (uint8_t)(*seq * 7 + i))
			return -1;
	return 0;
}

/* Send one frame (header + @len bytes at @eth) in one descriptor; wait for the device. */
static int send(const struct net_hdr *h, const uint8_t *eth, uint32_t len)
{
	uint64_t deadline = rt_rdtsc() + rt_info()->tsc_khz * 5000;
	uint16_t slot = txq->avail_idx % QSIZE;
	uint8_t *buf = txbufs + (uint64_t)slot * RXBUF;
	uint32_t id, ulen;

	memcpy(buf, h, HDR);
	memcpy(buf + HDR, eth, len);
	txq->desc[slot] = (struct vdesc){(uint64_t)buf, HDR + len, 0, 0};
	vq_add(txq, slot);
	vq_kick(txq);
	while (txq->used_seen != txq->avail_idx) {
		if (vq_used(txq, &id, &ulen))
			continue;
		if (rt_rdtsc() > deadline)
			return -1;
		__asm__ volatile("pause");
	}
	return 0;
}

/* The next frame into @frame (merged from several buffers): its length with the header, 0 on timeout. */
static uint32_t receive(uint64_t deadline, struct net_hdr *h)
{
	uint32_t id, len, total = 0, need = 1;

	for (uint32_t got = 0; got < need;) {
		if (!vq_used(rxq, &id, &len)) {
			if (rt_rdtsc() > deadline)
				return 0;
			__asm__ volatile("pause");
			continue;
		}
		if (got == 0) {
			memcpy(h, rxbufs + (uint64_t)id * RXBUF, HDR);
			need = h->num_buffers ? h->num_buffers : 1;
		}
		if (total + len <= 65536 + 128)
			memcpy(frame + total, rxbufs + (uint64_t)id * RXBUF, len);
		total += len;
		got++;
		post_rx((uint16_t)id);
	}
	vq_kick(rxq);
	return total;
}

/* A frame the device must refuse, the device's answer, and a reset that brings it back. */
static int expect_reset(uint64_t features, uint64_t mem, int writable)
{
	uint64_t deadline = rt_rdtsc() + rt_info()->tsc_khz * 5000;
	uint16_t slot = txq->avail_idx % QSIZE;
	int asked;

	memset(txbufs, 0, 3 * 32768);
	if (writable) { /* a transmit buffer the device would write into */
		txq->desc[slot] = (struct vdesc){(uint64_t)txbufs, 100, VDESC_WRITE, 0};
	} else { /* three 32 KiB descriptors: 96 KiB, more than any frame */
		for (int i = 0; i < 3; i++)
			txq->desc[(slot + i) % QSIZE] =
				(struct vdesc){(uint64_t)(txbufs + i * 32768), 32768,
					       (uint16_t)(i < 2 ? VDESC_NEXT : 0),
					       (uint16_t)((slot + i + 1) % QSIZE)};
	}
	vq_add(txq, slot);
	vq_kick(txq);
	while (!(vdev_status(&dev) & 64) && rt_rdtsc() < deadline)
		__asm__ volatile("pause");
	asked = (vdev_status(&dev) & 64) != 0;
	vdev_reset(&dev);
	if (vdev_status(&dev) != 0 || setup(mem, &features))
		return 0;
	return asked;
}

/* Send @n numbered frames of @size bytes, then (csum=1) the UDP frame with a partial checksum. */
static int tx_phase(uint64_t n, uint64_t size)
{
	struct net_hdr h = {0};
	uint8_t eth[1514];

	for (uint32_t i = 0; i < n; i++) {
		fill(eth, i, (uint32_t)size);
		if (send(&h, eth, (uint32_t)size)) {
			rt_print("vnet: the device did not take a frame within 5 s\n");
			return -1;
		}
	}
	if (!rt_arg_u64("csum", 1))
		return 0;
	/* A UDP datagram whose checksum the host completes (NEEDS_CSUM): IPv4,
	 * 10.0.0.2 -> 10.0.0.1, port 9 -> 9, 100 bytes of data. */
	{
		static const uint8_t ip[20] = {0x45, 0, 0,  128, 0, 0, 0x40, 0, 64, 17,
					       0,    0, 10, 0,	 0, 2, 10,   0, 0,  1};
		uint16_t udp[4] = {0x0900, 0x0900, (uint16_t)(108 >> 8 | (108 & 0xff) << 8), 0};
		uint32_t sum = 0;

		for (int i = 0; i < 6; i++)
			eth[i] = 0xff;
		memcpy(eth + 6, mac, 6);
		eth[12] = 0x08;
		eth[13] = 0x00;
		memcpy(eth + 14, ip, 20);
		for (int i = 0; i < 20; i += 2) /* the IP header checksum is ours */
			sum += (uint32_t)eth[14 + i] << 8 | eth[15 + i];
		sum = (sum & 0xffff) + (sum >> 16);
		sum = ~((sum & 0xffff) + (sum >> 16)) & 0xffff;
		eth[24] = (uint8_t)(sum >> 8);
		eth[25] = (uint8_t)sum;
		/* the UDP checksum field holds the pseudo-header sum, as a driver leaves it */
		sum = 0x0a00 + 0x0002 + 0x0a00 + 0x0001 + 17 + 108;
		udp[3] = (uint16_t)((sum >> 8) | (sum & 0xff) << 8);
		memcpy(eth + 34, udp, 8);
		for (int i = 0; i < 100; i++)
			eth[42 + i] = (uint8_t)i;
		h = (struct net_hdr){.flags = 1, .csum_start = 34, .csum_offset = 6};
		return send(&h, eth, 142);
	}
}

/* Receive @n numbered frames and (gso=1) the large TCP frame; 1 when they did not all come. */
static int rx_phase(uint64_t n, uint64_t *frames, uint64_t *mismatches, uint64_t *gso_len,
		    uint64_t *gso_type, uint64_t *gso_bufs)
{
	uint64_t deadline = rt_rdtsc() + rt_info()->tsc_khz * 20000;
	struct net_hdr h;

	while (*frames < n || (rt_arg_u64("gso", 0) && !*gso_len)) {
		uint32_t len = receive(deadline, &h), seq;

		if (!len) {
			rt_printf("vnet: %llu of %llu frames within 20 s\n",
				  (unsigned long long)*frames, (unsigned long long)n);
			return 1;
		}
		if (h.gso_type) {
			*gso_len = len - HDR;
			*gso_type = h.gso_type;
			*gso_bufs = h.num_buffers;
			*mismatches += frame[HDR + 12] != 0x08 || frame[HDR + 13] != 0x00 ||
				       h.gso_size == 0;
			for (uint32_t i = HDR + 54; i < len; i++)
				*mismatches += frame[i] != (uint8_t)(i - HDR - 54);
			continue;
		}
		switch (check(frame + HDR, len - HDR, &seq)) {
		case 0:
			(*frames)++;
			break;
		case -1:
			(*mismatches)++;
			break;
		}
	}
	return 0;
}

int main(unsigned vcpu)
{
	uint64_t ntx = rt_arg_u64("tx", 64), nrx = rt_arg_u64("rx", 64);
	uint64_t size = rt_arg_u64("size", 1000), features;
	uint64_t mem = (rt_info()->free_base + 0xfff) & ~0xfffULL;
	uint64_t rx_frames = 0, mismatches = 0, gso_len = 0, gso_type = 0, gso_bufs = 0;
	int failed = 0;

	if (vcpu != 0)
		return 0;
	if (size < 60 || size > 1514)
		rt_exit(2);
	if (setup(mem, &features))
		return 3;
	rt_report("mac_lo", (uint64_t)mac[2] << 24 | mac[3] << 16 | mac[4] << 8 | mac[5]);
	rt_report("mac_hi", (uint64_t)mac[0] << 8 | mac[1]);
	rt_report("ready", 1);
	if (rt_arg_is("first", "rx", 0))
		failed |= rx_phase(nrx, &rx_frames, &mismatches, &gso_len, &gso_type, &gso_bufs);
	if (tx_phase(ntx, size))
		return 4;
	if (!rt_arg_is("first", "rx", 0))
		failed |= rx_phase(nrx, &rx_frames, &mismatches, &gso_len, &gso_type, &gso_bufs);
	rt_report("tx_frames", ntx);
	rt_report("rx_frames", rx_frames);
	rt_report("rx_mismatches", mismatches);
	rt_report("gso_len", gso_len);
	rt_report("gso_type", gso_type);
	rt_report("gso_buffers", gso_bufs);
	if (rt_arg_u64("evil", 0)) {
		int w = expect_reset(features, mem, 1), o = expect_reset(features, mem, 0);

		rt_report("reset_on_writable_tx", (uint64_t)w);
		rt_report("reset_on_oversized_tx", (uint64_t)o);
		failed |= !w || !o;
	}
	return failed || mismatches ? 1 : 0;
}
