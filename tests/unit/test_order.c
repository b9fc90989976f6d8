/*
 * test_order.c - the vNode order (common/order.h): its JSON form round
 * trips whole, every key is checked and unknown ones refused, the checks
 * between its parts hold, a memfd carries it to a reader and cannot be
 * changed after, and its public form shows no credential.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "order.h"
#include "test.h"

static const char *const full =
	"{\"name\":\"web\",\"cpus\":2,\"memory\":536870912,\"kernel\":\"/k\",\"initrd\":\"/i\","
	"\"cmdline\":\"console=ttyS0\",\"excache\":67108864,\"vnode\":42,"
	"\"token\":\"0101010101010101010101010101010101010101010101010101010101010101\","
	"\"slab_size\":268435456,\"memsrv\":[\"a:1\",\"b:2\"],\"memsrv_secondary\":[\"b:2\",\"a:1\"],"
	"\"epoch\":7,\"backup\":{\"url\":\"storsrv://s:3/web.mem\","
	"\"token\":\"0202020202020202020202020202020202020202020202020202020202020202\","
	"\"interval_ms\":500},\"disks\":[{\"url\":\"storsrv://s:3/web\","
	"\"token\":\"0303030303030303030303030303030303030303030303030303030303030303\"},"
	"{\"url\":\"/tmp/scratch.img\"}],\"control\":\"/run/web.sock\",\"cpuid\":\"baseline\","
	"\"disk_deadline_s\":9,\"prefetch\":4,\"poll\":\"spin\",\"spin_us\":50,\"warm\":0}";

static void load(struct vnode_order *o, const char *text, int want, const char *why)
{
	json_t *j = json_loads(text, 0, NULL);
	char err[256] = "";

	ASSERT(j, "test JSON does not parse: %s", text);
	order_init(o);
	ASSERT_EQ(order_from_json(o, j, err, sizeof(err)), want);
	if (why)
		ASSERT_CONTAINS(err, why);
	json_decref(j);
}

TEST(an_order_round_trips_through_json_whole)
{
	struct vnode_order o, back;
	json_t *j, *orig = json_loads(full, 0, NULL);
	char err[256];

	load(&o, full, 0, NULL);
	ASSERT_EQ(order_check(&o, err, sizeof(err)), 0);
	ASSERT_EQ(o.cpus, 2);
	ASSERT_EQ(o.nr_memsrv, 2);
	ASSERT(!strcmp(o.secondary[1], "a:1"));
	ASSERT_EQ(o.nr_disks, 2);
	ASSERT(o.disks[0].has_token && !o.disks[1].has_token);
	ASSERT_EQ(o.disks[0].token[5], 3);
	ASSERT_EQ(o.backup.interval_ms, 500);
	ASSERT(o.poll_spin);
	ASSERT_EQ(o.warm, 0);
	j = order_to_json(&o);
	ASSERT(json_equal(j, orig), "the JSON written is not the JSON read");
	order_init(&back);
	ASSERT_EQ(order_from_json(&back, j, err, sizeof(err)), 0);
	ASSERT(!memcmp(back.token, o.token, sizeof(o.token)));
	json_decref(j);
	json_decref(orig);
	order_free(&back);
	order_free(&o);
	ASSERT(!o.name && !o.memsrv && !o.nr_disks, "order_free leaves an empty order");
}

TEST(every_key_is_checked_and_unknown_keys_are_refused)
{
	struct vnode_order o;

	load(&o, "{\"cpus\":0}", -EINVAL, "cpus must be a whole number from 1 to 64");
	order_free(&o);
	load(&o, "{\"cpus\":\"two\"}", -EINVAL, "cpus");
	order_free(&o);
	load(&o, "{\"memory\":-1}", -EINVAL, "memory");
	order_free(&o);
	load(&o, "{\"name\":7}", -EINVAL, "name has the wrong type");
	order_free(&o);
	load(&o, "{\"token\":\"abc\"}", -EINVAL, "token must be 64 hex digits");
	order_free(&o);
	load(&o, "{\"memsrv\":[\"a:1\",\"\"]}", -EINVAL, "non-empty");
	order_free(&o);
	load(&o, "{\"memsrv\":[1]}", -EINVAL, "memsrv");
	order_free(&o);
	load(&o, "{\"poll\":\"sometimes\"}", -EINVAL, "poll");
	order_free(&o);
	load(&o, "{\"backup\":{\"url\":\"storsrv://s:1/v\"}}", -EINVAL, "backup");
	order_free(&o);
	load(&o, "{\"disks\":[{\"url\":\"/x\",\"size\":1}]}", -EINVAL, "each disk");
	order_free(&o);
	load(&o, "{\"disks\":[1,2,3,4,5,6,7,8,9]}", -EINVAL, "at most 8");
	order_free(&o);
	load(&o, "{\"frobnicate\":true}", -EINVAL, "unknown key 'frobnicate'");
	order_free(&o);
	load(&o, "[]", -EINVAL, "a JSON object");
	order_free(&o);
}

static void check(const char *text, const char *why)
{
	struct vnode_order o;
	char err[256] = "";

	load(&o, text, 0, NULL);
	ASSERT_EQ(order_check(&o, err, sizeof(err)), -EINVAL);
	ASSERT_CONTAINS(err, why);
	order_free(&o);
}

TEST(the_parts_of_an_order_must_agree)
{
	check("{}", "nothing to run");
	check("{\"payload\":\"p\",\"kernel\":\"k\"}", "nothing to run");
	check("{\"payload\":\"p\",\"initrd\":\"i\"}", "go with --kernel");
	check("{\"payload\":\"p\",\"excache\":1048576}", "--excache and --memsrv go together");
	check("{\"payload\":\"p\",\"excache\":1048576,\"memsrv\":[\"a:1\",\"b:1\"]}",
	      "--slab-size");
	check("{\"payload\":\"p\",\"excache\":1048576,\"slab_size\":4096,\"memsrv\":[\"a:1\",\"b:1\"],"
	      "\"memsrv_secondary\":[\"c:1\"]}",
	      "one secondary per slab");
	check("{\"payload\":\"p\",\"excache\":1048576,\"memsrv\":[\"a:1\"],\"backup\":"
	      "{\"url\":\"storsrv://s:1/v\",\"token\":"
	      "\"0202020202020202020202020202020202020202020202020202020202020202\"}}",
	      "goes with the order's backup.token and --memsrv-secondary");
	check("{\"payload\":\"p\",\"disks\":[{\"url\":\"storsrv://s:1/v\"}]}",
	      "a volume on a storage server needs its token");
	check("{\"payload\":\"p\",\"disks\":[{\"url\":\"storsrv://s:1/../v\",\"token\":"
	      "\"0202020202020202020202020202020202020202020202020202020202020202\"}]}",
	      "names a host and a volume");
	check("{\"payload\":\"p\",\"cpuid\":\"newest\"}", "host or baseline");
	check("{\"payload\":\"p\",\"memory\":67108864,\"max_memory\":67108864}",
	      "--max-memory is more than --memory, by a multiple of 2M");
	check("{\"payload\":\"p\",\"memory\":67108864,\"max_memory\":68157440}",
	      "--max-memory is more than --memory, by a multiple of 2M");
	check("{\"payload\":\"p\",\"memory\":67108864,\"max_memory\":134217728,"
	      "\"hotplug\":134217728}",
	      "the hotplugged memory is a multiple of 2M up to --max-memory");
	check("{\"payload\":\"p\",\"incoming\":\"h:1\"}",
	      "--incoming goes with the order's migrate_token");
	check("{\"payload\":\"p\",\"incoming\":\"h:1\",\"migrate_token\":"
	      "\"0404040404040404040404040404040404040404040404040404040404040404\"}",
	      "whose memory is on memory servers");
}

TEST(a_migrate_token_is_a_credential)
{
	struct vnode_order o;
	char err[256], *text;
	json_t *j, *pub;

	order_init(&o);
	j = json_loads("{\"payload\":\"p\",\"excache\":1048576,\"memsrv\":[\"a:1\"],"
		       "\"incoming\":\"h:1\",\"migrate_token\":"
		       "\"0404040404040404040404040404040404040404040404040404040404040404\"}",
		       0, NULL);
	ASSERT_EQ(order_from_json(&o, j, err, sizeof(err)), 0);
	ASSERT_EQ(order_check(&o, err, sizeof(err)), 0);
	ASSERT(o.has_migrate_token && o.migrate_token[0] == 4);
	pub = order_public_json(&o);
	text = json_dumps(pub, JSON_COMPACT);
	ASSERT(!strstr(text, "0404040404"), "the migrate token in the public form: %s", text);
	ASSERT_CONTAINS(text, "\"migrate_token\":\"(secret)\"");
	free(text);
	json_decref(pub);
	json_decref(j);
	order_free(&o);
}

TEST(a_memfd_carries_the_order_sealed_and_the_public_form_hides_credentials)
{
	struct vnode_order o, got;
	json_t *pub;
	char err[256], *text;
	int fd;

	load(&o, full, 0, NULL);
	fd = order_memfd(&o, err, sizeof(err));
	ASSERT(fd >= 0, "%s", err);
	ASSERT(write(fd, "x", 1) < 0, "the order can be changed after it was sealed");
	order_init(&got);
	ASSERT_EQ(order_read_fd(&got, fd, err, sizeof(err)), 0);
	ASSERT(!strcmp(got.name, "web") && got.nr_disks == 2 && got.epoch == 7);
	ASSERT(!memcmp(got.backup.token, o.backup.token, sizeof(o.backup.token)));
	close(fd);
	pub = order_public_json(&o);
	text = json_dumps(pub, JSON_COMPACT);
	ASSERT(!strstr(text, "0101010101") && !strstr(text, "0202020202") &&
		       !strstr(text, "0303030303"),
	       "a credential in the public form: %s", text);
	ASSERT_CONTAINS(text, "\"token\":\"(secret)\"");
	free(text);
	json_decref(pub);
	order_free(&got);
	order_free(&o);
}

TEST(a_vmm_credential_travels_in_the_order_and_its_key_never_shows)
{
	struct vnode_order o;
	char err[256], *text;
	json_t *j, *pub;

	order_init(&o);
	j = json_pack("{s:s,s:s,s:s,s:s}", "payload", "p", "tls_ca",
		      "-----BEGIN CERTIFICATE-----\nCAFE\n", "tls_cert",
		      "-----BEGIN CERTIFICATE-----\nBEEF\n", "tls_key",
		      "-----BEGIN EC PRIVATE KEY-----\nSECRETKEY\n");
	ASSERT_EQ(order_from_json(&o, j, err, sizeof(err)), 0);
	ASSERT_EQ(order_check(&o, err, sizeof(err)), 0);
	pub = order_public_json(&o);
	text = json_dumps(pub, JSON_COMPACT);
	ASSERT(!strstr(text, "SECRETKEY") && !strstr(text, "BEEF"), "in the public form: %s", text);
	ASSERT_CONTAINS(text, "\"tls_key\":\"(secret)\"");
	free(text);
	json_decref(pub);
	/* a certificate without its key, or a key without the CA, is refused */
	order_set(&o.tls_key, NULL);
	ASSERT(order_check(&o, err, sizeof(err)) < 0);
	ASSERT_CONTAINS(err, "tls_cert and tls_key go together");
	json_decref(j);
	order_free(&o);
}

TEST(the_verbs_have_one_definition)
{
	ASSERT_EQ(vnode_verb_by_op("lost"), VERB_MEMSRV_LOST);
	ASSERT_EQ(vnode_verb_by_op("excache"), VERB_EXCACHE_RESIZE);
	ASSERT_EQ(vnode_verb_by_op("resize"), -1);
	ASSERT_EQ(vnode_verb_by_op("pause"), VERB_PAUSE);
	ASSERT(vnode_verbs[VERB_PAUSE].arg == NULL, "pause takes no argument");
	for (int i = 0; i < NR_VERBS; i++)
		ASSERT(vnode_verbs[i].op && vnode_verbs[i].cmd && vnode_verbs[i].help,
		       "verb %d is not whole", i);
}
