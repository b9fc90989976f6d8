/* util.h - small helpers shared by every component: sizes, time, containers. */
#ifndef LEGO_UTIL_H
#define LEGO_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define ARRAY_SIZE(a)			(sizeof(a) / sizeof((a)[0]))
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define ALIGN_UP(x, a)			(((x) + (a)-1) & ~((__typeof__(x))(a)-1))
#define ALIGN_DOWN(x, a)		((x) & ~((__typeof__(x))(a)-1))

/* The version every lego program reports. */
#define LEGO_VERSION "0.1.0"

#define KiB (1024ULL)
#define MiB (1024ULL * KiB)
#define GiB (1024ULL * MiB)

/*
 * parse_size - parse "64M", "2G", "4096", "512K" (binary units, optional "iB"/"B")
 * into *@out bytes. Returns 0, or -EINVAL for malformed text, -ERANGE on overflow.
 */
int parse_size(const char *text, uint64_t *out);

/* util_hex - @n bytes as 2n lowercase hex digits and a NUL into @out. */
void util_hex(const uint8_t *b, size_t n, char *out);

/* format_size - write @bytes as "64 MiB" or "1.5 GiB" into @buf; returns @buf. */
char *format_size(uint64_t bytes, char *buf, size_t len);

/*
 * usage_error - "PROGRAM: " @fmt (with @arg) and a pointer to --help on
 * stderr, for a wrong command line; returns 2, every program's exit status
 * for that.
 */
int usage_error(const char *fmt, const char *arg) __attribute__((format(printf, 1, 0)));

/*
 * tcp_listen - a listening TCP socket on @addr ("HOST:PORT", empty HOST for
 * every address, port 0 for any), waiting up to @wait_ms while the address is
 * still held by a predecessor. Returns the fd, or -errno with a sentence in @err.
 */
int tcp_listen(const char *addr, int wait_ms, char *err, size_t errlen);

/*
 * tcp_connect - a TCP connection to @addr ("HOST:PORT") within @timeout_ms,
 * non-blocking (wait with poll). The fd, or -errno with a sentence in @err.
 */
int tcp_connect(const char *addr, int timeout_ms, char *err, size_t errlen);

/*
 * host_ok - @host is a host name or an IPv4 address (letters, digits, '.'
 * and '-'), or an IPv6 address (hex digits, ':' and '.'), at most 253
 * characters. addr_ok - "HOST:PORT" or "[IPV6]:PORT" with such a host and a
 * port of 1 to 65535. Anything else (quotes, spaces, control characters)
 * is not an address, wherever it would end up (logs, certificates, labels).
 */
bool host_ok(const char *host);
bool addr_ok(const char *addr);

/*
 * exe_dir - the directory of the running program (from /proc/self/exe) into
 * @buf: where lego's programs find each other. Returns @buf ("." if unknown).
 */
char *exe_dir(char *buf, size_t len);

/* utf8_scrub - make @s valid UTF-8 in place: every byte that does not belong to a
 * well-formed sequence (a name with stray bytes, a sequence cut by truncation)
 * becomes '?'. What JSON may carry, and a person read. */
void utf8_scrub(char *s);

/*
 * nofile_raise - the open files this process may have, raised to its hard
 * limit first (a server's connections are files): the soft limit after,
 * or 0 where it is unlimited.
 */
unsigned long nofile_raise(void);

/* now_ns - CLOCK_MONOTONIC in nanoseconds. */
static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/*
 * thread_start_quiet - pthread_create with every signal blocked in the new
 * thread: a daemon's signals are its main loop's (a signalfd or sigwait),
 * and a SIGTERM landing on a helper thread would kill the process outright.
 * 0 or -errno.
 */
int thread_start_quiet(pthread_t *t, void *(*fn)(void *), void *arg);

/* put_le16/32/64 - a little-endian value at @p, wherever it is aligned (firmware tables). */
static inline void put_le16(void *p, uint16_t v)
{
	__builtin_memcpy(p, &v, sizeof(v));
}

static inline void put_le32(void *p, uint32_t v)
{
	__builtin_memcpy(p, &v, sizeof(v));
}

static inline void put_le64(void *p, uint64_t v)
{
	__builtin_memcpy(p, &v, sizeof(v));
}

/* mono_ms - CLOCK_MONOTONIC in milliseconds: for intervals and timeouts. */
static inline uint64_t mono_ms(void)
{
	return now_ns() / 1000000;
}

/* wall_ms - the wall clock in milliseconds since 1970: for times a person reads. */
static inline uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#endif
