/* log.c - leveled logging to stderr, one write per line so threads do not interleave. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static const char *log_prog = "lego";
static enum log_level log_max = LOG_INFO;

void log_init(const char *prog, enum log_level level)
{
	const char *slash = strrchr(prog, '/');

	log_prog = slash ? slash + 1 : prog;
	log_max = level;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const tag[] = {"error: ", "warning: ", "", "debug: "};
	char line[2048];
	va_list ap;
	int n;

	if (level > log_max)
		return;
	n = snprintf(line, sizeof(line), "%s: %s", log_prog, tag[level]);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* One write(2) per line: stdio buffering would interleave vCPU threads. */
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}
