/*
 * test_linux_excache.c - the stock kernel with 512 MiB of RAM of which at most
 * 64 MiB stay in lego-vmm, the rest on a lego-memsrv process: every page the
 * kernel, init and the workload touch goes through the fault path. The
 * workload writes a file, then fills more than the ExCache holds (so the
 * file's pages are written back and dropped), then reads the file back and
 * the test compares its checksum with the host's. The VMM's resident set is
 * read from the kernel (smaps) while the guest runs. Then the running guest
 * is live-migrated to a second lego-vmm: it goes on with its uptime and its
 * file (in its RAM: on the memory server), and does not boot again.
 */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "test.h"

#define EXCACHE_MIB 64
/* a file written first, then 96 MiB more than it: its pages must leave the ExCache */
#define RUN                                                                                        \
	"seq 1 200000 >/seq; dd if=/dev/zero of=/fill bs=1M count=96 2>/dev/null; rm /fill; "      \
	"echo lego-test: before $(cut -d. -f1 /proc/uptime); echo lego-test: waiting; sleep 5; "   \
	"md5sum /seq; echo lego-test: after $(cut -d. -f1 /proc/uptime)"
#define VNODE	 "4343"
#define TOKEN	 "1e601e601e601e601e601e601e601e601e601e601e601e601e601e601e601e60"
#define MIGTOKEN "3160e3160e3160e3160e3160e3160e3160e3160e3160e3160e3160e3160e3160"

static uint64_t jint(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	ASSERT(json_is_integer(v), "no integer \"%s\"", key);
	return (uint64_t)json_integer_value(v);
}

/* The guest RAM mapping's address, from the control socket once it answers. */
static uint64_t ram_hva(const char *sock, pid_t vmm)
{
	char err[256];

	while (proc_running(vmm)) {
		json_t *req = json_pack("{s:s}", "cmd", "excache"), *r = NULL;

		if (wait_for_path(sock, 10))
			r = ctl_call(sock, req, 5000, err, sizeof(err));
		json_decref(req);
		if (r && json_is_true(json_object_get(r, "ok"))) {
			uint64_t hva = jint(r, "ram_hva");

			json_decref(r);
			return hva;
		}
		json_decref(r);
		usleep(20000);
	}
	return 0;
}

static void host_md5(char *out, size_t len)
{
	FILE *f = popen("seq 1 200000 | md5sum", "r");

	ASSERT(f != NULL);
	ASSERT(fgets(out, (int)len, f) != NULL);
	pclose(f);
	out[32] = 0;
}

TEST_TIMEOUT(linux_boots_with_a_64m_excache_and_its_pages_on_a_memory_server, 3600)
{
	char addr[64], sock[300], sock2[300], append[512], md5[64], incoming[64];
	char order[PATH_MAX], order2[PATH_MAX];
	char *extra[] = {"--stats", "--excache", "64M", "--memsrv", addr,  "--control",
			 sock,	    "--vnode",	 VNODE, "--order",  order, NULL};
	char *extra2[] = {"--stats",   "--excache",  "64M",	"--memsrv", addr,
			  "--control", sock2,	     "--vnode", VNODE,	    "--order",
			  order2,      "--incoming", incoming,	NULL};
	char *argv[KIT_ARGV_MAX], *argv2[KIT_ARGV_MAX];
	struct proc_result r, rt;
	pid_t target = -1;
	long before, after;
	bool migrating = false;
	long rss, max_rss = 0;
	int samples = 0;
	uint64_t hva;
	pid_t ms, vmm;
	time_t t0;
	const char *p;
	json_t *x;

	kit_require();
	host_md5(md5, sizeof(md5));
	snprintf(append, sizeof(append), "console=ttyS0 lego.run=\"%s\"", RUN);
	kit_argv(argv, extra, append);
	snprintf(sock, sizeof(sock), "%s/vmm.sock", test_tmpdir());
	snprintf(sock2, sizeof(sock2), "%s/vmm2.sock", test_tmpdir());
	snprintf(incoming, sizeof(incoming), "127.0.0.1:%d", test_free_port());
	snprintf(order, sizeof(order), "%s", test_order_file("{\"token\":\"%s\"}", TOKEN));
	snprintf(order2, sizeof(order2), "%s",
		 test_order_file("{\"token\":\"%s\",\"migrate_token\":\"%s\"}", TOKEN, MIGTOKEN));
	kit_argv(argv2, extra2, append);
	ms = memsrv_spawn("2G", addr);
	t0 = time(NULL);
	vmm = proc_spawn(argv);
	hva = ram_hva(sock, vmm);
	ASSERT(hva != 0, "lego-vmm exited before its control socket answered");
	while (proc_running(vmm)) {
		rss = vma_rss_kib(vmm, hva);
		if (rss > max_rss)
			max_rss = rss;
		samples += rss >= 0;
		if (!migrating && console_count_proc(vmm, "lego-test: waiting")) {
			/* the guest waits (5 guest seconds): move it to a VMM started now */
			char err[256];
			json_t *req = json_pack("{s:s,s:s,s:s}", "cmd", "migrate", "to", incoming,
						"token", MIGTOKEN);
			json_t *ans;

			target = proc_spawn(argv2);
			ASSERT(wait_for_port(atoi(strrchr(incoming, ':') + 1), 30000),
			       "the migration's target never listened");
			ans = ctl_call(sock, req, 120000, err, sizeof(err));
			json_decref(req);
			ASSERT(ans && json_is_true(json_object_get(ans, "ok")), "migrate: %s",
			       ans ? json_string_value(json_object_get(ans, "error")) : err);
			printf("  migrated: the guest was paused %.1f ms\n",
			       json_number_value(json_object_get(ans, "pause_ms")));
			json_decref(ans);
			migrating = true;
		}
		usleep(200000);
	}
	ASSERT(migrating, "the guest never got to its migration");
	proc_collect(vmm, 10, &r);
	proc_collect(target, 1800, &rt);
	printf("  boot took %.0f s, exit status %d; guest RAM Rss max %ld KiB over %d samples\n",
	       (double)(time(NULL) - t0), r.status, max_rss, samples);
	if (r.status != 0) {
		size_t n = strlen(r.out);

		printf("--- console (last 3000 bytes)\n%s\n--- stderr\n%s\n",
		       r.out + (n > 3000 ? n - 3000 : 0), r.err);
	}
	ASSERT_EQ(r.status, 0);
	ASSERT_CONTAINS(r.out, "lego-guest: ready");
	ASSERT_CONTAINS(r.err, "migrated to");
	if (rt.status != 0) {
		size_t n = strlen(rt.out);

		printf("--- target console (last 3000 bytes)\n%s\n--- stderr\n%s\n",
		       rt.out + (n > 3000 ? n - 3000 : 0), rt.err);
	}
	ASSERT_EQ(rt.status, 0);
	/* the target went on with the guest: no boot, the same uptime, the file read back
	 * after its pages went to the memory server and came back */
	ASSERT(strstr(rt.out, "Linux version") == NULL, "the migrated guest booted again");
	ASSERT(strstr(rt.out, md5) != NULL, "md5sum in the guest differs from the host's %s", md5);
	ASSERT(console_line(rt.out, "lego-guest: exit 0"), "%s", rt.out);
	p = console_line(r.out, "lego-test: before ");
	ASSERT(p && sscanf(p, "lego-test: before %ld", &before) == 1);
	p = console_line(rt.out, "lego-test: after ");
	ASSERT(p && sscanf(p, "lego-test: after %ld", &after) == 1, "%s", rt.out);
	printf("  guest uptime %ld s before the migration, %ld s after it\n", before, after);
	ASSERT(after >= before + 4, "the guest's uptime did not go on across the migration");
	proc_result_free(&rt);
	ASSERT(samples > 10, "too few samples of the resident set");
	ASSERT(max_rss <= (EXCACHE_MIB + 1) * 1024, "resident set %ld KiB exceeds %d MiB + 1 MiB",
	       max_rss, EXCACHE_MIB);

	p = strstr(r.err, "EXCACHE ");
	ASSERT(p, "no EXCACHE line on stderr");
	x = json_loadb(p + 8, strcspn(p + 8, "\n"), 0, NULL);
	ASSERT(x);
	printf("  misses %llu, zero-fills %llu, evictions %llu, write-backs %llu, fetched %llu\n",
	       (unsigned long long)jint(x, "misses"), (unsigned long long)jint(x, "zero_fills"),
	       (unsigned long long)jint(x, "evictions"),
	       (unsigned long long)jint(x, "dirty_writebacks"),
	       (unsigned long long)jint(x, "fetches"));
	/* more than 64 MiB was touched: pages left and came back through the server */
	ASSERT(jint(x, "misses") > (uint64_t)EXCACHE_MIB * 256,
	       "fewer misses than 64 MiB of pages");
	ASSERT(jint(x, "dirty_writebacks") > 0);
	ASSERT(jint(x, "fetches") > 0, "no page ever came back from the memory server");
	ASSERT_EQ(jint(x, "dirty_writebacks"), jint(x, "evictions") - jint(x, "clean_drops"));
	json_decref(x);
	kill(ms, SIGTERM);
	proc_result_free(&r);
}
