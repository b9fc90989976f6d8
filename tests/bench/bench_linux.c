/*
 * bench_linux.c - the stock kernel from the boot kit, timed from the outside:
 *   linux_boot_to_ready_s   lego-vmm start to init's "lego-guest: ready" (2 vCPUs, 512 MiB)
 *   linux_first_console_s   ... to the first console line: printed when the serial
 *                           console registers (the early boot's log is buffered till then)
 *   linux_run_init_s        ... to "Run /init" (the kernel's share)
 *   linux_poweroff_s        ... to lego-vmm's exit after lego.run=true
 *   host_decompress_ms      the bzImage payload decompressed on the host (lego-vmm's figure)
 *   memcpy_ms               copying as many bytes on the host (the floor for decompression)
 * Snapshots are not implemented yet: no snapshot_restore_ms (see the README).
 * The baseline of host_decompress_ms is memcpy of as many bytes in the same run.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "util.h"

struct marks {
	double first_console, run_init, ready, exit;
	double decompress_ms, decompressed_mib;
	int status;
};

static void boot_once(struct marks *m)
{
	char *argv[KIT_ARGV_MAX];
	static char buf[1 << 20];
	size_t len = 0;
	int pfd[2];
	uint64_t t0 = now_ns();
	pid_t pid;
	FILE *f;
	char line[1024];

	memset(m, 0, sizeof(*m));
	kit_argv(argv, NULL, "console=ttyS0 lego.run=true");
	if (pipe(pfd) < 0)
		exit(1);
	pid = fork();
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);

		dup2(nul, 0);
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		close(pfd[0]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(pfd[1]);
	f = fdopen(pfd[0], "r");
	while (fgets(line, sizeof(line), f)) {
		double t = (now_ns() - t0) / 1e9;
		const char *p;

		if (!m->first_console && strstr(line, "Linux version"))
			m->first_console = t;
		if (!m->run_init && strstr(line, "Run /init"))
			m->run_init = t;
		if (!m->ready && strstr(line, "lego-guest: ready"))
			m->ready = t;
		if ((p = strstr(line, "payload decompressed in "))) {
			m->decompress_ms = strtod(p + 24, NULL);
			if ((p = strstr(p, "(")))
				m->decompressed_mib = strtod(p + 1, NULL);
		}
		if (len + strlen(line) < sizeof(buf)) {
			memcpy(buf + len, line, strlen(line) + 1);
			len += strlen(line);
		}
	}
	fclose(f);
	waitpid(pid, &m->status, 0);
	m->exit = (now_ns() - t0) / 1e9;
	if (!WIFEXITED(m->status) || WEXITSTATUS(m->status) != 0 || !m->ready) {
		fprintf(stderr, "bench_linux: the boot failed (status %#x); its output:\n%s\n",
			m->status, buf + (len > 4000 ? len - 4000 : 0));
		exit(1);
	}
}

static double memcpy_ms(size_t bytes)
{
	char *a = malloc(bytes), *b = malloc(bytes);
	uint64_t t0;
	double best = 1e9;

	memset(a, 1, bytes);
	memset(b, 2, bytes);
	for (int i = 0; i < 5; i++) {
		t0 = now_ns();
		memcpy(b, a, bytes);
		__asm__ volatile("" ::"r"(b) : "memory");
		if ((now_ns() - t0) / 1e6 < best)
			best = (now_ns() - t0) / 1e6;
	}
	free(a);
	free(b);
	return best;
}

int main(int argc, char **argv)
{
	struct marks m;

	test_set_build_dir(argc > 1 ? argv[1] : "build");
	if (access(test_path("guest/vmlinuz"), R_OK)) {
		fprintf(stderr, "bench_linux: no boot kit: run make guest\n");
		return 1;
	}
	boot_once(&m);
	printf("BENCH linux_boot_to_ready_s=%.1f linux_first_console_s=%.1f linux_run_init_s=%.1f "
	       "linux_poweroff_s=%.1f host_decompress_ms=%.1f decompressed_mib=%.1f "
	       "memcpy_same_bytes_ms=%.1f\n",
	       m.ready, m.first_console, m.run_init, m.exit, m.decompress_ms, m.decompressed_mib,
	       memcpy_ms((size_t)(m.decompressed_mib * 1048576)));
	return 0;
}
