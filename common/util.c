/* util.c - size parsing and formatting used by every command line. */
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <unistd.h>

#include "util.h"

int parse_size(const char *text, uint64_t *out)
{
	static const struct {
		const char *suffix;
		uint64_t mult;
	} units[] = {
		{"", 1},
		{"b", 1},
		{"k", KiB},
		{"kib", KiB},
		{"kb", KiB},
		{"m", MiB},
		{"mib", MiB},
		{"mb", MiB},
		{"g", GiB},
		{"gib", GiB},
		{"gb", GiB},
		{"t", 1024 * GiB},
		{"tib", 1024 * GiB},
		{"tb", 1024 * GiB},
	};
	uint64_t value = 0;
	const char *p = text;

	if (!text || !isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		if (value > (UINT64_MAX - 9) / 10)
			return -ERANGE;
		value = value * 10 + (*p - '0');
	}
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (strcasecmp(p, units[i].suffix) == 0) {
			if (value > UINT64_MAX / units[i].mult)
				return -ERANGE;
			*out = value * units[i].mult;
			return 0;
		}
	}
	return -EINVAL;
}

char *format_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const names[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	unsigned i = 0;
	uint64_t unit = 1;

	while (i + 1 < ARRAY_SIZE(names) && bytes >= unit * 1024)
		unit *= 1024, i++;
	if (bytes % unit == 0)
		snprintf(buf, len, "%llu %s", (unsigned long long)(bytes / unit), names[i]);
	else
		snprintf(buf, len, "%.1f %s", (double)bytes / (double)unit, names[i]);
	return buf;
}

int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "%s: ", program_invocation_short_name);
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry '%s --help'.\n", program_invocation_short_name);
	return 2;
}

int tcp_listen(const char *addr, int wait_ms, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
	char host[256];
	const char *port = strrchr(addr, ':');
	int one = 1, bound = -1, fd, rc;

	if (!port || (size_t)(port - addr) >= sizeof(host)) {
		snprintf(err, errlen, "'%s' is not HOST:PORT (e.g. 127.0.0.1:7400)", addr);
		return -EINVAL;
	}
	memcpy(host, addr, port - addr);
	host[port - addr] = '\0';
	rc = getaddrinfo(host[0] ? host : NULL, port + 1, &hints, &res);
	if (rc) {
		snprintf(err, errlen, "cannot resolve %s: %s", addr, gai_strerror(rc));
		return -EINVAL;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* A predecessor killed a moment ago may still hold the address while the
	 * kernel tears its sockets down (milliseconds): a restart waits for it. */
	for (int ms = 0; fd >= 0 && ms <= wait_ms; ms += 20) {
		bound = bind(fd, res->ai_addr, res->ai_addrlen);
		if (bound == 0 || errno != EADDRINUSE || ms == wait_ms)
			break;
		usleep(20000);
	}
	/* A burst of connections longer than the accept queue has its SYNs dropped,
	 * and each such client waits a second to try again: the queue is as long as
	 * the kernel allows (net.core.somaxconn). */
	if (fd < 0 || bound < 0 || listen(fd, SOMAXCONN) < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return rc;
	}
	freeaddrinfo(res);
	return fd;
}

int tcp_connect(const char *addr, int timeout_ms, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
	char host[256];
	const char *port = strrchr(addr, ':');
	struct pollfd p;
	int fd, rc, soerr = 0;
	socklen_t sl = sizeof(soerr);

	if (!port || port == addr || (size_t)(port - addr) >= sizeof(host)) {
		snprintf(err, errlen, "'%s' is not HOST:PORT (e.g. 127.0.0.1:7400)", addr);
		return -EINVAL;
	}
	memcpy(host, addr, port - addr);
	host[port - addr] = '\0';
	rc = getaddrinfo(host, port + 1, &hints, &res);
	if (rc) {
		snprintf(err, errlen, "cannot resolve %s: %s", addr, gai_strerror(rc));
		return -EINVAL;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	rc = fd < 0 ? -errno : connect(fd, res->ai_addr, res->ai_addrlen) ? -errno : 0;
	freeaddrinfo(res);
	if (rc == -EINPROGRESS) {
		p = (struct pollfd){.fd = fd, .events = POLLOUT};
		rc = poll(&p, 1, timeout_ms);
		rc = rc < 0 ? -errno : rc == 0 ? -ETIMEDOUT : 0;
		if (!rc && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr)
			rc = -soerr;
	}
	if (rc) {
		snprintf(err, errlen, "cannot connect to %s: %s", addr, strerror(-rc));
		if (fd >= 0)
			close(fd);
		return rc;
	}
	return fd; /* non-blocking: its users wait with poll */
}

char *exe_dir(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);
	char *slash;

	buf[n > 0 ? n : 0] = '\0';
	slash = strrchr(buf, '/');
	if (slash && slash != buf)
		*slash = '\0';
	else
		snprintf(buf, len, "%s", slash ? "/" : ".");
	return buf;
}

void util_hex(const uint8_t *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

int thread_start_quiet(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	int ret;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	ret = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return -ret;
}

static bool host_chars_ok(const char *h, size_t n, bool v6)
{
	if (!n || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = h[i];

		if (!(isalnum((unsigned char)c) || c == '.' || (v6 ? c == ':' : c == '-')))
			return false;
	}
	return true;
}

bool host_ok(const char *host)
{
	return host && host_chars_ok(host, strlen(host), strchr(host, ':') != NULL);
}

bool addr_ok(const char *addr)
{
	const char *colon, *end;
	bool v6;
	size_t n;
	char *stop;
	long port;

	if (!addr)
		return false;
	v6 = addr[0] == '[';
	end = v6 ? strchr(addr, ']') : strrchr(addr, ':');
	if (!end)
		return false;
	colon = v6 ? end + 1 : end;
	n = (size_t)(end - addr) - v6;
	if (*colon != ':' || !host_chars_ok(addr + v6, n, v6) || !isdigit((unsigned char)colon[1]))
		return false;
	errno = 0;
	port = strtol(colon + 1, &stop, 10);
	return !errno && !*stop && port >= 1 && port <= 65535;
}

unsigned long nofile_raise(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur == RLIM_INFINITY ? 0 : (unsigned long)rl.rlim_cur;
}

/* The length of the well-formed UTF-8 sequence at @s, or 0 (RFC 3629, table 3-7 of
 * Unicode: no overlong forms, no surrogates, nothing past U+10FFFF). */
static int utf8_seq(const unsigned char *s)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	int n;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
	else
		return 0;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (int i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

void utf8_scrub(char *s)
{
	unsigned char *p = (unsigned char *)s;

	while (*p) {
		int n = utf8_seq(p);

		if (n)
			p += n;
		else
			*p++ = '?';
	}
}
