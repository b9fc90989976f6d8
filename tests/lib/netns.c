/* netns.c - network test beds (netns.h): iproute2 for links and addresses, ioctls for the TAP. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netns.h"
#include "test.h"

void netns_enter(void)
{
	if (geteuid() != 0)
		test_skip("network tests need root (a network namespace, TAPs)");
	if (access("/dev/net/tun", R_OK | W_OK))
		test_skip("no /dev/net/tun: TAP devices are not available here");
	if (unshare(CLONE_NEWNET) < 0)
		test_skip("cannot make a network namespace: %s", strerror(errno));
	SH("ip link set lo up");
}

void netns_tap(const char *name)
{
	struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR};
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

	ASSERT(fd >= 0, "/dev/net/tun: %s", strerror(errno));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ASSERT(ioctl(fd, TUNSETIFF, &ifr) == 0, "TUNSETIFF %s: %s", name, strerror(errno));
	ASSERT(ioctl(fd, TUNSETPERSIST, 1) == 0, "TUNSETPERSIST: %s", strerror(errno));
	close(fd);
	SH("echo 1 > /proc/sys/net/ipv6/conf/%s/disable_ipv6", name);
	SH("ip link set %s up", name);
}

void netns_bridge(const char *name, const char *cidr)
{
	SH("ip link add %s type bridge", name);
	SH("echo 1 > /proc/sys/net/ipv6/conf/%s/disable_ipv6", name);
	SH("ip link set %s up", name);
	if (cidr)
		netns_addr(name, cidr);
}

void netns_enslave(const char *ifname, const char *bridge)
{
	SH("ip link set %s master %s", ifname, bridge);
}

void netns_addr(const char *ifname, const char *cidr)
{
	SH("ip addr add %s dev %s", cidr, ifname);
}

void netns_delete(const char *ifname)
{
	SH("ip link delete %s", ifname);
}

int netns_packet_socket(const char *ifname, uint16_t proto)
{
	struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(proto)};
	int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(proto)), one = 1;

	ASSERT(fd >= 0, "AF_PACKET: %s", strerror(errno));
	sll.sll_ifindex = (int)if_nametoindex(ifname);
	ASSERT(sll.sll_ifindex > 0, "no interface %s", ifname);
	ASSERT(setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) == 0,
	       "PACKET_VNET_HDR: %s", strerror(errno));
	ASSERT(bind(fd, (struct sockaddr *)&sll, sizeof(sll)) == 0, "bind: %s", strerror(errno));
	return fd;
}

size_t netns_recv(int fd, void *buf, size_t len, int timeout_ms)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		struct sockaddr_ll from;
		socklen_t flen = sizeof(from);
		ssize_t n;

		if (poll(&p, 1, timeout_ms) <= 0)
			return 0;
		n = recvfrom(fd, buf, len, 0, (struct sockaddr *)&from, &flen);
		if (n > 0 && from.sll_pkttype != PACKET_OUTGOING)
			return (size_t)n;
	}
}

static uint16_t icmp_sum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)b[i] << 8 | b[i + 1];
	if (len & 1)
		sum += (uint32_t)b[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

bool netns_ping(const char *ip, int timeout_ms)
{
	struct sockaddr_in to = {.sin_family = AF_INET};
	uint8_t req[64] = {8, 0, 0, 0, 0x4c, 0x47, 0, 1}, buf[512];
	int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
	uint16_t sum;
	bool answered = false;

	if (fd < 0 || inet_pton(AF_INET, ip, &to.sin_addr) != 1)
		test_fail(__FILE__, __LINE__, "cannot ping %s: %s", ip, strerror(errno));
	for (size_t i = 8; i < sizeof(req); i++)
		req[i] = (uint8_t)i;
	sum = icmp_sum(req, sizeof(req));
	req[2] = (uint8_t)(sum >> 8);
	req[3] = (uint8_t)sum;
	for (int waited = 0; !answered && waited < timeout_ms; waited += 1000) {
		struct pollfd p = {.fd = fd, .events = POLLIN};

		sendto(fd, req, sizeof(req), 0, (struct sockaddr *)&to, sizeof(to));
		while (!answered && poll(&p, 1, 1000) > 0) {
			struct sockaddr_in from;
			socklen_t flen = sizeof(from);
			ssize_t n =
				recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen);
			size_t ihl = n > 0 ? (size_t)(buf[0] & 15) * 4 : 0;

			/* an echo reply (type 0) with our identifier, from @ip */
			answered = n >= (ssize_t)(ihl + 8) && buf[ihl] == 0 &&
				   buf[ihl + 4] == 0x4c && buf[ihl + 5] == 0x47 &&
				   from.sin_addr.s_addr == to.sin_addr.s_addr;
		}
	}
	close(fd);
	return answered;
}

int netns_http_get(const char *ip, int port, const char *path, char *buf, size_t len,
		   int timeout_ms)
{
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	char req[256];
	size_t got = 0;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), status = -1;
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	char *body;

	inet_pton(AF_INET, ip, &to.sin_addr);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&to, sizeof(to)) < 0) {
		close(fd);
		return -1;
	}
	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, ip);
	if (write(fd, req, strlen(req)) == (ssize_t)strlen(req)) {
		for (;;) {
			ssize_t n = read(fd, buf + got, len - 1 - got);

			if (n <= 0)
				break;
			got += (size_t)n;
		}
	}
	close(fd);
	buf[got] = '\0';
	if (sscanf(buf, "HTTP/%*s %d", &status) != 1)
		return -1;
	body = strstr(buf, "\r\n\r\n");
	memmove(buf, body ? body + 4 : buf + got, strlen(body ? body + 4 : buf + got) + 1);
	return status;
}

struct netns_httpd {
	int fd;
	pthread_t thread;
	volatile bool done, stop;
	int hits_hello, hits_done;
};

static void *httpd_main(void *arg)
{
	struct netns_httpd *h = arg;

	while (!h->stop) {
		struct pollfd p = {.fd = h->fd, .events = POLLIN};
		char req[1024] = "";
		const char *ans;
		int c;

		if (poll(&p, 1, 200) <= 0)
			continue;
		c = accept(h->fd, NULL, NULL);
		if (c < 0)
			continue;
		if (read(c, req, sizeof(req) - 1) < 0)
			req[0] = '\0';
		if (!strncmp(req, "GET /hello ", 11)) {
			h->hits_hello++;
			ans = "HTTP/1.0 200 OK\r\nContent-Length: 20\r\n\r\nhello from the host\n";
		} else if (!strncmp(req, "GET /done ", 10) && h->done) {
			h->hits_done++;
			ans = "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\ndone\n";
		} else {
			ans = "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n";
		}
		if (write(c, ans, strlen(ans)) < 0)
			perror("netns httpd");
		close(c);
	}
	return NULL;
}

struct netns_httpd *netns_httpd_start(const char *ip, int port)
{
	struct netns_httpd *h = calloc(1, sizeof(*h));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int one = 1;

	ASSERT(h);
	inet_pton(AF_INET, ip, &a.sin_addr);
	h->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(h->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	ASSERT(bind(h->fd, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(h->fd, 8) == 0,
	       "cannot serve on %s:%d: %s", ip, port, strerror(errno));
	pthread_create(&h->thread, NULL, httpd_main, h);
	return h;
}

void netns_httpd_done(struct netns_httpd *h)
{
	h->done = true;
}

int netns_httpd_hits(struct netns_httpd *h, const char *path)
{
	return !strcmp(path, "/hello") ? h->hits_hello : h->hits_done;
}

void netns_httpd_stop(struct netns_httpd *h)
{
	h->stop = true;
	pthread_join(h->thread, NULL);
	close(h->fd);
	free(h);
}
