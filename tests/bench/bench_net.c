/*
 * bench_net.c - virtio-net's data path (the VMM's own, on a TAP: no
 * vhost-net here), in a network namespace of its own, each figure next to
 * its floor measured in the same run on the same TAP:
 *   net_tx_gbps       the vnetbench payload sending 1514-byte frames, the
 *                     queue kept full (the time the guest measured)
 *   net_tx_floor_gbps a host thread writing the same frames, with their
 *                     virtio-net header, into the TAP itself
 *   net_rx_gbps       frames the host sends on the TAP's interface, as fast
 *                     as it can, received by the payload (first to last)
 *   net_rx_floor_gbps the same frames read from the TAP by a host thread
 *   net_rtt_us        64-byte frames sent by the host and echoed by the
 *                     payload: the median round trip
 *   net_rtt_floor_us  the same, echoed by a host thread on the TAP itself
 *   net_tx_ratio, net_rx_ratio = lego / floor (goal: 0.8 or more)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "util.h"

#define TAP	"lbench0"
#define FRAME	1514
#define TX_N	200000
#define RX_N	100000
#define RTT_N	2000
#define VHDR_TX 12 /* the TAP's header (TUNSETVNETHDRSZ 12, as lego-vmm sets it) */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void sh(const char *cmd)
{
	if (system(cmd)) {
		fprintf(stderr, "bench-net: '%s' failed\n", cmd);
		exit(1);
	}
}

/* The TAP, attached by this process (the floors) or left for lego-vmm (closed). */
static int tap_open(void)
{
	struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR};
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC), hdr = VHDR_TX;

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", TAP);
	if (fd < 0 || ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0) {
		fprintf(stderr, "bench-net: TAP %s: %s\n", TAP, strerror(errno));
		exit(1);
	}
	return fd;
}

static int packet_socket(void)
{
	struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL)};
	int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));

	sll.sll_ifindex = (int)if_nametoindex(TAP);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		fprintf(stderr, "bench-net: packet socket: %s\n", strerror(errno));
		exit(1);
	}
	return fd;
}

static void frame(uint8_t *f, size_t len)
{
	memset(f, 0, len);
	memset(f, 0xff, 6);
	memcpy(f + 6, (uint8_t[]){2, 0, 0, 0, 0, 1}, 6);
	f[12] = 0x88;
	f[13] = 0xb5;
}

static pid_t vmm(const char *args)
{
	char a[128];
	char *argv[] = {(char *)test_path("bin/lego-vmm"),
			"-q",
			"--payload",
			(char *)test_path("guest/payloads/vnetbench.bin"),
			"--memory",
			"64M",
			"--net",
			TAP,
			"--args",
			a,
			NULL};

	snprintf(a, sizeof(a), "%s", args);
	return proc_spawn(argv);
}

/* Wait until the payload reported it is ready (its queues are up). */
static void wait_ready(pid_t pid)
{
	for (int ms = 0; ms < 20000; ms += 10) {
		FILE *f = fopen(proc_out_path(pid), "r");
		char line[256];
		bool ready = false;

		while (f && fgets(line, sizeof(line), f))
			ready |= strstr(line, "ready=1") != NULL;
		if (f)
			fclose(f);
		if (ready)
			return;
		usleep(10000);
	}
	fprintf(stderr, "bench-net: the payload did not start\n");
	exit(1);
}

static uint64_t report(pid_t pid, const char *key)
{
	struct proc_result r;
	uint64_t v = 0;

	proc_collect(pid, 120, &r);
	if (r.status || !report_get(r.out, 0, key, &v)) {
		fprintf(stderr, "bench-net: the payload failed (%d):\n%s%s", r.status, r.out,
			r.err);
		exit(1);
	}
	proc_result_free(&r);
	return v;
}

/* ---- transmit ---- */

static double tx_floor_gbps(void)
{
	uint8_t hdr[VHDR_TX] = {0}, f[FRAME];
	struct iovec iov[2] = {{hdr, sizeof(hdr)}, {f, sizeof(f)}};
	int fd = tap_open();
	uint64_t t0;

	frame(f, sizeof(f));
	t0 = now_ns();
	for (int i = 0; i < TX_N; i++)
		if (writev(fd, iov, 2) < 0)
			break;
	t0 = now_ns() - t0;
	close(fd);
	return (double)TX_N * FRAME * 8 / t0;
}

/* ---- receive: the host sends on the TAP's interface as fast as it can ---- */

struct sender {
	int fd;
	volatile bool stop;
	uint64_t sent;
};

static void *send_main(void *arg)
{
	struct sender *s = arg;
	uint8_t f[FRAME];

	frame(f, sizeof(f));
	while (!s->stop) {
		if (send(s->fd, f, sizeof(f), 0) == (ssize_t)sizeof(f))
			s->sent++;
		else if (errno == ENOBUFS)
			sched_yield();
	}
	return NULL;
}

static double rx_floor_gbps(void)
{
	struct sender s = {.fd = packet_socket()};
	uint8_t buf[65536];
	int fd = tap_open();
	uint64_t t0 = 0, got = 0;
	pthread_t t;

	pthread_create(&t, NULL, send_main, &s);
	while (got < RX_N) {
		struct pollfd p = {.fd = fd, .events = POLLIN};

		if (poll(&p, 1, 5000) <= 0 || read(fd, buf, sizeof(buf)) <= 0)
			break;
		if (!got++)
			t0 = now_ns();
	}
	t0 = now_ns() - t0;
	s.stop = true;
	pthread_join(t, NULL);
	close(fd);
	close(s.fd);
	return (double)got * FRAME * 8 / t0;
}

static double rx_gbps(uint64_t *received)
{
	struct sender s = {.fd = packet_socket()};
	char args[64];
	pthread_t t;
	pid_t p;
	uint64_t ns;

	snprintf(args, sizeof(args), "mode=rx count=%d", RX_N);
	p = vmm(args);
	wait_ready(p);
	pthread_create(&t, NULL, send_main, &s);
	for (int ms = 0; ms < 60000 && proc_running(p); ms += 10)
		usleep(10000);
	s.stop = true;
	pthread_join(t, NULL);
	close(s.fd);
	ns = report(p, "rx_ns");
	*received = RX_N;
	return (double)RX_N * FRAME * 8 / ns;
}

/* ---- round trips of 64-byte frames ---- */

static double rtt_us(int echo_fd)
{
	static uint64_t ns[RTT_N];
	uint8_t f[64], buf[2048];
	int fd = packet_socket();

	frame(f, sizeof(f));
	for (int i = 0; i < RTT_N; i++) {
		uint64_t t0 = now_ns();

		f[20] = (uint8_t)i;
		if (send(fd, f, sizeof(f), 0) != sizeof(f))
			exit(1);
		for (;;) {
			struct pollfd p = {.fd = fd, .events = POLLIN};
			struct sockaddr_ll from;
			socklen_t flen = sizeof(from);
			ssize_t n;

			if (poll(&p, 1, 5000) <= 0) {
				fprintf(stderr, "bench-net: no echo in 5 s\n");
				exit(1);
			}
			n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen);
			if (n >= 21 && from.sll_pkttype != PACKET_OUTGOING && buf[12] == 0x88 &&
			    buf[20] == (uint8_t)i)
				break;
		}
		ns[i] = now_ns() - t0;
	}
	(void)echo_fd;
	close(fd);
	qsort(ns, RTT_N, sizeof(ns[0]), cmp_u64);
	return ns[RTT_N / 2] / 1e3;
}

struct echoer {
	int fd;
	volatile bool stop;
};

static void *echo_main(void *arg)
{
	struct echoer *e = arg;
	uint8_t buf[65536];

	while (!e->stop) {
		struct pollfd p = {.fd = e->fd, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, 100) <= 0)
			continue;
		n = read(e->fd, buf, sizeof(buf));
		if (n > VHDR_TX + 14) {
			memcpy(buf + VHDR_TX, buf + VHDR_TX + 6, 6);
			memset(buf, 0, VHDR_TX);
			if (write(e->fd, buf, (size_t)n) < 0)
				break;
		}
	}
	return NULL;
}

static double rtt_floor_us(void)
{
	struct echoer e = {.fd = tap_open()};
	pthread_t t;
	double us;

	pthread_create(&t, NULL, echo_main, &e);
	us = rtt_us(e.fd);
	e.stop = true;
	pthread_join(t, NULL);
	close(e.fd);
	return us;
}

int main(int argc, char **argv)
{
	double tx, txf, rx, rxf, rtt, rttf;
	uint64_t received;
	char args[64];
	pid_t p;

	if (argc > 1)
		test_set_build_dir(argv[1]);
	if (access("/dev/kvm", R_OK | W_OK) || geteuid() != 0 || unshare(CLONE_NEWNET) < 0) {
		printf("BENCH net skipped=1 reason=\"needs /dev/kvm, root and a network "
		       "namespace\"\n");
		return 0;
	}
	sh("ip link set lo up");
	close(tap_open());
	{ /* the TAP persists between the VMM's runs and the floors */
		int fd = tap_open();

		ioctl(fd, TUNSETPERSIST, 1);
		close(fd);
	}
	sh("echo 1 > /proc/sys/net/ipv6/conf/" TAP "/disable_ipv6; ip link set " TAP " up");

	snprintf(args, sizeof(args), "mode=tx count=%d size=%d", TX_N, FRAME);
	p = vmm(args);
	tx = (double)TX_N * FRAME * 8 / report(p, "tx_ns");
	txf = tx_floor_gbps();

	rx = rx_gbps(&received);
	rxf = rx_floor_gbps();

	snprintf(args, sizeof(args), "mode=echo count=%d", RTT_N);
	p = vmm(args);
	wait_ready(p);
	rtt = rtt_us(-1);
	kill(p, SIGTERM);
	report(p, "rx_frames");
	rttf = rtt_floor_us();

	printf("BENCH net_tx_gbps=%.2f net_tx_floor_gbps=%.2f net_tx_ratio=%.2f frames=%d "
	       "frame_bytes=%d\n",
	       tx, txf, tx / txf, TX_N, FRAME);
	printf("BENCH net_rx_gbps=%.2f net_rx_floor_gbps=%.2f net_rx_ratio=%.2f frames=%llu\n", rx,
	       rxf, rx / rxf, (unsigned long long)received);
	printf("BENCH net_rtt_us=%.1f net_rtt_floor_us=%.1f rtt_frames=%d frame_bytes=64 "
	       "ratio_goal=0.8\n",
	       rtt, rttf, RTT_N);
	return 0;
}
