/*
 * test_virtio_net.c - virtio-net end to end at native speed, in a network
 * namespace of the test's own: the vnet payload drives the device from
 * ring 3 while this host side, on a packet socket on the vNode's TAP, reads
 * what it sends (numbered frames; a UDP frame whose checksum it left to
 * the host, with the offload header seen as the guest wrote it) and writes
 * frames to it (numbered ones; a 9 KB TCP frame left unsegmented, which it
 * must receive whole in merged buffers). Malformed and oversized transmit
 * chains make the device ask for a reset; lego-vmm holds nothing at exit.
 * Then two payload vNodes on one bridge exchange frames, a TAP deleted under
 * a running vNode leaves the guest running with the error said, and a TAP
 * that cannot be opened is a clear error with nothing half made.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl.h"
#include "netns.h"
#include "test.h"
#include "vm.h"

#define VMM	 test_path("bin/lego-vmm")
#define VNET	 test_path("guest/payloads/vnet.bin")
#define ETHERTYP 0x88b5
#define VHDR	 sizeof(struct virtio_net_hdr)

static const uint8_t guest_mac[6] = {0x02, 0, 0, 0, 0, 0x42};
static const uint8_t host_mac[6] = {0x02, 0, 0, 0, 0, 0x01};

/* A numbered frame as the payload makes them (vnet.c), after a zero virtio-net header. */
static size_t numbered(uint8_t *buf, uint32_t seq, uint32_t len)
{
	memset(buf, 0, VHDR);
	memcpy(buf + VHDR, guest_mac, 6);
	memcpy(buf + VHDR + 6, host_mac, 6);
	buf[VHDR + 12] = ETHERTYP >> 8;
	buf[VHDR + 13] = ETHERTYP & 0xff;
	memcpy(buf + VHDR + 14, &seq, 4);
	memcpy(buf + VHDR + 18, &len, 4);
	for (uint32_t i = 22; i < len; i++)
		buf[VHDR + i] = (uint8_t)(seq * 7 + i);
	return VHDR + len;
}

/* A TCP/IPv4 frame of @data bytes that the host's stack leaves unsegmented (GSO, TSO4). */
static size_t gso_frame(uint8_t *buf, uint32_t data)
{
	struct virtio_net_hdr h = {.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
				   .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
				   .hdr_len = 54,
				   .gso_size = 1448,
				   .csum_start = 34,
				   .csum_offset = 16};
	uint8_t *e = buf + VHDR, *ip = e + 14, *tcp = ip + 20;
	uint16_t tot = htons((uint16_t)(40 + data));
	uint32_t sum = 0;

	memcpy(buf, &h, VHDR);
	memcpy(e, guest_mac, 6);
	memcpy(e + 6, host_mac, 6);
	e[12] = 0x08;
	e[13] = 0x00;
	memset(ip, 0, 40);
	ip[0] = 0x45;
	memcpy(ip + 2, &tot, 2);
	ip[6] = 0x40;
	ip[8] = 64;
	ip[9] = 6;
	memcpy(ip + 12, (uint8_t[]){10, 0, 0, 1, 10, 0, 0, 2}, 8);
	for (int i = 0; i < 20; i += 2)
		sum += (uint32_t)ip[i] << 8 | ip[i + 1];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = ~((sum & 0xffff) + (sum >> 16)) & 0xffff;
	ip[10] = (uint8_t)(sum >> 8);
	ip[11] = (uint8_t)sum;
	tcp[1] = 80; /* 0 -> 80 */
	tcp[3] = 80;
	tcp[12] = 0x50; /* data offset 5 */
	tcp[13] = 0x18; /* PSH, ACK */
	tcp[14] = 0xff; /* window */
	for (uint32_t i = 0; i < data; i++)
		tcp[20 + i] = (uint8_t)i;
	return VHDR + 54 + data;
}

static pid_t start_vmm(const char *net, const char *args)
{
	char netarg[128];
	char *argv[] = {(char *)VMM, "--payload", (char *)VNET, "--memory",	 "64M", "--net",
			netarg,	     "--args",	  (char *)args, "--check-leaks", NULL};

	snprintf(netarg, sizeof(netarg), "%s", net);
	return proc_spawn(argv);
}

static void send_frame(int fd, const char *ifname, uint16_t proto, const void *buf, size_t len)
{
	struct sockaddr_ll to = {.sll_family = AF_PACKET,
				 .sll_protocol = htons(proto),
				 .sll_ifindex = (int)if_nametoindex(ifname),
				 .sll_halen = 6};

	memcpy(to.sll_addr, guest_mac, 6);
	ASSERT(sendto(fd, buf, len, 0, (struct sockaddr *)&to, sizeof(to)) == (ssize_t)len,
	       "sendto: %s", strerror(errno));
}

TEST_TIMEOUT(vnet_payload_sends_and_receives_with_offloads_through_a_tap, 120)
{
	static uint8_t buf[70000];
	struct proc_result r;
	uint64_t v;
	int fd, got = 0, bad = 0, udp = 0;
	pid_t vmm;

	test_require_kvm();
	netns_enter();
	netns_tap("lt0");
	fd = netns_packet_socket("lt0", ETH_P_ALL);
	vmm = start_vmm("lt0,mac=02:00:00:00:00:42", "tx=64 rx=64 size=1000 gso=1 evil=1");

	/* What the guest sends: 64 numbered frames, then the UDP frame. */
	while (got < 64 || !udp) {
		size_t n = netns_recv(fd, buf, sizeof(buf), 10000);
		struct virtio_net_hdr h;
		uint32_t seq, len;

		ASSERT(n, "only %d of 64 frames (and %s UDP frame) from the guest in 10 s", got,
		       udp ? "its" : "no");
		memcpy(&h, buf, VHDR);
		if (n > VHDR + 34 && buf[VHDR + 12] == 0x08 && buf[VHDR + 23] == 17) {
			/* the offload header as the guest wrote it: checksum left to the host */
			ASSERT_EQ(h.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
			ASSERT_EQ(h.csum_start, 34);
			ASSERT_EQ(h.csum_offset, 6);
			ASSERT_EQ(n, VHDR + 142);
			udp = 1;
			continue;
		}
		if (n < VHDR + 22 || buf[VHDR + 12] != ETHERTYP >> 8)
			continue; /* the namespace's own chatter */
		memcpy(&seq, buf + VHDR + 14, 4);
		memcpy(&len, buf + VHDR + 18, 4);
		ASSERT(!memcmp(buf + VHDR + 6, guest_mac, 6), "a frame from another MAC");
		bad += len != 1000 || n != VHDR + 1000 || seq != (uint32_t)got;
		for (uint32_t i = 22; i < len && i + VHDR < n; i++)
			bad += buf[VHDR + i] != (uint8_t)(seq * 7 + i);
		got++;
	}
	ASSERT_EQ(bad, 0);

	/* What the host sends: 64 numbered frames and one 9 KB TCP frame, unsegmented. */
	for (uint32_t i = 0; i < 64; i++)
		send_frame(fd, "lt0", ETHERTYP, buf, numbered(buf, i, 1000));
	send_frame(fd, "lt0", ETH_P_IP, buf, gso_frame(buf, 9000));

	proc_collect(vmm, 60, &r);
	ASSERT(!r.timed_out);
	if (r.status)
		test_fail(__FILE__, __LINE__, "status %d:\n%s\n%s", r.status, r.out, r.err);
	ASSERT(report_get(r.out, 0, "mac_lo", &v) && v == 0x42);
	ASSERT(report_get(r.out, 0, "rx_frames", &v) && v == 64);
	ASSERT(report_get(r.out, 0, "rx_mismatches", &v) && v == 0);
	ASSERT(report_get(r.out, 0, "gso_len", &v) && v == 54 + 9000, "gso_len %llu",
	       (unsigned long long)v);
	ASSERT(report_get(r.out, 0, "gso_type", &v) && v == VIRTIO_NET_HDR_GSO_TCPV4);
	ASSERT(report_get(r.out, 0, "gso_buffers", &v) && v >= 5, "merged into %llu buffers",
	       (unsigned long long)v);
	ASSERT(report_get(r.out, 0, "reset_on_writable_tx", &v) && v == 1);
	ASSERT(report_get(r.out, 0, "reset_on_oversized_tx", &v) && v == 1);
	ASSERT_CONTAINS(r.err, "a transmit buffer the device would write");
	ASSERT_CONTAINS(r.err, "a frame larger than 64 KiB");
	ASSERT(!strstr(r.err, "LEAK"), "%s", r.err);
	proc_result_free(&r);
	close(fd);
}

/* Wait until @pid's stdout says "REPORT vcpu=0 ready=1". */
static void wait_ready(pid_t pid)
{
	for (int ms = 0; ms < 10000; ms += 20) {
		FILE *f = fopen(proc_out_path(pid), "r");
		char line[256];
		bool ready = false;

		while (f && fgets(line, sizeof(line), f))
			ready |= strstr(line, "ready=1") != NULL;
		if (f)
			fclose(f);
		if (ready)
			return;
		ASSERT(proc_running(pid), "the vNode ended before it was ready");
		usleep(20000);
	}
	test_fail(__FILE__, __LINE__, "the vNode did not get ready in 10 s");
}

TEST_TIMEOUT(two_vnodes_on_one_bridge_exchange_frames, 120)
{
	struct proc_result ra, rb;
	uint64_t v;
	pid_t a, b;

	test_require_kvm();
	netns_enter();
	netns_bridge("lb0", NULL);
	netns_tap("lta");
	netns_tap("ltb");
	netns_enslave("lta", "lb0");
	netns_enslave("ltb", "lb0");
	/* b listens first; a sends, then listens for b's answer */
	b = start_vmm("ltb,mac=02:00:00:00:00:0b", "tx=32 rx=32 csum=0 first=rx");
	wait_ready(b);
	a = start_vmm("lta,mac=02:00:00:00:00:0a", "tx=32 rx=32 csum=0");
	proc_collect(a, 60, &ra);
	proc_collect(b, 60, &rb);
	ASSERT(ra.status == 0 && rb.status == 0, "a: %d %s\nb: %d %s", ra.status, ra.err, rb.status,
	       rb.err);
	ASSERT(report_get(ra.out, 0, "rx_frames", &v) && v == 32);
	ASSERT(report_get(rb.out, 0, "rx_frames", &v) && v == 32);
	ASSERT(report_get(ra.out, 0, "rx_mismatches", &v) && v == 0);
	ASSERT(report_get(rb.out, 0, "rx_mismatches", &v) && v == 0);
	proc_result_free(&ra);
	proc_result_free(&rb);
}

TEST_TIMEOUT(a_tap_deleted_under_a_running_vnode_leaves_the_guest_running, 60)
{
	char sock[300], err[256],
		*argv[] = {(char *)VMM,
			   "--payload",
			   (char *)VNET,
			   "--memory",
			   "64M",
			   "--net",
			   "ltx",
			   "--control",
			   sock,
			   "--args",
			   "tx=4 rx=1000000 csum=0",
			   NULL};
	struct proc_result r;
	json_t *st, *nic;
	pid_t vmm;

	test_require_kvm();
	netns_enter();
	netns_tap("ltx");
	snprintf(sock, sizeof(sock), "%s/vmm.sock", test_tmpdir());
	vmm = proc_spawn(argv);
	wait_ready(vmm);
	netns_delete("ltx");
	/* The guest goes on (it waits for frames that will not come), the error is said. */
	for (int ms = 0;; ms += 100) {
		st = ctl_call(sock, json_pack("{s:s}", "cmd", "status"), 2000, err, sizeof(err));
		ASSERT(st, "%s", err);
		nic = json_array_get(json_object_get(st, "nics"), 0);
		if (json_object_get(nic, "error") || ms > 5000)
			break;
		json_decref(st);
		/* a frame to send or receive makes the backend notice: the payload sent 4 */
		usleep(100000);
	}
	ASSERT(json_object_get(nic, "error"), "no error said for the deleted TAP");
	ASSERT_CONTAINS(json_string_value(json_object_get(nic, "error")), "tap ltx");
	ASSERT_CONTAINS(json_string_value(json_object_get(st, "state")), "running");
	json_decref(st);
	ASSERT(proc_running(vmm), "the VMM died with its TAP");
	kill(vmm, SIGTERM);
	proc_collect(vmm, 20, &r);
	ASSERT_EQ(r.status, 0);
	proc_result_free(&r);
}

TEST(a_tap_that_cannot_be_opened_is_a_clear_error)
{
	char *argv[] = {(char *)VMM, "--payload",	   (char *)VNET,    "--memory", "64M",
			"--net",     "toolongname1234567", "--check-leaks", NULL};
	char *argv2[] = {(char *)VMM,
			 "--payload",
			 (char *)VNET,
			 "--memory",
			 "64M",
			 "--net",
			 "lt0,mac=01:00:00:00:00:01",
			 NULL};
	struct proc_result r;

	test_require_kvm();
	netns_enter();
	proc_run(argv, 20, &r);
	ASSERT_EQ(r.status, VM_EXIT_USAGE);
	ASSERT_CONTAINS(r.err, "names its TAP (1 to 15 characters)");
	proc_result_free(&r);
	proc_run(argv2, 20, &r);
	ASSERT_EQ(r.status, VM_EXIT_USAGE);
	ASSERT_CONTAINS(r.err, "mac= is a unicast");
	proc_result_free(&r);
	/* A TAP another process holds: said, and nothing is left of the attempt. */
	netns_tap("lt0");
	{
		char *a3[] = {(char *)VMM, "--payload",	    (char *)VNET, "--memory",
			      "64M",	   "--net",	    "lt0",	  "--net",
			      "lt0",	   "--check-leaks", NULL};

		proc_run(a3, 20, &r);
		ASSERT_EQ(r.status, VM_EXIT_VMM_ERROR);
		ASSERT_CONTAINS(r.err, "TAP lt0: Device or resource busy");
		ASSERT(!strstr(r.err, "LEAK"), "%s", r.err);
		proc_result_free(&r);
	}
}
