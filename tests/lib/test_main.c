/* test_main.c - main() of every test binary: run each registered case in a child. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

#define TEST_EXIT_SKIP 77

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int run_case(int i)
{
	double start = mono_s();
	int status;
	pid_t pid;

	const char *dir = test_case_dir(i);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		setpgid(0, 0); /* so a timeout can kill whatever the case started */
		alarm(test_timeout(i));
		signal(SIGALRM, SIG_DFL);
		test_call(i);
		exit(0);
	}
	waitpid(pid, &status, 0);
	kill(-pid, SIGKILL); /* leftovers of the case */
	{
		char cmd[600];

		/* Daemons a case started in sessions of their own leave pid files. */
		snprintf(cmd, sizeof(cmd),
			 "find '%s' -name '*.pid' -exec cat {} + 2>/dev/null | xargs -r kill -9 "
			 "2>/dev/null",
			 dir);
		if (system(cmd) < 0)
			fprintf(stderr, "  (could not look for daemons left in %s)\n", dir);

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "  (could not remove %s)\n", dir);
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		printf("PASS %s (%.2f s)\n", test_name(i), mono_s() - start);
		return 0;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == TEST_EXIT_SKIP) {
		printf("SKIP %s\n", test_name(i));
		return 0;
	}
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
		printf("FAIL %s: timed out after %d s\n", test_name(i), test_timeout(i));
	else if (WIFSIGNALED(status))
		printf("FAIL %s: killed by signal %d\n", test_name(i), WTERMSIG(status));
	else
		printf("FAIL %s\n", test_name(i));
	return 1;
}

int main(int argc, char **argv)
{
	int failed = 0;
	const char *only = getenv("TEST_ONLY");

	if (argc > 1)
		test_set_build_dir(argv[1]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 0; i < test_count(); i++)
		if (!only || strstr(test_name(i), only))
			failed |= run_case(i);
	return failed;
}
