/* virtio_blk.h - a virtio block device over any block backend (see blk.h). */
#ifndef LEGO_VMM_VIRTIO_BLK_H
#define LEGO_VMM_VIRTIO_BLK_H

#include "blk.h"
#include "pci.h"

struct virtio_blk;

/*
 * virtio_blk_create - a virtio-blk PCI device on @pci whose disk is @backend
 * (owned by the device from now on). NULL on error, logged.
 */
struct virtio_blk *virtio_blk_create(struct vm *vm, struct pci *pci, struct blk_backend *backend);

/* virtio_blk_destroy - wait for requests in flight, close the backend, free. */
void virtio_blk_destroy(struct virtio_blk *blk);

/* virtio_blk_stats - requests completed and errors returned to the guest. */
/* virtio_blk_dev - its virtio device (for the transport's quiesce, save and restore). */
struct virtio_dev *virtio_blk_dev(struct virtio_blk *blk);

void virtio_blk_stats(struct virtio_blk *blk, uint64_t *requests, uint64_t *errors);

#endif
