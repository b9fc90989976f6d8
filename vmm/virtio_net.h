/* virtio_net.h - a virtio-net device over any network backend (see net.h). */
#ifndef LEGO_VMM_VIRTIO_NET_H
#define LEGO_VMM_VIRTIO_NET_H

#include <stddef.h>
#include <stdint.h>

#include "net.h"
#include "pci.h"

struct virtio_net;

/* Frames and bytes (without headers) each way; frames dropped (a guest's
 * bad frame the host refused, or a frame the guest had no room for). Each
 * counter has one writer; readers see a recent value. */
struct virtio_net_stats {
	uint64_t tx_frames, tx_bytes, tx_dropped;
	uint64_t rx_frames, rx_bytes, rx_dropped;
};

/*
 * virtio_net_create - a virtio-net PCI device on @pci with MAC @mac whose
 * frames go through @backend (owned by the device from now on). NULL on
 * error, logged.
 */
struct virtio_net *virtio_net_create(struct vm *vm, struct pci *pci, struct net_backend *backend,
				     const uint8_t mac[6]);

/* virtio_net_destroy - stop its receiver, close the backend, free. */
void virtio_net_destroy(struct virtio_net *n);

/* virtio_net_stats - its counters, and why its backend failed ("" while it works) into @error. */
/* virtio_net_dev - its virtio device (for the transport's quiesce, save and restore). */
struct virtio_dev *virtio_net_dev(struct virtio_net *n);

void virtio_net_stats(struct virtio_net *n, struct virtio_net_stats *st, char *error, size_t len);

#endif
