/* test_util.c - size parsing and formatting for command lines. */
#include <errno.h>
#include <string.h>

#include "test.h"
#include "util.h"

TEST(parse_size_accepts_units)
{
	uint64_t v;

	ASSERT_EQ(parse_size("4096", &v), 0);
	ASSERT_EQ(v, 4096);
	ASSERT_EQ(parse_size("64M", &v), 0);
	ASSERT_EQ(v, 64 * MiB);
	ASSERT_EQ(parse_size("2G", &v), 0);
	ASSERT_EQ(v, 2 * GiB);
	ASSERT_EQ(parse_size("512KiB", &v), 0);
	ASSERT_EQ(v, 512 * KiB);
	ASSERT_EQ(parse_size("1t", &v), 0);
	ASSERT_EQ(v, 1024 * GiB);
}

TEST(parse_size_rejects_garbage_and_overflow)
{
	uint64_t v;

	ASSERT_EQ(parse_size("", &v), -EINVAL);
	ASSERT_EQ(parse_size("M", &v), -EINVAL);
	ASSERT_EQ(parse_size("-1", &v), -EINVAL);
	ASSERT_EQ(parse_size("12Q", &v), -EINVAL);
	ASSERT_EQ(parse_size("1.5G", &v), -EINVAL);
	ASSERT_EQ(parse_size("99999999999999999999", &v), -ERANGE);
	ASSERT_EQ(parse_size("17179869184G", &v), -ERANGE);
}

TEST(format_size_is_readable)
{
	char b[32];

	ASSERT(strcmp(format_size(64 * MiB, b, sizeof(b)), "64 MiB") == 0);
	ASSERT(strcmp(format_size(1536 * MiB, b, sizeof(b)), "1.5 GiB") == 0);
	ASSERT(strcmp(format_size(100, b, sizeof(b)), "100 B") == 0);
}
