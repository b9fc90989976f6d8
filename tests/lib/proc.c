/* proc.c - the harness's processes (test.h): spawned and collected with their output
 * captured, lego's servers started and stopped, the boot kit's command line, consoles
 * read, ports and paths waited for, shell commands. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
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
#include "util.h"

static int proc_serial;

/* Which capture files belong to which child: the serial is chosen before fork. */
static struct {
	pid_t pid;
	int serial;
} spawned[256];
static int nr_spawned;

static void proc_files(int serial, char *out, char *err, size_t len)
{
	snprintf(out, len, "%s/proc-%d.out", test_tmpdir(), serial);
	snprintf(err, len, "%s/proc-%d.err", test_tmpdir(), serial);
}

pid_t proc_spawn(char *const argv[])
{
	char out[400], err[400];
	int serial = ++proc_serial;
	pid_t pid;

	test_tmpdir();
	proc_files(serial, out, err, sizeof(out));
	pid = fork();
	if (pid == 0) {
		int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int nul = open("/dev/null", O_RDONLY);

		dup2(nul, 0);
		dup2(o, 1);
		dup2(e, 2);
		execv(argv[0], argv);
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (pid < 0)
		test_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
	/* A process leaves the table when it is collected: a full one means
	 * processes spawned and never collected, and its output would be lost. */
	if (nr_spawned == (int)(sizeof(spawned) / sizeof(spawned[0])))
		test_fail(__FILE__, __LINE__, "%d processes spawned and not collected", nr_spawned);
	spawned[nr_spawned].pid = pid;
	spawned[nr_spawned++].serial = serial;
	return pid;
}

const char *proc_err_path(pid_t pid)
{
	static char err[400];
	char out[400];

	for (int i = 0; i < nr_spawned; i++) {
		if (spawned[i].pid == pid) {
			proc_files(spawned[i].serial, out, err, sizeof(err));
			return err;
		}
	}
	return NULL;
}

const char *proc_out_path(pid_t pid)
{
	static char out[400];
	char err[400];

	for (int i = 0; i < nr_spawned; i++) {
		if (spawned[i].pid == pid) {
			proc_files(spawned[i].serial, out, err, sizeof(out));
			return out;
		}
	}
	return NULL;
}

void proc_collect(pid_t pid, int timeout_s, struct proc_result *res)
{
	char out[400], err[400];
	double start = (now_ns() / 1e9);
	int status = 0, pidfd;

	memset(res, 0, sizeof(*res));
	/* A pidfd turns "wait with a timeout" into one poll: no sleep granularity
	 * in the measured times. */
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		double left = timeout_s - ((now_ns() / 1e9) - start);

		if (r == pid)
			break;
		if (left <= 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			res->timed_out = true;
			break;
		}
		if (pidfd >= 0) {
			struct pollfd pfd = {.fd = pidfd, .events = POLLIN};

			poll(&pfd, 1, (int)(left * 1000) + 1);
		} else {
			usleep(1000);
		}
	}
	if (pidfd >= 0)
		close(pidfd);
	res->seconds = (now_ns() / 1e9) - start;
	res->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	for (int i = 0; i < nr_spawned; i++) {
		if (spawned[i].pid == pid) {
			proc_files(spawned[i].serial, out, err, sizeof(out));
			res->out = slurp_n(out, &res->out_len);
			res->err = slurp(err);
			spawned[i] = spawned[--nr_spawned]; /* its pid may be reused now */
			return;
		}
	}
	res->out = strdup("");
	res->err = strdup("");
}
void proc_run(char *const argv[], int timeout_s, struct proc_result *res)
{
	double start = (now_ns() / 1e9);
	pid_t pid = proc_spawn(argv);

	proc_collect(pid, timeout_s, res);
	res->seconds = (now_ns() / 1e9) - start;
}

void proc_result_free(struct proc_result *res)
{
	free(res->out);
	free(res->err);
	res->out = res->err = NULL;
}

bool wait_for_path(const char *path, int timeout_ms)
{
	for (int waited = 0; waited < timeout_ms; waited += 5) {
		if (access(path, F_OK) == 0)
			return true;
		usleep(5000);
	}
	return access(path, F_OK) == 0;
}

int test_free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		test_fail(__FILE__, __LINE__, "no free port: %s", strerror(errno));
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

bool wait_for_port(int port, int timeout_ms)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

	for (int waited = 0; waited <= timeout_ms; waited += 10) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		int ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;

		close(fd);
		if (ok)
			return true;
		usleep(10000);
	}
	return false;
}

bool wait_for_port_free(int port, int timeout_ms)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1;

	for (int waited = 0; waited <= timeout_ms; waited += 10) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		int ok;

		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		close(fd);
		if (ok)
			return true;
		usleep(10000);
	}
	return false;
}

void kit_require(void)
{
	static const char *const files[] = {"guest/vmlinuz", "guest/initrd.img",
					    "guest/rootfs.img"};

	test_require_kvm();
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (access(test_path(files[i]), R_OK))
			test_fail(__FILE__, __LINE__,
				  "the boot kit is missing (%s): run make guest", files[i]);
}

void kit_argv(char **argv, char *const extra[], const char *append)
{
	const char *fixed[] = {test_path("bin/lego-vmm"),
			       "--kernel",
			       test_path("guest/vmlinuz"),
			       "--initrd",
			       test_path("guest/initrd.img"),
			       "--memory",
			       "512M",
			       "--cpus",
			       "2"};
	int n = 0;

	/* test_path's buffers are reused by later calls: keep copies (a test's worth) */
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		argv[n++] = strdup(fixed[i]);
	for (int i = 0; extra && extra[i] && n < KIT_ARGV_MAX - 3; i++)
		argv[n++] = extra[i];
	argv[n++] = "--append";
	argv[n++] = (char *)append;
	argv[n] = NULL;
}

const char *console_line(const char *out, const char *text)
{
	size_t n = strlen(text);

	for (const char *p = out; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		const char *q = p;

		while (*q == '\r')
			q++;
		if (*q == '[') { /* a kernel message: its text begins after the timestamp */
			const char *end = strpbrk(q, "]\n");

			if (end && *end == ']' && end[1] == ' ')
				q = end + 2;
		}
		if (!strncmp(q, text, n))
			return q;
	}
	return NULL;
}

int console_count(const char *out, const char *text)
{
	int n = 0;

	for (const char *p = console_line(out, text); p; n++) {
		p = strchr(p, '\n');
		p = p ? console_line(p + 1, text) : NULL;
	}
	return n;
}

int console_count_proc(pid_t pid, const char *text)
{
	FILE *f = fopen(proc_out_path(pid), "r"), *m;
	char *buf = NULL, chunk[65536];
	size_t len = 0, got;
	int n;

	if (!f)
		return 0;
	m = open_memstream(&buf, &len);
	while (m && (got = fread(chunk, 1, sizeof(chunk), f)) > 0)
		fwrite(chunk, 1, got, m);
	if (m)
		fclose(m);
	fclose(f);
	n = buf ? console_count(buf, text) : 0;
	free(buf);
	return n;
}

bool console_wait(pid_t pid, const char *text, int nth)
{
	for (;;) {
		bool running = proc_running(pid); /* before reading: the last output counts */

		if (console_count_proc(pid, text) >= nth)
			return true;
		if (!running)
			return false;
		usleep(200000);
	}
}

void storsrv_start(struct storsrv_proc *sp)
{
	char *argv[] = {(char *)test_path("bin/lego-storsrv"),
			"-q",
			"--listen",
			sp->listen,
			"--data",
			sp->dir,
			NULL};

	if (!sp->listen[0]) {
		snprintf(sp->listen, sizeof(sp->listen), "127.0.0.1:%d", test_free_port());
		snprintf(sp->dir, sizeof(sp->dir), "%s/volumes", test_tmpdir());
	}
	sp->pid = proc_spawn(argv);
	if (!wait_for_port(atoi(strrchr(sp->listen, ':') + 1), 10000))
		test_fail(__FILE__, __LINE__, "lego-storsrv did not start on %s", sp->listen);
}

void storsrv_kill(struct storsrv_proc *sp, int sig)
{
	int status;

	kill(sp->pid, sig);
	waitpid(sp->pid, &status, 0);
	if (!wait_for_port_free(atoi(strrchr(sp->listen, ':') + 1), 5000))
		test_fail(__FILE__, __LINE__, "the port of a stopped lego-storsrv stays busy");
}

pid_t memsrv_spawn(const char *capacity, char *addr)
{
	char listen[64];
	char *argv[] = {(char *)test_path("bin/lego-memsrv"),
			"-q",
			"--listen",
			listen,
			"--capacity",
			(char *)capacity,
			NULL};
	int port = test_free_port();
	pid_t pid;

	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	pid = proc_spawn(argv);
	if (!wait_for_port(port, 10000))
		test_fail(__FILE__, __LINE__, "lego-memsrv did not start on %s", listen);
	snprintf(addr, 64, "%s", listen);
	return pid;
}

bool proc_running(pid_t pid)
{
	siginfo_t si = {0};

	if (waitid(P_PID, pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
		return false;
	return si.si_pid == 0;
}

long vma_rss_kib(pid_t pid, uint64_t start)
{
	char path[64], line[512];
	FILE *f;
	bool in = false;
	long rss = -1;

	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long a, b;

		if (sscanf(line, "%llx-%llx ", &a, &b) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			in = a == start;
			continue;
		}
		if (in && sscanf(line, "Rss: %ld kB", &rss) == 1)
			break;
	}
	fclose(f);
	return in ? rss : -1;
}

static int vsh(char *cmd, size_t len, const char *fmt, va_list ap)
{
	vsnprintf(cmd, len, fmt, ap);
	return system(cmd);
}

int test_sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vsh(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return r;
}

void test_sh_ok(const char *file, int line, const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vsh(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (r != 0)
		test_fail(file, line, "'%s' failed (status %d)", cmd, r);
}

void proc_seccomp_threads(pid_t pid, const char *const *prefixes, size_t nr, int *filtered,
			  int *open, bool *main_filtered)
{
	char dir[64];
	DIR *d;
	struct dirent *e;

	*filtered = *open = 0;
	snprintf(dir, sizeof(dir), "/proc/%d/task", pid);
	ASSERT((d = opendir(dir)));
	while ((e = readdir(d))) {
		char path[400], comm[32] = "", line[128];
		bool on = false;
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/comm", dir, e->d_name);
		if ((f = fopen(path, "r"))) {
			if (!fgets(comm, sizeof(comm), f))
				comm[0] = '\0';
			fclose(f);
		}
		snprintf(path, sizeof(path), "%s/%s/status", dir, e->d_name);
		if (!(f = fopen(path, "r")))
			continue;
		while (fgets(line, sizeof(line), f))
			if (!strncmp(line, "Seccomp:", 8))
				on = atoi(line + 8) == 2;
		fclose(f);
		if (atoi(e->d_name) == pid) {
			*main_filtered = on;
			continue;
		}
		for (size_t i = 0; i < nr; i++)
			if (!strncmp(comm, prefixes[i], strlen(prefixes[i])))
				(on ? (*filtered)++ : (*open)++);
	}
	closedir(d);
}
