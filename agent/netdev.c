/*
 * netdev.c - the host network the agent makes for its vNodes, through
 * rtnetlink and the tun driver: one bridge per host (the vNodes' gateway,
 * with the first address of the cluster's subnet) and a persistent TAP per
 * vNode on it, which its lego-vmm attaches to.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netdev.h"

struct nlreq {
	struct nlmsghdr nh;
	union {
		struct ifinfomsg ifi;
		struct ifaddrmsg ifa;
	};
	char attrs[512];
};

static void attr(struct nlreq *r, unsigned short type, const void *data, size_t len)
{
	struct rtattr *a = (struct rtattr *)((char *)r + NLMSG_ALIGN(r->nh.nlmsg_len));

	a->rta_type = type;
	a->rta_len = (unsigned short)RTA_LENGTH(len);
	memcpy(RTA_DATA(a), data, len);
	r->nh.nlmsg_len = NLMSG_ALIGN(r->nh.nlmsg_len) + RTA_ALIGN(a->rta_len);
}

/* An attribute that holds others: returns it, to be closed by nest_end. */
static struct rtattr *nest(struct nlreq *r, unsigned short type)
{
	struct rtattr *a = (struct rtattr *)((char *)r + NLMSG_ALIGN(r->nh.nlmsg_len));

	attr(r, type, NULL, 0);
	return a;
}

static void nest_end(struct nlreq *r, struct rtattr *a)
{
	a->rta_len = (unsigned short)((char *)r + r->nh.nlmsg_len - (char *)a);
}

/* Send @r and read the kernel's acknowledgement: 0 or its -errno. */
static int talk(struct nlreq *r)
{
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	char buf[4096];
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), ret;
	ssize_t n;

	if (fd < 0)
		return -errno;
	r->nh.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	r->nh.nlmsg_seq = 1;
	if (sendto(fd, r, r->nh.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	n = recv(fd, buf, sizeof(buf), 0);
	ret = n < 0 ? -errno : -EPROTO;
	if (n >= (ssize_t)(NLMSG_HDRLEN + sizeof(struct nlmsgerr)) &&
	    ((struct nlmsghdr *)buf)->nlmsg_type == NLMSG_ERROR)
		ret = ((struct nlmsgerr *)NLMSG_DATA(buf))->error;
	close(fd);
	return ret;
}

static void link_req(struct nlreq *r, unsigned short type, unsigned short flags, int index)
{
	memset(r, 0, sizeof(*r));
	r->nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
	r->nh.nlmsg_type = type;
	r->nh.nlmsg_flags = flags;
	r->ifi.ifi_family = AF_UNSPEC;
	r->ifi.ifi_index = index;
}

static int index_of(const char *name)
{
	unsigned idx = if_nametoindex(name);

	return idx ? (int)idx : -ENODEV;
}

int netdev_up(const char *name)
{
	struct nlreq r;
	int idx = index_of(name);

	if (idx < 0)
		return idx;
	link_req(&r, RTM_NEWLINK, 0, idx);
	r.ifi.ifi_flags = r.ifi.ifi_change = IFF_UP;
	return talk(&r);
}

int netdev_bridge(const char *name, bool *made)
{
	struct nlreq r;
	struct rtattr *info;
	int ret;

	*made = false;
	if (if_nametoindex(name))
		return netdev_up(name); /* there already: a restarted agent takes it back */
	link_req(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
	attr(&r, IFLA_IFNAME, name, strlen(name) + 1);
	info = nest(&r, IFLA_LINKINFO);
	attr(&r, IFLA_INFO_KIND, "bridge", strlen("bridge"));
	nest_end(&r, info);
	ret = talk(&r);
	*made = ret == 0;
	return ret ? ret : netdev_up(name);
}

int netdev_addr(const char *name, const char *cidr)
{
	struct nlreq r;
	struct in_addr a;
	char ip[32];
	unsigned prefix;
	int idx = index_of(name), ret;

	if (idx < 0)
		return idx;
	if (sscanf(cidr, "%31[0-9.]/%u", ip, &prefix) != 2 || prefix > 32 ||
	    inet_pton(AF_INET, ip, &a) != 1)
		return -EINVAL;
	memset(&r, 0, sizeof(r));
	r.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
	r.nh.nlmsg_type = RTM_NEWADDR;
	r.nh.nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
	r.ifa.ifa_family = AF_INET;
	r.ifa.ifa_prefixlen = (unsigned char)prefix;
	r.ifa.ifa_index = (unsigned)idx;
	attr(&r, IFA_LOCAL, &a, sizeof(a));
	attr(&r, IFA_ADDRESS, &a, sizeof(a));
	ret = talk(&r);
	return ret == -EEXIST ? 0 : ret;
}

int netdev_tap(const char *name, const char *bridge)
{
	struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR};
	struct nlreq r;
	int fd, br, ret;

	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	/* persistent: it outlives this descriptor, until netdev_delete */
	ret = ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETPERSIST, 1) < 0 ? -errno : 0;
	close(fd);
	if (ret)
		return ret;
	br = index_of(bridge);
	if (br < 0) {
		netdev_delete(name);
		return br;
	}
	link_req(&r, RTM_NEWLINK, 0, index_of(name));
	attr(&r, IFLA_MASTER, &br, sizeof(br));
	ret = talk(&r);
	if (!ret)
		ret = netdev_up(name);
	if (ret)
		netdev_delete(name);
	return ret;
}

int netdev_delete(const char *name)
{
	struct nlreq r;
	int idx = index_of(name);

	if (idx < 0)
		return idx == -ENODEV ? 0 : idx;
	link_req(&r, RTM_DELLINK, 0, idx);
	return talk(&r);
}
