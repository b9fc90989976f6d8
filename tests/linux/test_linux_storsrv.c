/*
 * test_linux_storsrv.c - the stock Debian kernel from the boot kit (make
 * guest), 2 vCPUs, its root disk on lego-storsrv (the kit's rootfs imported
 * as a volume with `lego-storsrv volume create --from`), a second disk in a
 * local file, a network in a namespace of the test's own, a control socket,
 * and its memory on lego-memsrv behind a 64 MiB ExCache. Every Linux check
 * is in this one lego-vmm and the two it hands the guest to: a boot costs
 * minutes on kvm_pvm hosts.
 *
 * The ExCache: every page the kernel, init and the workloads touch goes
 * through the fault path; the VMM's resident guest memory, read from the
 * kernel (smaps), stays within 64 MiB while the guest has touched far more
 * (lego-verify alone, 96 MiB), and its statistics show pages written back
 * to the memory server and fetched again.
 *
 * Boot 1: the platform (2 CPUs through ACPI, virtio-blk on PCI, the RTC's
 * date, nproc); live memory resize: the guest's memory grows from 512 MiB
 * to 1.5 GiB (virtio-mem; the kernel onlines it, movable), lego-verify runs
 * on it (user pages come from the movable zone first, which is the plugged
 * memory; 96 MiB: every page fault costs milliseconds on kvm_pvm). The
 * reboot boots with 512 MiB again. (A shrink is not asked of this guest:
 * on kvm_pvm its kernel gave a first block back, then spun offlining the
 * next, in two runs; shrinking is checked with the payload driver.) The storage server is killed (-9) and restarted twice
 * under the guest: once just after the disk was found (while it mounts and
 * loads), once after the guest wrote a file and synced; the guest then
 * drops its caches and reads the file back from the disk.
 * `reboot` on the control socket (legoctl reboot) presses the ACPI power
 * button: the guest shuts down cleanly and the machine boots again in the
 * same process.
 * Boot 2: the file is still there; the guest takes its address, fetches a
 * page from the host, the host pings it and fetches the page its httpd
 * serves; it writes to the second disk (vdb), and fstrim gives the space of
 * a deleted file back to the storage server (the volume's file shrinks).
 * Then it is saved into a snapshot and stopped, and a new lego-vmm restored
 * from the snapshot carries on: it answers pings and serves its page. It is
 * then live-migrated to a third lego-vmm, on another TAP of the same bridge:
 * the guest does not boot again, answers pings and serves its page there,
 * runs the command it was in the middle of to its end; it is paused, and
 * `shutdown` on the control socket (legoctl stop) presses the power button
 * of the moved, paused machine: it is resumed to answer, the guest powers
 * off (ACPI S5) and lego-vmm exits 0.
 */
#include <fcntl.h>
#include <limits.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl.h"
#include "netns.h"
#include "test.h"
#include "util.h"

#define JI(o, k)    ((long long)json_integer_value(json_object_get(o, k)))
#define EXCACHE_MIB 64
#define VNODE	    "4343"
#define TOKEN	    "1e601e601e601e601e601e601e601e601e601e601e601e601e601e601e601e60"
#define MIGTOKEN    "3160e3160e3160e3160e3160e3160e3160e3160e3160e3160e3160e3160e3160"
#define NET	    "ip=10.0.7.2/24,gw=10.0.7.1,mac=02:4c:47:00:07:02"

/* The guest's memory in kB, as its kernel counts it. */
#define MEMTOTAL "$(grep MemTotal /proc/meminfo | tr -s ' ' | cut -d' ' -f2)"

/* One lego.run for both boots: the second finds the file the first wrote. The
 * guest's time runs 20x slow on kvm_pvm: "sleep 1" leaves ~20 s for a restart. */
#define RUN                                                                                        \
	"if [ -f /mnt/persist ]; then "                                                            \
	"echo lego-test: again $(cat /mnt/persist); "                                              \
	"echo lego-test: vdb $(cat /sys/block/vdb/size); "                                         \
	"cat /mnt/persist >/dev/vdb; sync; "                                                       \
	"wget -q -O - http://10.0.7.1:8080/hello; "                                                \
	"dd if=/dev/zero of=/mnt/big bs=1M count=16 2>/dev/null; sync; rm /mnt/big; sync; "        \
	"fstrim -v /mnt; echo lego-test: net-ready; "                                              \
	"until wget -q -O /dev/null http://10.0.7.1:8080/done; do usleep 200000; done; "           \
	"echo lego-test: after the restore, up $(cut -d. -f1 /proc/uptime) s; "                    \
	"else "                                                                                    \
	"echo lego-test: nproc $(nproc); echo %s > /mnt/persist; sync; echo lego-test: synced; "   \
	"sleep 1; echo 3 > /proc/sys/vm/drop_caches; echo lego-test: read $(cat /mnt/persist); "   \
	"echo lego-test: plug-wait; until [ " MEMTOTAL " -gt 1400000 ]; do usleep 200000; done; "  \
	"echo lego-test: grown " MEMTOTAL " kB, $(grep -l online "                                 \
	"/sys/devices/system/memory/memory*/state | wc -l) blocks online; "                        \
	"/bin/lego-verify 96M 1; "                                                                 \
	"fi; echo lego-test: waiting; sleep 3600"

static long long allocated(const char *path)
{
	struct stat st;

	return stat(path, &st) ? -1 : (long long)st.st_blocks * 512;
}

/* {"cmd": @cmd} to the control socket @sock: true if it answered ok. The guest gets
 * 10 minutes to shut down: on a contended kvm_pvm host it runs 20 times slow. */
static bool control(const char *sock, const char *cmd)
{
	char err[256];
	json_t *req = json_pack("{s:s,s:i}", "cmd", cmd, "timeout_ms", 600000);
	json_t *ans = ctl_call(sock, req, 10000, err, sizeof(err));
	bool ok = ans && json_is_true(json_object_get(ans, "ok"));

	json_decref(req);
	if (!ok)
		printf("  %s: %s\n", cmd,
		       ans ? json_string_value(json_object_get(ans, "error")) : err);
	json_decref(ans);
	return ok;
}

/* memory.resize to @size (NULL: only ask): the bytes plugged before it. */
static uint64_t memory(const char *sock, const char *size)
{
	char err[256];
	json_t *req = size ? json_pack("{s:s,s:s}", "cmd", "memory.resize", "size", size)
			   : json_pack("{s:s}", "cmd", "memory");
	json_t *ans = ctl_call(sock, req, 10000, err, sizeof(err));
	uint64_t plugged;

	json_decref(req);
	ASSERT(ans && json_is_true(json_object_get(ans, "ok")), "memory %s: %s", size ? size : "",
	       ans ? json_string_value(json_object_get(ans, "error")) : err);
	plugged = (uint64_t)json_integer_value(json_object_get(ans, "plugged_bytes"));
	json_decref(ans);
	return plugged;
}

/* @key of the control socket's "excache" answer (the guest RAM's address, counters). */
static uint64_t excache(const char *sock, const char *key)
{
	char err[256];
	json_t *req = json_pack("{s:s}", "cmd", "excache");
	json_t *ans = ctl_call(sock, req, 10000, err, sizeof(err));
	json_t *v = json_object_get(ans, key);
	uint64_t n;

	json_decref(req);
	ASSERT(json_is_integer(v), "excache: no %s (%s)", key, ans ? "" : err);
	n = (uint64_t)json_integer_value(v);
	json_decref(ans);
	return n;
}

/* The VMM's resident guest memory now (smaps): within the ExCache, with what it touched. */
static void resident_within_the_excache(const char *sock, pid_t vmm, const char *when)
{
	long rss = vma_rss_kib(vmm, excache(sock, "ram_hva"));

	printf("  %s: guest memory resident %ld KiB, %llu misses so far\n", when, rss,
	       (unsigned long long)excache(sock, "misses"));
	ASSERT(rss > 0 && rss <= (EXCACHE_MIB + 1) * 1024,
	       "%s: resident guest memory %ld KiB, the ExCache is %d MiB", when, rss, EXCACHE_MIB);
}

static void finish(pid_t vmm, struct proc_result *r)
{
	proc_collect(vmm, 1800, r);
	if (r->status) {
		size_t n = strlen(r->out);

		printf("--- console (last 3000 bytes)\n%s\n--- stderr\n%s\n",
		       r->out + (n > 3000 ? n - 3000 : 0), r->err);
	}
}

/* What the kernel says as the power button shuts it down: @n times in @out. */
static void clean_shutdowns(const char *out, int n)
{
	ASSERT_EQ(console_count(out, "lego-guest: power button: shutting down"), n);
	ASSERT_EQ(console_count(out, "ACPI: PM: Preparing to enter system sleep state S5"), n);
	ASSERT_EQ(console_count(out, "reboot: Power down"), n);
}

TEST_TIMEOUT(linux_boots_on_a_restarting_storage_server_reboots_and_is_restored, 3600)
{
	struct storsrv_proc sv = {0};
	char disk[128], token[80] = "", name[32], run[1400], append[1600], memsrv[64];
	char scratch[300], vol[400], page[4096], ctl[300], ctl2[300], snap[300], text[400];
	char incoming[64];
	char *create[] = {(char *)test_path("bin/lego-storsrv"),
			  "volume",
			  "create",
			  sv.listen,
			  "root",
			  "--from",
			  (char *)test_path("guest/rootfs.img"),
			  NULL};
	char order[PATH_MAX], order2[PATH_MAX]; /* vda and its token; the vNode's */
	char *extra[] = {"--order",   order,  "--net",	      "lt0," NET, "--disk",    scratch,
			 "--control", ctl,    "--max-memory", "1536M",	  "--excache", "64M",
			 "--memsrv",  memsrv, "--vnode",      VNODE,	  "--stats",   NULL};
	/* the migration's target: the same machine, on another TAP of the bridge */
	char *extra2[] = {"--order",   order2,	     "--net",	 "lt1," NET,	 "--disk",
			  scratch,     "--control",  ctl2,	 "--max-memory", "1536M",
			  "--excache", "64M",	     "--memsrv", memsrv,	 "--vnode",
			  VNODE,       "--incoming", incoming,	 "--stats",	 NULL};
	char *argv[KIT_ARGV_MAX], *argv2[KIT_ARGV_MAX];
	struct netns_httpd *h;
	struct proc_result r, rr, rm;
	long long before, after;
	uint64_t rnd, t0, t1;
	json_t *req, *res, *x;
	int fd, status;
	const char *p;
	pid_t vmm, ms;
	FILE *f;

	kit_require();
	netns_enter(); /* before any server: everything of the case in one namespace */
	netns_bridge("lbr", "10.0.7.1/24");
	netns_tap("lt0");
	netns_enslave("lt0", "lbr");
	netns_tap("lt1");
	netns_enslave("lt1", "lbr");
	h = netns_httpd_start("10.0.7.1", 8080);
	ms = memsrv_spawn("2G", memsrv);
	storsrv_start(&sv);
	proc_run(create, 60, &r);
	ASSERT_EQ(r.status, 0);
	ASSERT(sscanf(r.out, "%64s", token) == 1 && strlen(token) == 64, "no token printed");
	proc_result_free(&r);
	snprintf(disk, sizeof(disk), "storsrv://%s/root", sv.listen);
	snprintf(order, sizeof(order), "%s",
		 test_order_file("{\"token\":\"%s\",\"disks\":[{\"url\":\"%s\",\"token\":\"%s\"}]}",
				 TOKEN, disk, token));
	snprintf(order2, sizeof(order2), "%s",
		 test_order_file("{\"token\":\"%s\",\"migrate_token\":\"%s\",\"disks\":"
				 "[{\"url\":\"%s\",\"token\":\"%s\"}]}",
				 TOKEN, MIGTOKEN, disk, token));
	snprintf(scratch, sizeof(scratch), "%s/scratch.img", test_tmpdir());
	snprintf(ctl, sizeof(ctl), "%s/vmm.sock", test_tmpdir());
	snprintf(ctl2, sizeof(ctl2), "%s/vmm2.sock", test_tmpdir());
	snprintf(snap, sizeof(snap), "%s/linux.snap", test_tmpdir());
	snprintf(vol, sizeof(vol), "%s/root.vol", sv.dir);
	snprintf(incoming, sizeof(incoming), "127.0.0.1:%d", test_free_port());
	fd = open(scratch, O_CREAT | O_RDWR, 0600);
	ASSERT(fd >= 0 && ftruncate(fd, 8 << 20) == 0);
	close(fd);
	ASSERT_EQ(getrandom(&rnd, sizeof(rnd), 0), (ssize_t)sizeof(rnd));
	snprintf(name, sizeof(name), "lego-%016llx", (unsigned long long)rnd);
	snprintf(run, sizeof(run), RUN, name);
	snprintf(append, sizeof(append), "console=ttyS0 lego.run=\"%s\"", run);
	kit_argv(argv, extra, append);
	kit_argv(argv2, extra2, append);

	/* Boot 1: the storage server dies twice under the guest. */
	t0 = now_ns();
	vmm = proc_spawn(argv);
	ASSERT(console_wait(vmm, "virtio_blk virtio0: [vda]", 1), "the disk never appeared");
	storsrv_kill(&sv, SIGKILL); /* while the guest mounts its disk and goes on */
	storsrv_start(&sv);
	ASSERT(console_wait(vmm, "lego-test: synced", 1), "the guest never synced");
	storsrv_kill(&sv, SIGKILL); /* the file is on the server's disk: read back after this */
	storsrv_start(&sv);
	/* Live memory resize: 512 MiB to 1.5 GiB and back, while it runs. */
	ASSERT(console_wait(vmm, "lego-test: plug-wait", 1), "the guest never got to the resize");
	t1 = now_ns();
	ASSERT(memory(ctl, "1536M") == 0, "the VMM had memory plugged before the resize");
	ASSERT(console_wait(vmm, "lego-test: grown", 1), "the guest never saw its memory grow");
	printf("  grown to 1.5 GiB in the guest %.1f s after the request\n", (now_ns() - t1) / 1e9);
	ASSERT(console_wait(vmm, "lego-test: waiting", 1), "the first boot never got there");
	ASSERT_EQ(memory(ctl, NULL), 1024ULL << 20); /* plugged, through to the reboot */
	resident_within_the_excache(ctl, vmm, "after boot 1 and lego-verify");
	printf("  boot 1 took %.0f s\n", (now_ns() - t0) / 1e9);
	before = allocated(vol);

	/* The power button, for a reboot: boot 2 in the same lego-vmm. */
	t0 = now_ns();
	ASSERT(control(ctl, "reboot"), "reboot refused");
	ASSERT(console_wait(vmm, "lego-test: net-ready", 1), "the second boot never got there");
	printf("  the reboot and boot 2 took %.0f s\n", (now_ns() - t0) / 1e9);
	after = allocated(vol);
	printf("  the volume held %lld KiB before boot 2, %lld KiB after 16 MiB were written, "
	       "deleted and trimmed\n",
	       before >> 10, after >> 10);
	ASSERT(after <= before + (4 << 20), "fstrim gave nothing back to the storage server");
	ASSERT(netns_ping("10.0.7.2", 60000), "the guest does not answer a ping");
	status = netns_http_get("10.0.7.2", 80, "/", page, sizeof(page), 60000);
	ASSERT(status == 200, "GET / from the guest: %d", status);
	ASSERT_CONTAINS(page, "lego vNode");
	resident_within_the_excache(ctl, vmm, "after boot 2");

	/* Saved and stopped; restored by a new lego-vmm on the same TAP and disks. */
	snprintf(text, sizeof(text), "{\"cmd\":\"snapshot\",\"path\":\"%s\",\"then\":\"stop\"}",
		 snap);
	req = json_loads(text, 0, NULL);
	res = ctl_call(ctl, req, 600000, text, sizeof(text));
	json_decref(req);
	ASSERT(res && json_is_true(json_object_get(res, "ok")), "snapshot: %s",
	       res ? json_string_value(json_object_get(res, "error")) : text);
	printf("  Linux saved in %.0f ms into %lld MiB (its memory stays on the memory server)\n",
	       json_real_value(json_object_get(res, "ms")),
	       (long long)json_integer_value(json_object_get(res, "bytes")) >> 20);
	json_decref(res);
	finish(vmm, &r);
	ASSERT_EQ(r.status, 0);
	unlink(ctl);
	{
		char *rargv[] = {(char *)test_path("bin/lego-vmm"), "--restore", snap, NULL};

		t0 = now_ns();
		vmm = proc_spawn(rargv);
		ASSERT(wait_for_path(ctl, 60000), "the restored VMM never came up");
		ASSERT(netns_ping("10.0.7.2", 120000), "the restored guest does not answer a ping");
		printf("  restored: it answered a ping %.1f s after lego-vmm started\n",
		       (now_ns() - t0) / 1e9);
	}
	status = netns_http_get("10.0.7.2", 80, "/", page, sizeof(page), 120000);
	ASSERT(status == 200, "GET / from the restored guest: %d", status);
	ASSERT_CONTAINS(page, "lego vNode");

	/* Live-migrated to a third lego-vmm, on lt1: the guest goes on there. */
	{
		pid_t target = proc_spawn(argv2);
		char err[256];

		ASSERT(wait_for_port(atoi(strrchr(incoming, ':') + 1), 60000),
		       "the migration's target never listened");
		req = json_pack("{s:s,s:s,s:s}", "cmd", "migrate", "to", incoming, "token",
				MIGTOKEN);
		res = ctl_call(ctl, req, 600000, err, sizeof(err));
		json_decref(req);
		ASSERT(res && json_is_true(json_object_get(res, "ok")), "migrate: %s",
		       res ? json_string_value(json_object_get(res, "error")) : err);
		printf("  migrated: the guest was paused %.1f ms\n",
		       json_number_value(json_object_get(res, "pause_ms")));
		json_decref(res);
		finish(vmm, &rm); /* the restored one hands over and exits */
		ASSERT_EQ(rm.status, 0);
		ASSERT_CONTAINS(rm.err, "migrated to");
		proc_result_free(&rm);
		vmm = target;
	}
	ASSERT(netns_ping("10.0.7.2", 120000), "the migrated guest does not answer a ping");
	status = netns_http_get("10.0.7.2", 80, "/", page, sizeof(page), 120000);
	ASSERT(status == 200, "GET / from the migrated guest: %d", status);
	ASSERT_CONTAINS(page, "lego vNode");
	netns_httpd_done(h);
	ASSERT(console_wait(vmm, "lego-test: waiting", 1), "the migrated guest never got there");
	/* the moved machine's power button (its ACPI state came with it), pressed while
	 * it is paused: it is resumed to answer it (a graceful stop of a paused vNode) */
	ASSERT(control(ctl2, "pause"), "pause refused");
	t0 = now_ns();
	ASSERT(control(ctl2, "shutdown"), "shutdown of the paused guest refused");
	finish(vmm, &rr);
	printf("  the migrated guest shut down in %.0f s\n", (now_ns() - t0) / 1e9);
	ASSERT_EQ(rr.status, 0);
	ASSERT(console_line(rr.out, "lego-test: after the restore"),
	       "the migrated guest did not run its next command:\n%s", rr.out);
	ASSERT(strstr(rr.out, "Linux version") == NULL, "the migrated guest booted again");
	clean_shutdowns(rr.out, 1);
	ASSERT_CONTAINS(rr.err, "resumed to answer its power button");
	proc_result_free(&rr);

	/* The ExCache of boots 1 and 2 (the first lego-vmm's statistics at its exit): far
	 * more than 64 MiB went through it, written back to the server and fetched again. */
	p = strstr(r.err, "EXCACHE ");
	ASSERT(p, "no EXCACHE line on the first VMM's stderr");
	x = json_loadb(p + 8, strcspn(p + 8, "\n"), 0, NULL);
	ASSERT(x);
	printf("  ExCache: misses %lld, evictions %lld, write-backs %lld, fetched %lld\n",
	       JI(x, "misses"), JI(x, "evictions"), JI(x, "dirty_writebacks"), JI(x, "fetches"));
	/* pages in: every miss's own, those fetched with it, those zeroed ahead of a writer */
	ASSERT(JI(x, "misses") + JI(x, "prefetched") + JI(x, "zeroed_ahead") > EXCACHE_MIB * 256,
	       "fewer than 64 MiB of pages came in");
	ASSERT(JI(x, "dirty_writebacks") > 0, "no page was written back");
	ASSERT(JI(x, "fetches") > 0, "no page ever came back from the memory server");
	ASSERT_EQ(JI(x, "dirty_writebacks"), JI(x, "evictions") - JI(x, "clean_drops"));
	json_decref(x);
	kill(ms, SIGTERM);

	/* Boot 1, in the first lego-vmm's console and log. */
	ASSERT_CONTAINS(r.out, "smp: Brought up 1 node, 2 CPUs");
	ASSERT_CONTAINS(r.out, "[1af4:1042]"); /* virtio-blk (modern) enumerated on PCI */
	ASSERT_CONTAINS(r.out, "virtio_blk virtio0: [vda]");
	ASSERT_CONTAINS(r.out, "EXT4-fs (vda): mounted");
	ASSERT(console_line(r.out, "lego-test: nproc 2"), "nproc did not print 2");
	/* the memory plugged live: onlined by the kernel, used, given back */
	ASSERT_CONTAINS(r.out, "virtio_mem virtio");
	p = console_line(r.out, "lego-test: grown ");
	ASSERT(p && strtoll(p + strlen("lego-test: grown "), NULL, 10) > 1400000,
	       "the guest's memory did not grow");
	ASSERT(console_line(r.out, "lego-verify: 0 mismatches"),
	       "lego-verify over the grown memory:\n%s", r.out);

	/* the CMOS clock gave the kernel the host's date */
	ASSERT(strstr(r.out, "Unable to read current time from RTC") == NULL,
	       "no time from the RTC");
	p = console_line(r.out, "lego-test: read ");
	ASSERT(p && !strncmp(p + strlen("lego-test: read "), name, strlen(name)),
	       "the guest did not read its file back after the restart");
	ASSERT(strstr(r.out, "I/O error") == NULL, "an I/O error reached the guest");
	ASSERT_CONTAINS(r.err, "connected again");
	/* the reboot: a clean shutdown by the kernel's own path, then boot 2 */
	clean_shutdowns(r.out, 1);
	ASSERT_CONTAINS(r.err, "the guest shut down for a reboot (ACPI S5): booting again");
	ASSERT_EQ(console_count(r.out, "lego-guest: ready"), 2);
	p = console_line(r.out, "lego-test: again ");
	ASSERT(p && !strncmp(p + strlen("lego-test: again "), name, strlen(name)),
	       "the second boot did not see the file");
	ASSERT_CONTAINS(r.out, "lego-guest: network eth0 10.0.7.2/24 via 10.0.7.1");
	ASSERT_CONTAINS(r.out, "hello from the host");
	ASSERT(console_line(r.out, "lego-test: vdb 16384"), "the guest saw no 8 MiB vdb");
	ASSERT_CONTAINS(r.out, "bytes trimmed");
	ASSERT(netns_httpd_hits(h, "/hello") == 1, "the guest never fetched the host's page");
	netns_httpd_stop(h);
	proc_result_free(&r);

	/* the host reads what the guest wrote to its second disk (a local file) */
	f = fopen(scratch, "r");
	ASSERT(f != NULL);
	ASSERT(fgets(text, sizeof(text), f) != NULL);
	fclose(f);
	ASSERT(!strncmp(text, name, strlen(name)), "vdb holds another text: %.40s", text);
	storsrv_kill(&sv, SIGTERM);
}
