/* excache_policy.c - segmented FIFO with ghost promotion (see excache_policy.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "excache_policy.h"

/* Share of the cache for pages seen once, and how long a ghost is remembered. */
#define PROBATION_PCT 25
#define GHOST_PCT     100

static void *xc_zalloc(uint64_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

int xc_policy_init(struct xc_policy *p, uint64_t nr_pages, uint64_t capacity)
{
	memset(p, 0, sizeof(*p));
	p->nr_pages = nr_pages;
	p->capacity = capacity;
	/* Each queue can hold every page: no resize of rings while running. */
	p->probation.cap = p->protected_.cap = nr_pages + 1;
	p->probation.ring = xc_zalloc(p->probation.cap * sizeof(uint32_t));
	p->protected_.ring = xc_zalloc(p->protected_.cap * sizeof(uint32_t));
	p->ghost = xc_zalloc(nr_pages * sizeof(uint32_t));
	p->queue_of = xc_zalloc(nr_pages);
	if (!p->probation.ring || !p->protected_.ring || !p->ghost || !p->queue_of) {
		xc_policy_exit(p);
		return -ENOMEM;
	}
	return 0;
}

void xc_policy_exit(struct xc_policy *p)
{
	if (p->probation.ring)
		munmap(p->probation.ring, p->probation.cap * sizeof(uint32_t));
	if (p->protected_.ring)
		munmap(p->protected_.ring, p->protected_.cap * sizeof(uint32_t));
	if (p->ghost)
		munmap(p->ghost, p->nr_pages * sizeof(uint32_t));
	if (p->queue_of)
		munmap(p->queue_of, p->nr_pages);
	memset(p, 0, sizeof(*p));
}

void xc_policy_resize(struct xc_policy *p, uint64_t capacity)
{
	p->capacity = capacity;
}

static uint64_t xc_queue_len(const struct xc_queue *q)
{
	return q->tail - q->head;
}

static void xc_queue_push(struct xc_queue *q, uint64_t page)
{
	q->ring[q->tail++ % q->cap] = (uint32_t)page;
}

static uint64_t xc_queue_pop(struct xc_queue *q)
{
	return q->ring[q->head++ % q->cap];
}

void xc_policy_insert(struct xc_policy *p, uint64_t page)
{
	uint32_t g = p->ghost[page];
	uint64_t span = p->capacity * GHOST_PCT / 100;

	if (page >= p->nr_pages || p->queue_of[page])
		return;
	/* Evicted recently enough to still be remembered: it is coming back, so it is hot. */
	if (g && (uint32_t)p->evictions - (g - 1) < span) {
		xc_queue_push(&p->protected_, page);
		p->queue_of[page] = 2;
	} else {
		xc_queue_push(&p->probation, page);
		p->queue_of[page] = 1;
	}
}

int64_t xc_policy_victim(struct xc_policy *p)
{
	uint64_t target = p->capacity * PROBATION_PCT / 100;
	struct xc_queue *q;
	uint64_t page;

	if (!xc_queue_len(&p->probation) && !xc_queue_len(&p->protected_))
		return -1;
	if (xc_queue_len(&p->probation) > target || !xc_queue_len(&p->protected_))
		q = &p->probation;
	else
		q = &p->protected_;
	page = xc_queue_pop(q);
	p->queue_of[page] = 0;
	return (int64_t)page;
}

void xc_policy_evicted(struct xc_policy *p, uint64_t page)
{
	if (page < p->nr_pages)
		p->ghost[page] = (uint32_t)(++p->evictions);
}
