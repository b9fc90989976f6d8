/*
 * apps.c - the application workloads of apps.h as a payload: vCPU 0 lays
 * out the input in the free memory (setup: the text, the points, the two
 * relations, written once as a program would load them), then runs the
 * application on it (the timed part), and reports both times and the
 * result; other vCPUs return at once.
 *
 * args: app=wordcount|kmeans|hashjoin (required), size=BYTES (the working
 * set, default: all free memory), seed=N (default 1), iters=N (k-means,
 * default 4)
 *
 * Reports size, setup_ns, run_ns and result (a hash of the output; the
 * same for the same app, size and seed wherever its memory is).
 */
#include "rt.h"

#define WL_POW rt_pow
#include "apps.h"

int main(unsigned vcpu)
{
	const struct lp_info *info = rt_info();
	uint64_t base = (info->free_base + 4095) & ~4095ull, free_bytes = info->free_end - base;
	uint64_t size = rt_arg_u64("size", free_bytes) & ~4095ull, seed = rt_arg_u64("seed", 1);
	unsigned iters = (unsigned)rt_arg_u64("iters", 4);
	uint64_t t0, t1, t2, result;
	int app = -1;

	if (vcpu)
		return 0;
	for (int a = 0; a < APP_COUNT; a++)
		if (rt_arg_is("app", app_names[a], 0))
			app = a;
	if (app < 0) {
		rt_printf("apps: app=wordcount|kmeans|hashjoin is required\n");
		return 2;
	}
	if (size > free_bytes || size < APP_MIN_SIZE) {
		rt_printf("apps: size=%lu does not fit: between %llu and %lu bytes\n",
			  (unsigned long)size, APP_MIN_SIZE, (unsigned long)free_bytes);
		return 2;
	}
	rt_report("size", size);
	t0 = rt_rdtsc();
	app_setup(app, (uint8_t *)base, size, seed);
	t1 = rt_rdtsc();
	result = app_run(app, (uint8_t *)base, size, seed, iters);
	t2 = rt_rdtsc();
	rt_report("setup_ns", rt_cycles_to_ns(t1 - t0));
	rt_report("run_ns", rt_cycles_to_ns(t2 - t1));
	rt_report("result", result);
	return 0;
}
