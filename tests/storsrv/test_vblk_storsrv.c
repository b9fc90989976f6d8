/*
 * test_vblk_storsrv.c - the vblk payload (a virtio-blk driver in ring 3)
 * writes, flushes and reads back a pattern on a volume of lego-storsrv
 * while the server is killed (-9) and restarted: no error reaches the guest,
 * its pattern is intact, and the host finds it in the volume's file. Then it
 * discards half of it and zeroes a quarter: they read back as zeros, and the
 * volume's file gives that space back (holes).
 */
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "vm.h"
#include "xport.h"

#define WL_POW pow
#include "workload.h"

struct server {
	struct storsrv_proc p;
	pid_t vmm;
	int restarts;
};

/* Restart the server every few hundred milliseconds while lego-vmm runs. */
static void *restarter(void *arg)
{
	struct server *sv = arg;

	usleep(100000);
	while (proc_running(sv->vmm) && sv->restarts < 3) {
		storsrv_kill(&sv->p, SIGKILL);
		usleep(50000);
		storsrv_start(&sv->p);
		sv->restarts++;
		usleep(150000);
	}
	return NULL;
}

TEST_TIMEOUT(vblk_payload_on_a_storage_server_volume_survives_restarts, 300)
{
	struct server sv = {0};
	struct lmp_vol v = {.name = "vblk", .size = 256 << 20};
	struct iovec iov = {&v, sizeof(v)};
	char disk[128], token[2 * LMP_TOKEN_LEN + 1], err[256], path[400], order[PATH_MAX];
	char *argv[] = {(char *)test_path("bin/lego-vmm"),
			"--payload",
			(char *)test_path("guest/payloads/vblk.bin"),
			"--memory",
			"64M",
			"--order",
			order,
			"--args",
			"size=192M seed=11 discard=1",
			NULL};
	struct proc_result r;
	struct lmp_hdr resp;
	struct xport *x;
	pthread_t t;
	uint64_t val, word;
	int fd;

	test_require_kvm();
	storsrv_start(&sv.p);
	for (int i = 0; i < LMP_TOKEN_LEN; i++) {
		v.token[i] = (uint8_t)(0xa5 ^ i);
		snprintf(token + 2 * i, 3, "%02x", v.token[i]);
	}
	ASSERT_EQ(xport_connect(sv.p.listen, 2000, 5000, &x, err, sizeof(err)), 0);
	ASSERT_EQ(xport_call(x, LMP_VOL_CREATE, 0, &iov, 1, &resp, NULL, 0), 0);
	ASSERT_EQ(resp.status, 0);
	xport_close(x);
	snprintf(disk, sizeof(disk), "storsrv://%s/vblk", sv.p.listen);
	snprintf(order, sizeof(order), "%s",
		 test_order_file("{\"disks\":[{\"url\":\"%s\",\"token\":\"%s\"}]}", disk, token));

	sv.vmm = proc_spawn(argv);
	pthread_create(&t, NULL, restarter, &sv);
	proc_collect(sv.vmm, 240, &r);
	pthread_join(t, NULL);
	printf("  the storage server was restarted %d times under the guest\n", sv.restarts);
	if (r.status)
		printf("--- stderr\n%s\n", r.err);
	ASSERT_EQ(r.status, 0);
	ASSERT(sv.restarts >= 1, "the guest finished before any restart: make the run longer");
	ASSERT(report_get(r.out, 0, "capacity_sectors", &val) && val == (256 << 20) / 512);
	ASSERT(report_get(r.out, 0, "mismatches", &val) && val == 0);
	ASSERT(report_get(r.out, 0, "discard_status", &val) && val == 0);
	ASSERT(report_get(r.out, 0, "write_zeroes_status", &val) && val == 0);
	ASSERT(report_get(r.out, 0, "nonzero_after_discard", &val) && val == 0);
	/* the pattern is in the volume's file where the guest left it (the last
	 * quarter), the rest holes */
	snprintf(path, sizeof(path), "%s/vblk.vol", sv.p.dir);
	fd = open(path, O_RDONLY);
	ASSERT(fd >= 0);
	for (uint64_t sector = 0; sector < (192 << 20) / 512; sector += 40009) {
		uint64_t want =
			sector >= (144 << 20) / 512
				? wl_blk_pattern(11, sector & ~127ULL, (sector % 128) * 64 + 1)
				: 0;

		ASSERT(pread(fd, &word, 8, sector * 512 + 8) == 8);
		ASSERT(word == want, "sector %llu holds something else",
		       (unsigned long long)sector);
	}
	{
		struct stat st;

		ASSERT(fstat(fd, &st) == 0);
		printf("  the volume holds %lld MiB after the guest gave 144 MiB back\n",
		       (long long)st.st_blocks * 512 >> 20);
		ASSERT(st.st_blocks * 512 <= 60 << 20, "the space discarded did not go back");
	}
	close(fd);
	proc_result_free(&r);
	storsrv_kill(&sv.p, SIGKILL);
}
