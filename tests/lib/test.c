/* test.c - the harness behind test.h: case runner, failures and skips, paths, order
 * files, report parsing. Processes, servers and the boot kit: proc.c. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

#define TEST_MAX       128
#define TEST_EXIT_SKIP 77

static struct {
	const char *name;
	test_fn fn;
	int timeout_s;
} tests[TEST_MAX];
static int nr_tests;
static const char *build_dir = "build";
static char case_tmp[256];

void test_register(const char *name, test_fn fn, int timeout_s)
{
	if (nr_tests < TEST_MAX)
		tests[nr_tests++] = (typeof(tests[0])){name, fn, timeout_s};
}

void test_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "  %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

void test_fail_cond(const char *file, int line, const char *cond, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "  %s:%d: ASSERT(%s)", file, line, cond);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

void test_skip(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "  SKIPPED: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(TEST_EXIT_SKIP);
}

const char *test_build_dir(void)
{
	return build_dir;
}

const char *test_path(const char *rel)
{
	static char bufs[8][512];
	static int next;
	char *b = bufs[next++ % 8];

	snprintf(b, sizeof(bufs[0]), "%s/%s", build_dir, rel);
	return b;
}

void test_require_kvm(void)
{
	int fd = open("/dev/kvm", O_RDWR);

	if (fd < 0)
		test_skip("/dev/kvm is not usable here (%s): this KVM test did NOT run",
			  strerror(errno));
	close(fd);
}

const char *test_tmpdir(void)
{
	/* Outside a case (a benchmark's main), make one directory for the run. */
	if (!case_tmp[0]) {
		strcpy(case_tmp, "/tmp/lego-bench-XXXXXX");
		if (!mkdtemp(case_tmp))
			test_fail(__FILE__, __LINE__, "mkdtemp: %s", strerror(errno));
	}
	return case_tmp;
}

const char *test_order_file(const char *fmt, ...)
{
	static char paths[8][PATH_MAX];
	static unsigned next, serial;
	char *path = paths[next++ % 8], *text;
	va_list ap;
	int fd, len;

	va_start(ap, fmt);
	len = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (len < 0)
		test_fail(__FILE__, __LINE__, "vasprintf failed");
	snprintf(path, PATH_MAX, "%s/order-%u.json", test_tmpdir(), serial++);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, text, (size_t)len) != len)
		test_fail(__FILE__, __LINE__, "%s: %s", path, strerror(errno));
	close(fd);
	free(text);
	return path;
}

void test_set_build_dir(const char *dir)
{
	build_dir = dir;
}

const char *test_case_dir(int i)
{
	snprintf(case_tmp, sizeof(case_tmp), "/tmp/lego-test-%d-%s", (int)getpid(), tests[i].name);
	mkdir(case_tmp, 0755);
	return case_tmp;
}

int test_count(void)
{
	return nr_tests;
}

const char *test_name(int i)
{
	return tests[i].name;
}

int test_timeout(int i)
{
	return tests[i].timeout_s;
}

void test_call(int i)
{
	tests[i].fn();
}

char *slurp(const char *path)
{
	return slurp_n(path, NULL);
}

char *slurp_n(const char *path, size_t *lenp)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (lenp)
		*lenp = 0;
	if (!f)
		return strdup("");
	do {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 65536;
			buf = realloc(buf, cap + 1);
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
	} while (n > 0);
	fclose(f);
	buf[len] = '\0';
	if (lenp)
		*lenp = len;
	return buf;
}

bool report_get(const char *out, int vcpu, const char *key, uint64_t *value)
{
	const char *p = out;
	bool found = false;
	size_t klen = strlen(key);

	while ((p = strstr(p, "REPORT vcpu="))) {
		char *end;
		long v = strtol(p + 12, &end, 10);

		p = end;
		if (*end != ' ' || (vcpu >= 0 && v != vcpu))
			continue;
		end++;
		if (strncmp(end, key, klen) == 0 && end[klen] == '=') {
			*value = strtoull(end + klen + 1, NULL, 10);
			found = true;
		}
	}
	return found;
}

uint64_t report_need(const struct proc_result *r, const char *key)
{
	uint64_t v;

	if (!report_get(r->out, 0, key, &v)) {
		fprintf(stderr, "no REPORT of %s in:\n%s%s", key, r->out, r->err);
		exit(1);
	}
	return v;
}

int report_count(const char *out, const char *key)
{
	char pat[128];
	int n = 0;

	snprintf(pat, sizeof(pat), " %s=", key);
	for (const char *p = out; (p = strstr(p, "REPORT vcpu=")); p++) {
		const char *eol = strchr(p, '\n');
		const char *k = strstr(p, pat);

		if (k && (!eol || k < eol))
			n++;
	}
	return n;
}
