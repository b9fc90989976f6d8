/*
 * apps.h - three applications with the memory behaviour of LegoOS's
 * (Phoenix's word count and k-means, and a hash join), as kernels over one
 * memory region, so that the same code runs as a ring-3 payload in a vNode
 * (apps.c) and as a host process (bench_app's swap baseline).
 *
 *   wordcount  MapReduce word count: a sequential scan of text whose words
 *              (a vocabulary of 256 Ki) follow a Zipf law, counted in an
 *              open-addressing hash table at half load (8 MiB); then a
 *              reduce over the table
 *   kmeans     k-means over integer points (16 dimensions, 16 clusters):
 *              every iteration is a full scan of the points
 *   hashjoin   build a hash table (at half load, 1/32 of the region) on a
 *              small relation (1/64), probe it with a scan of a large one
 *              whose keys follow a Zipf law over the small one's (90% match)
 *
 * As in the applications they stand for, the hot structure (the word table,
 * the join's hash table, the centroids) is small next to the data scanned.
 *
 * Every kernel is integer-only and deterministic: its result depends only
 * on the region's size and the seed, so a run with remote memory must give
 * the all-local run's result, bit for bit. Everything a kernel uses lives
 * in the region (it has no other state): the region is its working set.
 *
 * The includer defines WL_POW(x, y) (workload.h) and provides memset.
 */
#ifndef LEGO_APPS_H
#define LEGO_APPS_H

#include <stdint.h>

#include "workload.h"

/*
 * A Zipf law over ranks [0, n) as a table of APP_ZIPF_BUCKETS + 1 ranks:
 * bucket b covers the ranks where the law's CDF crosses b / BUCKETS, and a
 * draw is a uniform rank of a uniform bucket. Exact for the head (ranks of
 * more than 1/BUCKETS get whole buckets), uniform within the tail's
 * buckets; a draw costs two random numbers, no pow().
 */
#define APP_ZIPF_BUCKETS 65536u
#define APP_ZIPF_BYTES	 ((APP_ZIPF_BUCKETS + 1) * 4ull)

static inline void app_zipf_init(uint32_t *first, uint64_t n, double theta)
{
	double zetan = 0, cdf = 0;
	uint32_t b = 0;

	for (uint64_t i = 1; i <= n; i++)
		zetan += 1 / WL_POW((double)i, theta);
	for (uint64_t r = 0; r < n && b < APP_ZIPF_BUCKETS; r++) {
		cdf += 1 / WL_POW((double)(r + 1), theta) / zetan;
		while (b < APP_ZIPF_BUCKETS && (double)b / APP_ZIPF_BUCKETS < cdf)
			first[b++] = (uint32_t)r;
	}
	while (b <= APP_ZIPF_BUCKETS)
		first[b++] = (uint32_t)(n - 1);
}

static inline uint64_t app_zipf_draw(const uint32_t *first, uint64_t *rng)
{
	uint64_t r = wl_rand(rng), b = r % APP_ZIPF_BUCKETS;
	uint64_t lo = first[b], hi = first[b + 1];

	return hi > lo ? lo + (r >> 32) % (hi - lo + 1) : lo;
}

/* ---- wordcount ---- */

#define WC_VOCAB 262144u

struct wc_slot {
	uint64_t hash, count;
};

struct wc_layout {
	uint32_t *zipf;
	struct wc_slot *table;
	uint64_t slots; /* a power of two */
	uint64_t vocab; /* at most half the slots: the table never fills */
	char *text, *end;
};

static inline void wc_layout(uint8_t *mem, uint64_t size, struct wc_layout *l)
{
	l->zipf = (uint32_t *)mem;
	l->table = (struct wc_slot *)(mem + ((APP_ZIPF_BYTES + 4095) & ~4095ull));
	for (l->slots = 1; l->slots < 2 * WC_VOCAB && l->slots * sizeof(struct wc_slot) < size / 8;
	     l->slots *= 2)
		;
	l->vocab = l->slots / 2 < WC_VOCAB ? l->slots / 2 : WC_VOCAB;
	l->text = (char *)(l->table + l->slots);
	l->end = (char *)mem + size;
}

/* The text of word @id: 2 to 10 letters. */
static inline unsigned wc_word(uint64_t id, uint64_t seed, char *out)
{
	uint64_t h = wl_mix(id, seed);
	unsigned len = 2 + (unsigned)(h % 9);

	h /= 9;
	for (unsigned i = 0; i < len; i++, h /= 26)
		out[i] = (char)('a' + h % 26);
	return len;
}

static inline void wc_setup(uint8_t *mem, uint64_t size, uint64_t seed)
{
	struct wc_layout l;
	uint64_t rng = wl_mix(seed, 1), words = 0;
	char *p;

	wc_layout(mem, size, &l);
	app_zipf_init(l.zipf, l.vocab, 0.9);
	for (p = l.text; p + 12 <= l.end;) {
		p += wc_word(app_zipf_draw(l.zipf, &rng), seed, p);
		*p++ = ++words % 16 ? ' ' : '\n';
	}
	while (p < l.end)
		*p++ = ' ';
}

static inline uint64_t wc_run(uint8_t *mem, uint64_t size, uint64_t seed)
{
	struct wc_layout l;
	uint64_t mask, h = 0, distinct = 0, result = 0;
	int in_word = 0;

	(void)seed;
	wc_layout(mem, size, &l);
	mask = l.slots - 1;
	memset(l.table, 0, l.slots * sizeof(*l.table));
	/* map: every word hashed (FNV-1a) and counted */
	for (const char *p = l.text; p < l.end; p++) {
		unsigned char c = (unsigned char)*p;

		if (c >= 'a' && c <= 'z') {
			if (!in_word)
				h = 0xcbf29ce484222325ull;
			h = (h ^ c) * 0x100000001b3ull;
			in_word = 1;
		} else if (in_word) {
			uint64_t i = (h |= 1) & mask;

			while (l.table[i].hash && l.table[i].hash != h)
				i = (i + 1) & mask;
			l.table[i].hash = h;
			l.table[i].count++;
			in_word = 0;
		}
	}
	/* reduce: every distinct word and its count */
	for (uint64_t i = 0; i < l.slots; i++)
		if (l.table[i].hash) {
			distinct++;
			result += wl_mix(l.table[i].hash, l.table[i].count);
		}
	return result ^ distinct;
}

/* ---- kmeans ---- */

#define KM_DIMS	    16
#define KM_CLUSTERS 16

struct km_layout {
	int64_t (*centre)[KM_DIMS]; /* KM_CLUSTERS */
	int64_t (*sum)[KM_DIMS];    /* KM_CLUSTERS */
	uint64_t *count;	    /* KM_CLUSTERS */
	int32_t (*point)[KM_DIMS];
	uint64_t points;
};

static inline void km_layout(uint8_t *mem, uint64_t size, struct km_layout *l)
{
	l->centre = (int64_t(*)[KM_DIMS])mem;
	l->sum = l->centre + KM_CLUSTERS;
	l->count = (uint64_t *)(l->sum + KM_CLUSTERS);
	l->point = (int32_t(*)[KM_DIMS])(mem + 4096);
	l->points = (size - 4096) / sizeof(*l->point);
}

static inline void km_setup(uint8_t *mem, uint64_t size, uint64_t seed)
{
	struct km_layout l;
	uint64_t rng = wl_mix(seed, 2);

	km_layout(mem, size, &l);
	for (uint64_t i = 0; i < l.points; i++) {
		uint64_t k = wl_rand(&rng) % KM_CLUSTERS;

		for (unsigned d = 0; d < KM_DIMS; d++)
			l.point[i][d] = (int32_t)(wl_mix(k, d + seed) % 100000) +
					(int32_t)(wl_rand(&rng) % 40001) - 20000;
	}
}

static inline uint64_t km_run(uint8_t *mem, uint64_t size, uint64_t seed, unsigned iters)
{
	struct km_layout l;
	uint64_t result = 0;

	(void)seed;
	km_layout(mem, size, &l);
	for (unsigned k = 0; k < KM_CLUSTERS; k++)
		for (unsigned d = 0; d < KM_DIMS; d++)
			l.centre[k][d] = l.point[k][d];
	for (unsigned it = 0; it < iters; it++) {
		memset(l.sum, 0, sizeof(*l.sum) * KM_CLUSTERS);
		memset(l.count, 0, sizeof(*l.count) * KM_CLUSTERS);
		for (uint64_t i = 0; i < l.points; i++) {
			int64_t best = INT64_MAX;
			unsigned bk = 0;

			for (unsigned k = 0; k < KM_CLUSTERS; k++) {
				int64_t dist = 0;

				for (unsigned d = 0; d < KM_DIMS; d++) {
					int64_t x = l.point[i][d] - l.centre[k][d];

					dist += x * x;
				}
				if (dist < best)
					best = dist, bk = k;
			}
			for (unsigned d = 0; d < KM_DIMS; d++)
				l.sum[bk][d] += l.point[i][d];
			l.count[bk]++;
		}
		for (unsigned k = 0; k < KM_CLUSTERS; k++)
			for (unsigned d = 0; d < KM_DIMS; d++)
				if (l.count[k])
					l.centre[k][d] = l.sum[k][d] / (int64_t)l.count[k];
	}
	for (unsigned k = 0; k < KM_CLUSTERS; k++) {
		result = wl_mix(result, l.count[k]);
		for (unsigned d = 0; d < KM_DIMS; d++)
			result = wl_mix(result, (uint64_t)l.centre[k][d]);
	}
	return result;
}

/* ---- hashjoin ---- */

struct hj_tuple {
	uint64_t key, value;
};

struct hj_layout {
	uint32_t *zipf;
	struct hj_tuple *r, *table, *s;
	uint64_t nr, slots, ns; /* slots: a power of two, at least 2 x nr */
};

static inline void hj_layout(uint8_t *mem, uint64_t size, struct hj_layout *l)
{
	l->zipf = (uint32_t *)mem;
	l->r = (struct hj_tuple *)(mem + ((APP_ZIPF_BYTES + 4095) & ~4095ull));
	l->nr = size / 64 / sizeof(struct hj_tuple);
	for (l->slots = 1; l->slots < 2 * l->nr; l->slots *= 2)
		;
	l->table = l->r + l->nr;
	l->s = l->table + l->slots;
	l->ns = (uint64_t)((struct hj_tuple *)(mem + size) - l->s);
}

static inline void hj_setup(uint8_t *mem, uint64_t size, uint64_t seed)
{
	struct hj_layout l;
	struct wl_perm perm;
	uint64_t rng = wl_mix(seed, 3);

	hj_layout(mem, size, &l);
	app_zipf_init(l.zipf, l.nr, 0.99);
	wl_perm_init(&perm, l.nr, &rng); /* hot keys scattered over the relation */
	for (uint64_t i = 0; i < l.nr; i++)
		l.r[i] = (struct hj_tuple){wl_mix(i, seed) | 1, i};
	for (uint64_t j = 0; j < l.ns; j++) {
		uint64_t x = wl_rand(&rng);

		l.s[j].key = x % 10 ? l.r[wl_perm(&perm, app_zipf_draw(l.zipf, &rng))].key
				    : (x & ~1ull); /* even: no match */
		l.s[j].value = j;
	}
}

static inline uint64_t hj_run(uint8_t *mem, uint64_t size, uint64_t seed)
{
	struct hj_layout l;
	uint64_t mask, matches = 0, sum = 0;

	(void)seed;
	hj_layout(mem, size, &l);
	mask = l.slots - 1;
	memset(l.table, 0, l.slots * sizeof(*l.table));
	for (uint64_t i = 0; i < l.nr; i++) { /* build */
		uint64_t h = wl_mix(l.r[i].key, 0) & mask;

		while (l.table[h].key && l.table[h].key != l.r[i].key)
			h = (h + 1) & mask;
		l.table[h] = l.r[i];
	}
	for (uint64_t j = 0; j < l.ns; j++) { /* probe */
		uint64_t key = l.s[j].key, h = wl_mix(key, 0) & mask;

		while (l.table[h].key && l.table[h].key != key)
			h = (h + 1) & mask;
		if (l.table[h].key) {
			matches++;
			sum += l.table[h].value * l.s[j].value;
		}
	}
	return wl_mix(matches, sum);
}

/* ---- by name ---- */

enum { APP_WORDCOUNT, APP_KMEANS, APP_HASHJOIN, APP_COUNT };

static const char *const app_names[APP_COUNT] = {"wordcount", "kmeans", "hashjoin"};

/* The smallest region each kernel works on. */
#define APP_MIN_SIZE (1ull << 20)

static inline void app_setup(int app, uint8_t *mem, uint64_t size, uint64_t seed)
{
	if (app == APP_WORDCOUNT)
		wc_setup(mem, size, seed);
	else if (app == APP_KMEANS)
		km_setup(mem, size, seed);
	else
		hj_setup(mem, size, seed);
}

static inline uint64_t app_run(int app, uint8_t *mem, uint64_t size, uint64_t seed, unsigned iters)
{
	if (app == APP_WORDCOUNT)
		return wc_run(mem, size, seed);
	if (app == APP_KMEANS)
		return km_run(mem, size, seed, iters);
	return hj_run(mem, size, seed);
}

#endif
