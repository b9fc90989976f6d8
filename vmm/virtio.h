/*
 * virtio.h - split virtqueues, read from guest memory defensively: every
 * descriptor is copied out before it is used and checked (index, loops,
 * chain length, addresses inside guest RAM, readable before writable, no
 * indirect tables, which are not offered). A bad queue is the guest's error:
 * the device stops using it and says so, the VMM carries on.
 */
#ifndef LEGO_VMM_VIRTIO_H
#define LEGO_VMM_VIRTIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vm.h"

#define VIRTQ_MAX_SIZE 1024
#define VIRTQ_MAX_SEGS 130 /* descriptors in one chain */

#define VIRTQ_DESC_F_NEXT     1
#define VIRTQ_DESC_F_WRITE    2
#define VIRTQ_DESC_F_INDIRECT 4

struct virtq_seg {
	void *hva; /* guest memory, checked to lie inside RAM */
	uint32_t len;
	bool write; /* device-writable */
};

struct virtq_req {
	uint16_t head;
	int nr_segs;
	struct virtq_seg segs[VIRTQ_MAX_SEGS];
};

struct virtq {
	struct gmem *mem;
	uint16_t size;
	bool ready;
	bool broken;		    /* the guest broke it; nothing more is taken from it */
	uint64_t desc, avail, used; /* guest-physical ring addresses */
	uint16_t last_avail;
	uint16_t used_idx;
	pthread_mutex_t lock; /* completions may come from several threads */
};

/* virtq_init - an unconfigured queue of at most VIRTQ_MAX_SIZE entries over @mem. */
void virtq_init(struct virtq *vq, struct gmem *mem);

/* virtq_enable - check the rings lie inside guest RAM; -EFAULT (and @why) if not. */
int virtq_enable(struct virtq *vq, const char **why);

/*
 * virtq_pop - the next available request: 1 with @req filled, 0 when none
 * is waiting, -EINVAL when the guest gave something malformed (@why says
 * what; the queue is then broken).
 */
int virtq_pop(struct virtq *vq, struct virtq_req *req, const char **why);

/* virtq_unpop - give the last @n popped requests back, unused (they are popped again next). */
void virtq_unpop(struct virtq *vq, uint16_t n);

/* virtq_push - return request @head with @len bytes written to the guest. */
void virtq_push(struct virtq *vq, uint16_t head, uint32_t len);

#endif
