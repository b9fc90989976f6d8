/* policy_sim.c - trace replay for replacement policies (see policy_sim.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "excache_policy.h"
#include "policy_sim.h"

#define WL_POW pow
#include "workload.h"

uint32_t *sim_zipf_trace(uint64_t pages, uint64_t n, double theta, uint64_t seed)
{
	uint32_t *t = malloc(n * sizeof(*t));
	uint64_t rng = wl_mix(seed, 0);
	struct wl_perm perm;
	struct wl_zipf z;

	wl_perm_init(&perm, pages, &rng);
	wl_zipf_init(&z, pages, theta);
	for (uint64_t i = 0; i < n; i++)
		t[i] = (uint32_t)wl_perm(&perm, wl_zipf_next(&z, &rng));
	return t;
}

uint64_t sim_lru(const uint32_t *trace, uint64_t n, uint64_t pages, uint64_t cap)
{
	/* a doubly linked list threaded through arrays; head is most recent */
	uint32_t *prev = malloc(pages * 4), *next = malloc(pages * 4);
	uint8_t *in = calloc(pages, 1);
	const uint32_t none = UINT32_MAX;
	uint32_t head = none, tail = none;
	uint64_t hits = 0, size = 0;

	for (uint64_t i = 0; i < n; i++) {
		uint32_t p = trace[i];

		if (in[p]) {
			hits++;
			if (p == head)
				continue;
			next[prev[p]] = next[p]; /* unlink */
			if (next[p] != none)
				prev[next[p]] = prev[p];
			else
				tail = prev[p];
		} else if (size == cap) {
			uint32_t v = tail;

			tail = prev[v];
			if (tail != none)
				next[tail] = none;
			else
				head = none;
			in[v] = 0;
		} else {
			size++;
		}
		in[p] = 1;
		prev[p] = none;
		next[p] = head;
		if (head != none)
			prev[head] = p;
		head = p;
		if (tail == none)
			tail = p;
	}
	free(prev);
	free(next);
	free(in);
	return hits;
}

uint64_t sim_fifo(const uint32_t *trace, uint64_t n, uint64_t pages, uint64_t cap)
{
	uint32_t *ring = malloc(cap * 4);
	uint8_t *in = calloc(pages, 1);
	uint64_t hits = 0, head = 0, size = 0;

	for (uint64_t i = 0; i < n; i++) {
		uint32_t p = trace[i];

		if (in[p]) {
			hits++;
			continue;
		}
		if (size == cap)
			in[ring[head % cap]] = 0;
		else
			size++;
		ring[head++ % cap] = p;
		in[p] = 1;
	}
	free(ring);
	free(in);
	return hits;
}

uint64_t sim_excache(const uint32_t *trace, uint64_t n, uint64_t pages, uint64_t cap)
{
	struct xc_policy pol;
	uint8_t *in = calloc(pages, 1);
	uint64_t hits = 0, size = 0;

	xc_policy_init(&pol, pages, cap);
	for (uint64_t i = 0; i < n; i++) {
		uint32_t p = trace[i];

		if (in[p]) {
			hits++; /* invisible to the policy, as in the VMM */
			continue;
		}
		if (size == cap) {
			int64_t v = xc_policy_victim(&pol);

			in[v] = 0;
			xc_policy_evicted(&pol, v);
		} else {
			size++;
		}
		in[p] = 1;
		xc_policy_insert(&pol, p);
	}
	xc_policy_exit(&pol);
	free(in);
	return hits;
}
