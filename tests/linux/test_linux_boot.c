/*
 * test_linux_boot.c - the stock Debian kernel from the boot kit (make guest),
 * end to end: 2 vCPUs brought up through ACPI, the virtio-blk disk found on
 * PCI and mounted, init's ready line, `nproc`, a file written to the disk
 * and seen by a second boot and by the host, the reboot through the i8042.
 * Minutes on kvm_pvm hosts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "test.h"

#define BOOT_TIMEOUT_S (25 * 60)

static void boot(const char *disk, const char *options, const char *run, struct proc_result *r)
{
	char append[512], *argv[KIT_ARGV_MAX];
	char *const extra[] = {"--disk", (char *)disk, NULL};

	snprintf(append, sizeof(append), "console=ttyS0 %s lego.run=\"%s\"", options, run);
	kit_argv(argv, extra, append);
	proc_run(argv, BOOT_TIMEOUT_S, r);
	printf("  boot took %.0f s, exit status %d\n", r->seconds, r->status);
	if (r->status != 0 || r->timed_out) {
		/* what a person needs to see: the end of the console and the VMM's messages */
		size_t n = strlen(r->out);

		printf("--- console (last 3000 bytes)\n%s\n--- stderr\n%s\n",
		       r->out + (n > 3000 ? n - 3000 : 0), r->err);
	}
}

/* The line after "lego-guest: ready" up to the exit line: what lego.run printed. */
static const char *run_output(const char *out, char *buf, size_t len)
{
	const char *p = strstr(out, "lego-guest: ready"), *end;

	buf[0] = 0;
	if (!p || !(p = strchr(p, '\n')))
		return buf;
	p++;
	end = strstr(p, "lego-guest: exit");
	if (!end)
		end = p + strlen(p);
	snprintf(buf, len, "%.*s", (int)(end - p), p);
	return buf;
}

TEST_TIMEOUT(linux_boots_two_vcpus_virtio_blk_and_a_file_survives_a_second_boot, 3600)
{
	char disk[300], cmd[800], token[40], run[200], got[4096];
	struct proc_result r;
	uint64_t rnd;
	FILE *f;

	kit_require();
	snprintf(disk, sizeof(disk), "%s/disk.img", test_tmpdir());
	snprintf(cmd, sizeof(cmd), "cp --sparse=always %s %s", test_path("guest/rootfs.img"), disk);
	ASSERT_EQ(system(cmd), 0);
	ASSERT_EQ(getrandom(&rnd, sizeof(rnd), 0), (ssize_t)sizeof(rnd));
	snprintf(token, sizeof(token), "lego-%016llx", (unsigned long long)rnd);

	/* first boot: the platform, nproc, and a file on the virtio disk */
	snprintf(run, sizeof(run), "nproc; echo %s > /mnt/persist; sync", token);
	boot(disk, "reboot=k", run, &r); /* restart through the keyboard controller */
	ASSERT(!r.timed_out);
	ASSERT_EQ(r.status, 0);
	ASSERT_CONTAINS(r.out, "smp: Brought up 1 node, 2 CPUs");
	ASSERT_CONTAINS(r.out, "[1af4:1042]"); /* virtio-blk (modern) enumerated on PCI */
	ASSERT_CONTAINS(r.out, "virtio_blk virtio0: [vda]");
	ASSERT_CONTAINS(r.out, "lego-guest: ready");
	ASSERT_CONTAINS(r.out, "lego-guest: exit 0");
	run_output(r.out, got, sizeof(got));
	ASSERT(!strncmp(got, "2\r\n", 3) || !strncmp(got, "2\n", 2), "nproc did not print 2");
	ASSERT_CONTAINS(r.out, "lego-guest: power off");
	ASSERT_CONTAINS(r.err, "reset itself through the i8042");
	/* the CMOS clock gave the kernel the host's date */
	ASSERT(strstr(r.out, "Unable to read current time from RTC") == NULL,
	       "no time from the RTC");
	proc_result_free(&r);

	/* the host sees the file in the image (e2fsprogs' debugfs reads ext4 offline) */
	snprintf(cmd, sizeof(cmd), "debugfs -R 'cat /persist' %s 2>/dev/null", disk);
	f = popen(cmd, "r");
	ASSERT(f != NULL);
	got[0] = 0;
	ASSERT(fgets(got, sizeof(got), f) != NULL, "no /persist in the image");
	pclose(f);
	ASSERT(!strncmp(got, token, strlen(token)), "the image holds another /persist");

	/* second boot: the guest reads it back */
	boot(disk, "", "cat /mnt/persist", &r);
	ASSERT(!r.timed_out);
	ASSERT_EQ(r.status, 0);
	run_output(r.out, got, sizeof(got));
	ASSERT(!strncmp(got, token, strlen(token)), "the second boot did not read the file back");
	proc_result_free(&r);
}
