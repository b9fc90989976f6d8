/* virtio.c - split virtqueue consumption with every guest value checked. */
#include <errno.h>
#include <string.h>

#include "virtio.h"

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

void virtq_init(struct virtq *vq, struct gmem *mem)
{
	memset(vq, 0, sizeof(*vq));
	vq->mem = mem;
	vq->size = VIRTQ_MAX_SIZE;
	pthread_mutex_init(&vq->lock, NULL);
}

int virtq_enable(struct virtq *vq, const char **why)
{
	if (!vq->size || vq->size > VIRTQ_MAX_SIZE || (vq->size & (vq->size - 1))) {
		*why = "queue size is not a power of two up to the maximum";
		return -EINVAL;
	}
	if (!gmem_ptr(vq->mem, vq->desc, 16ULL * vq->size) ||
	    !gmem_ptr(vq->mem, vq->avail, 6 + 2ULL * vq->size) ||
	    !gmem_ptr(vq->mem, vq->used, 6 + 8ULL * vq->size)) {
		*why = "a ring lies outside guest RAM";
		return -EFAULT;
	}
	if ((vq->desc & 15) || (vq->avail & 1) || (vq->used & 3)) {
		*why = "a ring is misaligned";
		return -EINVAL;
	}
	vq->ready = true;
	vq->broken = false;
	return 0;
}

static int virtq_broken(struct virtq *vq, const char **why, const char *what)
{
	vq->broken = true;
	*why = what;
	return -EINVAL;
}

int virtq_pop(struct virtq *vq, struct virtq_req *req, const char **why)
{
	const volatile uint16_t *avail = gmem_ptr(vq->mem, vq->avail, 6 + 2ULL * vq->size);
	const struct virtq_desc *table = gmem_ptr(vq->mem, vq->desc, 16ULL * vq->size);
	uint16_t avail_idx, idx;
	bool seen_write = false;

	if (!vq->ready || vq->broken)
		return 0;
	if (!avail || !table)
		return virtq_broken(vq, why, "rings outside guest RAM");
	avail_idx = __atomic_load_n(&avail[1], __ATOMIC_ACQUIRE);
	if ((uint16_t)(avail_idx - vq->last_avail) > vq->size)
		return virtq_broken(vq, why, "available index moved by more than the queue size");
	if (avail_idx == vq->last_avail)
		return 0;
	req->head = avail[2 + vq->last_avail % vq->size];
	if (req->head >= vq->size)
		return virtq_broken(vq, why, "available ring names a descriptor past the table");
	vq->last_avail++;
	req->nr_segs = 0;
	for (idx = req->head;;) {
		struct virtq_desc d;
		struct virtq_seg *seg;

		/* Copy it out: the guest may change the table while it is read. */
		memcpy(&d, (const void *)&table[idx], sizeof(d));
		if (req->nr_segs == VIRTQ_MAX_SEGS || req->nr_segs == vq->size)
			return virtq_broken(vq, why, "descriptor chain too long, or a loop");
		if (d.flags & VIRTQ_DESC_F_INDIRECT)
			return virtq_broken(vq, why, "indirect descriptor (not negotiated)");
		if ((d.flags & VIRTQ_DESC_F_WRITE) == 0 && seen_write)
			return virtq_broken(vq, why,
					    "device-readable descriptor after a writable one");
		seg = &req->segs[req->nr_segs++];
		seg->len = d.len;
		seg->write = d.flags & VIRTQ_DESC_F_WRITE;
		seg->hva = gmem_ptr(vq->mem, d.addr, d.len ? d.len : 1);
		if (!seg->hva)
			return virtq_broken(vq, why, "buffer outside guest RAM");
		seen_write |= seg->write;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			break;
		if (d.next >= vq->size)
			return virtq_broken(vq, why, "next descriptor past the table");
		idx = d.next;
	}
	return 1;
}

void virtq_unpop(struct virtq *vq, uint16_t n)
{
	vq->last_avail -= n;
}

void virtq_push(struct virtq *vq, uint16_t head, uint32_t len)
{
	volatile uint16_t *used = gmem_ptr(vq->mem, vq->used, 6 + 8ULL * vq->size);
	uint32_t elem[2] = {head, len};

	if (!used)
		return;
	pthread_mutex_lock(&vq->lock);
	memcpy((void *)(used + 2 + 4 * (vq->used_idx % vq->size)), elem, sizeof(elem));
	vq->used_idx++;
	/* the element before the index: a guest that sees the index sees the element */
	__atomic_store_n(&used[1], vq->used_idx, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&vq->lock);
}
