/*
 * excache_policy.h - which resident page the ExCache evicts next.
 *
 * Hits never trap, so the policy sees only misses (and evictions). It is a
 * 2Q-like segmented FIFO: a page enters the probation queue on a miss, or the
 * protected queue when it misses again soon after it was evicted (it is still
 * remembered as a "ghost"). Pages that keep coming back are the hot ones, and
 * they are the ones the protected queue keeps; one-time pages pass through
 * probation. Measured against exact LRU on the same Zipf trace by
 * tests/unit/test_policy.c and bench-excache.
 *
 * Not thread-safe: the ExCache serialises calls with its own lock.
 */
#ifndef LEGO_VMM_EXCACHE_POLICY_H
#define LEGO_VMM_EXCACHE_POLICY_H

#include <stdbool.h>
#include <stdint.h>

struct xc_queue {
	uint32_t *ring;
	uint64_t head, tail; /* entries [head, tail), modulo cap */
	uint64_t cap;
};

struct xc_policy {
	uint64_t nr_pages; /* pages the policy can be asked about */
	uint64_t capacity; /* cache size in pages (sizes the segments and the ghosts) */
	struct xc_queue probation, protected_;
	uint32_t *ghost;   /* per page: eviction number + 1 when evicted, 0 if never */
	uint8_t *queue_of; /* per page: 0 none, 1 probation, 2 protected */
	uint64_t evictions;
};

/* xc_policy_init - a policy for @nr_pages pages and a cache of @capacity pages. */
int xc_policy_init(struct xc_policy *p, uint64_t nr_pages, uint64_t capacity);

/* xc_policy_exit - free what init took. */
void xc_policy_exit(struct xc_policy *p);

/* xc_policy_resize - the cache now holds @capacity pages. */
void xc_policy_resize(struct xc_policy *p, uint64_t capacity);

/* xc_policy_insert - @page became resident after a miss. */
void xc_policy_insert(struct xc_policy *p, uint64_t page);

/*
 * xc_policy_victim - the page to evict next (it leaves the policy's queues),
 * or -1 when none is queued. The caller calls xc_policy_evicted once it is
 * gone, or xc_policy_insert to keep it.
 */
int64_t xc_policy_victim(struct xc_policy *p);

/* xc_policy_evicted - @page has left the cache; remember it as a ghost. */
void xc_policy_evicted(struct xc_policy *p, uint64_t page);

#endif
