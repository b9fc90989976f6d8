/* test_gmem.c - the checked guest-memory accessor: every boundary, no wrap-around. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "util.h"
#include "vm.h"

static struct gmem two_regions(void)
{
	static uint8_t backing[3 * 4096];
	struct gmem m = {.base = backing, .size = sizeof(backing), .nr = 2};

	m.regions[0] = (struct gmem_region){0, 2 * 4096, backing};
	m.regions[1] = (struct gmem_region){GMEM_HIGH_BASE, 4096, backing + 2 * 4096};
	return m;
}

TEST(gmem_ptr_checks_every_boundary)
{
	struct gmem m = two_regions();

	ASSERT(gmem_ptr(&m, 0, 1) == m.base);
	ASSERT(gmem_ptr(&m, 8191, 1) == m.base + 8191);
	ASSERT(gmem_ptr(&m, 0, 8192) == m.base);
	ASSERT(gmem_ptr(&m, 0, 8193) == NULL, "one byte past low RAM");
	ASSERT(gmem_ptr(&m, 8192, 1) == NULL, "the hole");
	ASSERT(gmem_ptr(&m, GMEM_HIGH_BASE - 1, 2) == NULL, "straddling the hole's end");
	ASSERT(gmem_ptr(&m, GMEM_HIGH_BASE, 4096) == m.base + 8192);
	ASSERT(gmem_ptr(&m, GMEM_HIGH_BASE + 4095, 2) == NULL, "past high RAM");
	ASSERT(gmem_ptr(&m, 16, UINT64_MAX) == NULL, "length that wraps");
	ASSERT(gmem_ptr(&m, UINT64_MAX, 2) == NULL, "address that wraps");
	ASSERT(gmem_ptr(&m, 4096, UINT64_MAX - 4095) == NULL);
}

TEST(gmem_read_write_refuse_outside_ram)
{
	struct gmem m = two_regions();
	uint64_t v = 0x1122334455667788ULL, r = 0;

	ASSERT_EQ(gmem_write(&m, 8184, &v, 8), 0);
	ASSERT_EQ(gmem_read(&m, 8184, &r, 8), 0);
	ASSERT_EQ(r, v);
	ASSERT_EQ(gmem_write(&m, 8188, &v, 8), -EFAULT);
	ASSERT_EQ(gmem_read(&m, GMEM_HIGH_BASE + 4092, &r, 8), -EFAULT);
}

TEST(gmem_read_str_stops_at_nul_limit_and_ram_end)
{
	struct gmem m = two_regions();
	char buf[16];

	memcpy(m.base + 100, "hello", 6);
	ASSERT_EQ(gmem_read_str(&m, 100, buf, sizeof(buf)), 5);
	ASSERT(strcmp(buf, "hello") == 0);
	memset(m.base + 200, 'x', 64);
	ASSERT_EQ(gmem_read_str(&m, 200, buf, sizeof(buf)), -E2BIG);
	ASSERT_EQ(buf[15], '\0');
	memset(m.base + 8180, 'y', 12); /* runs into the hole without a NUL */
	ASSERT_EQ(gmem_read_str(&m, 8180, buf, sizeof(buf)), -EFAULT);
}
