/*
 * test_place.c - placement decisions (manager/place.c): slabs get a primary
 * and a secondary on different servers, load is spread, capacity is
 * respected, and a request that does not fit changes nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipam.h"
#include "place.h"
#include "test.h"
#include "util.h"

static void servers(struct place_server *s, int n, uint64_t capacity)
{
	memset(s, 0, n * sizeof(*s));
	for (int i = 0; i < n; i++)
		s[i] = (struct place_server){.up = true, .capacity = capacity};
}

TEST(every_slab_has_primary_and_secondary_on_different_servers)
{
	struct place_server s[3];
	struct place_slab slabs[16];
	char err[256];
	int nr;

	servers(s, 3, 8 * GiB);
	nr = place_memory(s, 3, 2 * GiB + 100 * MiB, 256 * MiB, slabs, 16, err, sizeof(err));
	ASSERT_EQ(nr, 9);
	for (int i = 0; i < nr; i++)
		ASSERT(slabs[i].primary != slabs[i].secondary, "slab %d on one server", i);
	ASSERT_EQ(slabs[8].size, 100 * MiB); /* the last slab is the remainder */
	uint64_t total = 0;
	for (int i = 0; i < 3; i++)
		total += s[i].reserved;
	ASSERT_EQ(total, 2 * (2 * GiB + 100 * MiB)); /* primary and secondary both reserved */
}

TEST(primaries_are_spread_over_servers_across_vnodes)
{
	struct place_server s[2];
	struct place_slab slabs[4];
	int prim[2] = {0, 0};
	char err[256];

	servers(s, 2, 4 * GiB);
	for (int v = 0; v < 3; v++) {
		ASSERT_EQ(place_memory(s, 2, 64 * MiB, 256 * MiB, slabs, 4, err, sizeof(err)), 1);
		prim[slabs[0].primary]++;
	}
	ASSERT(prim[0] >= 1 && prim[1] >= 1, "primaries %d/%d: not spread", prim[0], prim[1]);
	ASSERT(prim[0] - prim[1] <= 1 && prim[1] - prim[0] <= 1);
}

TEST(refusal_names_the_shortage_and_changes_nothing)
{
	struct place_server s[3], before[3];
	struct place_slab slabs[64];
	char err[512];

	servers(s, 3, GiB);
	s[2].up = false;
	ASSERT_EQ(place_memory(s, 3, 512 * MiB, 256 * MiB, slabs, 64, err, sizeof(err)), 2);
	memcpy(before, s, sizeof(s));
	/* 1 GiB more: 4 slabs would need 2 GiB of room on two servers; 1 GiB is left. */
	ASSERT_EQ(place_memory(s, 3, GiB, 256 * MiB, slabs, 64, err, sizeof(err)), -ENOSPC);
	ASSERT(memcmp(before, s, sizeof(s)) == 0, "a refused request left reservations behind");
	ASSERT_CONTAINS(err, "not enough memory-server capacity");
	ASSERT_CONTAINS(err, "2 of 3 memory servers are up");
	/* A down server is never chosen, even with room. */
	s[2].capacity = 64 * GiB;
	ASSERT_EQ(place_memory(s, 3, 256 * MiB, 256 * MiB, slabs, 64, err, sizeof(err)), 1);
	ASSERT(slabs[0].primary != 2 && slabs[0].secondary != 2);
	/* One server up: no secondary, so no placement. */
	s[1].up = false;
	ASSERT_EQ(place_memory(s, 3, 4 * MiB, 256 * MiB, slabs, 64, err, sizeof(err)), -ENOSPC);
}

TEST(release_gives_back_exactly_what_was_reserved)
{
	struct place_server s[4], before[4];
	struct place_slab slabs[32];
	char err[256];
	int nr;

	servers(s, 4, 2 * GiB);
	memcpy(before, s, sizeof(s));
	nr = place_memory(s, 4, 3 * GiB, 128 * MiB, slabs, 32, err, sizeof(err));
	ASSERT_EQ(nr, 24);
	place_release(s, slabs, nr);
	ASSERT(memcmp(before, s, sizeof(s)) == 0);
	ASSERT_EQ(place_memory(s, 4, 64 * GiB, 128 * MiB, slabs, 32, err, sizeof(err)), -E2BIG);
}

TEST(place_one_picks_the_roomiest_up_candidate)
{
	struct place_server s[3];
	char err[256];

	servers(s, 3, 10 * GiB);
	s[0].reserved = 6 * GiB;
	s[1].reserved = 2 * GiB;
	s[2].up = false;
	ASSERT_EQ(place_one(s, 3, GiB, "storage server", err, sizeof(err)), 1);
	ASSERT_EQ(s[1].reserved, 3 * GiB);
	ASSERT_EQ(place_one(s, 3, 8 * GiB, "storage server", err, sizeof(err)), -ENOSPC);
	ASSERT_CONTAINS(err, "no storage server has 8 GiB free (2 of 3 up)");
}

/*
 * The vNodes' addresses (ipam.h): 1,000 vNodes made and destroyed at
 * random in a /24, the subnet full at times: an address is never held by
 * two at once, never the network's, the gateway's or the broadcast, a full
 * subnet refuses, freed ones come back, and the count of the used ones
 * matches what the vNodes hold.
 */
TEST(addresses_are_never_given_twice_and_freed_ones_come_back)
{
	static char held[1000][16];
	struct ipam p;
	char ip[16], gw[16], cidr[20], mac[18];
	int live = 0, taken = 0, refused = 0, seen_again = 0;
	static uint8_t ever[256];

	ASSERT_EQ(ipam_init(&p, "10.77.3.0/24"), 0);
	ASSERT_EQ(ipam_init(&(struct ipam){0}, "10.77.3.0/8"), -EINVAL);
	ASSERT_EQ(ipam_init(&(struct ipam){0}, "10.77.3/24"), -EINVAL);
	ipam_gateway(&p, gw);
	ASSERT(!strcmp(gw, "10.77.3.1"));
	srand(7);
	for (int step = 0; step < 1000; step++) {
		bool make = live == 0 || (live < 1000 && rand() % 3 != 0);

		if (make) {
			if (ipam_take(&p, ip)) {
				ASSERT(live == 253, "refused with only %d held", live);
				refused++;
				continue;
			}
			for (int k = 0; k < live; k++)
				ASSERT(strcmp(held[k], ip), "%s given twice", ip);
			ASSERT(strcmp(ip, "10.77.3.0") && strcmp(ip, gw) &&
				       strcmp(ip, "10.77.3.255"),
			       "%s is not a host's", ip);
			seen_again += ever[atoi(strrchr(ip, '.') + 1)]++ > 0;
			snprintf(held[live++], 16, "%s", ip);
			taken++;
		} else {
			int k = rand() % live;

			ipam_put(&p, held[k]);
			memcpy(held[k], held[--live], 16);
		}
		ASSERT_EQ(p.nr_used, (uint32_t)live + 3);
	}
	printf("  %d addresses handed out, %d refusals (the subnet full), %d handed out again\n",
	       taken, refused, seen_again);
	ASSERT(refused > 0, "the subnet never filled up: the test did not reach it");
	ASSERT(seen_again > 0, "no freed address ever came back");
	/* Read back from a database: each one once. */
	ASSERT_EQ(ipam_mark(&p, held[0]), -EEXIST);
	ASSERT_EQ(ipam_mark(&p, "10.78.0.5"), -EINVAL);
	ipam_cidr(&p, "10.77.3.9", cidr);
	ASSERT(!strcmp(cidr, "10.77.3.9/24"));
	ipam_mac("10.77.3.9", mac);
	ASSERT(!strcmp(mac, "02:4c:47:4d:03:09"));
	ipam_exit(&p);
}
