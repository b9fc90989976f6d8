/*
 * fuzz_api.c - lego-manager's HTTP API (manager/api.c and what its handlers
 * call: heartbeats, vNode specs and libvirt XML, the placement, the flows,
 * the database) fed any request a caller could send. The manager's routes
 * are served by the real HTTP server (common/http.c, libmicrohttpd) on a
 * loopback port, in plain HTTP (roles are the TLS layer's, tested
 * elsewhere), over a manager with its own cluster identity and a fresh
 * in-memory SQLite database for each input. The input is up to eight
 * requests, each a method byte, a path up to a newline (bytes a request
 * line cannot carry are %-escaped) and a body up to a NUL byte. Every
 * request must get a whole HTTP answer with a status the API gives (no
 * "handler gave no answer"), a JSON body that parses where it says JSON,
 * and afterwards the vNode list must be what the manager holds.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "http.h"
#include "log.h"
#include "manager.h"
#include "pki.h"

#define MAX_REQUESTS 8

static struct manager m, base; /* base: the identity, kept from input to input */
static char addr[64];
static char reply[1 << 22];

static char pki_dir[] = "/tmp/fuzz_api.XXXXXX";

/* The cluster's identity (keys, 0600, in a 0700 directory) goes with the process. */
static void remove_pki(void)
{
	fuzz_remove_tree(pki_dir);
}

static void start(void)
{
	char err[512];

	log_init("fuzz_api", LOG_NONE); /* refusals are the answers */
	must(mkdtemp(pki_dir), "no directory for the cluster's identity");
	atexit(remove_pki);
	must(pki_init_cluster(pki_dir, "fuzz", NULL, err, sizeof(err)) == 0, "pki_init_cluster");
	must(members_init(&base, pki_dir, err, sizeof(err)) == 0, "members_init");
	close(fuzz_listen(addr, sizeof(addr))); /* a free port, which the API takes */
	must(httpd_start(addr, api_routes, &m, NULL, err, sizeof(err)) != NULL, "httpd_start");
}

/* One request on its own connection; the answer's status, its body in *@body. */
static int request(const char *method, const char *path, const char *body, size_t body_len,
		   const char **out, size_t *out_len, bool *json)
{
	char head[8400];
	size_t got = 0;
	int fd = fuzz_connect(addr, 30), n, status;
	char *end;

	n = snprintf(head, sizeof(head),
		     "%s %s HTTP/1.1\r\nHost: manager\r\nConnection: close\r\n"
		     "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n",
		     method, path,
		     body_len && body[0] == '<' ? "application/xml" : "application/json", body_len);
	send(fd, head, (size_t)n, MSG_NOSIGNAL);
	send(fd, body, body_len, MSG_NOSIGNAL);
	for (;;) {
		ssize_t r = recv(fd, reply + got, sizeof(reply) - 1 - got, 0);

		must(r >= 0 || errno == EINTR, "no answer within 30 s");
		if (r <= 0)
			break;
		got += (size_t)r;
		must(got < sizeof(reply) - 1, "an answer of more than 4 MiB");
	}
	close(fd);
	reply[got] = '\0';
	must(got > 12 && !strncmp(reply, "HTTP/1.1 ", 9), "not an HTTP answer");
	status = (int)strtol(reply + 9, &end, 10);
	must(end == reply + 12 && status >= 200 && status < 600, "no status in the answer");
	end = strstr(reply, "\r\n\r\n");
	must(end != NULL, "an answer without the end of its header");
	*json = strstr(reply, "Content-Type: application/json") &&
		strstr(reply, "Content-Type: application/json") < end;
	*out = end + 4;
	*out_len = got - (size_t)(end + 4 - reply);
	return status;
}

/* @len bytes of @p as a request target: what a request line cannot carry, %-escaped. */
static void target(char *buf, size_t cap, const uint8_t *p, size_t len)
{
	size_t n = 0;

	if (!len || p[0] != '/')
		buf[n++] = '/';
	for (size_t i = 0; i < len && n + 4 < cap; i++) {
		if (p[i] <= ' ' || p[i] >= 0x7f || p[i] == '#')
			n += (size_t)snprintf(buf + n, cap - n, "%%%02X", p[i]);
		else
			buf[n++] = (char)p[i];
	}
	buf[n] = '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const methods[] = {"GET", "POST", "DELETE", "PUT"};
	const uint8_t *p = data, *end = data + size;
	char err[512], path[4096];
	const char *out;
	size_t out_len;
	json_t *all;
	bool json;

	if (!addr[0])
		start();
	m = base;
	must(manager_init(&m, ":memory:", err, sizeof(err)) == 0, "manager_init");
	for (int i = 0; i < MAX_REQUESTS && p < end; i++) {
		const char *method = methods[p[0] % 4];
		const uint8_t *nl = memchr(p + 1, '\n', (size_t)(end - p - 1)), *body, *nul;
		int status;

		if (!nl)
			break;
		target(path, sizeof(path), p + 1, (size_t)(nl - p - 1));
		body = nl + 1;
		nul = memchr(body, '\0', (size_t)(end - body));
		status = request(method, path, (const char *)body,
				 (size_t)((nul ? nul : end) - body), &out, &out_len, &json);
		must(!strstr(out, "gave no answer"), "a handler that gave no answer");
		if (json) {
			json_t *j = json_loadb(out, out_len, 0, NULL);

			must(j != NULL, "an answer that says JSON and is not");
			must(status < 400 || json_is_string(json_object_get(j, "error")),
			     "a refusal without an error");
			json_decref(j);
		}
		p = nul ? nul + 1 : end;
	}
	/* what the API lists is what the manager holds */
	must(request("GET", "/v1/vnodes", "", 0, &out, &out_len, &json) == 200 && json,
	     "the vNode list");
	all = json_loadb(out, out_len, 0, NULL);
	must(json_is_array(json_object_get(all, "vnodes")) &&
		     (int)json_array_size(json_object_get(all, "vnodes")) == m.nr_vnodes,
	     "the list is not what the manager holds");
	json_decref(all);
	manager_exit(&m);
	pthread_mutex_destroy(&m.lock);
	return 0;
}
