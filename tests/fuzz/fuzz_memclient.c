/*
 * fuzz_memclient.c - the VMM's memory-server client (vmm/memclient.c over
 * common/xport.c) answered by a memory server that says whatever the input
 * says. The input is a count of calls, the calls (read, write, discard,
 * release, backup, backup's state, stat, with their page counts), and the
 * bytes the peer sends on the connection: frames of a flag byte and a
 * struct lmp_hdr with its body, the magic and version set unless flag bit
 * 0 says to leave them as the input has them (request ids count from 1, the
 * HELLO's). The peer sends them all, then hangs up. memclient_open_at and
 * every call after it must return 0 or -errno, a read that succeeds must
 * have been given its pages whole, and nothing may be touched outside the
 * buffers (ASan); once the stream is out of step (xport.broken), every
 * call fails.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "log.h"
#include "memclient.h"

#define MAX_CALLS 16

static int listen_fd;
static char addr[64];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static const uint8_t *script;
static size_t script_len;
static bool served; /* the peer is done with this input's connection */

static void *peer(void *arg)
{
	static uint8_t sink[65536];

	(void)arg;
	for (;;) {
		int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		const uint8_t *p;
		size_t len;

		if (fd < 0)
			continue;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
		pthread_mutex_lock(&lock);
		p = script, len = script_len;
		pthread_mutex_unlock(&lock);
		fuzz_write_all(fd, p, len);
		shutdown(fd, SHUT_WR);
		while (recv(fd, sink, sizeof(sink), 0) > 0) /* until the client hangs up */
			;
		close(fd);
		pthread_mutex_lock(&lock);
		served = true;
		pthread_cond_signal(&cond);
		pthread_mutex_unlock(&lock);
	}
	return NULL;
}

static void start_peer(void)
{
	pthread_t t;

	log_init("fuzz_memclient", LOG_NONE);
	listen_fd = fuzz_listen(addr, sizeof(addr));
	must(pthread_create(&t, NULL, peer, NULL) == 0, "no peer thread");
	pthread_detach(t);
}

static void must_be_errno(int ret)
{
	must(ret <= 0 && ret > -4096, "a result that is not 0 or -errno");
}

/* Call @op (its low 3 bits) with @count pages; its result. */
static int call(struct memclient *mc, uint8_t op, uint32_t count)
{
	static uint8_t pages[LMP_MAX_PAGES][LMP_PAGE];
	static uint64_t numbers[LMP_MAX_PAGES];
	void *data[LMP_MAX_PAGES];
	uint64_t before = mc->bytes_in;
	int ret;

	switch (op % 7) {
	case 0:
		ret = memclient_read(mc, 7, count, pages);
		if (!ret)
			must(mc->bytes_in - before == (uint64_t)count * LMP_PAGE,
			     "a read that succeeded without its pages");
		return ret;
	case 1:
		for (uint32_t i = 0; i < count; i++)
			numbers[i] = i * 3, data[i] = pages[i];
		return memclient_write(mc, numbers, data, count);
	case 2:
		return memclient_discard(mc, 0, count);
	case 3:
		return memclient_release(mc);
	case 4: {
		struct lmp_backup b = {.storsrv = "127.0.0.1:1", .volume = "v", .nr_pages = count};

		return memclient_backup(mc, &b);
	}
	case 5: {
		struct lmp_backup_stat st;

		return memclient_backup_stat(mc, &st);
	}
	default: {
		struct lmp_stat st;

		return memclient_stat(mc, &st);
	}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t stream[1 << 20];
	struct memclient_cred cred = {.vnode = 1, .nr_pages = 1024};
	struct memclient mc;
	char err[256];
	size_t n, nr;
	int ret;

	if (!addr[0])
		start_peer();
	if (size < 1)
		return 0;
	nr = data[0] % (MAX_CALLS + 1);
	data++, size--;
	if (size < 2 * nr)
		return 0;
	n = fuzz_frames(data + 2 * nr, size - 2 * nr, stream, sizeof(stream));
	pthread_mutex_lock(&lock);
	script = stream;
	script_len = n;
	served = false;
	pthread_mutex_unlock(&lock);
	ret = memclient_open_at(&mc, addr, &cred, 0, 0, 2000, err, sizeof(err));
	must_be_errno(ret);
	must(ret || mc.x, "opened without a connection");
	must(!ret || err[0], "a refusal without a reason");
	for (size_t i = 0; !ret && i < nr; i++) {
		int broken = mc.x->broken;
		int r = call(&mc, data[2 * i], 1 + data[2 * i + 1] % LMP_MAX_PAGES);

		must_be_errno(r);
		/* a stream out of step stays broken: nothing after it may succeed */
		must(!broken || (r && mc.x->broken == broken),
		     "a call succeeded on a connection out of step");
	}
	if (!ret)
		memclient_close(&mc);
	pthread_mutex_lock(&lock); /* the peer is done before the next input's */
	while (!served)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	return 0;
}
