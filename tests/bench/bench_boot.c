/*
 * bench_boot.c - how fast lego-vmm starts a guest, and what a resident page
 * touch costs inside it, each next to a baseline measured in the same run:
 *   vmm_start_ms               fork+exec of lego-vmm to the guest's first instruction
 *   spawn_true_ms              fork+exec+exit of /bin/true (the process floor)
 *   payload_touch_ns_per_page  sequential read of one word per resident page, in the guest
 *   host_touch_ns_per_page     the same loop on the host over prefaulted memory
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "test.h"
#include "util.h"

#define RUNS 15

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double vmm_start_ms(double *min_ms)
{
	char *argv[] = {(char *)test_path("bin/lego-vmm"),
			"-q",
			"--stats",
			"--payload",
			(char *)test_path("guest/payloads/hello.bin"),
			"--memory",
			"64M",
			NULL};
	double ms[RUNS];

	for (int i = 0; i < RUNS; i++) {
		struct proc_result r;
		uint64_t t0 = now_ns();
		const char *p;

		proc_run(argv, 30, &r);
		p = strstr(r.err, "\"first_guest_ns\":");
		if (r.status != 0 || !p) {
			fprintf(stderr, "lego-vmm failed (status %d):\n%s", r.status, r.err);
			exit(1);
		}
		ms[i] = (strtoull(p + 17, NULL, 10) - t0) / 1e6;
		proc_result_free(&r);
	}
	*min_ms = ms[0];
	for (int i = 1; i < RUNS; i++)
		if (ms[i] < *min_ms)
			*min_ms = ms[i];
	return median(ms, RUNS);
}

static double spawn_true_ms(void)
{
	char *argv[] = {"/bin/true", NULL};
	double ms[RUNS];

	for (int i = 0; i < RUNS; i++) {
		struct proc_result r;
		uint64_t t0 = now_ns();

		proc_run(argv, 10, &r);
		ms[i] = (now_ns() - t0) / 1e6;
		proc_result_free(&r);
	}
	return median(ms, RUNS);
}

static double payload_touch(const char *key)
{
	char *argv[] = {(char *)test_path("bin/lego-vmm"),
			"-q",
			"--payload",
			(char *)test_path("guest/payloads/touch.bin"),
			"--memory",
			"320M",
			"--args",
			"op=read mode=seq size=256M passes=5",
			NULL};
	struct proc_result r;
	uint64_t v = 0;

	proc_run(argv, 120, &r);
	if (r.status != 0 || !report_get(r.out, 0, key, &v)) {
		fprintf(stderr, "touch payload failed (status %d):\n%s%s", r.status, r.out, r.err);
		exit(1);
	}
	proc_result_free(&r);
	return v / 65536.0;
}

static double host_touch_ns_per_page(void)
{
	size_t size = 256 * MiB, pages = size / 4096;
	volatile uint64_t *mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	uint64_t sum = 0, t0, best = UINT64_MAX;

	if (mem == MAP_FAILED)
		exit(1);
	/* the guest's loop: one word per page, five passes, the resident ones count */
	for (int pass = 0; pass < 5; pass++) {
		t0 = now_ns();
		for (size_t p = 0; p < pages; p++)
			sum += mem[p * 512];
		if (pass > 0 && now_ns() - t0 < best)
			best = now_ns() - t0;
	}
	munmap((void *)mem, size);
	return (double)best / pages + (sum == 42 ? 1e-9 : 0);
}

int main(int argc, char **argv)
{
	double start_min, start, floor_ms, guest, host, first;

	if (argc > 1)
		test_set_build_dir(argv[1]);
	test_require_kvm();
	start = vmm_start_ms(&start_min);
	floor_ms = spawn_true_ms();
	printf("BENCH vmm_start_ms=%.2f vmm_start_min_ms=%.2f spawn_true_ms=%.2f runs=%d\n", start,
	       start_min, floor_ms, RUNS);
	first = payload_touch("p1_ns");
	guest = payload_touch("p5_ns");
	host = host_touch_ns_per_page();
	printf("BENCH payload_touch_ns_per_page=%.2f host_touch_ns_per_page=%.2f touch_ratio=%.2f "
	       "payload_first_touch_ns_per_page=%.0f pages=65536\n",
	       guest, host, guest / host, first);
	return 0;
}
