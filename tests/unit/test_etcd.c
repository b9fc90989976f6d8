/*
 * test_etcd.c - what needs no etcd running: the gateway's base64 both ways,
 * key ranges, numbers given as strings, endpoint lists refused with a
 * reason, and the list of managers a component or legoctl follows.
 * (Real etcd: tests/manager/test_managers.c.)
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "etcd.h"
#include "http.h"
#include "test.h"

TEST(base64_both_ways_for_every_length_and_byte)
{
	unsigned char data[300];

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 7 + 3);
	for (size_t len = 0; len < sizeof(data); len++) {
		json_t *b = etcd_b64(data, len);
		size_t n = 999;
		char *back = etcd_unb64(b, &n);

		ASSERT(b && back, "length %zu", len);
		ASSERT_EQ(strlen(json_string_value(b)), 4 * ((len + 2) / 3));
		ASSERT_EQ(n, len);
		ASSERT(!memcmp(back, data, len), "length %zu differs after the round trip", len);
		free(back);
		json_decref(b);
	}
	json_t *known = etcd_b64("/lego/leader", 12);
	ASSERT(!strcmp(json_string_value(known), "L2xlZ28vbGVhZGVy"), "%s",
	       json_string_value(known));
	json_decref(known);
}

TEST(bad_base64_and_missing_values_are_refused)
{
	json_t *bad = json_string("L2x*Z28="), *num = json_integer(3);

	ASSERT(!etcd_unb64(bad, NULL), "a '*' in base64 was taken");
	ASSERT(!etcd_unb64(num, NULL), "a number was taken as base64");
	ASSERT(!etcd_unb64(NULL, NULL), "nothing was taken as base64");
	json_decref(bad);
	json_decref(num);
}

TEST(a_prefix_range_holds_its_keys_and_nothing_after)
{
	struct etcd e = {.prefix = "/lego/"};
	json_t *k = etcd_key(&e, "vnodes/"), *end = etcd_key_end(&e, "vnodes/");
	char *ks = etcd_unb64(k, NULL), *es = etcd_unb64(end, NULL);

	ASSERT(!strcmp(ks, "/lego/vnodes/"), "%s", ks);
	ASSERT(!strcmp(es, "/lego/vnodes0"), "%s", es); /* '/' + 1 */
	ASSERT(strcmp("/lego/vnodes/zzzz", es) < 0 && strcmp("/lego/vnodes0", ks) > 0);
	ASSERT(strcmp("/lego/vnodes-rev", ks) < 0, "vnodes-rev would be read as a record");
	free(ks);
	free(es);
	json_decref(k);
	json_decref(end);
}

TEST(numbers_come_as_strings_or_integers)
{
	json_t *o = json_pack("{s:s,s:I,s:s}", "revision", "9007199254740993", "TTL", (json_int_t)3,
			      "ID", "-5");

	ASSERT_EQ(etcd_num(o, "revision"), 9007199254740993LL);
	ASSERT_EQ(etcd_num(o, "TTL"), 3);
	ASSERT_EQ(etcd_num(o, "ID"), -5);
	ASSERT_EQ(etcd_num(o, "absent"), 0);
	json_decref(o);
}

TEST(endpoint_lists_are_checked)
{
	struct pki_identity id = {0};
	struct etcd e;
	char err[256];

	ASSERT_EQ(etcd_open(&e, "http://h:1", &id, err, sizeof(err)), -EINVAL);
	ASSERT_CONTAINS(err, "etcd://HOST:PORT");
	ASSERT_EQ(etcd_open(&e, "etcd://", &id, err, sizeof(err)), -EINVAL);
	ASSERT_EQ(etcd_open(&e, "etcd://a:1,,b:2", &id, err, sizeof(err)), -EINVAL);
	ASSERT_EQ(etcd_open(&e, "etcd://nocolon", &id, err, sizeof(err)), -EINVAL);
	ASSERT_CONTAINS(err, "HOST:PORT");
	ASSERT_EQ(
		etcd_open(&e, "etcd://1:1,2:2,3:3,4:4,5:5,6:6,7:7,8:8,9:9", &id, err, sizeof(err)),
		-EINVAL);
	ASSERT_CONTAINS(err, "at most 8");
	ASSERT_EQ(etcd_open(&e, "etcd://127.0.0.1:2379,[::1]:2379", &id, err, sizeof(err)), 0);
	ASSERT_EQ(e.nr_endpoints, 2);
	ASSERT(!strcmp(e.endpoints[0], "https://127.0.0.1:2379"), "%s", e.endpoints[0]);
	ASSERT(!strcmp(e.endpoints[1], "https://[::1]:2379"), "%s", e.endpoints[1]);
	etcd_close(&e);
}

TEST(manager_lists_are_checked_and_the_first_is_asked_first)
{
	struct http_managers ms;
	char err[256];

	ASSERT_EQ(http_managers_parse(&ms, "", err, sizeof(err)), -1);
	ASSERT_EQ(http_managers_parse(&ms, "https://a:1,,https://b:2", err, sizeof(err)), -1);
	ASSERT_EQ(http_managers_parse(&ms, "https://a:1,https://b:2", err, sizeof(err)), 0);
	ASSERT_EQ(ms.n, 2);
	ASSERT(!strcmp(http_managers_now(&ms), "https://a:1"), "%s", http_managers_now(&ms));
	snprintf(ms.leader, sizeof(ms.leader), "https://b:2");
	ASSERT(!strcmp(http_managers_now(&ms), "https://b:2"), "%s", http_managers_now(&ms));
}
