/*
 * test_virtio_mem.c - live memory resize through the virtio-mem device,
 * driven by the vmem payload (a virtio-mem driver in ring 3): the
 * specification's answers to good and bad requests, memory that is plugged
 * holds what is written to it, an unplugged block is never memory, and a
 * resize made on the control socket reaches the running guest, with the
 * unplugged pages freed on the memory server.
 */
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "memclient.h"
#include "test.h"
#include "vm.h"

#define VMM	  test_path("bin/lego-vmm")
#define VMEM	  test_path("guest/payloads/vmem.bin")
#define MiB	  (1ULL << 20)
#define TOKEN_HEX "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e"

static uint64_t report(const char *out, const char *key)
{
	uint64_t v;

	ASSERT(report_get(out, 0, key, &v), "the payload did not report %s:\n%s", key, out);
	return v;
}

/* The "@tag {json}" line lego-vmm --stats printed on stderr @err, parsed. */
static json_t *stats_line(const char *err, const char *tag)
{
	char want[32];
	const char *p;
	json_t *j;

	snprintf(want, sizeof(want), "%s {", tag);
	p = strstr(err, want);
	ASSERT(p, "no %s line in:\n%s", tag, err);
	p += strlen(tag) + 1;
	j = json_loadb(p, strcspn(p, "\n"), 0, NULL);
	ASSERT(j);
	return j;
}

static uint64_t jint(json_t *j, const char *key)
{
	json_t *v = json_object_get(j, key);

	ASSERT(json_is_integer(v), "no %s in the answer", key);
	return (uint64_t)json_integer_value(v);
}

/* Pages the memory server at @addr holds, all vNodes together. */
static uint64_t memsrv_used_pages(const char *addr)
{
	struct memclient mc;
	struct memclient_cred c = {.vnode = 515151, .nr_pages = 1};
	struct lmp_stat st;
	char err[256];

	ASSERT(memclient_open(&mc, addr, &c, err, sizeof(err)) == 0, "%s", err);
	ASSERT_EQ(memclient_stat(&mc, &st), 0);
	memclient_close(&mc);
	return st.used_pages;
}

/* A control command's answer, or NULL with its error in @err. */
static json_t *call(const char *sock, json_t *req, char *err, size_t errlen)
{
	json_t *res = ctl_call(sock, req, 10000, err, errlen);

	json_decref(req);
	if (res && !json_is_true(json_object_get(res, "ok"))) {
		snprintf(err, errlen, "%s", json_string_value(json_object_get(res, "error")));
		json_decref(res);
		return NULL;
	}
	return res;
}

static json_t *resize(const char *sock, const char *size, char *err, size_t errlen)
{
	return call(sock, json_pack("{s:s,s:s}", "cmd", "memory.resize", "size", size), err,
		    errlen);
}

TEST(virtio_mem_answers_requests_as_the_spec_says_and_plugged_memory_holds_data)
{
	char *argv[] = {(char *)VMM,
			"--stats",
			"--payload",
			(char *)VMEM,
			"--memory",
			"64M",
			"--max-memory",
			"192M",
			"--order",
			(char *)test_order_file("{\"hotplug\":%llu}", 64 * MiB),
			NULL};
	struct proc_result r;
	json_t *m;

	test_require_kvm();
	proc_run(argv, 120, &r);
	if (r.status)
		printf("--- stderr\n%s\n", r.err);
	ASSERT_EQ(r.status, 0);
	/* the region: above the boot RAM, whole memory blocks, 2 MiB blocks */
	ASSERT_EQ(report(r.out, "block_size"), 2 * MiB);
	ASSERT_EQ(report(r.out, "addr"), 4ULL << 30);
	ASSERT_EQ(report(r.out, "usable_size"), 128 * MiB);
	ASSERT_EQ(report(r.out, "region_size"), 128 * MiB);
	ASSERT_EQ(report(r.out, "requested_size"), 64 * MiB);
	ASSERT_EQ(report(r.out, "plugged_at_start"), 0);
	/* refusals: ERROR (3) for a bad range or state, NACK (1) past the request */
	ASSERT_EQ(report(r.out, "misaligned_plug"), 3);
	ASSERT_EQ(report(r.out, "plug_past_usable"), 3);
	ASSERT_EQ(report(r.out, "plug_below_region"), 3);
	ASSERT_EQ(report(r.out, "plug_zero_blocks"), 3);
	ASSERT_EQ(report(r.out, "unplug_unplugged"), 3);
	ASSERT_EQ(report(r.out, "plug_past_requested"), 1);
	ASSERT_EQ(report(r.out, "unknown_request"), 3);
	ASSERT_EQ(report(r.out, "plug_when_all_plugged"), 1);
	ASSERT_EQ(report(r.out, "plug_plugged"), 3);
	ASSERT_EQ(report(r.out, "plugged_after_refusals"), 0);
	/* states: UNPLUGGED 1, PLUGGED 0, MIXED 2 */
	ASSERT_EQ(report(r.out, "state_at_start"), 1);
	ASSERT_EQ(report(r.out, "state_plugged"), 0);
	ASSERT_EQ(report(r.out, "state_mixed"), 2);
	ASSERT_EQ(report(r.out, "state_after_unplug_all"), 1);
	ASSERT_EQ(report(r.out, "plugged_after_plug"), 64 * MiB);
	ASSERT_EQ(report(r.out, "plugged_after_unplug"), 32 * MiB);
	ASSERT_EQ(report(r.out, "plugged_after_unplug_all"), 0);
	ASSERT_EQ(report(r.out, "mismatches"), 0);
	m = stats_line(r.err, "MEMORY");
	ASSERT_EQ(jint(m, "plugged_bytes"), 0);
	ASSERT_EQ(jint(m, "max_bytes"), 192 * MiB);
	ASSERT_EQ(jint(m, "errors"), 7); /* the ERRORs above */
	ASSERT_EQ(jint(m, "nacks"), 2);
	json_decref(m);
	proc_result_free(&r);
}

TEST(touching_an_unplugged_block_stops_the_guest_with_a_clear_error)
{
	char addr[64];
	char *local[] = {(char *)VMM,
			 "--payload",
			 (char *)VMEM,
			 "--memory",
			 "64M",
			 "--max-memory",
			 "192M",
			 "--args",
			 "touch=1",
			 "--order",
			 (char *)test_order_file("{\"hotplug\":%llu}", 64 * MiB),
			 NULL};
	char *cached[] = {
		(char *)VMM, "--payload", (char *)VMEM,
		"--memory",  "64M",	  "--max-memory",
		"192M",	     "--args",	  "touch=1",
		"--excache", "8M",	  "--memsrv",
		addr,	     "--order",	  (char *)test_order_file("{\"hotplug\":%llu}", 64 * MiB),
		NULL};
	struct proc_result r;
	pid_t ms;

	test_require_kvm();
	/* local memory: the block is PROT_NONE, KVM cannot reach it */
	proc_run(local, 120, &r);
	ASSERT_EQ(r.status, VM_EXIT_GUEST_FAULT);
	ASSERT_CONTAINS(r.out, "vmem: reading an unplugged block");
	ASSERT(!strstr(r.out, "read_unplugged"), "the read of an unplugged block returned");
	ASSERT_CONTAINS(r.err, "hotpluggable memory (virtio-mem)");
	proc_result_free(&r);
	/* under an ExCache: the miss is refused, with the address */
	ms = memsrv_spawn("1G", addr);
	proc_run(cached, 120, &r);
	ASSERT_EQ(r.status, VM_EXIT_GUEST_FAULT);
	ASSERT(!strstr(r.out, "read_unplugged"), "the read of an unplugged block returned");
	ASSERT_CONTAINS(r.err, "the guest touched guest-physical 0x100000000, in block 0 of its "
			       "hotpluggable memory (virtio-mem), which is not plugged");
	proc_result_free(&r);
	kill(ms, SIGTERM);
}

/* Pages given ahead of a writer in order stop where the plugged blocks end. */
TEST(the_block_after_a_filled_run_stays_unplugged_under_the_excache)
{
	char addr[64];
	char *argv[] = {(char *)VMM,  "--payload",
			(char *)VMEM, "--memory",
			"64M",	      "--max-memory",
			"192M",	      "--args",
			"touch=edge", "--excache",
			"8M",	      "--memsrv",
			addr,	      "--stats",
			"--order",    (char *)test_order_file("{\"hotplug\":%llu}", 64 * MiB),
			NULL};
	struct proc_result r;
	pid_t ms;

	test_require_kvm();
	ms = memsrv_spawn("1G", addr);
	proc_run(argv, 120, &r);
	ASSERT_CONTAINS(r.out, "vmem: reading the unplugged block after the filled ones");
	ASSERT_EQ(r.status, VM_EXIT_GUEST_FAULT);
	ASSERT(!strstr(r.out, "read_unplugged"), "the read of an unplugged block returned");
	ASSERT_CONTAINS(r.err, "of its hotpluggable memory (virtio-mem), which is not plugged");
	ASSERT(!strstr(r.err, "\"zeroed_ahead\":0,"), "the fill was not given pages ahead");
	proc_result_free(&r);
	kill(ms, SIGTERM);
}

TEST(a_live_resize_reaches_the_guest_and_frees_server_pages)
{
	char addr[64], sock[300], err[256];
	char *argv[] = {
		(char *)VMM,
		"--stats",
		"--payload",
		(char *)VMEM,
		"--memory",
		"64M",
		"--max-memory",
		"192M",
		"--excache",
		"8M",
		"--memsrv",
		addr,
		"--control",
		sock,
		"--args",
		"resize=2",
		"--order",
		(char *)test_order_file("{\"token\":\"" TOKEN_HEX "\",\"hotplug\":%llu}", 64 * MiB),
		NULL};
	struct proc_result r;
	uint64_t before, after;
	json_t *res, *x;
	pid_t ms, vmm;

	test_require_kvm();
	ms = memsrv_spawn("1G", addr);
	snprintf(sock, sizeof(sock), "%s/vmm.sock", test_tmpdir());
	vmm = proc_spawn(argv);
	if (!console_wait(vmm, "vmem: waiting for a resize", 1)) {
		proc_collect(vmm, 10, &r);
		test_fail(__FILE__, __LINE__, "the payload never waited (exit %d):\n%s\n%s",
			  r.status, r.out, r.err);
	}
	/* refused, nothing changed: below the boot memory, past the maximum, not in 2M steps */
	ASSERT(!resize(sock, "32M", err, sizeof(err)));
	ASSERT_CONTAINS(err, "from 64 MiB (what it booted with) to 192 MiB (its maximum)");
	ASSERT(!resize(sock, "256M", err, sizeof(err)));
	ASSERT(!resize(sock, "65M", err, sizeof(err)));
	/* shrink: 64 MiB of written hotplugged memory down to 16 MiB */
	before = memsrv_used_pages(addr);
	res = resize(sock, "80M", err, sizeof(err));
	ASSERT(res, "memory.resize: %s", err);
	ASSERT_EQ(jint(res, "requested_bytes"), 80 * MiB);
	json_decref(res);
	ASSERT(console_wait(vmm, "vmem: resized to 16 MiB", 1), "the guest did not follow");
	after = memsrv_used_pages(addr);
	printf("  the memory server held %llu pages, %llu after the guest gave 48 MiB back\n",
	       (unsigned long long)before, (unsigned long long)after);
	ASSERT(before >= (48 * MiB) / 4096, "the written memory never reached the server");
	ASSERT(after + (48 * MiB) / 4096 / 2 <= before, "the unplugged pages stayed on the server");
	res = call(sock, json_pack("{s:s}", "cmd", "memory"), err, sizeof(err));
	ASSERT(res, "memory: %s", err);
	ASSERT_EQ(jint(res, "memory_bytes"), 80 * MiB);
	json_decref(res);
	/* grow past what it booted asking for: 128 MiB hotplugged, 192 MiB in all */
	res = resize(sock, "192M", err, sizeof(err));
	ASSERT(res, "memory.resize: %s", err);
	json_decref(res);
	proc_collect(vmm, 120, &r);
	if (r.status)
		printf("--- stderr\n%s\n", r.err);
	ASSERT_EQ(r.status, 0);
	ASSERT_EQ(report(r.out, "plugged_after_resize_0"), 16 * MiB);
	ASSERT_EQ(report(r.out, "plugged_after_resize_1"), 128 * MiB);
	ASSERT_EQ(report(r.out, "mismatches"), 0);
	x = stats_line(r.err, "MEMORY");
	ASSERT_EQ(jint(x, "requested_bytes"), 192 * MiB);
	json_decref(x);
	proc_result_free(&r);
	kill(ms, SIGTERM);
}

TEST(a_snapshot_keeps_the_plugged_memory_and_what_it_holds)
{
	char sock[300], snap[300], err[256];
	char *argv[] = {(char *)VMM,
			"--payload",
			(char *)VMEM,
			"--memory",
			"64M",
			"--max-memory",
			"192M",
			"--control",
			sock,
			"--args",
			"resize=1",
			"--order",
			(char *)test_order_file("{\"hotplug\":%llu}", 64 * MiB),
			NULL};
	char *rargv[] = {(char *)VMM, "--stats", "--restore", snap, NULL};
	struct proc_result r;
	json_t *res, *x;
	pid_t vmm;

	test_require_kvm();
	snprintf(sock, sizeof(sock), "%s/vmm.sock", test_tmpdir());
	snprintf(snap, sizeof(snap), "%s/vmem.snap", test_tmpdir());
	vmm = proc_spawn(argv);
	ASSERT(console_wait(vmm, "vmem: waiting for a resize", 1), "the payload never waited");
	/* 64 MiB plugged and written, local memory: it goes into the snapshot */
	res = call(sock,
		   json_pack("{s:s,s:s,s:s}", "cmd", "snapshot", "path", snap, "then", "stop"), err,
		   sizeof(err));
	ASSERT(res, "snapshot: %s", err);
	json_decref(res);
	proc_collect(vmm, 30, &r);
	ASSERT_EQ(r.status, 0);
	proc_result_free(&r);
	/* restored: the guest goes on waiting, its blocks plugged, their contents there */
	unlink(sock);
	vmm = proc_spawn(rargv);
	ASSERT(wait_for_path(sock, 20000), "the restored VMM has no control socket");
	res = call(sock, json_pack("{s:s}", "cmd", "memory"), err, sizeof(err));
	ASSERT(res, "memory: %s", err);
	ASSERT_EQ(jint(res, "plugged_bytes"), 64 * MiB);
	json_decref(res);
	res = resize(sock, "96M", err, sizeof(err));
	ASSERT(res, "memory.resize: %s", err);
	json_decref(res);
	proc_collect(vmm, 60, &r);
	if (r.status)
		printf("--- stderr\n%s\n", r.err);
	ASSERT_EQ(r.status, 0);
	ASSERT_EQ(report(r.out, "plugged_after_resize_0"), 32 * MiB);
	ASSERT_EQ(report(r.out, "mismatches"), 0); /* the 32 MiB kept held the pattern */
	x = stats_line(r.err, "MEMORY");
	ASSERT_EQ(jint(x, "plugged_bytes"), 0);
	json_decref(x);
	proc_result_free(&r);
}

/*
 * Plugged memory is replicated like the rest: its slab's primary is killed
 * after the guest wrote it (most of it evicted to the servers), and the
 * guest reads it back whole from the secondary.
 */
TEST(plugged_memory_survives_the_loss_of_its_slabs_primary)
{
	char a[64], b[64], sock[300], err[256], prim[140], sec[140];
	char *argv[] = {(char *)VMM,
			"--stats",
			"--payload",
			(char *)VMEM,
			"--memory",
			"64M",
			"--max-memory",
			"192M",
			"--excache",
			"8M",
			"--slab-size",
			"64M",
			"--memsrv",
			prim,
			"--memsrv-secondary",
			sec,
			"--control",
			sock,
			"--args",
			"resize=1",
			"--order",
			(char *)test_order_file("{\"hotplug\":%llu}", 32 * MiB),
			NULL};
	struct proc_result r;
	json_t *res, *x;
	pid_t ma, mb, vmm;

	test_require_kvm();
	ma = memsrv_spawn("1G", a);
	mb = memsrv_spawn("1G", b);
	/* slab 0 (the boot memory) on A then B, slab 1 (the first 64 MiB plugged) on B then A */
	snprintf(prim, sizeof(prim), "%s,%s", a, b);
	snprintf(sec, sizeof(sec), "%s,%s", b, a);
	snprintf(sock, sizeof(sock), "%s/vmm.sock", test_tmpdir());
	vmm = proc_spawn(argv);
	ASSERT(console_wait(vmm, "vmem: waiting for a resize", 1), "the payload never waited");
	kill(mb, SIGKILL);			      /* slab 1's primary */
	res = resize(sock, "128M", err, sizeof(err)); /* 64 MiB: all that is placed */
	ASSERT(res, "memory.resize: %s", err);
	json_decref(res);
	proc_collect(vmm, 120, &r);
	if (r.status)
		printf("--- stderr\n%s\n", r.err);
	ASSERT_EQ(r.status, 0);
	ASSERT_EQ(report(r.out, "usable_size"), 64 * MiB); /* as far as slabs are placed */
	ASSERT_EQ(report(r.out, "plugged_after_resize_0"), 64 * MiB);
	ASSERT_EQ(report(r.out, "mismatches"), 0);
	x = stats_line(r.err, "EXCACHE");
	ASSERT(jint(json_object_get(x, "route"), "failovers") >= 1, "no failover happened");
	json_decref(x);

	proc_result_free(&r);
	kill(ma, SIGTERM);
}
