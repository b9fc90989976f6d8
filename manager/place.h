/*
 * place.h - placement, the first of LegoOS's two levels: the manager hands a
 * vNode's memory out in coarse slabs (each with a primary and, on another
 * server, a secondary), picks a storage server for its disks and a host agent
 * for its VMM. The memory server manages the pages inside its slabs.
 *
 * Pure functions over the candidates' capacity and reservations, so the
 * manager and the benchmark run the same code. Nothing is reserved unless the
 * whole request fits.
 */
#ifndef LEGO_MANAGER_PLACE_H
#define LEGO_MANAGER_PLACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A candidate: a memory server, storage server or host agent. */
struct place_server {
	bool up;
	uint64_t capacity; /* bytes (memory, disk) or, for an agent, ExCache bytes */
	uint64_t reserved; /* by placements, secondaries included */
	uint64_t primary;  /* memory servers: bytes for which it is the primary */
	uint32_t count;	   /* agents: vNodes; others: slabs or volumes */
};

struct place_slab {
	uint64_t size;
	int primary, secondary; /* indexes into the candidates */
};

/*
 * place_memory - split @memory into slabs of @slab_size (the last may be
 * smaller) and give each a primary and a secondary on two different up
 * servers of @srv with room for it. Primaries go to the server that is
 * primary for the least, as a share of its capacity (the primary serves the
 * faults); secondaries to the one with the most room left. On success the
 * reservations are added to @srv and the number of slabs is returned; when
 * they do not fit, -ENOSPC with a sentence for a person in @err and @srv as
 * it was. At most @max slabs (-E2BIG beyond).
 */
int place_memory(struct place_server *srv, int n, uint64_t memory, uint64_t slab_size,
		 struct place_slab *out, int max, char *err, size_t errlen);

/* place_release - give back what place_memory reserved for @slabs. */
void place_release(struct place_server *srv, const struct place_slab *slabs, int nr);

/*
 * place_one - the up candidate with the most room for @size (ties: the fewest
 * placements), reserved; -ENOSPC with a sentence in @err naming @what.
 */
int place_one(struct place_server *srv, int n, uint64_t size, const char *what, char *err,
	      size_t errlen);

#endif
