/* ipam.c - the vNodes' IPv4 addresses (see ipam.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipam.h"

static int parse(const char *ip, uint32_t *out)
{
	struct in_addr a;

	if (inet_pton(AF_INET, ip, &a) != 1)
		return -EINVAL;
	*out = ntohl(a.s_addr);
	return 0;
}

static void text(uint32_t addr, char *ip)
{
	struct in_addr a = {.s_addr = htonl(addr)};

	inet_ntop(AF_INET, &a, ip, 16);
}

int ipam_init(struct ipam *p, const char *cidr)
{
	char ip[32], extra;
	int prefix;

	memset(p, 0, sizeof(*p));
	if (sscanf(cidr, "%31[0-9.]/%d%c", ip, &prefix, &extra) != 2 || prefix < 16 ||
	    prefix > 30 || parse(ip, &p->base))
		return -EINVAL;
	p->prefix = prefix;
	p->size = 1u << (32 - prefix);
	p->base &= ~(p->size - 1);
	p->used = calloc(p->size, 1);
	if (!p->used)
		return -ENOMEM;
	p->used[0] = p->used[1] = p->used[p->size - 1] = 1; /* network, gateway, broadcast */
	p->nr_used = 3;
	p->next = 2;
	return 0;
}

void ipam_exit(struct ipam *p)
{
	free(p->used);
	p->used = NULL;
}

int ipam_take(struct ipam *p, char *ip)
{
	for (uint32_t k = 0; p->used && k < p->size; k++) {
		uint32_t i = (p->next + k) % p->size;

		if (p->used[i])
			continue;
		p->used[i] = 1;
		p->nr_used++;
		p->next = (i + 1) % p->size;
		text(p->base + i, ip);
		return 0;
	}
	return -ENOSPC;
}

static int offset(const struct ipam *p, const char *ip, uint32_t *i)
{
	uint32_t addr;

	if (!p->used || parse(ip, &addr) || (addr & ~(p->size - 1)) != p->base)
		return -EINVAL;
	*i = addr - p->base;
	return 0;
}

int ipam_mark(struct ipam *p, const char *ip)
{
	uint32_t i;

	if (offset(p, ip, &i))
		return -EINVAL;
	if (p->used[i])
		return -EEXIST;
	p->used[i] = 1;
	p->nr_used++;
	return 0;
}

void ipam_put(struct ipam *p, const char *ip)
{
	uint32_t i;

	if (offset(p, ip, &i) || i < 2 || i == p->size - 1 || !p->used[i])
		return;
	p->used[i] = 0;
	p->nr_used--;
}

void ipam_gateway(const struct ipam *p, char *ip)
{
	text(p->base + 1, ip);
}

void ipam_cidr(const struct ipam *p, const char *ip, char *out)
{
	snprintf(out, 20, "%s/%d", ip, p->prefix);
}

void ipam_mac(const char *ip, char *mac)
{
	uint32_t a = 0;

	parse(ip, &a);
	snprintf(mac, 18, "02:4c:47:%02x:%02x:%02x", (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff);
}
