/* net_tap.c - a network backend on a TAP device (net.h): frames with their virtio-net header, as the kernel's tun driver speaks them. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "util.h"

struct net_tap {
	struct net_backend b;
};

static int tap_send(struct net_backend *b, const struct iovec *iov, int iovcnt)
{
	for (;;) {
		ssize_t n = writev(b->fd, iov, iovcnt);

		if (n >= 0)
			return 0; /* the tun driver takes a frame whole or not at all */
		if (errno != EINTR)
			return -errno;
	}
}

static ssize_t tap_recv(struct net_backend *b, void *buf, size_t len)
{
	for (;;) {
		ssize_t n = read(b->fd, buf, len);

		if (n >= 0)
			return n;
		if (errno != EINTR)
			return -errno;
	}
}

static int tap_offloads(struct net_backend *b, unsigned flags)
{
	unsigned tun =
		(flags & NET_RX_CSUM ? TUN_F_CSUM : 0) | (flags & NET_RX_TSO4 ? TUN_F_TSO4 : 0) |
		(flags & NET_RX_TSO6 ? TUN_F_TSO6 : 0) | (flags & NET_RX_ECN ? TUN_F_TSO_ECN : 0);

	/* segmentation without checksum offload is not a thing the stack does */
	if (!(tun & TUN_F_CSUM))
		tun = 0;
	return ioctl(b->fd, TUNSETOFFLOAD, tun) < 0 ? -errno : 0;
}

static void tap_close(struct net_backend *b)
{
	close(b->fd);
	free(container_of(b, struct net_tap, b));
}

static const struct net_backend_ops tap_ops = {
	.send = tap_send,
	.recv = tap_recv,
	.offloads = tap_offloads,
	.close = tap_close,
};

int net_tap_open(const char *ifname, struct net_backend **out)
{
	struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR};
	struct net_tap *t;
	int fd, hdr = NET_HDR_LEN, ret;

	if (!ifname[0] || strlen(ifname) >= IFNAMSIZ) {
		log_err("'%s' is not a network interface name (1 to %d characters)", ifname,
			IFNAMSIZ - 1);
		return -EINVAL;
	}
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		ret = -errno;
		log_err("cannot open /dev/net/tun: %s (a TAP needs the tun module, and root "
			"or CAP_NET_ADMIN unless the host agent made it)",
			strerror(errno));
		return ret;
	}
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0) {
		ret = -errno;
		log_err("TAP %s: %s%s", ifname, strerror(errno),
			errno == EBUSY ? " (another process has it open)" : "");
		close(fd);
		return ret;
	}
	/* Until the guest says otherwise, frames come checksummed and segmented. */
	if (ioctl(fd, TUNSETOFFLOAD, 0) < 0)
		log_warn("TAP %s: TUNSETOFFLOAD: %s", ifname, strerror(errno));
	t = calloc(1, sizeof(*t));
	if (!t) {
		close(fd);
		return -ENOMEM;
	}
	t->b.ops = &tap_ops;
	t->b.fd = fd;
	snprintf(t->b.name, sizeof(t->b.name), "tap %s", ifname);
	*out = &t->b;
	return 0;
}
