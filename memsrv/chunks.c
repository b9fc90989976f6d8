/*
 * chunks.c - the pool's slots, handed out by chunks of STORE_CHUNK_PAGES: a
 * vNode's pages go to chunks that hold its pages only, so that one chunk can
 * be exposed to that vNode's RDMA client (registered: its memory pinned) and
 * to no other vNode's. Only when no chunk is wholly free does a vNode get a
 * slot in another's chunk (one that is not pinned): that chunk is then
 * mixed, and is never exposed again until it is wholly free.
 *
 * A page freed in an unpinned chunk gives its memory back at once
 * (MADV_DONTNEED); in a pinned one it cannot (the device holds the page: the
 * process would see a new one while the device reads the old), and does
 * when the chunk is unpinned and wholly free.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "store.h"

#define MAP_WORDS (STORE_CHUNK_PAGES / 64)

static uint32_t chunk_cap(const struct store *s, uint32_t c)
{
	uint64_t left = s->capacity_pages - (uint64_t)c * STORE_CHUNK_PAGES;

	return left < STORE_CHUNK_PAGES ? (uint32_t)left : STORE_CHUNK_PAGES;
}

int store_chunks_init(struct store *s)
{
	s->nr_chunks = (uint32_t)((s->capacity_pages + STORE_CHUNK_PAGES - 1) / STORE_CHUNK_PAGES);
	s->chunks = calloc(s->nr_chunks, sizeof(*s->chunks));
	s->free_chunks = calloc(s->nr_chunks, sizeof(*s->free_chunks));
	if (!s->chunks || !s->free_chunks)
		return -ENOMEM;
	/* the last chunk may be short: its slots past the capacity are never free */
	for (uint32_t b = chunk_cap(s, s->nr_chunks - 1); b < STORE_CHUNK_PAGES; b++)
		s->chunks[s->nr_chunks - 1].map[b / 64] |= 1ULL << (b % 64);
	return 0;
}

void store_chunks_exit(struct store *s)
{
	free(s->chunks);
	free(s->free_chunks);
	s->chunks = NULL;
	s->free_chunks = NULL;
}

/* @vn no longer owns chunk @c. */
static void disown(struct store *s, uint32_t c)
{
	struct store_chunk *k = &s->chunks[c];
	struct store_vnode *vn = k->owner;
	uint32_t last;

	if (!vn)
		return;
	last = vn->chunks[--vn->nr_chunks];
	vn->chunks[k->idx] = last;
	s->chunks[last].idx = k->idx;
	if (vn->room >= vn->nr_chunks)
		vn->room = 0;
	k->owner = NULL;
}

/* Chunk @c is wholly free and unpinned: back to the pool, its memory to the system. */
static void chunk_release(struct store *s, uint32_t c)
{
	disown(s, c);
	s->chunks[c].mixed = false;
	madvise(s->pool + (uint64_t)c * STORE_CHUNK_PAGES * LMP_PAGE,
		(uint64_t)chunk_cap(s, c) * LMP_PAGE, MADV_DONTNEED);
	s->free_chunks[s->nr_free_chunks++] = c;
}

/* A free slot of chunk @c (which has room). */
static int64_t take(struct store *s, uint32_t c)
{
	struct store_chunk *k = &s->chunks[c];

	for (int w = 0; w < MAP_WORDS; w++) {
		if (~k->map[w]) {
			int b = __builtin_ctzll(~k->map[w]);

			k->map[w] |= 1ULL << b;
			k->used++;
			return (int64_t)c * STORE_CHUNK_PAGES + w * 64 + b;
		}
	}
	return -1;
}

static int own(struct store *s, struct store_vnode *vn, uint32_t c)
{
	if (vn->nr_chunks == vn->cap_chunks) {
		uint32_t cap = vn->cap_chunks ? 2 * vn->cap_chunks : 8;
		uint32_t *n = realloc(vn->chunks, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		vn->chunks = n;
		vn->cap_chunks = cap;
	}
	s->chunks[c].owner = vn;
	s->chunks[c].idx = vn->nr_chunks;
	vn->chunks[vn->nr_chunks] = c;
	vn->room = vn->nr_chunks++;
	return 0;
}

int64_t store_slot_alloc(struct store *s, struct store_vnode *vn)
{
	uint32_t c;

	/* a chunk of its own with room, from where the last one was found */
	for (uint32_t n = 0; n < vn->nr_chunks; n++) {
		uint32_t i = (vn->room + n) % vn->nr_chunks;

		c = vn->chunks[i];
		if (s->chunks[c].used < chunk_cap(s, c)) {
			vn->room = i;
			return take(s, c);
		}
	}
	/* a wholly free chunk */
	if (s->nr_free_chunks || s->next_chunk < s->nr_chunks) {
		c = s->nr_free_chunks ? s->free_chunks[--s->nr_free_chunks] : s->next_chunk++;
		if (own(s, vn, c) == 0)
			return take(s, c);
		s->free_chunks[s->nr_free_chunks++] = c;
	}
	/* the pool is (nearly) full: room in another's chunk, if no device holds it */
	for (c = 0; c < s->next_chunk; c++) {
		struct store_chunk *k = &s->chunks[c];

		if (!k->used && !k->owner && !k->mixed)
			continue; /* a free one: only step 2 takes those */
		if (k->used < chunk_cap(s, c) && !k->pins && k->owner != vn) {
			disown(s, c);
			k->mixed = true;
			return take(s, c);
		}
	}
	return -1;
}

void store_slot_free(struct store *s, uint32_t slot)
{
	uint32_t c = slot / STORE_CHUNK_PAGES, b = slot % STORE_CHUNK_PAGES;
	struct store_chunk *k = &s->chunks[c];

	k->map[b / 64] &= ~(1ULL << (b % 64));
	k->used--;
	if (k->pins)
		return;
	if (!k->used)
		chunk_release(s, c);
	else
		madvise(s->pool + (uint64_t)slot * LMP_PAGE, LMP_PAGE, MADV_DONTNEED);
}

void store_chunks_disown(struct store *s, struct store_vnode *vn)
{
	while (vn->nr_chunks) {
		uint32_t c = vn->chunks[vn->nr_chunks - 1];
		struct store_chunk *k = &s->chunks[c];

		disown(s, c);
		if (!k->used && !k->pins)
			chunk_release(s, c);
		else
			k->mixed = true; /* shared slots of copies, or a device still holds it */
	}
	free(vn->chunks);
	vn->chunks = NULL;
	vn->cap_chunks = 0;
}

int64_t store_chunk_pin(struct store *s, const struct store_vnode *vn, uint32_t slot)
{
	uint32_t c = slot / STORE_CHUNK_PAGES;

	if (s->chunks[c].owner != vn)
		return -EPERM; /* shared with another vNode's pages: never exposed */
	s->chunks[c].pins++;
	return c;
}

void store_chunk_unpin(struct store *s, uint32_t c)
{
	struct store_chunk *k = &s->chunks[c];

	if (--k->pins == 0 && !k->used)
		chunk_release(s, c);
}
