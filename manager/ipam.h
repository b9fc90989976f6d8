/*
 * ipam.h - the cluster's IPv4 addresses for vNodes: one subnet, its first
 * host address the gateway (the hosts' bridges), the others handed out one
 * per vNode, never two at once, and back in the pool when it is destroyed.
 * Hand-outs go round the subnet, so that a freed address is the last to be
 * reused (a neighbour's ARP cache forgets it meanwhile).
 */
#ifndef LEGO_MANAGER_IPAM_H
#define LEGO_MANAGER_IPAM_H

#include <stdbool.h>
#include <stdint.h>

struct ipam {
	uint32_t base; /* the network's address, host order */
	int prefix;    /* 16 to 30 */
	uint32_t size; /* addresses in the subnet */
	uint8_t *used; /* per address: handed out (or the network, gateway, broadcast) */
	uint32_t next; /* where the search for a free one starts */
	uint32_t nr_used;
};

/* ipam_init - the subnet @cidr ("10.77.0.0/24", prefix 16 to 30). -EINVAL, -ENOMEM. */
int ipam_init(struct ipam *p, const char *cidr);
void ipam_exit(struct ipam *p);

/* ipam_take - a free address into @ip ("A.B.C.D", 16 bytes). -ENOSPC when none is. */
int ipam_take(struct ipam *p, char *ip);

/* ipam_mark - @ip ("A.B.C.D") is in use (read back from the database). -EINVAL outside the subnet, -EEXIST if it was. */
int ipam_mark(struct ipam *p, const char *ip);

/* ipam_put - @ip is free again. */
void ipam_put(struct ipam *p, const char *ip);

/* ipam_gateway - the gateway's address ("A.B.C.D"); ipam_cidr - @ip with the prefix ("A.B.C.D/N"). */
void ipam_gateway(const struct ipam *p, char *ip);
void ipam_cidr(const struct ipam *p, const char *ip, char *out);

/* ipam_mac - the MAC of the vNode with address @ip: 02:4c:47 ("LG", locally administered) and its last three bytes. */
void ipam_mac(const char *ip, char *mac);

#endif
