/*
 * workload.h - the access-order generators of the touch payload, shared with
 * host code (the ExCache policy test and benchmark) so that both replay the
 * very same trace. The includer defines WL_POW(x, y) (rt_pow in a payload,
 * pow on the host).
 */
#ifndef LEGO_WORKLOAD_H
#define LEGO_WORKLOAD_H

#include <stdint.h>

static inline uint64_t wl_mix(uint64_t a, uint64_t b)
{
	uint64_t z = a * 0x9e3779b97f4a7c15ULL ^ (b + 0x632be59bd9b4e019ULL);

	z = (z ^ (z >> 29)) * 0xbf58476d1ce4e5b9ULL;
	return z ^ (z >> 32);
}

/* splitmix64 */
static inline uint64_t wl_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* A pseudo-random permutation of [0, n): a bijection on [0, 2^bits), cycle-walked. */
struct wl_perm {
	uint64_t n, mask, k1, k2;
	unsigned bits;
};

static inline void wl_perm_init(struct wl_perm *p, uint64_t n, uint64_t *rng)
{
	p->n = n;
	for (p->bits = 1; (1ULL << p->bits) < n; p->bits++)
		;
	p->mask = (1ULL << p->bits) - 1;
	p->k1 = wl_rand(rng);
	p->k2 = wl_rand(rng);
}

static inline uint64_t wl_perm(const struct wl_perm *p, uint64_t i)
{
	do {
		i = (i * 0x5851f42d4c957f2dULL + p->k1) & p->mask;
		i ^= i >> (p->bits / 2 + 1);
		i = (i * 0x2545f4914f6cdd1dULL + p->k2) & p->mask;
		i ^= i >> (p->bits / 2 + 1);
	} while (i >= p->n);
	return i;
}

/*
 * Zipf over ranks [0, n) by the method of Gray et al., "Quickly generating
 * billion-record synthetic databases" (SIGMOD '94); rank 0 is the hottest.
 */
struct wl_zipf {
	uint64_t n;
	double theta, zetan, alpha, eta, half_pow;
};

static inline void wl_zipf_init(struct wl_zipf *z, uint64_t n, double theta)
{
	double zeta2 = 1 + WL_POW(0.5, theta);

	z->n = n;
	z->theta = theta;
	z->zetan = 0;
	for (uint64_t i = 1; i <= n; i++)
		z->zetan += 1 / WL_POW((double)i, theta);
	z->alpha = 1 / (1 - theta);
	z->eta = (1 - WL_POW(2.0 / n, 1 - theta)) / (1 - zeta2 / z->zetan);
	z->half_pow = WL_POW(0.5, theta);
}

static inline uint64_t wl_zipf_next(const struct wl_zipf *z, uint64_t *rng)
{
	double u = (double)(wl_rand(rng) >> 11) / (double)(1ULL << 53);
	double uz = u * z->zetan;
	uint64_t r;

	if (uz < 1)
		return 0;
	if (uz < 1 + z->half_pow)
		return 1;
	r = (uint64_t)(z->n * WL_POW(z->eta * u - z->eta + 1, z->alpha));
	return r < z->n ? r : z->n - 1;
}

/* wl_blk_pattern - word @word of sector @sector in the vblk payload's disk pattern. */
static inline uint64_t wl_blk_pattern(uint64_t seed, uint64_t sector, uint64_t word)
{
	uint64_t z = seed * 0x9e3779b97f4a7c15ULL ^ (sector * 64 + word);

	z = (z ^ (z >> 29)) * 0xbf58476d1ce4e5b9ULL;
	return z ^ (z >> 32);
}

#endif
