/*
 * vdev.h - a virtio-pci (modern, 1.x) driver for ring-3 payloads: find a
 * device by its PCI device ID in configuration space, negotiate features,
 * set up split virtqueues in payload memory and kick them. Polling only:
 * payloads wait for the used index, they take no interrupts.
 */
#ifndef LEGO_RT_VDEV_H
#define LEGO_RT_VDEV_H

#include <stdint.h>

#define VDEV_MAX_QUEUES 4

struct vdesc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

#define VDESC_NEXT  1
#define VDESC_WRITE 2

/* One split virtqueue: its rings, and the driver's side of the indexes. */
struct vq {
	uint16_t size, index;
	struct vdesc *desc;
	volatile uint16_t *avail; /* flags, idx, ring[size] */
	volatile uint16_t *used;  /* flags, idx, then {u32 id, u32 len}[size] */
	uint16_t avail_idx, used_seen;
	volatile uint16_t *notify;
};

struct vdev {
	unsigned slot;
	volatile uint8_t *common, *isr, *devcfg, *notify;
	uint32_t notify_mult;
	struct vq vq[VDEV_MAX_QUEUES];
};

/* vdev_find - the device with PCI ID 0x1af4:@device_id on bus 0. 0, or -1 after saying why. */
int vdev_find(struct vdev *d, uint16_t device_id, const char *who);

/*
 * vdev_negotiate - reset, then offer @features (VERSION_1 is added) and set
 * FEATURES_OK: 0, or -1 when the device refused. The bits it offered in *@offered.
 */
int vdev_negotiate(struct vdev *d, uint64_t features, uint64_t *offered);

/* vdev_queue - set up queue @q with @size entries in the 16 KiB at @mem (page aligned). */
int vdev_queue(struct vdev *d, unsigned q, uint16_t size, void *mem);

/* vdev_ready - DRIVER_OK. */
void vdev_ready(struct vdev *d);

/* vq_add - a chain of @n descriptors (already in vq->desc from @head) made available. */
void vq_add(struct vq *q, uint16_t head);

/* vq_kick - publish what was added and notify the device. */
void vq_kick(struct vq *q);

/* vq_used - the next used element (its id and length): 1, or 0 when none is new. */
int vq_used(struct vq *q, uint32_t *id, uint32_t *len);

/* vdev_status - the device status byte (64: NEEDS_RESET). */
uint8_t vdev_status(struct vdev *d);

/* vdev_reset - write status 0. */
void vdev_reset(struct vdev *d);

#endif
