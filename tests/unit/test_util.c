/* test_util.c - common/util.c: what counts as a host and an address, sizes, hex. */
#include <string.h>

#include "test.h"
#include "util.h"

TEST(addresses_are_host_and_port_and_nothing_else)
{
	const char *good[] = {"127.0.0.1:7400", "mem-1.example.org:1", "[::1]:65535",
			      "[fe80::1]:80", "localhost:7300"};
	const char *bad[] = {"",
			     "127.0.0.1",
			     "127.0.0.1:",
			     "127.0.0.1:0",
			     "127.0.0.1:65536",
			     "127.0.0.1:74a",
			     ":7400",
			     "a\"b:7400",
			     "a b:7400",
			     "a\nb:7400",
			     "a}b:7400",
			     "[::1:7400",
			     "[::1]7400",
			     "[a-b]:1",
			     "127.0.0.1:-1"};
	char longest[300];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ASSERT(addr_ok(good[i]), "'%s' was refused", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ASSERT(!addr_ok(bad[i]), "'%s' was taken for an address", bad[i]);
	ASSERT(!addr_ok(NULL));
	memset(longest, 'a', 254);
	strcpy(longest + 254, ":1");
	ASSERT(!addr_ok(longest), "a host of 254 characters was taken");
	ASSERT(host_ok("10.0.0.7") && host_ok("::1") && host_ok("node-7"));
	ASSERT(!host_ok("node 7") && !host_ok("") && !host_ok("x\"y") && !host_ok(NULL));
}

TEST(sizes_parse_and_print)
{
	uint64_t v = 0;
	char buf[32];

	ASSERT_EQ(parse_size("64M", &v), 0);
	ASSERT_EQ(v, 64ULL << 20);
	ASSERT(parse_size("12Q", &v) != 0, "12Q was taken for a size");
	ASSERT_CONTAINS(format_size(3ULL << 30, buf, sizeof(buf)), "3 GiB");
}
