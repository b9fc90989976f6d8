/*
 * test_xml.c - libvirt domain XML in and out (manager/xml.c), through
 * libvirt's own library: a document is validated against libvirt's schema,
 * lego's settings come from its metadata, and what dumpxml writes reads back
 * as the same vNode.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manager.h"
#include "test.h"
#include "util.h"

static const char *const db_xml =
	"<domain type='kvm'>\n"
	"  <name>db</name>\n"
	"  <memory unit='MiB'>512</memory>\n"
	"  <vcpu>2</vcpu>\n"
	"  <os><type arch='x86_64'>hvm</type><kernel>/boot/vmlinuz</kernel>\n"
	"      <initrd>/boot/initrd.img</initrd><cmdline>console=ttyS0 quiet</cmdline></os>\n"
	"  <metadata><lego:vnode xmlns:lego='https://lego.dev/xmlns/vnode/1'>\n"
	"    <lego:excache unit='MiB'>64</lego:excache>\n"
	"    <lego:disk unit='GiB'>4</lego:disk>\n"
	"  </lego:vnode></metadata>\n"
	"  <devices><disk type='volume' device='disk'><source pool='lego' volume='db'/>\n"
	"    <target dev='vda' bus='virtio'/></disk></devices>\n"
	"</domain>\n";

#define S(j, k) json_string_value(json_object_get(j, k))
#define I(j, k) ((uint64_t)json_integer_value(json_object_get(j, k)))

TEST(a_libvirt_domain_becomes_a_vnode_spec)
{
	char err[1024];
	json_t *spec = xml_to_spec(db_xml, err, sizeof(err));

	ASSERT(spec, "%s", err);
	ASSERT_EQ(strcmp(S(spec, "name"), "db"), 0);
	ASSERT_EQ(I(spec, "memory"), 512 * MiB);
	ASSERT_EQ(I(spec, "cpus"), 2);
	ASSERT_EQ(I(spec, "excache"), 64 * MiB);
	ASSERT_EQ(json_array_size(json_object_get(spec, "disks")), 1);
	ASSERT_EQ(json_integer_value(json_array_get(json_object_get(spec, "disks"), 0)), 4 * GiB);
	ASSERT_EQ(strcmp(S(spec, "kernel"), "/boot/vmlinuz"), 0);
	ASSERT_EQ(strcmp(S(spec, "initrd"), "/boot/initrd.img"), 0);
	ASSERT_EQ(strcmp(S(spec, "cmdline"), "console=ttyS0 quiet"), 0);
	json_decref(spec);
}

TEST(dumpxml_reads_back_as_the_same_vnode)
{
	char err[1024], *xml, *xml2;
	json_t *spec = xml_to_spec(db_xml, err, sizeof(err)), *back, *again;

	ASSERT(spec, "%s", err);
	xml = spec_to_xml(spec, err, sizeof(err));
	ASSERT(xml, "%s", err);
	ASSERT_CONTAINS(xml, "<name>db</name>");
	ASSERT_CONTAINS(xml, "https://lego.dev/xmlns/vnode/1");
	back = xml_to_spec(xml, err, sizeof(err));
	ASSERT(back, "dumpxml's output is refused: %s\n%s", err, xml);
	ASSERT(json_equal(spec, back), "round trip changed the spec:\n%s\n%s", json_dumps(spec, 0),
	       json_dumps(back, 0));
	/* And a second round gives the same document: it is libvirt's normal form. */
	xml2 = spec_to_xml(back, err, sizeof(err));
	ASSERT(xml2 && !strcmp(xml, xml2), "not stable:\n%s\n%s", xml, xml2);
	/* A payload vNode's own settings go through the metadata too. */
	json_t *p = json_pack("{s:s,s:s,s:I,s:i,s:I,s:[I,I],s:s,s:s,s:b}", "name", "t", "uuid",
			      "0f3e1b6a-4c1d-4f2e-9a7b-5d6c7e8f9a0b", "memory",
			      (json_int_t)(64 * MiB), "cpus", 1, "excache", (json_int_t)(16 * MiB),
			      "disks", (json_int_t)(64 * MiB), (json_int_t)(8 * MiB), "payload",
			      "touch", "args", "op=verify passes=3 <&>", "net", 0);
	free(xml);
	xml = spec_to_xml(p, err, sizeof(err));
	ASSERT(xml, "%s", err);
	again = xml_to_spec(xml, err, sizeof(err));
	ASSERT(again, "%s", err);
	ASSERT(json_equal(p, again), "%s\n%s", json_dumps(p, 0), json_dumps(again, 0));
	free(xml);
	/* A network interface: written with the vNode's MAC, read back as "net". */
	json_decref(again);
	json_object_set_new(p, "net", json_true());
	json_object_set_new(p, "mac", json_string("02:4c:47:4d:00:05"));
	xml = spec_to_xml(p, err, sizeof(err));
	ASSERT(xml, "%s", err);
	ASSERT_CONTAINS(xml, "<interface type='bridge'>");
	ASSERT_CONTAINS(xml, "<mac address='02:4c:47:4d:00:05'/>");
	again = xml_to_spec(xml, err, sizeof(err));
	ASSERT(again && json_is_true(json_object_get(again, "net")), "%s", err);
	free(xml);
	free(xml2);
	json_decref(spec);
	json_decref(back);
	json_decref(again);
	json_decref(p);
}

TEST(invalid_domains_are_refused_with_libvirts_reason)
{
	char err[1024];
	json_t *spec;

	spec = xml_to_spec("<domain type='kvm'><name>x</name><memory>lots</memory></domain>", err,
			   sizeof(err));
	ASSERT(!spec);
	ASSERT_CONTAINS(err, "not a valid libvirt domain");
	spec = xml_to_spec("<domain", err, sizeof(err));
	ASSERT(!spec);
	spec = xml_to_spec("<domain type='kvm'><name>x</name><memory unit='MiB'>64</memory>"
			   "<os><type>hvm</type></os><devices><disk type='file' device='disk'>"
			   "<source file='/nonexistent/disk.img'/><target dev='vda' bus='virtio'/>"
			   "</disk></devices></domain>",
			   err, sizeof(err));
	ASSERT(!spec, "a disk of unknown size was accepted");
	ASSERT_CONTAINS(err, "lego:disk");
	/* a file that exists on the manager's host is not looked at either: the
	 * answer is the same, so a caller learns nothing about the host's files */
	spec = xml_to_spec("<domain type='kvm'><name>x</name><memory unit='MiB'>64</memory>"
			   "<os><type>hvm</type></os><devices><disk type='file' device='disk'>"
			   "<source file='/etc/hostname'/><target dev='vda' bus='virtio'/>"
			   "</disk></devices></domain>",
			   err, sizeof(err));
	ASSERT(!spec, "the size of a file on the manager's host was read");
	ASSERT_CONTAINS(err, "reads no file a domain names");
}

TEST(the_example_domain_is_valid)
{
	char err[1024], *xml = NULL;
	size_t len = 0;
	FILE *f = fopen("examples/web.xml", "r");
	json_t *spec;

	ASSERT(f, "examples/web.xml: run the test from the repository");
	ASSERT(getdelim(&xml, &len, '\0', f) > 0);
	fclose(f);
	spec = xml_to_spec(xml, err, sizeof(err));
	ASSERT(spec, "examples/web.xml: %s", err);
	ASSERT_EQ(I(spec, "memory"), GiB);
	ASSERT_EQ(I(spec, "excache"), 128 * MiB);
	ASSERT_EQ(json_integer_value(json_array_get(json_object_get(spec, "disks"), 0)), GiB);
	ASSERT(!json_object_get(spec, "kernel"), "no kernel: the boot kit's");
	json_decref(spec);
	free(xml);
}
