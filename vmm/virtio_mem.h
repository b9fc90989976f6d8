/*
 * virtio_mem.h - a virtio-mem device (virtio 1.2, "Memory Device") over the
 * hotpluggable region of guest memory (vm.h, struct gmem_hotplug): the host
 * sets how much memory it asks the guest to have plugged (requested size),
 * and the guest's driver plugs and unplugs blocks of the region to follow
 * it. The device checks every request against the region and the blocks'
 * states and answers with the specification's ACK, NACK or ERROR; it never
 * lets an unplugged block be memory.
 */
#ifndef LEGO_VMM_VIRTIO_MEM_H
#define LEGO_VMM_VIRTIO_MEM_H

#include <stdint.h>

#include "pci.h"

struct virtio_mem;
struct virtio_dev;

/* unplugged - blocks [@first, @first + @n) just left the guest (after gmem_plug). */
typedef void (*virtio_mem_unplugged_fn)(void *opaque, uint64_t first, uint64_t n);

struct virtio_mem_stats {
	uint64_t requested;			/* bytes the guest is asked to have plugged */
	uint64_t usable;			/* bytes of the region it may plug */
	uint64_t plugged;			/* ... and has */
	uint64_t plugs, unplugs, nacks, errors; /* requests answered so */
};

/*
 * virtio_mem_create - the device for @vm's hotpluggable region on @pci, of
 * which the guest may plug @usable bytes (a multiple of the block size);
 * asking for @requested at first. @unplugged (may be NULL) with @opaque hears
 * of each unplug. NULL on error, logged.
 */
struct virtio_mem *virtio_mem_create(struct vm *vm, struct pci *pci, uint64_t usable,
				     uint64_t requested, virtio_mem_unplugged_fn unplugged,
				     void *opaque);

void virtio_mem_destroy(struct virtio_mem *m);

/*
 * virtio_mem_request - ask the guest to have @bytes plugged (a multiple of
 * the block size, at most the usable size): the configuration changes and
 * the driver is interrupted. 0 or -EINVAL.
 */
int virtio_mem_request(struct virtio_mem *m, uint64_t bytes);

/*
 * virtio_mem_set_usable - the guest may plug @bytes from the region's start
 * (its memory is placed that far): grows or shrinks the usable region. -EBUSY
 * when a block past it is plugged, -EINVAL past the region.
 */
int virtio_mem_set_usable(struct virtio_mem *m, uint64_t bytes);

/* virtio_mem_top - one past the last plugged byte of the region (0: none plugged). */
uint64_t virtio_mem_top(struct virtio_mem *m);

void virtio_mem_stats(struct virtio_mem *m, struct virtio_mem_stats *st);

/* virtio_mem_dev - its virtio device (for the transport's quiesce, save and restore). */
struct virtio_dev *virtio_mem_dev(struct virtio_mem *m);

/*
 * virtio_mem_save / virtio_mem_load - what the device holds besides the
 * transport (the requested size; the plugged blocks are in the gmem bitmap):
 * into @buf (VIRTIO_MEM_STATE_MAX bytes) its length; load checks and takes it
 * back, plugging the blocks the bitmap @plugged (one bit per block, @len
 * bytes) names, before the guest runs. 0 or -EINVAL.
 */
#define VIRTIO_MEM_STATE_MAX 64
size_t virtio_mem_save(struct virtio_mem *m, void *buf);
int virtio_mem_load(struct virtio_mem *m, const void *buf, size_t len, const uint8_t *plugged,
		    uint64_t plugged_len);

#endif
