/*
 * test_memresize.c - a running vNode's memory grown and shrunk live, through
 * legoctl, on a whole cluster on loopback: the manager places the slabs a
 * grow needs (on both memory servers, all or nothing), the guest (the vmem
 * payload, a virtio-mem driver) plugs them and uses them, gives memory back
 * on a shrink, and the slabs no plugged block uses are freed in the manager.
 * Refusals (past the maximum, past the cluster's capacity) change nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster.h"
#include "proto.h"
#include "test.h"

#define MiB (1LL << 20)

/* Wait (30 s) until @name's console has @n lines beginning with @text. */
static void wait_console_line(const char *name, const char *text, int n)
{
	for (int ms = 0; ms < 30000; ms += 250) {
		char *out = console_of(name);
		int seen = console_count(out, text);

		free(out);
		if (seen >= n)
			return;
		usleep(250 * 1000);
	}
	ASSERT(0, "%s never printed \"%s\" (%d times) in 30 s", name, text, n);
}

/* Wait (20 s) until the components' reservations add up to @want. */
static void wait_reserved(long long want)
{
	long long got = 0;

	for (int ms = 0; ms < 20000; ms += 200) {
		got = total_reserved();
		if (got == want)
			return;
		usleep(200 * 1000);
	}
	ASSERT(0, "%lld MiB reserved in the cluster, %lld MiB expected", got / MiB, want / MiB);
}

/*
 * Wait (20 s) until @name's memory backup, the storage server's volume, is
 * sized for @placed bytes of slabs, holds a completed backup (its header,
 * first) and data from guest bytes [@from, @to): pages of a slab placed live.
 */
static void backup_holds(const char *name, long long placed, long long from, long long to)
{
	static char buf[1 << 20];
	char path[PATH_MAX], why[160] = "";

	snprintf(path, sizeof(path), "%s/volumes/%s.mem.vol", getenv("LEGO_HOME"), name);
	for (int ms = 0; ms < 20000; ms += 250, usleep(250 * 1000)) {
		struct lmp_backup_header h = {0};
		int fd = open(path, O_RDONLY);
		struct stat st;
		bool data = false;

		if (fd < 0 || fstat(fd, &st) || pread(fd, &h, sizeof(h), 0) != sizeof(h)) {
			snprintf(why, sizeof(why), "its volume cannot be read: %s",
				 strerror(errno));
		} else if (st.st_size != placed + 4096) {
			snprintf(why, sizeof(why), "the volume has %lld bytes",
				 (long long)st.st_size);
		} else if (h.magic != LMP_BACKUP_MAGIC || h.seq < 1) {
			snprintf(why, sizeof(why), "no completed backup in its header");
		} else {
			for (long long off = from; off < to && !data; off += sizeof(buf)) {
				ssize_t n =
					pread(fd, buf, sizeof(buf), lmp_backup_offset(off / 4096));

				for (ssize_t i = 0; i < n && !data; i++)
					data = buf[i] != 0;
			}
			snprintf(why, sizeof(why), "nothing from the live slab in it");
		}
		if (fd >= 0)
			close(fd);
		if (data)
			return;
	}
	ASSERT(0, "%s's memory backup after 20 s: %s", name, why);
}

TEST_TIMEOUT(a_running_vnode_grows_and_shrinks_its_memory_live, 300)
{
	struct proc_result r;
	long long base, one_slab;
	json_t *l, *v;

	test_require_kvm();
	cluster_home();
	up("512M"); /* room for two slabs of 256 MiB on each memory server */
	base = total_reserved();
	legoctl(&r, "create", "m1", "--memory", "64M", "--max-memory", "576M", "--excache", "16M",
		"--payload", "vmem", "--args", "resize=3", "--no-net", NULL);
	ASSERT(r.status == 0, "create: %s%s", r.out, r.err);
	proc_result_free(&r);
	v = wait_vnode("m1", "running", 0);
	ASSERT_EQ(JI(v, "memory"), 64 * MiB);
	ASSERT_EQ(JI(v, "max_memory"), 576 * MiB);
	json_decref(v);
	/* one slab, whole: the boot memory and room to grow in it; a slab more is
	 * 256 MiB on each of two memory servers, and in the memory's backup */
	ASSERT(total_reserved() - base >= 3 * 256 * MiB, "%lld MiB reserved for m1",
	       (total_reserved() - base) / MiB);
	base = total_reserved();
	one_slab = 3 * 256 * MiB;
	wait_console_line("m1", "vmem: waiting for a resize", 1);

	/* past its maximum, and past the cluster's capacity: refused, nothing changed */
	legoctl(&r, "resize", "m1", "--memory", "1G", NULL);
	ASSERT(r.status != 0, "a resize past the maximum was taken");
	ASSERT_CONTAINS(r.err, "from 64 MiB (what it boots with) to 576 MiB (its maximum)");
	proc_result_free(&r);
	legoctl(&r, "resize", "m1", "--memory", "32M", NULL);
	ASSERT(r.status != 0, "a resize below the boot memory was taken");
	ASSERT_CONTAINS(r.err, "from 64 MiB (what it boots with)");
	proc_result_free(&r);
	legoctl(&r, "resize", "m1", "--memory", "576M", NULL);
	ASSERT(r.status != 0, "a resize past the cluster's capacity was taken");
	ASSERT_CONTAINS(r.err, "not enough memory-server capacity");
	proc_result_free(&r);
	ASSERT_EQ(total_reserved(), base);

	/* grow: a second slab placed, the guest plugs 384 MiB */
	legoctl(&r, "resize", "m1", "--memory", "448M", "--wait", NULL);
	ASSERT(r.status == 0, "resize --memory 448M: %s%s", r.out, r.err);
	ASSERT_CONTAINS(r.out, "m1: memory 448 MiB, live");
	ASSERT_CONTAINS(r.out, "m1 has 448 MiB after");
	printf("%s", r.out);
	proc_result_free(&r);
	ASSERT_EQ(total_reserved() - base, one_slab);
	wait_console_line("m1", "vmem: resized to 384 MiB", 1);
	l = legoctl_json("list", NULL);
	v = vnode(l, "m1");
	ASSERT(v);
	ASSERT_EQ(JI(v, "memory"), 448 * MiB);
	ASSERT_EQ(json_array_size(json_object_get(v, "slabs")), 2);
	json_decref(l);
	/* its backup grew with it: the second slab's pages, plugged memory, are in it */
	backup_holds("m1", 512 * MiB, 256 * MiB, 448 * MiB);

	/* shrink: the guest gives 352 MiB back, and the second slab is freed */
	legoctl(&r, "resize", "m1", "--memory", "96M", "--wait", NULL);
	ASSERT(r.status == 0, "resize --memory 96M: %s%s", r.out, r.err);
	ASSERT_CONTAINS(r.out, "m1 has 96 MiB after");
	proc_result_free(&r);
	wait_console_line("m1", "vmem: resized to 32 MiB", 1);
	wait_reserved(base);
	legoctl(&r, "list", NULL);
	ASSERT(r.status == 0);
	ASSERT_CONTAINS(r.out, "96 MiB");
	proc_result_free(&r);

	/* and a last grow inside the slab it has: no placement; then it finishes */
	legoctl(&r, "resize", "m1", "--memory", "128M", NULL);
	ASSERT(r.status == 0, "resize --memory 128M: %s%s", r.out, r.err);
	proc_result_free(&r);
	v = wait_vnode("m1", "exited", 0);
	json_decref(v);
	{
		char *out = console_of("m1");

		ASSERT(console_line(out, "REPORT vcpu=0 mismatches=0"), "mismatches:\n%s", out);
		ASSERT(console_line(out, "REPORT vcpu=0 plugged_after_resize_2=67108864"),
		       "the last resize:\n%s", out);
		free(out);
	}
	down_leaves_nothing(NULL, 0);
}

/*
 * A vNode without a maximum: its memory changes at the next start, and the
 * display and the checks keep the two apart: list shows what runs and what
 * waits, an ExCache is checked against the memory that runs.
 */
TEST_TIMEOUT(memory_without_a_maximum_waits_for_the_next_start, 180)
{
	struct proc_result r;
	json_t *l, *v;

	test_require_kvm();
	cluster_home();
	up("1G");
	create_payload("p1", "1", NULL);
	json_decref(wait_vnode("p1", "running", 0));
	legoctl(&r, "resize", "p1", "--memory", "128M", "--cpus", "2", NULL);
	ASSERT(r.status == 0, "resize: %s%s", r.out, r.err);
	ASSERT_CONTAINS(r.out, "p1: memory 128 MiB, at the next start");
	ASSERT_CONTAINS(r.out, "p1: 2 vCPUs at the next start");
	proc_result_free(&r);
	legoctl(&r, "resize", "p1", "--excache", "100M", NULL);
	ASSERT(r.status != 0, "an ExCache larger than the memory that runs was taken");
	ASSERT_CONTAINS(r.err, "64 MiB, what runs now");
	proc_result_free(&r);
	l = legoctl_json("list", NULL);
	v = vnode(l, "p1");
	ASSERT(v);
	ASSERT_EQ(JI(v, "memory"), 64 * MiB); /* what runs */
	ASSERT_EQ(JI(v, "cpus"), 1);
	ASSERT_EQ(JI(json_object_get(v, "next_start"), "memory"), 128 * MiB);
	ASSERT_EQ(JI(json_object_get(v, "next_start"), "cpus"), 2);
	json_decref(l);
	legoctl(&r, "list", NULL);
	ASSERT_CONTAINS(r.out, "(next start: 2 vCPUs 128 MiB)");
	proc_result_free(&r);
	down_leaves_nothing(NULL, 0);
}
