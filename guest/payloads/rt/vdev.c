/* vdev.c - the payloads' virtio-pci driver (see vdev.h). */
#include "rt.h"
#include "vdev.h"

#define W8(p, off, v)  (*(volatile uint8_t *)((p) + (off)) = (v))
#define W16(p, off, v) (*(volatile uint16_t *)((p) + (off)) = (v))
#define W32(p, off, v) (*(volatile uint32_t *)((p) + (off)) = (v))
#define R8(p, off)     (*(volatile uint8_t *)((p) + (off)))
#define R16(p, off)    (*(volatile uint16_t *)((p) + (off)))
#define R32(p, off)    (*(volatile uint32_t *)((p) + (off)))

static uint32_t cfg_read(unsigned slot, unsigned reg)
{
	rt_outl(0xcf8, 0x80000000u | slot << 11 | (reg & 0xfc));
	return rt_inl(0xcfc);
}

int vdev_find(struct vdev *d, uint16_t device_id, const char *who)
{
	uint32_t ptr, want = (uint32_t)device_id << 16 | 0x1af4;
	uint64_t bar;

	memset(d, 0, sizeof(*d));
	for (d->slot = 0; d->slot < 32; d->slot++)
		if (cfg_read(d->slot, 0) == want)
			break;
	if (d->slot == 32) {
		rt_printf("%s: no virtio device %#x on PCI bus 0\n", who, device_id);
		return -1;
	}
	bar = cfg_read(d->slot, 0x10) & ~0xfULL;
	for (ptr = cfg_read(d->slot, 0x34) & 0xff; ptr;
	     ptr = (cfg_read(d->slot, ptr) >> 8) & 0xff) {
		uint32_t head = cfg_read(d->slot, ptr), type = (head >> 24) & 0xff;
		volatile uint8_t *where = (volatile uint8_t *)(bar + cfg_read(d->slot, ptr + 8));

		if ((head & 0xff) != 0x09)
			continue;
		if (type == 1) {
			d->common = where;
		} else if (type == 2) {
			d->notify = where;
			d->notify_mult = cfg_read(d->slot, ptr + 16);
		} else if (type == 3) {
			d->isr = where;
		} else if (type == 4) {
			d->devcfg = where;
		}
	}
	if (!d->common || !d->notify || !d->isr || !d->devcfg) {
		rt_printf("%s: the device lacks a virtio capability\n", who);
		return -1;
	}
	rt_printf("%s: virtio device %#x in slot %u, BAR0 at %p\n", who, device_id, d->slot,
		  (void *)bar);
	return 0;
}

int vdev_negotiate(struct vdev *d, uint64_t features, uint64_t *offered)
{
	uint64_t dev;

	W8(d->common, 0x14, 0);
	W8(d->common, 0x14, 1 | 2); /* ACKNOWLEDGE | DRIVER */
	W32(d->common, 0x00, 0);
	dev = R32(d->common, 0x04);
	W32(d->common, 0x00, 1);
	dev |= (uint64_t)R32(d->common, 0x04) << 32;
	if (offered)
		*offered = dev;
	if (!(dev & (1ULL << 32)))
		return -1; /* no VERSION_1 */
	features = (features & dev) | (1ULL << 32);
	W32(d->common, 0x08, 0);
	W32(d->common, 0x0c, (uint32_t)features);
	W32(d->common, 0x08, 1);
	W32(d->common, 0x0c, (uint32_t)(features >> 32));
	W8(d->common, 0x14, 1 | 2 | 8);
	return R8(d->common, 0x14) & 8 ? 0 : -1;
}

int vdev_queue(struct vdev *d, unsigned q, uint16_t size, void *mem)
{
	struct vq *v = &d->vq[q];
	uint64_t base = (uint64_t)mem;

	W16(d->common, 0x16, q);
	if (R16(d->common, 0x18) < size)
		return -1;
	W16(d->common, 0x18, size);
	*v = (struct vq){.size = size, .index = (uint16_t)q};
	v->desc = (struct vdesc *)base;
	v->avail = (volatile uint16_t *)(base + 16 * size);
	v->used = (volatile uint16_t *)(base + 8192);
	v->notify = (volatile uint16_t *)(d->notify + R16(d->common, 0x1e) * d->notify_mult);
	memset(mem, 0, 16384);
	W32(d->common, 0x20, (uint32_t)base);
	W32(d->common, 0x24, (uint32_t)(base >> 32));
	W32(d->common, 0x28, (uint32_t)(uint64_t)v->avail);
	W32(d->common, 0x2c, 0);
	W32(d->common, 0x30, (uint32_t)(uint64_t)v->used);
	W32(d->common, 0x34, 0);
	W16(d->common, 0x1c, 1);
	return 0;
}

void vdev_ready(struct vdev *d)
{
	W8(d->common, 0x14, 1 | 2 | 8 | 4);
}

void vq_add(struct vq *q, uint16_t head)
{
	q->avail[2 + q->avail_idx % q->size] = head;
	q->avail_idx++;
}

void vq_kick(struct vq *q)
{
	__atomic_store_n(&q->avail[1], q->avail_idx, __ATOMIC_RELEASE);
	*q->notify = q->index;
}

int vq_used(struct vq *q, uint32_t *id, uint32_t *len)
{
	volatile uint32_t *elem;

	if (__atomic_load_n(&q->used[1], __ATOMIC_ACQUIRE) == q->used_seen)
		return 0;
	elem = (volatile uint32_t *)(q->used + 2) + 2 * (q->used_seen % q->size);
	*id = elem[0];
	*len = elem[1];
	q->used_seen++;
	return 1;
}

uint8_t vdev_status(struct vdev *d)
{
	return R8(d->common, 0x14);
}

void vdev_reset(struct vdev *d)
{
	W8(d->common, 0x14, 0);
}
