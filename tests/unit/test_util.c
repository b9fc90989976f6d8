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

/* What an HTTP error carries back (a path of stray bytes, a message cut in the
 * middle of a character) becomes valid UTF-8, and valid text is left alone. */
TEST(text_is_scrubbed_to_valid_utf8)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"plain /v1/vnodes", "plain /v1/vnodes"},
		{"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x92\xbe",
		 "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x92\xbe"},
		{"/metrics\xff\x05", "/metrics?\x05"},
		{"cut \xe2\x82", "cut ??"},   /* a three-byte character cut after two */
		{"\xc0\xaf", "??"},	      /* an overlong '/' */
		{"\xed\xa0\x80", "???"},      /* a surrogate */
		{"\xf4\x90\x80\x80", "????"}, /* past U+10FFFF */
		{"\x80 lone continuation", "? lone continuation"},
	};
	char buf[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(buf, sizeof(buf), "%s", cases[i].in);
		utf8_scrub(buf);
		ASSERT(!strcmp(buf, cases[i].out), "case %zu: '%s'", i, buf);
	}
}
