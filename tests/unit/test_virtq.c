/* test_virtq.c - virtqueues fed well-formed and malformed descriptor chains. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "virtio.h"

#define RAM   (1 << 20)
#define QS    8
#define DESC  0x1000
#define AVAIL 0x2000
#define USED  0x3000

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

static struct gmem mem;
static uint8_t ram[RAM] __attribute__((aligned(4096)));
static struct virtq vq;

static void setup(void)
{
	const char *why = NULL;

	memset(ram, 0, RAM);
	mem = (struct gmem){.base = ram, .size = RAM, .nr = 1};
	mem.regions[0] = (struct gmem_region){0, RAM, ram};
	virtq_init(&vq, &mem);
	vq.size = QS;
	vq.desc = DESC;
	vq.avail = AVAIL;
	vq.used = USED;
	ASSERT_EQ(virtq_enable(&vq, &why), 0);
}

static struct desc *d(int i)
{
	return (struct desc *)(ram + DESC) + i;
}

/* Offer descriptor @head as the next available entry. */
static void offer(uint16_t head)
{
	uint16_t *avail = (uint16_t *)(ram + AVAIL);

	avail[2 + avail[1] % QS] = head;
	avail[1]++;
}

static void expect_broken(const char *what)
{
	struct virtq_req req;
	const char *why = NULL;

	ASSERT_EQ(virtq_pop(&vq, &req, &why), -EINVAL);
	ASSERT_CONTAINS(why, what);
	ASSERT(vq.broken);
	ASSERT_EQ(virtq_pop(&vq, &req, &why), 0); /* nothing more is taken from a broken queue */
}

TEST(a_good_chain_pops_and_completes)
{
	struct virtq_req req;
	const char *why;
	uint16_t *used;

	setup();
	*d(0) = (struct desc){0x8000, 16, VIRTQ_DESC_F_NEXT, 1};
	*d(1) = (struct desc){0x9000, 4096, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2};
	*d(2) = (struct desc){0xa000, 1, VIRTQ_DESC_F_WRITE, 0};
	offer(0);
	ASSERT_EQ(virtq_pop(&vq, &req, &why), 1);
	ASSERT_EQ(req.head, 0);
	ASSERT_EQ(req.nr_segs, 3);
	ASSERT(req.segs[1].hva == ram + 0x9000 && req.segs[1].len == 4096 && req.segs[1].write);
	ASSERT(!req.segs[0].write);
	ASSERT_EQ(virtq_pop(&vq, &req, &why), 0);
	virtq_push(&vq, 0, 4097);
	used = (uint16_t *)(ram + USED);
	ASSERT_EQ(used[1], 1);
	ASSERT_EQ(*(uint32_t *)(ram + USED + 4), 0);
	ASSERT_EQ(*(uint32_t *)(ram + USED + 8), 4097);
}

TEST(out_of_range_addresses_are_refused)
{
	setup();
	*d(0) = (struct desc){RAM - 8, 16, 0, 0}; /* runs off the end of RAM */
	offer(0);
	expect_broken("outside guest RAM");
	setup();
	*d(0) = (struct desc){UINT64_MAX - 4, 16, 0, 0}; /* wraps */
	offer(0);
	expect_broken("outside guest RAM");
	setup();
	offer(QS); /* head past the table */
	expect_broken("past the table");
	setup();
	*d(0) = (struct desc){0x8000, 16, VIRTQ_DESC_F_NEXT, QS + 3};
	offer(0);
	expect_broken("next descriptor past the table");
}

TEST(loops_and_oversized_chains_are_refused)
{
	setup();
	*d(0) = (struct desc){0x8000, 16, VIRTQ_DESC_F_NEXT, 1};
	*d(1) = (struct desc){0x8000, 16, VIRTQ_DESC_F_NEXT, 0}; /* back to 0 */
	offer(0);
	expect_broken("too long, or a loop");
	setup();
	*d(3) = (struct desc){0x8000, 16, VIRTQ_DESC_F_NEXT, 3}; /* itself */
	offer(3);
	expect_broken("too long, or a loop");
}

TEST(rule_breaking_chains_are_refused)
{
	setup();
	*d(0) = (struct desc){0x8000, 16, VIRTQ_DESC_F_INDIRECT, 0};
	offer(0);
	expect_broken("indirect");
	setup();
	*d(0) = (struct desc){0x8000, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1};
	*d(1) = (struct desc){0x9000, 16, 0, 0};
	offer(0);
	expect_broken("readable descriptor after a writable");
	setup();
	((uint16_t *)(ram + AVAIL))[1] = QS + 1; /* index jumps further than the ring */
	expect_broken("more than the queue size");
}

TEST(rings_outside_ram_cannot_be_enabled)
{
	const char *why = NULL;

	setup();
	vq.ready = false;
	vq.used = RAM - 16;
	ASSERT(virtq_enable(&vq, &why) < 0);
	ASSERT_CONTAINS(why, "outside guest RAM");
	vq.used = USED;
	vq.size = 6;
	ASSERT(virtq_enable(&vq, &why) < 0);
	ASSERT_CONTAINS(why, "power of two");
}
