/*
 * fuzz_blk_net.c - the VMM's disk client (vmm/blk_net.c) answered by a
 * storage server that says whatever the input says. blk_net_open connects
 * to a peer on a loopback port run by this harness, which answers its
 * VOL_STAT properly; the input then names up to eight I/Os (reads, writes,
 * flushes, discards; some longer than one wire request) that are submitted,
 * and the bytes the peer sends back on that connection: frames of a flag
 * byte and a struct lmp_hdr with its body, the magic and version set unless
 * flag bit 0 says to leave them as the input has them, ids as the input
 * has them (the I/Os' chunks are numbered from 1). Then the peer hangs up;
 * blk_net reconnects, sends what was not acknowledged again, and this time
 * the peer is a correct server. Every I/O must complete exactly once, with
 * 0 or -errno, and nothing be touched outside its buffers (ASan).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "blk.h"
#include "fuzz.h"
#include "log.h"
#include "proto.h"

#define MAX_IOS	    8
#define VOLUME_SIZE (4ULL << 20)

struct io {
	struct blk_io io;
	struct iovec iov[2];
	atomic_int done;
	int result;
};

static int listen_fd;
static char url[128];
static uint8_t token[LMP_TOKEN_LEN];

/* what the peer sends on the first connection, and when */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static const uint8_t *script;
static size_t script_len;
static bool go;

/* A request, its body dropped; false at the end of the stream. */
static bool read_request(int fd, struct lmp_hdr *h, uint8_t *body, size_t cap)
{
	if (!fuzz_read_all(fd, h, sizeof(*h)))
		return false;
	must(h->magic == LMP_MAGIC && h->version == LMP_VERSION && h->len <= cap,
	     "blk_net sent a malformed request");
	return fuzz_read_all(fd, body, h->len);
}

static uint8_t peer_body[LMP_MAX_BODY];

/* blk_net_open's connection (@h is its VOL_STAT): answered, then the input's
 * bytes are sent, then the peer hangs up. */
static void scripted(int fd, const struct lmp_hdr *h)
{
	struct lmp_hdr r;
	struct lmp_vol_info info = {.size = VOLUME_SIZE};

	lmp_hdr_init(&r, LMP_VOL_STAT | LMP_RESPONSE, h->id, sizeof(info), 0);
	fuzz_write_all(fd, &r, sizeof(r));
	fuzz_write_all(fd, &info, sizeof(info));
	pthread_mutex_lock(&lock);
	while (!go)
		pthread_cond_wait(&cond, &lock);
	go = false;
	pthread_mutex_unlock(&lock);
	fuzz_write_all(fd, script, script_len);
	shutdown(fd, SHUT_WR);
	while (read_request(fd, &r, peer_body, sizeof(peer_body))) /* until blk_net hangs up */
		;
}

/* A reconnection (it begins with a PING): a correct server, from @h on. */
static void correct(int fd, struct lmp_hdr h)
{
	static uint8_t out[LMP_BLK_MAX];
	struct lmp_hdr r;

	do {
		struct lmp_blk b = {0};
		uint32_t len = 0;

		if (h.len >= sizeof(b))
			memcpy(&b, peer_body, sizeof(b));
		if (h.type == LMP_BLK_READ)
			len = b.length <= LMP_BLK_MAX ? b.length : 0;
		lmp_hdr_init(&r, h.type | LMP_RESPONSE, h.id, len, 0);
		fuzz_write_all(fd, &r, sizeof(r));
		fuzz_write_all(fd, out, len);
	} while (read_request(fd, &h, peer_body, sizeof(peer_body)));
}

static void *peer(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		struct lmp_hdr h;

		if (fd < 0)
			continue;
		/* a header and its body go in two writes: not 40 ms apart */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
		/* one at a time: blk_net reconnects only after it gave the last one up */
		if (read_request(fd, &h, peer_body, sizeof(peer_body))) {
			if (h.type == LMP_VOL_STAT)
				scripted(fd, &h);
			else
				correct(fd, h);
		}
		close(fd);
	}
	return NULL;
}

static void start_peer(void)
{
	char peer_addr[64];
	pthread_t t;

	log_init("fuzz_blk_net", LOG_NONE); /* blk_net's warnings are expected here */
	listen_fd = fuzz_listen(peer_addr, sizeof(peer_addr));
	snprintf(url, sizeof(url), "%s%s/fuzz", BLK_NET_SCHEME, peer_addr);
	must(pthread_create(&t, NULL, peer, NULL) == 0, "no peer thread");
	pthread_detach(t);
}

static void io_done(struct blk_io *bio, int result)
{
	struct io *io = bio->opaque;

	io->result = result;
	must(atomic_fetch_add(&io->done, 1) == 0, "an I/O completed twice");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct io ios[MAX_IOS];
	static uint8_t stream[1 << 20];
	struct blk_backend *be;
	size_t n;
	int nr;

	if (!url[0])
		start_peer();
	if (size < 1)
		return 0;
	nr = 1 + data[0] % MAX_IOS;
	data++, size--;
	if (size < (size_t)nr * 5)
		return 0;
	n = fuzz_frames(data + (size_t)nr * 5, size - (size_t)nr * 5, stream, sizeof(stream));
	pthread_mutex_lock(&lock);
	script = stream;
	script_len = n;
	pthread_mutex_unlock(&lock);
	must(blk_net_open(url, token, 5000, &be) == 0, "blk_net_open refused a good volume");
	must(be->size == VOLUME_SIZE, "the volume's size is not the server's");
	for (int i = 0; i < nr; i++) {
		const uint8_t *d = data + 5 * i;
		struct io *io = &ios[i];
		uint64_t off = (uint64_t)(d[1] | d[2] << 8) * 512 % VOLUME_SIZE;
		uint64_t len = (uint64_t)(1 + (d[3] | d[4] << 8) % 1024) * 512; /* to 512 KiB */
		/* two buffers, so that a response is scattered */
		size_t half = len / 2;

		memset(io, 0, sizeof(*io));
		io->io = (struct blk_io){.op = (enum blk_op)(d[0] % 5),
					 .offset = off,
					 .len = len,
					 .iov = io->iov,
					 .iovcnt = 2,
					 .done = io_done,
					 .opaque = io};
		io->iov[0] = (struct iovec){malloc(half ? half : 1), half};
		io->iov[1] = (struct iovec){malloc(len - half), len - half};
		if (io->io.op == BLK_FLUSH || io->io.op == BLK_DISCARD ||
		    io->io.op == BLK_WRITE_ZEROES)
			io->io.iovcnt = 0;
		must(be->ops->submit(be, &io->io) == 0, "blk_net refused an I/O");
	}
	pthread_mutex_lock(&lock);
	go = true;
	pthread_cond_signal(&cond);
	pthread_mutex_unlock(&lock);
	be->ops->close(be); /* waits for every I/O */
	for (int i = 0; i < nr; i++) {
		must(atomic_load(&ios[i].done) == 1, "an I/O never completed");
		must(ios[i].result <= 0 && ios[i].result > -4096, "a result that is not -errno");
		free(ios[i].iov[0].iov_base);
		free(ios[i].iov[1].iov_base);
	}
	return 0;
}
