/*
 * test.h - a small test harness in the spirit of the KVM selftests. A test
 * file defines cases with TEST(name) { ... }; libtest provides main(), which
 * runs each case in a child process with a timeout and prints one line per
 * case: "PASS name", "FAIL name: why" or "SKIP name: why". tests/run.sh
 * counts those lines. Cases may take a build directory from argv[1].
 */
#ifndef LEGO_TEST_H
#define LEGO_TEST_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

typedef void (*test_fn)(void);

/* test_register - used by TEST(); @timeout_s bounds the case's run time. */
void test_register(const char *name, test_fn fn, int timeout_s);

#define TEST_TIMEOUT(name, secs)                                                                   \
	static void name(void);                                                                    \
	__attribute__((constructor)) static void name##_register(void)                             \
	{                                                                                          \
		test_register(#name, name, secs);                                                  \
	}                                                                                          \
	static void name(void)
#define TEST(name) TEST_TIMEOUT(name, 120)

/* test_fail - end the current case as failed, with a message. */
__attribute__((noreturn, format(printf, 3, 4))) void test_fail(const char *file, int line,
							       const char *fmt, ...);
/* test_fail_cond - test_fail for ASSERT: the condition's text, then @fmt. */
__attribute__((noreturn, format(printf, 4, 5))) void
test_fail_cond(const char *file, int line, const char *cond, const char *fmt, ...);
/* test_skip - end the current case as skipped, saying loudly why. */
__attribute__((noreturn, format(printf, 1, 2))) void test_skip(const char *fmt, ...);

#define ASSERT(cond, ...)                                                                          \
	do {                                                                                       \
		if (!(cond))                                                                       \
			test_fail_cond(__FILE__, __LINE__, #cond, " " __VA_ARGS__);                \
	} while (0)
#define ASSERT_EQ(a, b)                                                                            \
	do {                                                                                       \
		long long _a = (long long)(a), _b = (long long)(b);                                \
		if (_a != _b)                                                                      \
			test_fail(__FILE__, __LINE__, "%s == %lld, expected %s == %lld", #a, _a,   \
				  #b, _b);                                                         \
	} while (0)
#define ASSERT_CONTAINS(haystack, needle)                                                          \
	do {                                                                                       \
		const char *_h = (haystack);                                                       \
		if (!_h || !strstr(_h, (needle)))                                                  \
			test_fail(__FILE__, __LINE__, "expected \"%s\" in:\n%s", (needle),         \
				  _h ? _h : "(null)");                                             \
	} while (0)

/* The runner's view of the registered cases (test_main.c). */
int test_count(void);
const char *test_name(int i);
int test_timeout(int i);
void test_call(int i);
const char *test_case_dir(int i);
void test_set_build_dir(const char *dir);

/* test_build_dir - the build directory ("build" unless given as argv[1]). */
const char *test_build_dir(void);

/* test_path - "<build>/<rel>" in a static buffer rotating over 8 slots. */
const char *test_path(const char *rel);

/* test_require_kvm - skip the case (loudly) when /dev/kvm cannot be opened. */
void test_require_kvm(void);

/* test_tmpdir - a fresh directory for this case, removed when the case ends. */
const char *test_tmpdir(void);

/*
 * test_order_file - a vNode order for lego-vmm --order: the JSON @fmt...
 * written to a new file of mode 0600 in the case's directory (credentials
 * never go on a command line). Its path, in a static buffer rotating over 8.
 */
const char *test_order_file(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

struct proc_result {
	int status; /* exit status, or 128 + signal */
	bool timed_out;
	char *out;	/* everything the process wrote to stdout (NUL-terminated) */
	size_t out_len; /* its length: it may hold NUL bytes */
	char *err;	/* and to stderr */
	double seconds;
};

/* proc_run - run @argv (NULL-terminated) to completion, at most @timeout_s. */
void proc_run(char *const argv[], int timeout_s, struct proc_result *res);

/* proc_spawn - start @argv in the background with stdout/stderr to files in the
 * case's tmpdir; returns its pid. proc_collect waits (at most @timeout_s) and
 * fills @res. */
pid_t proc_spawn(char *const argv[]);
void proc_collect(pid_t pid, int timeout_s, struct proc_result *res);

/* slurp - the whole file @path, NUL-terminated ("" if it cannot be read); free() it.
 * slurp_n - the same, its length (NUL bytes and all) in *@len. */
char *slurp(const char *path);
char *slurp_n(const char *path, size_t *len);

/*
 * proc_seccomp_threads - of @pid's threads whose name starts with one of the
 * @nr @prefixes, how many run under a seccomp filter (*@filtered) and how
 * many do not (*@open); the main thread's own state in *@main_filtered.
 */
void proc_seccomp_threads(pid_t pid, const char *const *prefixes, size_t nr, int *filtered,
			  int *open, bool *main_filtered);

/* proc_out_path - the file a proc_spawn'ed @pid's stdout goes to (to watch it live). */
const char *proc_out_path(pid_t pid);

/* proc_err_path - the same for its stderr. */
const char *proc_err_path(pid_t pid);

/* proc_running - true while @pid has not exited (does not reap it). */
bool proc_running(pid_t pid);

/* vma_rss_kib - Rss of @pid's mapping that starts at @start (from smaps), -1 if none. */
long vma_rss_kib(pid_t pid, uint64_t start);

/* proc_result_free - free the captured output. */
void proc_result_free(struct proc_result *res);

/*
 * report_get - find "REPORT vcpu=@vcpu @key=<value>" in @out; returns true
 * and stores the value (the last one if repeated). @vcpu < 0 matches any.
 */
bool report_get(const char *out, int vcpu, const char *key, uint64_t *value);

/* report_need - report_get of vCPU 0 in @r's output for a benchmark: exits with
 * both outputs if @key is not there. */
uint64_t report_need(const struct proc_result *r, const char *key);

/* report_count - how many REPORT lines with @key there are in @out. */
int report_count(const char *out, const char *key);

/* test_free_port - a TCP port on 127.0.0.1 that nothing listens on right now. */
int test_free_port(void);

/* wait_for_port - poll until 127.0.0.1:@port accepts connections, at most @timeout_ms. */
bool wait_for_port(int port, int timeout_ms);

/*
 * The boot kit (make guest). kit_require fails the case, with what to do,
 * when the kit is missing (and skips without /dev/kvm). kit_argv fills @argv
 * (room for KIT_ARGV_MAX) with lego-vmm booting the kit's kernel and initrd
 * with 512 MiB on 2 vCPUs, then @extra (NULL-terminated, may be NULL), then
 * --append @append.
 */
#define KIT_ARGV_MAX 32
void kit_require(void);
void kit_argv(char **argv, char *const extra[], const char *append);

/*
 * console_line - the first line of a guest's console @out that begins with
 * @text (after the kernel's "[  12.345678] " if it has one), or NULL. A
 * marker a test's lego.run echoes also appears earlier, inside the kernel's
 * "Kernel command line:" line: only a line of its own is the guest's.
 */
const char *console_line(const char *out, const char *text);

/* console_count - how many lines of @out begin with @text (as console_line matches). */
int console_count(const char *out, const char *text);

/* console_count_proc - console_count on the console of @pid (proc_spawn'd) so far. */
int console_count_proc(pid_t pid, const char *text);

/*
 * console_wait - wait until the console of @pid (proc_spawn'd) has @nth
 * lines that begin with @text; false if the process exited first.
 */
bool console_wait(pid_t pid, const char *text, int nth);

/* A lego-storsrv process for a test: where it listens, its data directory, its pid. */
struct storsrv_proc {
	char listen[64], dir[300];
	pid_t pid;
};

/* storsrv_start - start lego-storsrv and wait until it listens: the first time
 * on a free port with a data directory in the case's tmpdir, later on the same. */
void storsrv_start(struct storsrv_proc *sp);

/* storsrv_kill - send @sig (SIGKILL for a crash), reap it, and wait until its
 * port is free again (so that a restart's readiness check is the new one's). */
void storsrv_kill(struct storsrv_proc *sp, int sig);

/* test_sh - run the shell command made of @fmt...: its exit status, as system() gives it. */
int test_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* SH - the same, and the case fails unless it exits 0. */
#define SH(...) test_sh_ok(__FILE__, __LINE__, __VA_ARGS__)
void test_sh_ok(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* wait_for_port_free - poll until nothing holds 127.0.0.1:@port (a killed server's
 * socket lingers while the kernel tears its io_uring down), at most @timeout_ms. */
bool wait_for_port_free(int port, int timeout_ms);

/*
 * memsrv_spawn - start build/bin/lego-memsrv on a free port with @capacity
 * (e.g. "64M"); writes "127.0.0.1:PORT" into @addr (64 bytes) and returns
 * its pid once it accepts connections.
 */
pid_t memsrv_spawn(const char *capacity, char *addr);

/* wait_for_path - poll until @path exists, at most @timeout_ms. */
bool wait_for_path(const char *path, int timeout_ms);

#endif
