/*
 * test_linux_storsrv.c - the stock kernel boots with its root disk on
 * lego-storsrv (the kit's rootfs imported as a volume with `lego-storsrv
 * volume create --from`). The server is killed (-9) and restarted twice
 * under the guest: once just after the disk was found (while it mounts
 * and loads), once after the guest wrote a file and synced; the guest then
 * drops its caches and reads the file back from the disk. A second boot
 * sees the file, and checks what a vNode a person uses has, in the same
 * boot (they cost minutes each on kvm_pvm hosts): a network, in a namespace
 * of the test's own (the guest takes its address, fetches a page from the
 * host, the host pings it and fetches the page its httpd serves); a second
 * disk (vdb); and fstrim, which gives the space of a deleted file back to
 * the storage server (the volume's file shrinks).
 */
#include <fcntl.h>
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

static pid_t boot(const char *disk, const char *token, const char *run, char *const more[])
{
	static char append[1024];
	char *argv[KIT_ARGV_MAX],
		*extra[16] = {"--disk", (char *)disk, "--disk-token", (char *)token};
	int n = 4;

	for (int i = 0; more && more[i] && n < 15; i++)
		extra[n++] = more[i];
	extra[n] = NULL;
	snprintf(append, sizeof(append), "console=ttyS0 lego.run=\"%s\"", run);
	kit_argv(argv, extra, append);
	return proc_spawn(argv);
}

static long long allocated(const char *path)
{
	struct stat st;

	return stat(path, &st) ? -1 : (long long)st.st_blocks * 512;
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

TEST_TIMEOUT(linux_root_disk_on_a_storage_server_that_restarts, 3600)
{
	struct storsrv_proc sv = {0};
	char disk[128], token[80] = "", name[32], run[300];
	char *create[] = {(char *)test_path("bin/lego-storsrv"),
			  "volume",
			  "create",
			  sv.listen,
			  "root",
			  "--from",
			  (char *)test_path("guest/rootfs.img"),
			  NULL};
	struct proc_result r;
	uint64_t rnd;
	pid_t vmm;
	const char *p;

	kit_require();
	netns_enter(); /* before any server: everything of the case in one namespace */
	netns_tap("lt0");
	netns_addr("lt0", "10.0.7.1/24");
	storsrv_start(&sv);
	proc_run(create, 60, &r);
	ASSERT_EQ(r.status, 0);
	ASSERT(sscanf(r.out, "%64s", token) == 1 && strlen(token) == 64, "no token printed");
	proc_result_free(&r);
	snprintf(disk, sizeof(disk), "storsrv://%s/root", sv.listen);
	ASSERT_EQ(getrandom(&rnd, sizeof(rnd), 0), (ssize_t)sizeof(rnd));
	snprintf(name, sizeof(name), "lego-%016llx", (unsigned long long)rnd);

	/* guest time runs 20x slow on kvm_pvm: "sleep 1" leaves ~20 s for the restart */
	snprintf(run, sizeof(run),
		 "echo %s > /mnt/persist; sync; echo lego-test: synced; sleep 1; "
		 "echo 3 > /proc/sys/vm/drop_caches; cat /mnt/persist",
		 name);
	vmm = boot(disk, token, run, NULL);
	ASSERT(console_wait(vmm, "virtio_blk virtio0: [vda]", 1), "the disk never appeared");
	storsrv_kill(&sv, SIGKILL); /* while the guest mounts its disk and goes on */
	storsrv_start(&sv);
	ASSERT(console_wait(vmm, "lego-test: synced", 1), "the guest never synced");
	storsrv_kill(&sv, SIGKILL); /* the file is on the server's disk: read back after this */
	storsrv_start(&sv);
	finish(vmm, &r);
	ASSERT_EQ(r.status, 0);
	ASSERT_CONTAINS(r.out, "EXT4-fs (vda): mounted");
	ASSERT_CONTAINS(r.out, "lego-guest: exit 0");
	p = console_line(r.out, "lego-test: synced");
	ASSERT(p && strstr(p, name), "the guest did not read its file back after the restart");
	ASSERT(strstr(r.out, "I/O error") == NULL, "an I/O error reached the guest");
	ASSERT_CONTAINS(r.err, "connected again");
	proc_result_free(&r);

	/*
	 * A second boot sees the file; with a network, a second disk, and fstrim.
	 * Then it is saved into a snapshot and stopped, and a new lego-vmm
	 * restored from the snapshot carries on: it answers pings and serves its
	 * page again, and the command it was in the middle of runs to its end.
	 */
	{
		char scratch[300], vol[400], page[4096], ctl[300], snap[300], text[400];
		char *more[] = {"--net",     "lt0,ip=10.0.7.2/24,gw=10.0.7.1",
				"--disk",    scratch,
				"--control", ctl,
				NULL};
		struct netns_httpd *h = netns_httpd_start("10.0.7.1", 8080);
		struct proc_result rr;
		long long before, after;
		json_t *req, *res;
		int fd, status;

		snprintf(scratch, sizeof(scratch), "%s/scratch.img", test_tmpdir());
		snprintf(ctl, sizeof(ctl), "%s/vmm.sock", test_tmpdir());
		snprintf(snap, sizeof(snap), "%s/linux.snap", test_tmpdir());
		fd = open(scratch, O_CREAT | O_RDWR, 0600);
		ASSERT(fd >= 0 && ftruncate(fd, 8 << 20) == 0);
		close(fd);
		snprintf(vol, sizeof(vol), "%s/root.vol", sv.dir);
		before = allocated(vol);
		vmm = boot(
			disk, token,
			"cat /mnt/persist; echo lego-test: vdb $(cat /sys/block/vdb/size); "
			"wget -q -O - http://10.0.7.1:8080/hello; "
			"dd if=/dev/zero of=/mnt/big bs=1M count=16 2>/dev/null; sync; rm /mnt/big; "
			"sync; fstrim -v /mnt; echo lego-test: net-ready; "
			"until wget -q -O /dev/null http://10.0.7.1:8080/done; do usleep 200000; done; "
			"echo lego-test: after the restore, up $(cut -d. -f1 /proc/uptime) s",
			more);
		ASSERT(console_wait(vmm, "lego-test: net-ready", 1), "the guest never got there");
		after = allocated(vol);
		printf("  the volume held %lld KiB before the boot, %lld KiB after 16 MiB were "
		       "written, deleted and trimmed\n",
		       before >> 10, after >> 10);
		ASSERT(after <= before + (4 << 20),
		       "fstrim gave nothing back to the storage server");
		ASSERT(netns_ping("10.0.7.2", 60000), "the guest does not answer a ping");
		status = netns_http_get("10.0.7.2", 80, "/", page, sizeof(page), 60000);
		ASSERT(status == 200, "GET / from the guest: %d", status);
		ASSERT_CONTAINS(page, "lego vNode");

		/* saved and stopped; restored by a new lego-vmm on the same TAP and disks */
		snprintf(text, sizeof(text),
			 "{\"cmd\":\"snapshot\",\"path\":\"%s\",\"then\":\"stop\"}", snap);
		req = json_loads(text, 0, NULL);
		res = ctl_call(ctl, req, 600000, text, sizeof(text));
		json_decref(req);
		ASSERT(res && json_is_true(json_object_get(res, "ok")), "snapshot: %s",
		       res ? json_string_value(json_object_get(res, "error")) : text);
		printf("  Linux saved in %.0f ms into %lld MiB (its memory is local)\n",
		       json_real_value(json_object_get(res, "ms")),
		       (long long)json_integer_value(json_object_get(res, "bytes")) >> 20);
		json_decref(res);
		finish(vmm, &r);
		ASSERT_EQ(r.status, 0);
		unlink(ctl);
		{
			char *argv[] = {(char *)test_path("bin/lego-vmm"), "--restore", snap, NULL};
			uint64_t t0 = now_ns();

			vmm = proc_spawn(argv);
			ASSERT(wait_for_path(ctl, 60000), "the restored VMM never came up");
			ASSERT(netns_ping("10.0.7.2", 120000),
			       "the restored guest does not answer a ping");
			printf("  restored: it answered a ping %.1f s after lego-vmm started\n",
			       (now_ns() - t0) / 1e9);
		}
		status = netns_http_get("10.0.7.2", 80, "/", page, sizeof(page), 120000);
		ASSERT(status == 200, "GET / from the restored guest: %d", status);
		ASSERT_CONTAINS(page, "lego vNode");
		netns_httpd_done(h);
		finish(vmm, &rr);
		ASSERT_EQ(rr.status, 0);
		ASSERT(console_line(rr.out, "lego-test: after the restore"),
		       "the restored guest did not run its next command:\n%s", rr.out);
		ASSERT(console_line(rr.out, "lego-guest: exit 0"), "%s", rr.out);
		/* the guest's own poweroff (init's last step) stops the vNode: ACPI S5 */
		ASSERT(console_line(rr.out, "reboot: Power down"), "%s", rr.out);
		proc_result_free(&rr);
		p = console_line(r.out, "lego-guest: ready");
		ASSERT(p && strstr(p, name), "the second boot did not see the file");
		ASSERT_CONTAINS(r.out, "lego-guest: network eth0 10.0.7.2/24 via 10.0.7.1");
		ASSERT_CONTAINS(r.out, "hello from the host");
		ASSERT(console_line(r.out, "lego-test: vdb 16384"), "the guest saw no 8 MiB vdb");
		ASSERT_CONTAINS(r.out, "bytes trimmed");
		ASSERT(netns_httpd_hits(h, "/hello") == 1,
		       "the guest never fetched the host's page");
		netns_httpd_stop(h);
		proc_result_free(&r);
	}
	storsrv_kill(&sv, SIGTERM);
}
