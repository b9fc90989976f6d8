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
