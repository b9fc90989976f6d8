/*
 * policy_sim.h - replay an access trace through a cache of a given size and
 * count hits: exact LRU, FIFO, and the ExCache's own policy (which, as in the
 * VMM, sees only the misses). Used by the policy test and bench-excache.
 */
#ifndef LEGO_POLICY_SIM_H
#define LEGO_POLICY_SIM_H

#include <stdint.h>

/* sim_zipf_trace - @n accesses over @pages pages, Zipf(@theta) ranks scattered
 * by the same permutation as the touch payload's zipf mode (seed @seed). */
uint32_t *sim_zipf_trace(uint64_t pages, uint64_t n, double theta, uint64_t seed);

/* Hits over the trace for a cache of @cap pages. */
uint64_t sim_lru(const uint32_t *trace, uint64_t n, uint64_t pages, uint64_t cap);
uint64_t sim_fifo(const uint32_t *trace, uint64_t n, uint64_t pages, uint64_t cap);
uint64_t sim_excache(const uint32_t *trace, uint64_t n, uint64_t pages, uint64_t cap);

#endif
