/*
 * test_verify.c - lego-verify, the workload the boot kit carries into Linux
 * guests (guest/verify/), run here on the host: it passes clean memory,
 * catches a corrupted page, refuses a wrong command line, and is in the
 * kit's initramfs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

TEST(lego_verify_passes_clean_memory_and_catches_a_corrupted_page)
{
	char bin[600];
	char *ok[] = {bin, "16M", "2", NULL}, *bad[] = {bin, "16M", "2", "--corrupt", NULL};
	char *usage[] = {bin, "lots", NULL};
	struct proc_result r;

	snprintf(bin, sizeof(bin), "%s", test_path("guest/lego-verify"));
	proc_run(ok, 60, &r);
	ASSERT_EQ(r.status, 0);
	ASSERT_CONTAINS(r.out, "lego-verify: 0 mismatches in 2 passes over 16 MiB");
	proc_result_free(&r);
	proc_run(bad, 60, &r);
	ASSERT_EQ(r.status, 1);
	ASSERT_CONTAINS(r.out, "lego-verify: 1 mismatches in 2 passes");
	proc_result_free(&r);
	proc_run(usage, 10, &r);
	ASSERT_EQ(r.status, 2);
	ASSERT_CONTAINS(r.err, "usage: lego-verify");
	proc_result_free(&r);
}

TEST(the_boot_kit_carries_lego_verify)
{
	char cmd[700];
	FILE *f;
	char line[256];
	bool found = false;

	snprintf(cmd, sizeof(cmd), "cpio -t <'%s' 2>/dev/null", test_path("guest/initrd.img"));
	f = popen(cmd, "r");
	ASSERT(f);
	while (fgets(line, sizeof(line), f))
		found |= !strcmp(line, "bin/lego-verify\n");
	pclose(f);
	ASSERT(found, "bin/lego-verify is not in the kit's initrd.img");
}
