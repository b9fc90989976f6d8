/* test_store.c - memsrv/store.c: pages, capacity, and clones that share pages until written. */
#include <errno.h>
#include <string.h>

#include "store.h"
#include "test.h"

static const uint8_t tok_a[LMP_TOKEN_LEN] = {1}, tok_b[LMP_TOKEN_LEN] = {2};

static void fill(uint8_t *page, uint8_t v)
{
	memset(page, v, LMP_PAGE);
}

static bool page_is(const struct store *s, const struct store_vnode *vn, uint64_t p, uint8_t v)
{
	const uint8_t *d = store_page(s, vn, p);

	if (!d)
		return v == 0;
	for (uint32_t i = 0; i < LMP_PAGE; i++)
		if (d[i] != v)
			return false;
	return true;
}

TEST(a_clone_reads_the_original_and_writes_apart)
{
	struct store s;
	struct store_vnode *a, *b;
	uint8_t page[LMP_PAGE];

	ASSERT(!store_init(&s, 64 * LMP_PAGE));
	ASSERT(!store_attach(&s, 7, 32, tok_a, &a));
	ASSERT(!store_epoch(&s, a, 3, 1, 0, 0));
	for (uint64_t p = 0; p < 10; p++) {
		fill(page, (uint8_t)(p + 1));
		ASSERT(!store_write(&s, a, p, page));
	}
	ASSERT_EQ(s.used_pages, 10);

	ASSERT_EQ(store_clone(&s, a, 2, 9, tok_b, 1, &b), -ESTALE);
	ASSERT_EQ(store_clone(&s, a, 3, 7, tok_b, 1, &b), -EEXIST);
	ASSERT_EQ(store_clone(&s, a, 3, 9, tok_b, 0, &b), -EINVAL);
	ASSERT(!store_clone(&s, a, 3, 9, tok_b, 1, &b));
	ASSERT_EQ(b->used, 10);
	ASSERT_EQ(s.used_pages, 10);
	ASSERT_EQ(s.nr_shared, 10);
	for (uint64_t p = 0; p < 12; p++)
		ASSERT(page_is(&s, b, p, p < 10 ? (uint8_t)(p + 1) : 0), "page %llu of the copy",
		       (unsigned long long)p);

	/* each side's writes stay its own */
	fill(page, 0xaa);
	ASSERT(!store_write(&s, b, 2, page));
	fill(page, 0xbb);
	ASSERT(!store_write(&s, a, 3, page));
	ASSERT(page_is(&s, a, 2, 3) && page_is(&s, b, 2, 0xaa));
	ASSERT(page_is(&s, a, 3, 0xbb) && page_is(&s, b, 3, 4));
	ASSERT_EQ(s.used_pages, 12);
	ASSERT_EQ(s.nr_shared, 8);
	/* written again: no further page taken */
	ASSERT(!store_write(&s, b, 2, page));
	ASSERT_EQ(s.used_pages, 12);

	/* a discard on one side leaves the other's page */
	ASSERT(!store_discard(&s, a, 4, 1));
	ASSERT(page_is(&s, a, 4, 0) && page_is(&s, b, 4, 5));
	ASSERT_EQ(s.used_pages, 12);
	ASSERT_EQ(a->used, 9);

	/* the original gone: the copy keeps every page it shared */
	store_release(&s, a);
	store_detach(&s, a);
	for (uint64_t p = 5; p < 10; p++)
		ASSERT(page_is(&s, b, p, (uint8_t)(p + 1)));
	ASSERT_EQ(s.nr_shared, 0);
	ASSERT_EQ(s.used_pages, b->used);
	store_release(&s, b); /* no connection: freed at once */
	ASSERT_EQ(s.used_pages, 0);
	ASSERT_EQ(s.nr_vnodes, 0);
	store_exit(&s);
}

TEST(a_shared_page_written_needs_room)
{
	struct store s;
	struct store_vnode *a, *b;
	uint8_t page[LMP_PAGE];
	uint64_t pages[2] = {0, 1};

	ASSERT(!store_init(&s, 2 * LMP_PAGE));
	ASSERT(!store_attach(&s, 1, 4, tok_a, &a));
	fill(page, 1);
	ASSERT(!store_write(&s, a, 0, page));
	ASSERT(!store_write(&s, a, 1, page));
	ASSERT(!store_clone(&s, a, 0, 2, tok_b, 1, &b));
	ASSERT_EQ(store_pages_needed(&s, b, pages, 2), 2);
	ASSERT_EQ(store_pages_needed(&s, a, pages, 2), 2);
	fill(page, 9);
	ASSERT_EQ(store_write(&s, b, 0, page), -ENOSPC);
	ASSERT(page_is(&s, b, 0, 1) && page_is(&s, a, 0, 1), "a refused write changed a page");
	/* once the original lets its page go, the copy owns it alone and writes in place */
	ASSERT(!store_discard(&s, a, 0, 1));
	ASSERT_EQ(store_pages_needed(&s, b, pages, 1), 0);
	ASSERT(!store_write(&s, b, 0, page));
	ASSERT(page_is(&s, b, 0, 9));
	store_exit(&s);
}

/* The chunk a page of @vn is in. */
static uint32_t chunk_of(const struct store_vnode *vn, uint64_t p)
{
	return (vn->slots[p] - 1) / STORE_CHUNK_PAGES;
}

TEST(each_vnode_gets_chunks_of_its_own_and_only_those_are_exposed)
{
	struct store s;
	struct store_vnode *a, *b;
	uint8_t page[LMP_PAGE];
	int64_t c;

	/* four chunks: a and b interleave their writes, yet never share a chunk */
	ASSERT(!store_init(&s, 4ULL * STORE_CHUNK_PAGES * LMP_PAGE));
	ASSERT(!store_attach(&s, 1, 4096, tok_a, &a));
	ASSERT(!store_attach(&s, 2, 4096, tok_b, &b));
	for (uint64_t p = 0; p < 600; p++) {
		fill(page, 1);
		ASSERT(!store_write(&s, a, p, page));
		fill(page, 2);
		ASSERT(!store_write(&s, b, p, page));
	}
	for (uint64_t p = 0; p < 600; p++)
		ASSERT(s.chunks[chunk_of(a, p)].owner == a && s.chunks[chunk_of(b, p)].owner == b,
		       "page %llu", (unsigned long long)p);
	ASSERT_EQ(a->nr_chunks, 2);
	ASSERT_EQ(b->nr_chunks, 2);
	/* a may expose its chunk to its clients; b may not reach it */
	c = store_chunk_pin(&s, a, a->slots[0] - 1);
	ASSERT_EQ(c, chunk_of(a, 0));
	ASSERT_EQ(store_chunk_pin(&s, b, a->slots[0] - 1), -EPERM);
	store_chunk_unpin(&s, (uint32_t)c);
	ASSERT(page_is(&s, a, 599, 1) && page_is(&s, b, 599, 2));
	store_exit(&s);
}

TEST(a_full_pool_mixes_unpinned_chunks_and_never_a_pinned_one)
{
	struct store s;
	struct store_vnode *a, *b;
	uint8_t page[LMP_PAGE];
	int64_t c;

	ASSERT(!store_init(&s, 2ULL * STORE_CHUNK_PAGES * LMP_PAGE));
	ASSERT(!store_attach(&s, 1, 4096, tok_a, &a));
	ASSERT(!store_attach(&s, 2, 4096, tok_b, &b));
	fill(page, 1);
	for (uint64_t p = 0; p < 300; p++)
		ASSERT(!store_write(&s, a, p, page));
	c = store_chunk_pin(&s, a, a->slots[0] - 1); /* a's client reads it over RDMA */
	ASSERT(c >= 0);
	fill(page, 2);
	for (uint64_t p = 0; p < STORE_CHUNK_PAGES; p++)
		ASSERT(!store_write(&s, b, p, page));
	/* room is left only in a's chunk, which a device holds: refused, not shared */
	ASSERT(s.used_pages < s.capacity_pages);
	ASSERT_EQ(store_write(&s, b, STORE_CHUNK_PAGES, page), -ENOSPC);
	store_chunk_unpin(&s, (uint32_t)c);
	/* unpinned, its room is given: the chunk is mixed from then on, exposed to no one */
	ASSERT_EQ(store_write(&s, b, STORE_CHUNK_PAGES, page), 0);
	ASSERT(s.chunks[c].mixed && s.chunks[c].owner == NULL);
	ASSERT_EQ(store_chunk_pin(&s, a, a->slots[0] - 1), -EPERM);
	ASSERT(page_is(&s, a, 299, 1) && page_is(&s, b, STORE_CHUNK_PAGES, 2));
	store_exit(&s);
}

TEST(a_chunk_wholly_freed_goes_back_to_the_pool)
{
	struct store s;
	struct store_vnode *a, *b;
	uint8_t page[LMP_PAGE];
	uint32_t c;

	ASSERT(!store_init(&s, 1ULL * STORE_CHUNK_PAGES * LMP_PAGE));
	ASSERT(!store_attach(&s, 1, 4096, tok_a, &a));
	ASSERT(!store_attach(&s, 2, 4096, tok_b, &b));
	fill(page, 1);
	for (uint64_t p = 0; p < 10; p++)
		ASSERT(!store_write(&s, a, p, page));
	c = chunk_of(a, 0);
	ASSERT(!store_discard(&s, a, 0, 10));
	ASSERT_EQ(s.nr_free_chunks, 1);
	ASSERT_EQ(a->nr_chunks, 0);
	/* b gets it, as its own: exposed to b, and not mixed */
	fill(page, 2);
	ASSERT(!store_write(&s, b, 0, page));
	ASSERT_EQ(chunk_of(b, 0), c);
	ASSERT(s.chunks[c].owner == b && !s.chunks[c].mixed);
	store_exit(&s);
}
