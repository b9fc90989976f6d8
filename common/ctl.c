/* ctl.c - JSON-lines control socket server and client (see ctl.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"
#include "log.h"
#include "util.h"

#define CTL_MAX_CLIENTS 16
#define CTL_MAX_LINE	(64 * 1024)
#define CTL_MAX_CMDS	64

struct ctl_cmd {
	char *name;
	char *help;
	ctl_handler fn;
	void *opaque;
};

struct ctl_client {
	int fd;
	size_t len;
	char buf[CTL_MAX_LINE];
};

struct ctl {
	char *path;
	int listen_fd;
	int wake_fd;
	pthread_t thread;
	int running;
	pthread_mutex_t lock; /* protects cmds: registration may follow ctl_start */
	struct ctl_cmd cmds[CTL_MAX_CMDS];
	int nr_cmds;
	struct ctl_client *clients[CTL_MAX_CLIENTS];
};

static int ctl_fill_addr(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	strcpy(sa->sun_path, path);
	return 0;
}

static json_t *ctl_help(void *opaque, json_t *req, char *err, size_t errlen)
{
	struct ctl *ctl = opaque;
	json_t *cmds = json_object();

	(void)req, (void)err, (void)errlen;
	/* Called with ctl->lock held by ctl_dispatch. */
	for (int i = 0; i < ctl->nr_cmds; i++)
		json_object_set_new(cmds, ctl->cmds[i].name, json_string(ctl->cmds[i].help));
	return json_pack("{s:o}", "commands", cmds);
}

struct ctl *ctl_create(const char *path)
{
	struct sockaddr_un sa;
	struct ctl *ctl;

	if (ctl_fill_addr(path, &sa)) {
		log_err("control socket path %s is too long (max %zu bytes)", path,
			sizeof(sa.sun_path) - 1);
		return NULL;
	}
	ctl = calloc(1, sizeof(*ctl));
	if (!ctl)
		return NULL;
	pthread_mutex_init(&ctl->lock, NULL);
	ctl->path = strdup(path);
	ctl->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ctl->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ctl->listen_fd < 0 || ctl->wake_fd < 0)
		goto fail;
	/* A socket file left by a dead process would make bind fail: replace it,
	 * but only if nobody answers on it. */
	if (bind(ctl->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int probe, alive;

		if (errno != EADDRINUSE)
			goto fail;
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		alive = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		if (probe >= 0)
			close(probe);
		if (alive) {
			log_err("control socket %s is in use by another process", path);
			goto fail_quiet;
		}
		unlink(path);
		if (bind(ctl->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			goto fail;
	}
	if (listen(ctl->listen_fd, 8) < 0)
		goto fail;
	ctl_register(ctl, "help", ctl_help, ctl, "list the commands this socket serves");
	return ctl;
fail:
	log_err("control socket %s: %s", path, strerror(errno));
fail_quiet:
	if (ctl->listen_fd >= 0)
		close(ctl->listen_fd);
	if (ctl->wake_fd >= 0)
		close(ctl->wake_fd);
	free(ctl->path);
	free(ctl);
	return NULL;
}

int ctl_register(struct ctl *ctl, const char *cmd, ctl_handler fn, void *opaque, const char *help)
{
	int ret = 0;

	pthread_mutex_lock(&ctl->lock);
	if (ctl->nr_cmds == CTL_MAX_CMDS) {
		ret = -ENOSPC;
	} else {
		struct ctl_cmd *c = &ctl->cmds[ctl->nr_cmds++];

		c->name = strdup(cmd);
		c->help = strdup(help);
		c->fn = fn;
		c->opaque = opaque;
	}
	pthread_mutex_unlock(&ctl->lock);
	return ret;
}

static json_t *ctl_error(const char *msg)
{
	return json_pack("{s:b,s:s}", "ok", 0, "error", msg);
}

static json_t *ctl_dispatch(struct ctl *ctl, const char *line)
{
	char err[512] = "";
	json_error_t jerr;
	json_t *req, *res = NULL, *out;
	const char *name;

	req = json_loads(line, 0, &jerr);
	if (!req) {
		snprintf(err, sizeof(err), "malformed JSON at column %d: %s", jerr.column,
			 jerr.text);
		return ctl_error(err);
	}
	name = json_string_value(json_object_get(req, "cmd"));
	if (!json_is_object(req) || !name) {
		json_decref(req);
		return ctl_error("a request is a JSON object with a string member \"cmd\"");
	}
	pthread_mutex_lock(&ctl->lock);
	for (int i = 0; i < ctl->nr_cmds; i++) {
		if (strcmp(ctl->cmds[i].name, name) == 0) {
			res = ctl->cmds[i].fn(ctl->cmds[i].opaque, req, err, sizeof(err));
			if (!res && !err[0])
				snprintf(err, sizeof(err), "command %s failed", name);
			goto found;
		}
	}
	snprintf(err, sizeof(err), "unknown command \"%s\" (try {\"cmd\":\"help\"})", name);
found:
	pthread_mutex_unlock(&ctl->lock);
	json_decref(req);
	if (!res)
		return ctl_error(err);
	out = json_pack("{s:b}", "ok", 1);
	json_object_update(out, res);
	json_decref(res);
	return out;
}

static void ctl_send(int fd, json_t *msg)
{
	char *text = json_dumps(msg, JSON_COMPACT);
	size_t len, off = 0;

	if (!text)
		return;
	len = strlen(text);
	text[len] = '\n'; /* json_dumps leaves room: replaced NUL, send len + 1 */
	while (off < len + 1) {
		ssize_t n = send(fd, text + off, len + 1 - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += n;
	}
	free(text);
}

static void ctl_close_client(struct ctl *ctl, int slot)
{
	close(ctl->clients[slot]->fd);
	free(ctl->clients[slot]);
	ctl->clients[slot] = NULL;
}

/* Returns false when the client must be dropped. */
static int ctl_client_readable(struct ctl *ctl, struct ctl_client *c)
{
	ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
	char *nl;

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 1;
	if (n <= 0)
		return 0;
	c->len += n;
	while ((nl = memchr(c->buf, '\n', c->len))) {
		json_t *res;

		*nl = '\0';
		res = ctl_dispatch(ctl, c->buf);
		ctl_send(c->fd, res);
		json_decref(res);
		c->len -= nl + 1 - c->buf;
		memmove(c->buf, nl + 1, c->len);
	}
	if (c->len == sizeof(c->buf)) {
		json_t *res = ctl_error("request longer than 64 KiB without a newline");

		ctl_send(c->fd, res);
		json_decref(res);
		return 0;
	}
	return 1;
}

static void *ctl_thread(void *arg)
{
	struct ctl *ctl = arg;

	prctl(PR_SET_NAME, "control"); /* as ps, and a seccomp refusal, name it */
	for (;;) {
		struct pollfd pfd[CTL_MAX_CLIENTS + 2];
		int slot_of[CTL_MAX_CLIENTS + 2];
		int n = 0;

		pfd[n++] = (struct pollfd){.fd = ctl->wake_fd, .events = POLLIN};
		pfd[n++] = (struct pollfd){.fd = ctl->listen_fd, .events = POLLIN};
		for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
			if (ctl->clients[i]) {
				slot_of[n] = i;
				pfd[n++] = (struct pollfd){.fd = ctl->clients[i]->fd,
							   .events = POLLIN};
			}
		}
		if (poll(pfd, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_err("control socket poll: %s", strerror(errno));
			return NULL;
		}
		if (pfd[0].revents)
			return NULL;
		for (int i = 2; i < n; i++) {
			if (pfd[i].revents && !ctl_client_readable(ctl, ctl->clients[slot_of[i]]))
				ctl_close_client(ctl, slot_of[i]);
		}
		if (pfd[1].revents & POLLIN) {
			int fd = accept4(ctl->listen_fd, NULL, NULL, SOCK_CLOEXEC);
			int slot = -1;

			if (fd < 0)
				continue;
			for (int i = 0; i < CTL_MAX_CLIENTS && slot < 0; i++)
				if (!ctl->clients[i])
					slot = i;
			if (slot < 0) {
				json_t *res = ctl_error("too many control connections");

				ctl_send(fd, res);
				json_decref(res);
				close(fd);
				continue;
			}
			ctl->clients[slot] = calloc(1, sizeof(struct ctl_client));
			if (!ctl->clients[slot]) {
				close(fd);
				continue;
			}
			ctl->clients[slot]->fd = fd;
		}
	}
}

int ctl_start(struct ctl *ctl)
{
	int ret = pthread_create(&ctl->thread, NULL, ctl_thread, ctl);

	if (ret)
		return -ret;
	ctl->running = 1;
	return 0;
}

void ctl_destroy(struct ctl *ctl)
{
	uint64_t one = 1;

	if (!ctl)
		return;
	if (ctl->running) {
		if (write(ctl->wake_fd, &one, sizeof(one)) < 0)
			log_warn("control socket: cannot wake its thread: %s", strerror(errno));
		pthread_join(ctl->thread, NULL);
	}
	for (int i = 0; i < CTL_MAX_CLIENTS; i++)
		if (ctl->clients[i])
			ctl_close_client(ctl, i);
	close(ctl->listen_fd);
	close(ctl->wake_fd);
	unlink(ctl->path);
	for (int i = 0; i < ctl->nr_cmds; i++) {
		free(ctl->cmds[i].name);
		free(ctl->cmds[i].help);
	}
	pthread_mutex_destroy(&ctl->lock);
	free(ctl->path);
	free(ctl);
}

json_t *ctl_call(const char *path, json_t *req, int timeout_ms, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	char *text = NULL, buf[CTL_MAX_LINE];
	size_t len = 0;
	json_error_t jerr;
	json_t *res = NULL;
	int fd = -1;
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ULL;

	if (ctl_fill_addr(path, &sa)) {
		snprintf(err, errlen, "socket path too long: %s", path);
		return NULL;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		snprintf(err, errlen, "cannot connect to %s: %s", path, strerror(errno));
		goto out;
	}
	text = json_dumps(req, JSON_COMPACT);
	if (!text)
		goto out;
	len = strlen(text);
	text[len] = '\n';
	if (send(fd, text, len + 1, MSG_NOSIGNAL) != (ssize_t)(len + 1)) {
		snprintf(err, errlen, "cannot send to %s: %s", path, strerror(errno));
		goto out;
	}
	len = 0;
	while (!memchr(buf, '\n', len)) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int64_t left = (int64_t)(deadline - now_ns()) / 1000000;
		ssize_t n;

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
			snprintf(err, errlen, "no answer from %s within %d ms", path, timeout_ms);
			goto out;
		}
		n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
		if (n <= 0) {
			snprintf(err, errlen, "%s closed the connection", path);
			goto out;
		}
		len += n;
		if (len == sizeof(buf) - 1) {
			snprintf(err, errlen, "answer from %s too long", path);
			goto out;
		}
	}
	*(char *)memchr(buf, '\n', len) = '\0';
	res = json_loads(buf, 0, &jerr);
	if (!res)
		snprintf(err, errlen, "malformed answer from %s: %s", path, jerr.text);
out:
	free(text);
	if (fd >= 0)
		close(fd);
	return res;
}
