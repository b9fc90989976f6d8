/*
 * netns.h - network test beds in a network namespace of the test's own
 * (unshare(CLONE_NEWNET): TAPs, bridges and addresses vanish with the case),
 * and the host's side of a TAP as a packet socket.
 */
#ifndef LEGO_TEST_NETNS_H
#define LEGO_TEST_NETNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* netns_enter - a fresh network namespace for this case, its loopback up; skips (loudly) without root. */
void netns_enter(void);

/* netns_tap - a persistent TAP @name (a VMM attaches to it), up, IPv6 off (no chatter). */
void netns_tap(const char *name);

/* netns_bridge - a bridge @name, up, with address @cidr ("10.0.0.1/24", NULL: none). */
void netns_bridge(const char *name, const char *cidr);

/* netns_enslave - put @ifname on the bridge @bridge. */
void netns_enslave(const char *ifname, const char *bridge);

/* netns_addr - give @ifname the address @cidr. */
void netns_addr(const char *ifname, const char *cidr);

/* netns_delete - remove the interface @ifname. */
void netns_delete(const char *ifname);

/*
 * A packet socket on @ifname for EtherType @proto (ETH_P_ALL for every
 * frame), with the virtio-net header before each frame (PACKET_VNET_HDR,
 * 10 bytes: struct virtio_net_hdr) both ways.
 */
int netns_packet_socket(const char *ifname, uint16_t proto);

/* netns_recv - the next frame (not one this host sent) within @timeout_ms: its length, 0 on timeout. */
size_t netns_recv(int fd, void *buf, size_t len, int timeout_ms);

/* netns_ping - an ICMP echo to @ip ("A.B.C.D") answered within @timeout_ms. */
bool netns_ping(const char *ip, int timeout_ms);

/* netns_http_get - GET http://@ip:@port@path: the body into @buf (NUL-terminated), its
 * HTTP status, or -1 when it could not be fetched within @timeout_ms. */
int netns_http_get(const char *ip, int port, const char *path, char *buf, size_t len,
		   int timeout_ms);

/*
 * A small HTTP server on @ip:@port for a guest to fetch from, on a thread:
 * GET /hello answers "hello from the host", GET /done answers 404 until
 * netns_httpd_done, then 200. netns_httpd_stop ends it.
 */
struct netns_httpd;
struct netns_httpd *netns_httpd_start(const char *ip, int port);
void netns_httpd_done(struct netns_httpd *h);
int netns_httpd_hits(struct netns_httpd *h, const char *path);
void netns_httpd_stop(struct netns_httpd *h);

#endif
