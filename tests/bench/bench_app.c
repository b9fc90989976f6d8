/*
 * bench_app.c - LegoOS's headline table for lego: an application's slowdown
 * when only part of its memory is local. The three applications of
 * guest/payloads/apps.h (word count, k-means, hash join) run as a ring-3
 * payload on one vCPU over a working set of APP_SIZE (default 256M):
 *
 *   local        all memory local (no ExCache, no userfaultfd): the baseline,
 *                run first and last (the faster counts; both are printed)
 *   ExCache P%   an ExCache of P% of the working set, plus 4 MiB for the
 *                payload's code, stacks and page tables, the rest on a memory
 *                server; P = 100, 50, 25, 12 (12.5), replication off and on
 *   swap P%      where this host lets the bench make a swap file and a memory
 *                cgroup: the same kernels as a host process limited to the
 *                same memory, paging to swap (what a user would otherwise
 *                pick); its own all-local run is its baseline
 *
 * The timed part is the application's run on its input; writing the input
 * (setup) is timed apart and printed. Every run must give the all-local
 * result bit for bit, or the bench fails.
 *
 * And at 25%, the ExCache as it was before pages fetched for a read were
 * installed writable with content sums (--excache-writes wp: write-protected,
 * their first write trapped): app_slowdown_<app>_25_wp, the same run's
 * baseline for that change.
 *
 * Keys: app_slowdown_<app>_<P> (replication off), app_slowdown_<app>_<P>_repl,
 * app_slowdown_<app>_<P>_swap; the table is also written to
 * build/bench/app.dat and drawn with gnuplot into build/bench/app.svg.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "util.h"

#define WL_POW pow
#include "../../guest/payloads/apps.h"

#define NPCT 4
static const unsigned pct_x10[NPCT] = {1000, 500, 250, 125};
static const char *const pct_key[NPCT] = {"100", "50", "25", "12"};

struct app_run {
	double setup_s, run_s;
	uint64_t result;
};

static uint64_t app_size;
static char ms_primary[64], ms_secondary[64];

/* The payload for @app; an ExCache of @pct_x10 / 10 % (0: all local). */
static struct app_run run_payload(int app, unsigned pctx10, bool repl, bool wp)
{
	char args[128], mem[32], xc[32];
	char *argv[24];
	struct proc_result r;
	struct app_run out;
	int n = 0;

	snprintf(args, sizeof(args), "app=%s size=%llu", app_names[app],
		 (unsigned long long)app_size);
	snprintf(mem, sizeof(mem), "%lluK", (unsigned long long)(app_size / 1024 + 8192));
	snprintf(xc, sizeof(xc), "%lluK",
		 (unsigned long long)(app_size / 1024 * pctx10 / 1000 + 4096));
	argv[n++] = (char *)test_path("bin/lego-vmm");
	argv[n++] = "-q";
	argv[n++] = "--payload";
	argv[n++] = (char *)test_path("guest/payloads/apps.bin");
	argv[n++] = "--memory";
	argv[n++] = mem;
	if (pctx10) {
		argv[n++] = "--excache";
		argv[n++] = xc;
		argv[n++] = "--memsrv";
		argv[n++] = ms_primary;
		if (repl) {
			argv[n++] = "--memsrv-secondary";
			argv[n++] = ms_secondary;
		}
		if (wp) {
			argv[n++] = "--excache-writes";
			argv[n++] = "wp";
		}
	}
	argv[n++] = "--args";
	argv[n++] = args;
	argv[n] = NULL;
	proc_run(argv, 1200, &r);
	if (r.status != 0) {
		fprintf(stderr, "bench-app: %s failed (status %d):\n%s%s", args, r.status, r.out,
			r.err);
		exit(1);
	}
	out.setup_s = report_need(&r, "setup_ns") / 1e9;
	out.run_s = report_need(&r, "run_ns") / 1e9;
	out.result = report_need(&r, "result");
	proc_result_free(&r);
	return out;
}

/* ---- the swap baseline: the same kernels, a host process in a memory cgroup ---- */

static char cg_dir[256], swap_file[512];
static bool cg_v2;
static volatile pid_t host_child; /* the host process running, if any */

static int write_file(const char *dir, const char *name, const char *value)
{
	char path[512];
	int fd, ret = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	if (write(fd, value, strlen(value)) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/* A swap file and a memory cgroup, or false with @why. */
static bool swap_setup(char *why, size_t len)
{
	char cmd[2600];
	int ret;

	if (access("/sys/fs/cgroup/memory/cgroup.procs", F_OK) == 0) {
		snprintf(cg_dir, sizeof(cg_dir), "/sys/fs/cgroup/memory/lego-bench-app");
	} else {
		FILE *f = fopen("/sys/fs/cgroup/cgroup.controllers", "r");
		char line[256] = "";

		if (f) {
			if (!fgets(line, sizeof(line), f))
				line[0] = 0;
			fclose(f);
		}
		if (!strstr(line, "memory")) {
			snprintf(why, len, "no memory cgroup controller");
			return false;
		}
		cg_v2 = true;
		write_file("/sys/fs/cgroup", "cgroup.subtree_control", "+memory");
		snprintf(cg_dir, sizeof(cg_dir), "/sys/fs/cgroup/lego-bench-app");
	}
	if (mkdir(cg_dir, 0755) && errno != EEXIST) {
		snprintf(why, len, "cannot make the cgroup %s: %s", cg_dir, strerror(errno));
		return false;
	}
	snprintf(swap_file, sizeof(swap_file), "%s", test_path("bench/app.swap"));
	swapoff(swap_file); /* left active by a run that was killed */
	snprintf(cmd, sizeof(cmd),
		 "rm -f %s && fallocate -l %lluK %s && chmod 600 %s && mkswap -q %s >/dev/null",
		 swap_file, (unsigned long long)(app_size / 1024 * 2), swap_file, swap_file,
		 swap_file);
	if (system(cmd) != 0) {
		snprintf(why, len, "cannot make a swap file (%s)", swap_file);
		rmdir(cg_dir);
		return false;
	}
	if (swapon(swap_file, 0)) {
		ret = errno;
		snprintf(why, len, "swapon %s: %s", swap_file, strerror(ret));
		unlink(swap_file);
		rmdir(cg_dir);
		return false;
	}
	return true;
}

/* Interrupted: the host process, the swap file and the cgroup go too. */
static void swap_interrupted(int sig)
{
	if (host_child > 0) {
		kill(host_child, SIGKILL);
		waitpid(host_child, NULL, 0);
	}
	swapoff(swap_file);
	unlink(swap_file);
	rmdir(cg_dir);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void swap_teardown(void)
{
	if (swapoff(swap_file))
		fprintf(stderr, "bench-app: swapoff %s: %s\n", swap_file, strerror(errno));
	unlink(swap_file);
	if (rmdir(cg_dir))
		fprintf(stderr, "bench-app: rmdir %s: %s\n", cg_dir, strerror(errno));
}

/* @app as a host process limited to @limit bytes (0: no limit); false after 300 s. */
static bool run_host(int app, uint64_t limit, struct app_run *out)
{
	int pfd[2];
	pid_t pid;
	char value[32];
	int status;
	ssize_t n;

	snprintf(value, sizeof(value), "%llu", (unsigned long long)limit);
	if (cg_v2) {
		write_file(cg_dir, "memory.max", limit ? value : "max");
		write_file(cg_dir, "memory.swap.max", "max");
	} else {
		write_file(cg_dir, "memory.limit_in_bytes", limit ? value : "-1");
	}
	if (pipe(pfd))
		exit(1);
	pid = fork();
	if (pid == 0) {
		uint64_t t0, t1, t2;
		struct app_run r;
		uint8_t *mem;

		close(pfd[0]);
		snprintf(value, sizeof(value), "%d", getpid());
		if (write_file(cg_dir, "cgroup.procs", value))
			_exit(3);
		alarm(300);
		mem = mmap(NULL, app_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
			   0);
		if (mem == MAP_FAILED)
			_exit(4);
		t0 = now_ns();
		app_setup(app, mem, app_size, 1);
		t1 = now_ns();
		r.result = app_run(app, mem, app_size, 1, 4);
		t2 = now_ns();
		r.setup_s = (t1 - t0) / 1e9;
		r.run_s = (t2 - t1) / 1e9;
		_exit(write(pfd[1], &r, sizeof(r)) == sizeof(r) ? 0 : 5);
	}
	host_child = pid;
	close(pfd[1]);
	n = read(pfd[0], out, sizeof(*out));
	close(pfd[0]);
	waitpid(pid, &status, 0);
	host_child = 0;
	if (n != sizeof(*out)) {
		fprintf(stderr, "bench-app: host %s with %llu bytes: status %#x\n", app_names[app],
			(unsigned long long)limit, status);
		return false;
	}
	return true;
}

/* ---- the table and its plot ---- */

struct row {
	uint64_t result; /* all-local */
	double local_s, host_local_s;
	double xc[NPCT], repl[NPCT], swap[NPCT]; /* slowdowns; swap 0 when not run */
};

static void plot(const struct row *rows)
{
	char dat[512], gp[512], svg[512], cmd[1600];
	FILE *f;

	snprintf(dat, sizeof(dat), "%s", test_path("bench/app.dat"));
	snprintf(gp, sizeof(gp), "%s", test_path("bench/app.gp"));
	snprintf(svg, sizeof(svg), "%s", test_path("bench/app.svg"));
	f = fopen(dat, "w");
	if (!f)
		return;
	fprintf(f,
		"# slowdown against all-local; working set %llu MiB; swap 0 = not run\n"
		"# app pct lego lego_replicated swap\n",
		(unsigned long long)(app_size >> 20));
	for (int a = 0; a < APP_COUNT; a++) {
		for (int p = 0; p < NPCT; p++)
			fprintf(f, "%s %.1f %.3f %.3f %.3f\n", app_names[a], pct_x10[p] / 10.0,
				rows[a].xc[p], rows[a].repl[p], rows[a].swap[p]);
		fprintf(f, "\n\n");
	}
	fclose(f);
	f = fopen(gp, "w");
	if (!f)
		return;
	fprintf(f,
		"set terminal svg size 1200,400 dynamic font 'sans,11'\n"
		"set output '%s'\n"
		"set multiplot layout 1,%d title 'lego: slowdown against all memory local "
		"(working set %llu MiB)'\n"
		"set xlabel 'ExCache (local memory), %% of the working set'\n"
		"set ylabel 'slowdown'\nset logscale x 2\nset xrange [140:10]\n"
		"set xtics ('100' 100, '50' 50, '25' 25, '12.5' 12.5)\n"
		"set yrange [0:*]\nset grid ytics\nset key bottom right\n",
		svg, APP_COUNT, (unsigned long long)(app_size >> 20));
	for (int a = 0; a < APP_COUNT; a++)
		fprintf(f,
			"set title '%s'\n"
			"plot '%s' index %d using 2:3 with linespoints title 'lego', "
			"'' index %d using 2:4 with linespoints title 'lego, replicated', "
			"'' index %d using 2:($5 > 0 ? $5 : 1/0) with linespoints title "
			"'host process, swap'\n",
			app_names[a], dat, a, a, a);
	fprintf(f, "unset multiplot\n");
	fclose(f);
	snprintf(cmd, sizeof(cmd), "gnuplot '%s' 2>&1", gp);
	if (system("command -v gnuplot >/dev/null") == 0 && system(cmd) == 0)
		printf("bench-app: the table is drawn in %s\n", svg);
	else
		printf("bench-app: no gnuplot here: the table is in %s, its plot script in %s\n",
		       dat, gp);
}

int main(int argc, char **argv)
{
	struct row rows[APP_COUNT] = {0};
	const char *env = getenv("APP_SIZE");
	char why[600];
	bool swap_ok;
	pid_t ms1, ms2;

	if (argc > 1)
		test_set_build_dir(argv[1]);
	test_require_kvm();
	app_size = 256ull << 20;
	if (env && parse_size(env, &app_size)) {
		fprintf(stderr, "bench-app: APP_SIZE=%s is not a size\n", env);
		return 1;
	}
	mkdir(test_path("bench"), 0755);
	ms1 = memsrv_spawn("4G", ms_primary);
	ms2 = memsrv_spawn("4G", ms_secondary);

	for (int a = 0; a < APP_COUNT; a++) {
		struct app_run l1 = run_payload(a, 0, false, false), l2, x, wp;
		double base;
		struct row *row = &rows[a];

		for (int p = 0; p < NPCT; p++)
			for (int repl = 0; repl < 2; repl++) {
				x = run_payload(a, pct_x10[p], repl, false);
				if (x.result != l1.result) {
					fprintf(stderr,
						"bench-app: %s with an ExCache of %s%%%s gave result "
						"%llu, all-local %llu\n",
						app_names[a], pct_key[p],
						repl ? " (replicated)" : "",
						(unsigned long long)x.result,
						(unsigned long long)l1.result);
					return 1;
				}
				(repl ? row->repl : row->xc)[p] = x.run_s;
				printf("bench-app: %s excache=%s%% repl=%s setup_s=%.2f run_s=%.2f\n",
				       app_names[a], pct_key[p], repl ? "on" : "off", x.setup_s,
				       x.run_s);
				fflush(stdout);
			}
		wp = run_payload(a, 250, false, true);
		if (wp.result != l1.result) {
			fprintf(stderr,
				"bench-app: %s with --excache-writes wp gave %llu, all-local %llu\n",
				app_names[a], (unsigned long long)wp.result,
				(unsigned long long)l1.result);
			return 1;
		}
		printf("bench-app: %s excache=25%% writes=wp setup_s=%.2f run_s=%.2f\n",
		       app_names[a], wp.setup_s, wp.run_s);
		l2 = run_payload(a, 0, false, false);
		base = l1.run_s < l2.run_s ? l1.run_s : l2.run_s;
		row->local_s = base;
		row->result = l1.result;
		printf("BENCH app=%s size_mib=%llu local_run_s=%.3f local_run2_s=%.3f "
		       "local_setup_s=%.2f",
		       app_names[a], (unsigned long long)(app_size >> 20), l1.run_s, l2.run_s,
		       l1.setup_s);
		for (int p = 0; p < NPCT; p++) {
			row->xc[p] /= base;
			row->repl[p] /= base;
			printf(" app_slowdown_%s_%s=%.2f app_slowdown_%s_%s_repl=%.2f",
			       app_names[a], pct_key[p], row->xc[p], app_names[a], pct_key[p],
			       row->repl[p]);
		}
		printf(" app_slowdown_%s_25_wp=%.2f\n", app_names[a], wp.run_s / base);
		fflush(stdout);
	}
	kill(ms1, SIGTERM);
	kill(ms2, SIGTERM);
	waitpid(ms1, NULL, 0);
	waitpid(ms2, NULL, 0);

	swap_ok = geteuid() == 0 ? swap_setup(why, sizeof(why))
				 : (snprintf(why, sizeof(why), "not root"), false);
	if (!swap_ok) {
		printf("BENCH app_swap=skipped reason=\"%s\"\n", why);
	} else {
		signal(SIGINT, swap_interrupted);
		signal(SIGTERM, swap_interrupted);
	}
	for (int a = 0; swap_ok && a < APP_COUNT; a++) {
		struct app_run l, x;
		struct row *row = &rows[a];

		if (!run_host(a, 0, &l))
			break;
		if (l.result != row->result) {
			fprintf(stderr,
				"bench-app: %s as a host process gave %llu, as a payload %llu\n",
				app_names[a], (unsigned long long)l.result,
				(unsigned long long)row->result);
			swap_teardown();
			return 1;
		}
		row->host_local_s = l.run_s;
		printf("BENCH app=%s host_local_run_s=%.3f", app_names[a], l.run_s);
		for (int p = 0; p < NPCT; p++) {
			uint64_t limit = app_size / 1000 * pct_x10[p] + (4ull << 20);

			if (!run_host(a, limit, &x)) {
				printf(" app_slowdown_%s_%s_swap=timeout", app_names[a],
				       pct_key[p]);
				continue;
			}
			if (x.result != l.result) {
				fprintf(stderr,
					"bench-app: host %s gave %llu under a limit, %llu "
					"without\n",
					app_names[a], (unsigned long long)x.result,
					(unsigned long long)l.result);
				swap_teardown();
				return 1;
			}
			row->swap[p] = x.run_s / l.run_s;
			printf(" app_slowdown_%s_%s_swap=%.2f", app_names[a], pct_key[p],
			       row->swap[p]);
			fflush(stdout);
		}
		printf("\n");
		fflush(stdout);
	}
	if (swap_ok)
		swap_teardown();
	plot(rows);
	return 0;
}
