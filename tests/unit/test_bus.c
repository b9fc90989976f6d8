/* test_bus.c - the device bus: claims, overlaps, boundaries, dispatch. */
#include <errno.h>
#include <string.h>

#include "bus.h"
#include "log.h"
#include "test.h"

struct hit {
	uint64_t offset;
	uint32_t len;
	bool is_write;
	int calls;
};

static void record(struct vcpu *vcpu, void *opaque, uint64_t offset, void *data, uint32_t len,
		   bool is_write)
{
	struct hit *h = opaque;

	(void)vcpu;
	h->offset = offset;
	h->len = len;
	h->is_write = is_write;
	h->calls++;
	if (!is_write)
		memset(data, 0xab, len);
}

TEST(bus_claims_and_dispatches_by_offset)
{
	struct bus bus;
	struct hit a = {0}, b = {0};
	uint32_t v = 0;

	log_init("test", LOG_ERR);
	bus_init(&bus, "test");
	ASSERT_EQ(bus_register(&bus, 0x1000, 0x100, record, &a, "a"), 0);
	ASSERT_EQ(bus_register(&bus, 0x100, 0x10, record, &b, "b"), 0);
	ASSERT_EQ(bus_dispatch(&bus, NULL, 0x1004, &v, 4, false), 0);
	ASSERT_EQ(a.calls, 1);
	ASSERT_EQ(a.offset, 4);
	ASSERT_EQ(v, 0xabababab);
	ASSERT_EQ(bus_dispatch(&bus, NULL, 0x10f, &v, 1, true), 0);
	ASSERT_EQ(b.calls, 1);
	ASSERT_EQ(b.offset, 0xf);
	ASSERT(b.is_write);
	bus_exit(&bus);
}

TEST(bus_refuses_overlaps_and_bad_ranges)
{
	struct bus bus;
	struct hit a = {0};

	log_init("test", LOG_ERR);
	bus_init(&bus, "test");
	ASSERT_EQ(bus_register(&bus, 0x1000, 0x100, record, &a, "a"), 0);
	ASSERT_EQ(bus_register(&bus, 0x10ff, 1, record, &a, "tail"), -EEXIST);
	ASSERT_EQ(bus_register(&bus, 0xf00, 0x101, record, &a, "head"), -EEXIST);
	ASSERT_EQ(bus_register(&bus, 0x0, 0x10000, record, &a, "cover"), -EEXIST);
	ASSERT_EQ(bus_register(&bus, 0x1100, 0x10, record, &a, "after"), 0);
	ASSERT_EQ(bus_register(&bus, 0xff0, 0x10, record, &a, "before"), 0);
	ASSERT_EQ(bus_register(&bus, 0x2000, 0, record, &a, "empty"), -EINVAL);
	ASSERT_EQ(bus_register(&bus, UINT64_MAX - 4, 16, record, &a, "wraps"), -EINVAL);
	ASSERT_EQ(bus.nr, 3);
	bus_exit(&bus);
}

TEST(bus_access_must_lie_within_one_range)
{
	struct bus bus;
	struct hit a = {0}, b = {0};
	uint64_t v;

	log_init("test", LOG_ERR);
	bus_init(&bus, "test");
	ASSERT_EQ(bus_register(&bus, 0x1000, 0x10, record, &a, "a"), 0);
	ASSERT_EQ(bus_register(&bus, 0x1010, 0x10, record, &b, "b"), 0);
	ASSERT(bus_find(&bus, 0x100c, 4) != NULL);
	ASSERT(bus_find(&bus, 0x100e, 4) == NULL, "an access straddling two devices");
	ASSERT(bus_find(&bus, 0x101c, 8) == NULL, "an access running off the end");
	ASSERT(bus_find(&bus, 0xfff, 1) == NULL);
	ASSERT(bus_find(&bus, 0x1020, 1) == NULL);
	ASSERT(bus_find(&bus, UINT64_MAX, 8) == NULL, "wrapping access");
	ASSERT_EQ(bus_dispatch(&bus, NULL, 0x2000, &v, 8, false), -ENOENT);
	ASSERT_EQ(a.calls + b.calls, 0);
	bus_exit(&bus);
}

TEST(bus_finds_every_range_among_many)
{
	struct bus bus;
	struct hit h[64] = {0};

	bus_init(&bus, "test");
	/* registered in a scrambled order; dispatch must still find each */
	for (int i = 0; i < 64; i++) {
		int k = (i * 37) % 64;

		ASSERT_EQ(bus_register(&bus, 0x100 * k, 0x80, record, &h[k], "dev"), 0);
	}
	for (int k = 0; k < 64; k++) {
		uint8_t v;

		ASSERT_EQ(bus_dispatch(&bus, NULL, 0x100 * k + 0x7f, &v, 1, false), 0);
		ASSERT_EQ(h[k].calls, 1);
		ASSERT_EQ(h[k].offset, 0x7f);
		ASSERT_EQ(bus_dispatch(&bus, NULL, 0x100 * k + 0x80, &v, 1, false), -ENOENT);
	}
	bus_exit(&bus);
}
