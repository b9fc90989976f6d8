/*
 * netdev.h - the agent's host network for its vNodes (rtnetlink, tun):
 * functions return 0 or -errno, as the kernel answered.
 */
#ifndef LEGO_AGENT_NETDEV_H
#define LEGO_AGENT_NETDEV_H

#include <stdbool.h>

/* netdev_bridge - the bridge @name, made if missing (*@made then true), and up. */
int netdev_bridge(const char *name, bool *made);

/* netdev_addr - give @name the IPv4 address @cidr ("10.77.0.1/24"); one it has already is fine. */
int netdev_addr(const char *name, const char *cidr);

/* netdev_tap - a persistent TAP @name (virtio-net headers on) on the bridge @bridge, up. */
int netdev_tap(const char *name, const char *bridge);

/* netdev_up - set @name up. */
int netdev_up(const char *name);

/* netdev_delete - remove the interface @name (none by that name: 0). */
int netdev_delete(const char *name);

#endif
