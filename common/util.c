/* util.c - size parsing and formatting used by every command line. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

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
