/*
 * touch.c - the page-touch workload: every vCPU touches its share of a working
 * set, one access per 4 KiB page, in sequential, random or Zipf order.
 *
 * args (all optional):
 *   op=read|write|verify  verify (default) writes every chosen page with a
 *                         pattern derived from its address and a version,
 *                         then checks every page of the set
 *   mode=seq|rand|zipf    page order (default seq); seq and rand visit each
 *                         page once per pass, zipf draws `accesses` pages
 *   size=BYTES            working set, split between the vCPUs (default: all
 *                         free memory less the version table)
 *   passes=N              repeat N times (default 1); verify bumps versions
 *   accesses=N            draws per pass and vCPU for zipf (default 4 x pages)
 *   theta=0.99            Zipf skew; seed=N
 *   corrupt=1             vCPU 0 flips a byte of its first page before the
 *                         first verification (proves the check can fail)
 *   prefill=1             write every page once before the timed passes
 *   lat=1                 time every access; report pN_lat_p50_ns, pN_lat_p99_ns
 *
 * Reports per vCPU: pages, and per pass pN_ns (the pass's time) and
 * pN_ns_per_page, with pN_verify_ns and pN_verify_ns_per_page for verify,
 * then mismatches. Exit status 0, or 1 if any page failed verification.
 */
#include "rt.h"

#define WL_POW rt_pow
#include "workload.h"

#define PAGE  4096ULL
#define WORDS (PAGE / 8)

enum { MODE_SEQ, MODE_RAND, MODE_ZIPF };
enum { OP_READ, OP_WRITE, OP_VERIFY };

struct slice {
	uint64_t base; /* guest address of the first page of this vCPU's share */
	uint64_t pages;
	uint32_t *versions; /* verify: version last written to each page, 0 = never */
	uint64_t rng;
	struct wl_perm perm;
	struct wl_zipf zipf;
};

static uint64_t page_index(struct slice *s, int mode, uint64_t i)
{
	switch (mode) {
	case MODE_RAND:
		return wl_perm(&s->perm, i);
	case MODE_ZIPF:
		/* scatter hot ranks over the set, so hot pages are not neighbours */
		return wl_perm(&s->perm, wl_zipf_next(&s->zipf, &s->rng));
	default:
		return i;
	}
}

static void fill_page(uint64_t *p, uint64_t addr, uint64_t version)
{
	uint64_t h = wl_mix(addr, version);

	p[0] = addr;
	p[1] = version;
	p[2] = h;
	for (uint64_t w = 3; w < WORDS; w++)
		p[w] = h + w * 0x100000001b3ULL;
}

static int check_page(const uint64_t *p, uint64_t addr, uint64_t version)
{
	uint64_t h;

	if (version == 0) {
		for (uint64_t w = 0; w < WORDS; w++)
			if (p[w])
				return 0;
		return 1;
	}
	h = wl_mix(addr, version);
	if (p[0] != addr || p[1] != version || p[2] != h)
		return 0;
	for (uint64_t w = 3; w < WORDS; w++)
		if (p[w] != h + w * 0x100000001b3ULL)
			return 0;
	return 1;
}

/* Per-access latency: 250 ns buckets up to 2 ms, per vCPU, in .bss. */
#define LAT_BUCKET_NS 250
#define LAT_BUCKETS   8192
static uint32_t lat_hist[LP_MAX_VCPUS][LAT_BUCKETS];

static void lat_add(unsigned vcpu, uint64_t cycles)
{
	uint64_t b = rt_cycles_to_ns(cycles) / LAT_BUCKET_NS;

	lat_hist[vcpu][b < LAT_BUCKETS ? b : LAT_BUCKETS - 1]++;
}

static void lat_report(unsigned vcpu, unsigned pass, uint64_t n)
{
	static const unsigned pct[] = {50, 99};
	char key[LP_REPORT_KEY_MAX];

	for (unsigned k = 0; k < 2; k++) {
		uint64_t want = (n * pct[k] + 99) / 100, seen = 0, b = 0;

		while (b < LAT_BUCKETS - 1 && (seen += lat_hist[vcpu][b]) < want)
			b++;
		rt_snprintf(key, sizeof(key), "p%u_lat_p%u_ns", pass, pct[k]);
		rt_report(key, b * LAT_BUCKET_NS + LAT_BUCKET_NS / 2);
	}
	memset(lat_hist[vcpu], 0, sizeof(lat_hist[vcpu]));
}

static void report_pass(unsigned pass, const char *what, uint64_t cycles, uint64_t n)
{
	char key[LP_REPORT_KEY_MAX];

	rt_snprintf(key, sizeof(key), "p%u_%sns_per_page", pass, what);
	rt_report(key, n ? rt_cycles_to_ns(cycles) / n : 0);
	rt_snprintf(key, sizeof(key), "p%u_%sns", pass, what);
	rt_report(key, rt_cycles_to_ns(cycles));
}

int main(unsigned vcpu)
{
	const struct lp_info *info = rt_info();
	unsigned ncpu = info->nr_vcpus;
	int op = rt_arg_is("op", "read", 0)    ? OP_READ
		 : rt_arg_is("op", "write", 0) ? OP_WRITE
					       : OP_VERIFY;
	int mode = rt_arg_is("mode", "rand", 0)	  ? MODE_RAND
		   : rt_arg_is("mode", "zipf", 0) ? MODE_ZIPF
						  : MODE_SEQ;
	uint64_t passes = rt_arg_u64("passes", 1);
	int lat = rt_arg_u64("lat", 0) != 0;
	uint64_t free_bytes = info->free_end - info->free_base;
	/* the version table takes 4 bytes a page, in front of the working set */
	uint64_t max_pages = free_bytes / (PAGE + 4) - 2;
	uint64_t total = rt_arg_u64("size", max_pages * PAGE) / PAGE;
	uint64_t table = (info->free_base + total * 4 + PAGE - 1) & ~(PAGE - 1);
	uint64_t mismatches = 0, sum = 0;
	struct slice s = {0};

	if (total > max_pages || total < ncpu) {
		if (vcpu == 0)
			rt_printf("touch: size=%lu pages does not fit: between %u and %lu pages\n",
				  (unsigned long)total, ncpu, (unsigned long)max_pages);
		return 2;
	}
	s.pages = total / ncpu;
	s.base = table + vcpu * s.pages * PAGE;
	s.versions = (uint32_t *)info->free_base + vcpu * s.pages;
	s.rng = wl_mix(rt_arg_u64("seed", 1), vcpu);
	wl_perm_init(&s.perm, s.pages, &s.rng);
	if (mode == MODE_ZIPF)
		wl_zipf_init(&s.zipf, s.pages, rt_arg_double("theta", 0.99));
	uint64_t draws = mode == MODE_ZIPF ? rt_arg_u64("accesses", 4 * s.pages) : s.pages;

	rt_report("pages", s.pages);
	if (rt_arg_u64("prefill", 0))
		for (uint64_t idx = 0; idx < s.pages; idx++)
			*(volatile uint64_t *)(s.base + idx * PAGE) = idx;
	for (unsigned pass = 1; pass <= passes; pass++) {
		uint64_t t0, t1;

		rt_barrier();
		t0 = rt_rdtsc();
		for (uint64_t i = 0; i < draws; i++) {
			uint64_t idx = page_index(&s, mode, i);
			uint64_t *p = (uint64_t *)(s.base + idx * PAGE);
			uint64_t a0 = lat ? rt_rdtsc() : 0;

			if (op == OP_READ)
				sum += *(volatile uint64_t *)p;
			else if (op == OP_WRITE)
				*(volatile uint64_t *)p = pass;
			else
				fill_page(p, (uint64_t)p, ++s.versions[idx]);
			if (lat)
				lat_add(vcpu, rt_rdtsc() - a0);
		}
		t1 = rt_rdtsc();
		report_pass(pass, "", t1 - t0, draws);
		if (lat)
			lat_report(vcpu, pass, draws);
		if (op != OP_VERIFY)
			continue;
		if (pass == 1 && vcpu == 0 && rt_arg_u64("corrupt", 0))
			((volatile uint8_t *)s.base)[100] ^= 1;
		rt_barrier();
		t0 = rt_rdtsc();
		for (uint64_t idx = 0; idx < s.pages; idx++) {
			uint64_t *p = (uint64_t *)(s.base + idx * PAGE);

			if (!check_page(p, (uint64_t)p, s.versions[idx])) {
				if (mismatches < 5)
					rt_printf("touch: vCPU %u: page %p fails verification "
						  "(holds version %lu, expected %u)\n",
						  vcpu, (void *)p, (unsigned long)p[1],
						  s.versions[idx]);
				mismatches++;
			}
		}
		t1 = rt_rdtsc();
		report_pass(pass, "verify_", t1 - t0, s.pages);
	}
	rt_report("mismatches", mismatches);
	(void)sum;
	return mismatches ? 1 : 0;
}
