/*
 * net.h - the network backend interface: what a virtio-net device asks of
 * wherever its frames go (a TAP device here). The device never opens a TAP;
 * a backend never sees a virtqueue. Every frame, both ways, starts with the
 * 12-byte virtio-net header (struct virtio_net_hdr_v1), so that checksum and
 * segmentation offloads pass between the guest and the host's stack
 * untouched instead of being done in software.
 */
#ifndef LEGO_VMM_NET_H
#define LEGO_VMM_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define NET_HDR_LEN   12	   /* struct virtio_net_hdr_v1 */
#define NET_FRAME_MAX (65536 + 64) /* the largest GSO frame, with its headers */

/* What the guest takes in frames it receives: NET_RX_* bits for net_backend_ops.offloads. */
#define NET_RX_CSUM 1u /* partial checksums */
#define NET_RX_TSO4 2u /* TCP segmentation left undone, IPv4 */
#define NET_RX_TSO6 4u /* ... IPv6 */
#define NET_RX_ECN  8u /* ... with ECN */

struct net_backend;

struct net_backend_ops {
	/* send - one frame, header first, gathered from @iov; 0 or -errno */
	int (*send)(struct net_backend *b, const struct iovec *iov, int iovcnt);
	/* recv - one frame, header first, into @buf (NET_FRAME_MAX bytes): its
	 * length, -EAGAIN when none waits, or -errno (the backend is gone) */
	ssize_t (*recv)(struct net_backend *b, void *buf, size_t len);
	/* offloads - from now on frames may come with the NET_RX_* work in @flags left undone */
	int (*offloads)(struct net_backend *b, unsigned flags);
	/* close - free @b */
	void (*close)(struct net_backend *b);
};

struct net_backend {
	const struct net_backend_ops *ops;
	int fd;	       /* poll it for POLLIN: a frame waits */
	char name[64]; /* for messages: "tap lego0" */
};

/*
 * net_tap_open - the TAP device @ifname (made if it does not exist; an
 * existing persistent one, as the host agent makes them, is attached to),
 * opened with IFF_VNET_HDR and non-blocking reads. -errno, logged with what
 * to do.
 */
int net_tap_open(const char *ifname, struct net_backend **out);

#endif
