/*
 * bench_resize.c - a running vNode's memory grown and shrunk live, on a
 * whole cluster on loopback (legoctl up; real manager, memory servers,
 * agent, lego-vmm; KVM). The guest is the vmem payload, a virtio-mem driver
 * that plugs and unplugs as asked (fill=0: it does not write the memory, so
 * what is timed is the resize, not a pass over the memory).
 *
 * For +512 MiB and +2 GiB on a 64 MiB vNode:
 *   resize_place_ms   the manager's answer to the resize: the slabs placed
 *                     (primary and secondary), handed to the VMM, which
 *                     connects to their servers and asks the guest: what
 *                     the manager and memory servers take, the baseline
 *   resize_grow_ms    from the request until the guest has it plugged (the
 *                     VMM's plugged size, polled on its control socket)
 *   resize_shrink_ms  back to 64 MiB: until the guest has given it back
 *   resize_trim_ms    ... until the manager has freed the slabs
 * A Linux guest's own resize is not measured here.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "ctl.h"
#include "http.h"
#include "test.h"
#include "util.h"

static char sock[700], api[256];

static uint64_t plugged(void)
{
	json_t *req = json_pack("{s:s}", "cmd", "memory"), *res;
	char err[256];
	uint64_t v;

	res = ctl_call(sock, req, 10000, err, sizeof(err));
	json_decref(req);
	if (!res) {
		fprintf(stderr, "bench-resize: memory: %s\n", err);
		exit(1);
	}
	v = (uint64_t)json_integer_value(json_object_get(res, "plugged_bytes"));
	json_decref(res);
	return v;
}

/* POST resize to @total: the ms the manager took to answer. */
static double resize(uint64_t total)
{
	json_t *body = json_pack("{s:I}", "memory", (json_int_t)total);
	uint64_t t0 = now_ns();
	char err[512];
	int st = http_call("POST", api, body, NULL, 60000, err, sizeof(err));

	json_decref(body);
	if (st != 200) {
		fprintf(stderr, "bench-resize: resize to %llu MiB: %d %s\n",
			(unsigned long long)(total / MiB), st, err);
		exit(1);
	}
	return (now_ns() - t0) / 1e6;
}

/* ms from @t0 until the guest has @want bytes plugged (60 s at most). */
static double until_plugged(uint64_t t0, uint64_t want)
{
	while (plugged() != want) {
		if (now_ns() - t0 > 60e9) {
			fprintf(stderr, "bench-resize: the guest has %llu MiB plugged, not %llu\n",
				(unsigned long long)(plugged() / MiB),
				(unsigned long long)(want / MiB));
			exit(1);
		}
		usleep(1000);
	}
	return (now_ns() - t0) / 1e6;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		uint64_t bytes;
	} steps[] = {{"512M", 512 * MiB}, {"2G", 2048 * MiB}};
	struct proc_result r;
	long long base;
	char path[700];
	json_t *cfg;

	test_set_build_dir(argc > 1 ? argv[1] : "build");
	test_require_kvm();
	cluster_home();
	up("3G");
	snprintf(path, sizeof(path), "%s/cluster.json", home);
	cfg = json_load_file(path, 0, NULL);
	snprintf(api, sizeof(api), "%s/v1/vnodes/r1/resize",
		 json_string_value(json_object_get(cfg, "manager")));
	json_decref(cfg);
	legoctl(&r, "create", "r1", "--memory", "64M", "--max-memory", "2112M", "--excache", "64M",
		"--payload", "vmem", "--args", "resize=8 fill=0", "--no-net", NULL);
	if (r.status) {
		fprintf(stderr, "bench-resize: create: %s%s", r.out, r.err);
		return 1;
	}
	proc_result_free(&r);
	json_decref(wait_vnode("r1", "running", 0));
	snprintf(sock, sizeof(sock), "%s/vnodes/r1/control.sock", home);
	for (int ms = 0; ms < 30000; ms += 100) {
		char *out = console_of("r1");
		bool waiting = strstr(out, "vmem: waiting for a resize") != NULL;

		free(out);
		if (waiting)
			break;
		usleep(100 * 1000);
	}
	base = total_reserved();
	for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
		uint64_t t0 = now_ns();
		double place = resize(64 * MiB + steps[i].bytes);
		double grow = until_plugged(t0, steps[i].bytes), shrink, trim = -1;

		t0 = now_ns();
		resize(64 * MiB);
		shrink = until_plugged(t0, 0);
		for (int ms = 0; ms < 30000; ms += 50) {
			if (total_reserved() == base) {
				trim = (now_ns() - t0) / 1e6;
				break;
			}
			usleep(50 * 1000);
		}
		printf("BENCH resize grow=%s resize_place_ms=%.1f resize_grow_ms=%.1f "
		       "resize_shrink_ms=%.1f resize_trim_ms=%.0f\n",
		       steps[i].name, place, grow, shrink, trim);
		fflush(stdout);
	}
	legoctl(&r, "down", NULL);
	proc_result_free(&r);
	return 0;
}
