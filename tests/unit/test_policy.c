/* test_policy.c - the ExCache's replacement policy against exact LRU on Zipf traces. */
#include <stdlib.h>

#include "policy_sim.h"
#include "test.h"

static void compare(uint64_t pages, uint64_t cap, double theta)
{
	uint64_t n = 40 * pages;
	uint32_t *t = sim_zipf_trace(pages, n, theta, 7);
	uint64_t lru = sim_lru(t, n, pages, cap), fifo = sim_fifo(t, n, pages, cap);
	uint64_t ours = sim_excache(t, n, pages, cap);

	fprintf(stderr,
		"  %lu pages, cache %lu, theta %.2f: hit rate LRU %.4f FIFO %.4f ours %.4f\n",
		(unsigned long)pages, (unsigned long)cap, theta, (double)lru / n, (double)fifo / n,
		(double)ours / n);
	ASSERT((double)ours >= 0.97 * lru, "ours/LRU = %.3f", (double)ours / lru);
	ASSERT(ours > fifo, "no better than FIFO");
	free(t);
}

TEST(policy_is_within_3_percent_of_lru_on_zipf)
{
	compare(65536, 6554, 0.99);
	compare(65536, 16384, 0.99);
	compare(65536, 2048, 0.99);
	compare(65536, 6554, 0.8);
}

TEST(lru_simulator_is_exact_on_a_known_trace)
{
	/* cache 2, a b a c b a: LRU hits only the second a (c evicts b, b evicts a);
	 * FIFO hits the second a and b (c evicts a, the oldest) */
	uint32_t t[] = {0, 1, 0, 2, 1, 0};

	ASSERT_EQ(sim_lru(t, 6, 3, 2), 1);
	ASSERT_EQ(sim_fifo(t, 6, 3, 2), 2);
	ASSERT_EQ(sim_lru(t, 6, 3, 3), 3);
}
