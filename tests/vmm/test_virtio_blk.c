/*
 * test_virtio_blk.c - virtio-blk end to end at native speed: the vblk
 * payload drives the virtio-pci device from ring 3 (PCI discovery, virtio
 * 1.x negotiation, a split queue, 8 requests in flight, flush, discard and
 * write-zeroes), and the host then finds the guest's pattern in the image
 * file where it is left, and holes where the guest gave the space back.
 */
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"
#include "vm.h"

#define WL_POW pow
#include "workload.h"

TEST(vblk_payload_writes_flushes_and_reads_back_through_virtio_pci)
{
	char img[300];
	char *argv[] = {(char *)test_path("bin/lego-vmm"),
			"--payload",
			(char *)test_path("guest/payloads/vblk.bin"),
			"--memory",
			"64M",
			"--disk",
			img,
			"--args",
			"size=8M seed=7 evil=1 discard=1",
			NULL};
	struct proc_result r;
	uint64_t v, word;
	int fd;

	test_require_kvm();
	snprintf(img, sizeof(img), "%s/disk.img", test_tmpdir());
	fd = open(img, O_CREAT | O_RDWR, 0644);
	ASSERT(fd >= 0 && ftruncate(fd, 16 << 20) == 0);
	proc_run(argv, 60, &r);
	ASSERT(!r.timed_out);
	ASSERT_EQ(r.status, 0);
	ASSERT(report_get(r.out, 0, "capacity_sectors", &v) && v == 32768);
	ASSERT(report_get(r.out, 0, "requests", &v) && v == 256);
	ASSERT(report_get(r.out, 0, "mismatches", &v) && v == 0);
	ASSERT(report_get(r.out, 0, "past_end_status", &v) && v == 1);	   /* IOERR */
	ASSERT(report_get(r.out, 0, "unknown_type_status", &v) && v == 2); /* UNSUPP */
	ASSERT(report_get(r.out, 0, "get_id_ok", &v) && v == 1);
	ASSERT(report_get(r.out, 0, "needs_reset", &v) && v == 1);
	ASSERT(report_get(r.out, 0, "status_after_reset", &v) && v == 0);
	/* enabling a queue with rings outside RAM fails the device (was: a deadlock) */
	ASSERT(report_get(r.out, 0, "bad_ring_needs_reset", &v) && v == 1);
	ASSERT(report_get(r.out, 0, "discard_status", &v) && v == 0);
	ASSERT(report_get(r.out, 0, "write_zeroes_status", &v) && v == 0);
	ASSERT(report_get(r.out, 0, "discard_flag_status", &v) && v == 2); /* UNSUPP */
	ASSERT(report_get(r.out, 0, "nonzero_after_discard", &v) && v == 0);
	ASSERT_CONTAINS(r.err, "broke the device (buffer outside guest RAM)");
	/* the data is in the file where the guest left it: the last quarter; the
	 * first three quarters are holes now (discarded, then zeroed) */
	for (uint64_t sector = 0; sector < 16384; sector += 4099) {
		uint64_t want = sector >= 12288 ? wl_blk_pattern(7, sector & ~127ULL,
								 (sector % 128) * 64 + 1)
						: 0;

		ASSERT(pread(fd, &word, 8, sector * 512 + 8) == 8);
		ASSERT(word == want, "sector %llu holds something else",
		       (unsigned long long)sector);
	}
	{
		struct stat st;

		ASSERT(fstat(fd, &st) == 0);
		ASSERT(st.st_blocks * 512 <= 3 << 20,
		       "the image holds %lld bytes: the space discarded did not go back",
		       (long long)st.st_blocks * 512);
	}
	close(fd);
	proc_result_free(&r);
}

TEST(a_missing_disk_image_is_a_clear_error)
{
	char *argv[] = {(char *)test_path("bin/lego-vmm"),
			"--payload",
			(char *)test_path("guest/payloads/hello.bin"),
			"--disk",
			"/nonexistent.img",
			NULL};
	struct proc_result r;

	test_require_kvm();
	proc_run(argv, 20, &r);
	ASSERT_EQ(r.status, VM_EXIT_VMM_ERROR);
	ASSERT_CONTAINS(r.err, "cannot open disk image /nonexistent.img");
	proc_result_free(&r);
}
