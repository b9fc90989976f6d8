/*
 * test_linux_boot.c - the stock Debian kernel from the boot kit (make guest),
 * end to end: 2 vCPUs brought up through ACPI, the virtio-blk disk found on
 * PCI and mounted, init's ready line, `nproc`, a file written to the disk
 * and seen after a reboot and by the host; the ACPI power button shutting
 * the guest down cleanly, for a reboot and for good. Minutes on kvm_pvm hosts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "ctl.h"
#include "test.h"
#include "util.h"

#define BOOT_TIMEOUT_S (25 * 60)

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

/*
 * One lego-vmm, two boots. The first writes a file and waits; `reboot` on
 * the control socket (what legoctl reboot sends) presses the power button:
 * the guest shuts down cleanly and the machine boots again, where the file is
 * read back; `shutdown` (legoctl stop) presses it again and the guest powers
 * off: lego-vmm exits 0.
 */
TEST_TIMEOUT(linux_boots_two_vcpus_virtio_blk_and_a_file_survives_a_reboot, 3600)
{
	char disk[300], cmd[800], token[40], run[400], got[4096], sock[300], append[600];
	char *argv[KIT_ARGV_MAX], *extra[] = {"--disk", disk, "--control", sock, NULL};
	struct proc_result r;
	const char *p;
	uint64_t rnd, t0;
	pid_t vmm;
	FILE *f;

	kit_require();
	snprintf(disk, sizeof(disk), "%s/disk.img", test_tmpdir());
	snprintf(sock, sizeof(sock), "%s/ctl.sock", test_tmpdir());
	snprintf(cmd, sizeof(cmd), "cp --sparse=always %s %s", test_path("guest/rootfs.img"), disk);
	ASSERT_EQ(system(cmd), 0);
	ASSERT_EQ(getrandom(&rnd, sizeof(rnd), 0), (ssize_t)sizeof(rnd));
	snprintf(token, sizeof(token), "lego-%016llx", (unsigned long long)rnd);

	/* first boot: the platform, nproc, and a file on the virtio disk; the second reads it */
	snprintf(run, sizeof(run),
		 "if [ -f /mnt/persist ]; then echo lego-test: read $(cat /mnt/persist); else "
		 "echo lego-test: nproc $(nproc); echo %s > /mnt/persist; sync; fi; "
		 "echo lego-test: waiting; sleep 3600",
		 token);
	snprintf(append, sizeof(append), "console=ttyS0 lego.run=\"%s\"", run);
	kit_argv(argv, extra, append);
	t0 = now_ns();
	vmm = proc_spawn(argv);
	ASSERT(console_wait(vmm, "lego-test: waiting", 1), "the first boot never got there");
	ASSERT(control(sock, "reboot"), "reboot refused");
	ASSERT(console_wait(vmm, "lego-test: waiting", 2), "the second boot never got there");
	ASSERT(control(sock, "shutdown"), "shutdown refused");
	proc_collect(vmm, BOOT_TIMEOUT_S, &r);
	printf("  two boots and two shutdowns took %.0f s, exit status %d\n", (now_ns() - t0) / 1e9,
	       r.status);
	if (r.status != 0 || r.timed_out) {
		size_t n = strlen(r.out);

		printf("--- console (last 3000 bytes)\n%s\n--- stderr\n%s\n",
		       r.out + (n > 3000 ? n - 3000 : 0), r.err);
	}
	ASSERT(!r.timed_out);
	ASSERT_EQ(r.status, 0);
	ASSERT_CONTAINS(r.out, "smp: Brought up 1 node, 2 CPUs");
	ASSERT_CONTAINS(r.out, "[1af4:1042]"); /* virtio-blk (modern) enumerated on PCI */
	ASSERT_CONTAINS(r.out, "virtio_blk virtio0: [vda]");
	ASSERT(console_line(r.out, "lego-test: nproc 2"), "nproc did not print 2");
	/* the CMOS clock gave the kernel the host's date */
	ASSERT(strstr(r.out, "Unable to read current time from RTC") == NULL,
	       "no time from the RTC");
	/* the power button, twice: a clean shutdown each time, by the kernel's own path */
	ASSERT_EQ(console_count(r.out, "lego-guest: ready"), 2);
	ASSERT_EQ(console_count(r.out, "lego-guest: power button: shutting down"), 2);
	ASSERT_EQ(console_count(r.out, "ACPI: PM: Preparing to enter system sleep state S5"), 2);
	ASSERT_EQ(console_count(r.out, "reboot: Power down"), 2);
	ASSERT_CONTAINS(r.err, "the guest shut down for a reboot (ACPI S5): booting again");
	p = console_line(r.out, "lego-test: read");
	ASSERT(p && !strncmp(p + strlen("lego-test: read "), token, strlen(token)),
	       "the second boot did not read the file back");
	proc_result_free(&r);

	/* the host sees the file in the image (e2fsprogs' debugfs reads ext4 offline) */
	snprintf(cmd, sizeof(cmd), "debugfs -R 'cat /persist' %s 2>/dev/null", disk);
	f = popen(cmd, "r");
	ASSERT(f != NULL);
	got[0] = 0;
	ASSERT(fgets(got, sizeof(got), f) != NULL, "no /persist in the image");
	pclose(f);
	ASSERT(!strncmp(got, token, strlen(token)), "the image holds another /persist");
}
