/* fuzz.h - what every libFuzzer harness in tests/fuzz/ shares. */
#ifndef LEGO_FUZZ_H
#define LEGO_FUZZ_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* must - a property the parser's answer has to have: a crash (libFuzzer keeps the input)
 * that says which, when it does not. */
#define must(cond, what)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s: %s\n", __FILE__, (what));                             \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* fuzz_listen - a listening socket on a free loopback port; "127.0.0.1:PORT" in @addr
 * (a harness that only needs a free port for a server of its own closes it). */
static inline int fuzz_listen(char *addr, size_t len)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	char err[256];
	int fd = tcp_listen("127.0.0.1:0", 0, err, sizeof(err));

	must(fd >= 0 && !getsockname(fd, (struct sockaddr *)&sa, &sl), "no loopback port");
	snprintf(addr, len, "127.0.0.1:%u", ntohs(sa.sin_port));
	return fd;
}

/*
 * fuzz_connect - a blocking connection to @addr (tried for 5 s: the server may
 * be starting) whose reads wait at most @timeout_s (longer is a hang: a
 * finding), that sends small writes at once, and that closes with a reset:
 * thousands of connections a second would otherwise leave the loopback's
 * ports all in TIME_WAIT.
 */
static inline int fuzz_connect(const char *addr, int timeout_s)
{
	struct timeval tv = {.tv_sec = timeout_s};
	char err[256];

	for (int i = 0; i < 500; i++) {
		int fd = tcp_connect(addr, 1000, err, sizeof(err));

		if (fd < 0) {
			usleep(10000);
			continue;
		}
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &(struct linger){1, 0},
			   sizeof(struct linger));
		return fd;
	}
	must(false, "nothing accepts connections at the address");
	return -1;
}

/* fuzz_read_all - exactly @len bytes from @fd: false at the end of the stream or an
 * error; a read that times out (SO_RCVTIMEO, fuzz_connect) is a hang, a finding. */
static inline bool fuzz_read_all(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = recv(fd, p, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		must(n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK),
		     "no answer within the connection's timeout");
		if (n <= 0)
			return false;
		p += n, len -= (size_t)n;
	}
	return true;
}

/* fuzz_write_all - @len bytes to @fd, or as many as the peer takes before it hangs up. */
static inline void fuzz_write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		p += n, len -= (size_t)n;
	}
}

static inline int fuzz_remove_one(const char *path, const struct stat *st, int flag,
				  struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

/* fuzz_remove_tree - @dir and everything in it (a harness's files, at its exit). */
static inline void fuzz_remove_tree(const char *dir)
{
	nftw(dir, fuzz_remove_one, 8, FTW_DEPTH | FTW_PHYS);
}

/*
 * fuzz_frames - what a peer that says anything sends, from @len input bytes:
 * frames of a flag byte and a struct lmp_hdr with its body (cut to what the
 * input holds), the magic and version set unless flag bit 0 says to leave
 * them as they are. Into @out (at most @cap bytes, whole frames): its length.
 */
static inline size_t fuzz_frames(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i + 1 + sizeof(struct lmp_hdr) <= len;) {
		struct lmp_hdr h;
		size_t body;

		memcpy(&h, in + i + 1, sizeof(h));
		if (!(in[i] & 1)) {
			h.magic = LMP_MAGIC;
			h.version = LMP_VERSION;
		}
		i += 1 + sizeof(h);
		body = h.len < len - i ? h.len : len - i;
		if (n + sizeof(h) + body > cap)
			break;
		memcpy(out + n, &h, sizeof(h));
		memcpy(out + n + sizeof(h), in + i, body);
		n += sizeof(h) + body;
		i += body;
	}
	return n;
}

#endif
