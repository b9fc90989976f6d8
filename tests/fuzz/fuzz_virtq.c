/*
 * fuzz_virtq.c - split virtqueues (vmm/virtio.c) over guest memory the guest
 * wrote as it liked: the input chooses the queue's size and where its
 * three rings are, and is the guest RAM's contents. Every chain virtq_pop
 * takes must lie inside RAM, segment by segment, readable ones before
 * writable ones, within VIRTQ_MAX_SEGS; a malformed one breaks the queue
 * (with a reason) and nothing more is taken from it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "virtio.h"

#define RAM (64 * 1024)

static uint8_t ram[RAM] __attribute__((aligned(4096)));

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct virtq_req req;
	struct gmem mem = {.base = ram, .size = RAM, .nr = 1};
	struct virtq vq;
	const char *why = NULL;
	uint16_t a[4];

	if (size < sizeof(a))
		return 0;
	memcpy(a, data, sizeof(a));
	data += sizeof(a), size -= sizeof(a);
	memset(ram, 0, RAM);
	memcpy(ram, data, size < RAM ? size : RAM);
	mem.regions[0] = (struct gmem_region){0, RAM, ram};
	virtq_init(&vq, &mem);
	vq.size = (uint16_t)(1u << (a[0] % 9)); /* 1 to 256 entries */
	vq.desc = a[1] % RAM;
	vq.avail = a[2] % RAM;
	vq.used = a[3] % RAM;
	if (virtq_enable(&vq, &why))
		return 0;
	for (int i = 0; i < 4 * VIRTQ_MAX_SIZE; i++) {
		int r = virtq_pop(&vq, &req, &why);
		bool wrote = false;

		if (r == 0)
			break;
		if (r < 0) {
			must(vq.broken && why,
			     "a refused chain without a reason or a broken queue");
			must(virtq_pop(&vq, &req, &why) == 0, "a broken queue gave another chain");
			break;
		}
		must(req.nr_segs >= 1 && req.nr_segs <= VIRTQ_MAX_SEGS,
		     "a chain of impossible length");
		must(req.head < vq.size, "a head outside the queue");
		for (int s = 0; s < req.nr_segs; s++) {
			const uint8_t *p = req.segs[s].hva;

			must(p >= ram && p <= ram + RAM &&
				     req.segs[s].len <= (size_t)(ram + RAM - p),
			     "a segment outside guest RAM");
			must(!wrote || req.segs[s].write,
			     "a readable segment after a writable one");
			wrote |= req.segs[s].write;
		}
		virtq_push(&vq, req.head, 0);
	}
	return 0;
}
