/*
 * test_linux_storsrv.c - the stock kernel boots with its root disk on
 * lego-storsrv (the kit's rootfs imported as a volume with `lego-storsrv
 * volume create --from`). The server is killed (-9) and restarted twice
 * under the guest: once just after the disk was found (while it mounts
 * and loads), once after the guest wrote a file and synced; the guest then
 * drops its caches and reads the file back from the disk. A second boot
 * sees the file. Minutes on kvm_pvm hosts.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

/* Wait until @pid's console shows @text (false if it exited first). */
static bool wait_for_console(pid_t pid, const char *text)
{
	const char *path = proc_out_path(pid);

	while (proc_running(pid)) {
		FILE *f = fopen(path, "r");
		char line[1024];
		bool seen = false;

		while (f && !seen && fgets(line, sizeof(line), f))
			seen = strstr(line, text) != NULL;
		if (f)
			fclose(f);
		if (seen)
			return true;
		usleep(200000);
	}
	return false;
}

static pid_t boot(const char *disk, const char *token, const char *run)
{
	static char append[512];
	char *argv[KIT_ARGV_MAX];
	char *const extra[] = {"--disk", (char *)disk, "--disk-token", (char *)token, NULL};

	snprintf(append, sizeof(append), "console=ttyS0 lego.run=\"%s\"", run);
	kit_argv(argv, extra, append);
	return proc_spawn(argv);
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
	vmm = boot(disk, token, run);
	ASSERT(wait_for_console(vmm, "virtio_blk virtio0: [vda]"), "the disk never appeared");
	storsrv_kill(&sv, SIGKILL); /* while the guest mounts its disk and goes on */
	storsrv_start(&sv);
	ASSERT(wait_for_console(vmm, "lego-test: synced"), "the guest never synced");
	storsrv_kill(&sv, SIGKILL); /* the file is on the server's disk: read back after this */
	storsrv_start(&sv);
	finish(vmm, &r);
	ASSERT_EQ(r.status, 0);
	ASSERT_CONTAINS(r.out, "EXT4-fs (vda): mounted");
	ASSERT_CONTAINS(r.out, "lego-guest: exit 0");
	p = strstr(r.out, "lego-test: synced");
	ASSERT(p && strstr(p, name), "the guest did not read its file back after the restart");
	ASSERT(strstr(r.out, "I/O error") == NULL, "an I/O error reached the guest");
	ASSERT_CONTAINS(r.err, "connected again");
	proc_result_free(&r);

	/* a second boot sees the file */
	vmm = boot(disk, token, "cat /mnt/persist");
	finish(vmm, &r);
	ASSERT_EQ(r.status, 0);
	p = strstr(r.out, "lego-guest: ready");
	ASSERT(p && strstr(p, name), "the second boot did not see the file");
	proc_result_free(&r);
	storsrv_kill(&sv, SIGTERM);
}
