/* tcpproxy.c - the test proxy of tcpproxy.h: one thread, poll() over every socket. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tcpproxy.h"
#include "test.h"

#define MAX_CONNS 64

struct link {
	int client, server; /* server -1: a silent connection */
};

struct tcpproxy {
	pthread_t thread;
	pthread_mutex_t lock;
	int listen_fd, wake[2];
	struct sockaddr_in upstream;
	struct link links[MAX_CONNS];
	int nr;
	bool silent, stop, cut;
	int accepted, silenced;
	int record_fd; /* -1, or where every byte forwarded goes too */
};

static void drop(struct tcpproxy *p, int i)
{
	close(p->links[i].client);
	if (p->links[i].server >= 0)
		close(p->links[i].server);
	p->links[i] = p->links[--p->nr];
}

/* Move what is readable on @from to @to; false when either side is gone. */
static bool pump(struct tcpproxy *p, int from, int to)
{
	char buf[65536];
	ssize_t n = recv(from, buf, sizeof(buf), MSG_DONTWAIT);

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		return false;
	if (n > 0 && p->record_fd >= 0 && write(p->record_fd, buf, (size_t)n) != n)
		perror("tcpproxy: recording");
	for (ssize_t off = 0; n > 0 && off < n;) {
		ssize_t w = send(to, buf + off, n - off, MSG_NOSIGNAL);

		if (w < 0 && errno != EINTR)
			return false;
		off += w > 0 ? w : 0;
	}
	return true;
}

static void accept_one(struct tcpproxy *p)
{
	int c = accept(p->listen_fd, NULL, NULL), s = -1;

	if (c < 0)
		return;
	pthread_mutex_lock(&p->lock);
	p->accepted++;
	if (p->silent) {
		p->silenced++;
	} else {
		s = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(s, (struct sockaddr *)&p->upstream, sizeof(p->upstream)) < 0) {
			close(s);
			close(c);
			pthread_mutex_unlock(&p->lock);
			return;
		}
	}
	if (p->nr == MAX_CONNS) {
		close(c);
		if (s >= 0)
			close(s);
	} else {
		p->links[p->nr++] = (struct link){c, s};
	}
	pthread_mutex_unlock(&p->lock);
}

static void *proxy_main(void *arg)
{
	struct tcpproxy *p = arg;

	for (;;) {
		struct pollfd pfd[2 + 2 * MAX_CONNS];
		int n = 0, nr;

		pthread_mutex_lock(&p->lock);
		if (p->stop) {
			pthread_mutex_unlock(&p->lock);
			return NULL;
		}
		if (p->cut) {
			for (int i = p->nr - 1; i >= 0; i--)
				if (p->links[i].server >= 0)
					drop(p, i);
			p->cut = false;
		}
		pfd[n++] = (struct pollfd){.fd = p->wake[0], .events = POLLIN};
		pfd[n++] = (struct pollfd){.fd = p->listen_fd, .events = POLLIN};
		nr = p->nr;
		for (int i = 0; i < nr; i++) { /* a silent connection is never read */
			pfd[n++] = (struct pollfd){
				.fd = p->links[i].server >= 0 ? p->links[i].client : -1,
				.events = POLLIN};
			pfd[n++] = (struct pollfd){.fd = p->links[i].server, .events = POLLIN};
		}
		pthread_mutex_unlock(&p->lock);
		if (poll(pfd, n, 1000) <= 0)
			continue;
		if (pfd[0].revents) {
			char b[64];

			if (read(p->wake[0], b, sizeof(b)) < 0)
				continue;
		}
		pthread_mutex_lock(&p->lock);
		for (int i = nr - 1; i >= 0; i--) {
			struct link *l = &p->links[i];
			bool ok = true;

			if (l->server < 0)
				continue;
			if (pfd[2 + 2 * i].revents)
				ok = pump(p, l->client, l->server);
			if (ok && pfd[3 + 2 * i].revents)
				ok = pump(p, l->server, l->client);
			if (!ok)
				drop(p, i);
		}
		pthread_mutex_unlock(&p->lock);
		if (pfd[1].revents)
			accept_one(p);
	}
}

static void wake(struct tcpproxy *p)
{
	if (write(p->wake[1], "x", 1) < 0)
		perror("tcpproxy wake");
}

struct tcpproxy *tcpproxy_start(const char *upstream, char *addr)
{
	struct tcpproxy *p = calloc(1, sizeof(*p));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	const char *colon = strrchr(upstream, ':');

	if (!p || !colon || pipe(p->wake) < 0)
		test_fail(__FILE__, __LINE__, "tcpproxy: cannot start");
	pthread_mutex_init(&p->lock, NULL);
	p->record_fd = -1;
	p->upstream = (struct sockaddr_in){.sin_family = AF_INET,
					   .sin_port = htons(atoi(colon + 1)),
					   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(p->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(p->listen_fd, 16) < 0 ||
	    getsockname(p->listen_fd, (struct sockaddr *)&sa, &len) < 0)
		test_fail(__FILE__, __LINE__, "tcpproxy: cannot listen: %s", strerror(errno));
	snprintf(addr, 64, "127.0.0.1:%d", ntohs(sa.sin_port));
	pthread_create(&p->thread, NULL, proxy_main, p);
	return p;
}

void tcpproxy_silent(struct tcpproxy *p, bool silent)
{
	pthread_mutex_lock(&p->lock);
	p->silent = silent;
	pthread_mutex_unlock(&p->lock);
}

void tcpproxy_cut(struct tcpproxy *p)
{
	pthread_mutex_lock(&p->lock);
	p->cut = true;
	pthread_mutex_unlock(&p->lock);
	wake(p);
}

void tcpproxy_counts(struct tcpproxy *p, int *accepted, int *silenced)
{
	pthread_mutex_lock(&p->lock);
	*accepted = p->accepted;
	*silenced = p->silenced;
	pthread_mutex_unlock(&p->lock);
}

void tcpproxy_stop(struct tcpproxy *p)
{
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_mutex_unlock(&p->lock);
	wake(p);
	pthread_join(p->thread, NULL);
	while (p->nr)
		drop(p, p->nr - 1);
	close(p->listen_fd);
	close(p->wake[0]);
	close(p->wake[1]);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

void tcpproxy_record(struct tcpproxy *p, int fd)
{
	pthread_mutex_lock(&p->lock);
	p->record_fd = fd;
	pthread_mutex_unlock(&p->lock);
}
