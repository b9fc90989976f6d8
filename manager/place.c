/* place.c - slab, volume and VMM placement (see place.h). */
#include <errno.h>
#include <stdio.h>

#include "place.h"
#include "util.h"

static uint64_t room(const struct place_server *s)
{
	return s->capacity > s->reserved ? s->capacity - s->reserved : 0;
}

/* Is @a a better primary than @b? Less primary load per byte of capacity. */
static bool better_primary(const struct place_server *a, const struct place_server *b)
{
	unsigned __int128 la = (unsigned __int128)a->primary * b->capacity;
	unsigned __int128 lb = (unsigned __int128)b->primary * a->capacity;

	return la != lb ? la < lb : room(a) > room(b);
}

static int pick(struct place_server *srv, int n, uint64_t size, int not, bool primary)
{
	int best = -1;

	for (int i = 0; i < n; i++) {
		if (!srv[i].up || i == not || room(&srv[i]) < size)
			continue;
		if (best < 0 || (primary ? better_primary(&srv[i], &srv[best])
					 : room(&srv[i]) > room(&srv[best])))
			best = i;
	}
	return best;
}

void place_release(struct place_server *srv, const struct place_slab *slabs, int nr)
{
	for (int i = 0; i < nr; i++) {
		struct place_server *p = &srv[slabs[i].primary], *s = &srv[slabs[i].secondary];

		p->reserved -= slabs[i].size;
		p->primary -= slabs[i].size;
		p->count--;
		s->reserved -= slabs[i].size;
		s->count--;
	}
}

int place_memory(struct place_server *srv, int n, uint64_t memory, uint64_t slab_size,
		 struct place_slab *out, int max, char *err, size_t errlen)
{
	int nr = (int)((memory + slab_size - 1) / slab_size);
	char a[32], b[32];

	if (nr > max) {
		snprintf(err, errlen, "%s of memory would be %d slabs of %s, more than %d",
			 format_size(memory, a, sizeof(a)), nr,
			 format_size(slab_size, b, sizeof(b)), max);
		return -E2BIG;
	}
	for (int i = 0; i < nr; i++) {
		uint64_t size = i + 1 < nr ? slab_size : memory - (uint64_t)i * slab_size;
		int p = pick(srv, n, size, -1, true), s = p < 0 ? -1 : pick(srv, n, size, p, false);

		if (p < 0 || s < 0) {
			int up = 0;

			for (int k = 0; k < n; k++)
				up += srv[k].up;
			place_release(srv, out, i);
			snprintf(err, errlen,
				 "not enough memory-server capacity: slab %d of %d (%s) needs a "
				 "primary and a secondary on two different servers with that much "
				 "room, and %d of %d memory servers are up; free capacity (legoctl "
				 "destroy), add a memory server, or ask for less --memory",
				 i + 1, nr, format_size(size, a, sizeof(a)), up, n);
			return -ENOSPC;
		}
		out[i] = (struct place_slab){.size = size, .primary = p, .secondary = s};
		srv[p].reserved += size;
		srv[p].primary += size;
		srv[p].count++;
		srv[s].reserved += size;
		srv[s].count++;
	}
	return nr;
}

int place_one(struct place_server *srv, int n, uint64_t size, const char *what, char *err,
	      size_t errlen)
{
	int best = -1, up = 0;
	char a[32];

	for (int i = 0; i < n; i++) {
		up += srv[i].up;
		if (!srv[i].up || room(&srv[i]) < size)
			continue;
		if (best < 0 || room(&srv[i]) > room(&srv[best]) ||
		    (room(&srv[i]) == room(&srv[best]) && srv[i].count < srv[best].count))
			best = i;
	}
	if (best < 0) {
		snprintf(err, errlen, "no %s has %s free (%d of %d up)", what,
			 format_size(size, a, sizeof(a)), up, n);
		return -ENOSPC;
	}
	srv[best].reserved += size;
	srv[best].count++;
	return best;
}
