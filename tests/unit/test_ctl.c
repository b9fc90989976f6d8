/* test_ctl.c - the JSON control socket: commands, errors, bad input, stale sockets. */
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"
#include "log.h"
#include "test.h"

static json_t *echo(void *opaque, json_t *req, char *err, size_t errlen)
{
	int *calls = opaque;
	json_t *x = json_object_get(req, "x");

	(*calls)++;
	if (!json_is_integer(x)) {
		snprintf(err, errlen, "x must be an integer");
		return NULL;
	}
	return json_pack("{s:I}", "twice", 2 * json_integer_value(x));
}

static const char *sock_path(void)
{
	static char p[300];

	snprintf(p, sizeof(p), "%s/ctl.sock", test_tmpdir());
	return p;
}

static json_t *call(const char *text)
{
	char err[256];
	json_t *req = json_loads(text, 0, NULL), *res;

	ASSERT(req != NULL);
	res = ctl_call(sock_path(), req, 2000, err, sizeof(err));
	json_decref(req);
	ASSERT(res != NULL, "%s", err);
	return res;
}

/* Send raw bytes and return the first line of the answer. */
static char *raw(const char *bytes, size_t len)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	static char buf[4096];
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	size_t got = 0;

	strcpy(sa.sun_path, sock_path());
	ASSERT(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	for (size_t off = 0; off < len;) {
		ssize_t n = send(fd, bytes + off, len - off, MSG_NOSIGNAL);

		if (n <= 0)
			break;
		off += n;
	}
	while (got < sizeof(buf) - 1 && !memchr(buf, '\n', got)) {
		ssize_t n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);

		if (n <= 0)
			break;
		got += n;
	}
	buf[got] = '\0';
	close(fd);
	return buf;
}

TEST(ctl_serves_registered_commands_and_help)
{
	int calls = 0;
	struct ctl *ctl;
	json_t *res;

	log_init("test", LOG_ERR);
	ctl = ctl_create(sock_path());
	ASSERT(ctl != NULL);
	ASSERT_EQ(ctl_register(ctl, "echo", echo, &calls, "doubles x"), 0);
	ASSERT_EQ(ctl_start(ctl), 0);
	res = call("{\"cmd\":\"echo\",\"x\":21}");
	ASSERT(json_is_true(json_object_get(res, "ok")));
	ASSERT_EQ(json_integer_value(json_object_get(res, "twice")), 42);
	json_decref(res);
	res = call("{\"cmd\":\"echo\",\"x\":\"no\"}");
	ASSERT(json_is_false(json_object_get(res, "ok")));
	ASSERT_CONTAINS(json_string_value(json_object_get(res, "error")), "x must be an integer");
	json_decref(res);
	res = call("{\"cmd\":\"help\"}");
	ASSERT(json_object_get(json_object_get(res, "commands"), "echo") != NULL);
	json_decref(res);
	ASSERT_EQ(calls, 2);
	ctl_destroy(ctl);
	ASSERT(access(sock_path(), F_OK) != 0, "the socket file is removed");
}

TEST(ctl_answers_bad_input_with_errors_and_keeps_serving)
{
	int calls = 0;
	struct ctl *ctl = ctl_create(sock_path());
	static char big[70 * 1024];
	json_t *res;

	log_init("test", LOG_ERR);
	ASSERT(ctl != NULL);
	ctl_register(ctl, "echo", echo, &calls, "doubles x");
	ctl_start(ctl);
	ASSERT_CONTAINS(raw("{not json\n", 10), "malformed JSON");
	ASSERT_CONTAINS(raw("[1,2]\n", 6), "string member \\\"cmd\\\"");
	ASSERT_CONTAINS(raw("{\"cmd\":7}\n", 10), "\"ok\":false");
	ASSERT_CONTAINS(raw("{\"cmd\":\"nope\"}\n", 15), "unknown command");
	memset(big, 'a', sizeof(big));
	ASSERT_CONTAINS(raw(big, sizeof(big)), "longer than 64 KiB");
	res = call("{\"cmd\":\"echo\",\"x\":1}");
	ASSERT_EQ(json_integer_value(json_object_get(res, "twice")), 2);
	json_decref(res);
	ctl_destroy(ctl);
}

TEST(ctl_replaces_a_stale_socket_but_not_a_live_one)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct ctl *a, *b;

	log_init("test", LOG_ERR);
	strcpy(sa.sun_path, sock_path());
	ASSERT(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	close(fd); /* a socket file nobody listens on: what a killed process leaves */
	a = ctl_create(sock_path());
	ASSERT(a != NULL, "a stale socket file is replaced");
	b = ctl_create(sock_path());
	ASSERT(b == NULL, "a live control socket is not stolen");
	ctl_destroy(a);
}
