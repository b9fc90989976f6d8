/*
 * xml.c - libvirt domain XML in and out. A document is validated and
 * normalised by libvirt itself (its in-process test driver, with schema
 * validation), then read with XPath; lego's own settings sit in <metadata>
 * under the namespace LEGO_XMLNS:
 *
 *   <metadata>
 *     <lego:vnode xmlns:lego="https://lego.dev/xmlns/vnode/1">
 *       <lego:excache unit="bytes">268435456</lego:excache>
 *       <lego:disk unit="bytes">4294967296</lego:disk>   (a volume's size; one per disk)
 *       <lego:payload args="op=verify">touch</lego:payload>  (test payloads)
 *     </lego:vnode>
 *   </metadata>
 *
 * Each <disk device="disk"> among the devices is one of the vNode's
 * volumes (vda, vdb, ... in order); its size comes from the <lego:disk> of
 * the same rank, never from a file the domain names (a path on the host of
 * whoever posted it; the manager opens no path a caller gives). dumpxml writes
 * them as <disk type="volume"> of the storage pool "lego". An
 * <interface> is the vNode's network interface (on the cluster's network,
 * its address the manager's to give): dumpxml writes it as
 * <interface type="bridge"> with the vNode's MAC; a domain without one has
 * no network.
 */
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manager.h"
#include "order.h"
#include "util.h"

#define LEGO_XMLNS "https://lego.dev/xmlns/vnode/1"

static pthread_mutex_t virt_lock = PTHREAD_MUTEX_INITIALIZER;
static virConnectPtr virt;

static void virt_quiet(void *opaque, virErrorPtr e)
{
	(void)opaque, (void)e; /* errors are reported to the caller, not on stderr */
}

static const char *virt_error(void)
{
	virErrorPtr e = virGetLastError();

	return e && e->message ? e->message : "unknown libvirt error";
}

/*
 * Define @xml in libvirt's test driver with schema validation and return its
 * normalised form (malloc'd), or NULL with libvirt's reason. Lock held.
 */
static char *virt_normalise(const char *xml, char *err, size_t errlen)
{
	virDomainPtr d;
	char *out;

	if (!virt) {
		virSetErrorFunc(NULL, virt_quiet);
		virt = virConnectOpen("test:///default");
		if (!virt) {
			snprintf(err, errlen, "libvirt's test driver: %s", virt_error());
			return NULL;
		}
	}
	d = virDomainDefineXMLFlags(virt, xml, VIR_DOMAIN_DEFINE_VALIDATE);
	if (!d) {
		snprintf(err, errlen, "not a valid libvirt domain: %s", virt_error());
		return NULL;
	}
	out = virDomainGetXMLDesc(d, 0);
	if (!out)
		snprintf(err, errlen, "libvirt: %s", virt_error());
	virDomainUndefine(d);
	virDomainFree(d);
	return out;
}

static char *xpath_str(xmlXPathContextPtr ctx, const char *expr)
{
	xmlXPathObjectPtr o = xmlXPathEvalExpression((const xmlChar *)expr, ctx);
	char *s = NULL;

	if (o && o->nodesetval && o->nodesetval->nodeNr > 0) {
		xmlChar *c = xmlNodeGetContent(o->nodesetval->nodeTab[0]);

		s = strdup((const char *)c);
		xmlFree(c);
	}
	xmlXPathFreeObject(o);
	return s;
}

static int xpath_count(xmlXPathContextPtr ctx, const char *expr)
{
	xmlXPathObjectPtr o = xmlXPathEvalExpression((const xmlChar *)expr, ctx);
	int n = o && o->nodesetval ? o->nodesetval->nodeNr : 0;

	xmlXPathFreeObject(o);
	return n;
}

/* A size element with a libvirt-style unit attribute, e.g. <x unit="MiB">64</x>. */
static int xpath_size(xmlXPathContextPtr ctx, const char *elem, uint64_t *out, char *err,
		      size_t errlen)
{
	char expr[256], *val, *unit;
	uint64_t n;
	int ret = 0;

	snprintf(expr, sizeof(expr), "string(%s)", elem);
	val = xpath_str(ctx, elem);
	if (!val)
		return 1; /* absent */
	snprintf(expr, sizeof(expr), "%s/@unit", elem);
	unit = xpath_str(ctx, expr);
	snprintf(expr, sizeof(expr), "%s%s", val,
		 !unit || !strcmp(unit, "bytes") || !strcmp(unit, "b") ? "" : unit);
	if (parse_size(expr, &n)) {
		snprintf(err, errlen, "%s: '%s %s' is not a size", elem, val, unit ? unit : "");
		ret = -1;
	}
	*out = n;
	free(val);
	free(unit);
	return ret;
}

json_t *xml_to_spec(const char *xml, char *err, size_t errlen)
{
	xmlDocPtr doc = NULL;
	xmlXPathContextPtr ctx = NULL;
	json_t *spec = NULL;
	char *norm, *s;
	uint64_t size;
	int r;

	pthread_mutex_lock(&virt_lock);
	norm = virt_normalise(xml, err, errlen);
	pthread_mutex_unlock(&virt_lock);
	if (!norm)
		return NULL;
	doc = xmlReadMemory(norm, (int)strlen(norm), "domain.xml", NULL, XML_PARSE_NONET);
	ctx = doc ? xmlXPathNewContext(doc) : NULL;
	if (!ctx) {
		snprintf(err, errlen, "cannot read libvirt's normalised domain XML");
		goto out;
	}
	xmlXPathRegisterNs(ctx, (const xmlChar *)"lego", (const xmlChar *)LEGO_XMLNS);
	spec = json_object();
	s = xpath_str(ctx, "/domain/name");
	json_object_set_new(spec, "name", json_string(s ? s : ""));
	free(s);
	s = xpath_str(ctx, "/domain/uuid"); /* libvirt made one if the document had none */
	if (s)
		json_object_set_new(spec, "uuid", json_string(s));
	free(s);
	if (xpath_size(ctx, "/domain/memory", &size, err, errlen))
		goto bad;
	json_object_set_new(spec, "memory", json_integer((json_int_t)size));
	r = xpath_size(ctx, "/domain/maxMemory", &size, err, errlen);
	if (r < 0)
		goto bad;
	if (!r)
		json_object_set_new(spec, "max_memory", json_integer((json_int_t)size));
	s = xpath_str(ctx, "/domain/vcpu");
	json_object_set_new(spec, "cpus", json_integer(s ? atoi(s) : 1));
	free(s);
	static const char *const os[][2] = {
		{"kernel", "/domain/os/kernel"},
		{"initrd", "/domain/os/initrd"},
		{"cmdline", "/domain/os/cmdline"},
		{"payload", "/domain/metadata/lego:vnode/lego:payload"},
		{"args", "/domain/metadata/lego:vnode/lego:payload/@args"}};
	for (size_t i = 0; i < ARRAY_SIZE(os); i++) {
		s = xpath_str(ctx, os[i][1]);
		if (s)
			json_object_set_new(spec, os[i][0], json_string(s));
		free(s);
	}
	r = xpath_size(ctx, "/domain/metadata/lego:vnode/lego:excache", &size, err, errlen);
	if (r < 0)
		goto bad;
	if (!r)
		json_object_set_new(spec, "excache", json_integer((json_int_t)size));
	if (xpath_count(ctx, "/domain/devices/disk[@device='disk']") > ORDER_MAX_DISKS) {
		snprintf(err, errlen, "a vNode has at most %d disks", ORDER_MAX_DISKS);
		goto bad;
	}
	if (xpath_count(ctx, "/domain/devices/interface") > 1) {
		snprintf(err, errlen, "a vNode has at most one network interface");
		goto bad;
	}
	json_object_set_new(spec, "net",
			    json_boolean(xpath_count(ctx, "/domain/devices/interface") == 1));
	{
		int n = xpath_count(ctx, "/domain/devices/disk[@device='disk']");
		json_t *disks = json_array();

		json_object_set_new(spec, "disks", disks);
		for (int i = 1; i <= n; i++) {
			char expr[160];

			snprintf(expr, sizeof(expr), "/domain/metadata/lego:vnode/lego:disk[%d]",
				 i);
			r = xpath_size(ctx, expr, &size, err, errlen);
			if (r < 0)
				goto bad;
			if (r) { /* never from a file it names: that is the caller's host */
				snprintf(err, errlen,
					 "disk %d's size is unknown: give it as <lego:disk "
					 "unit=\"GiB\">4</lego:disk> in the lego metadata (the "
					 "manager reads no file a domain names)",
					 i);
				goto bad;
			}
			json_array_append_new(disks, json_integer((json_int_t)size));
		}
	}
	goto out;
bad:
	json_decref(spec);
	spec = NULL;
out:
	xmlXPathFreeContext(ctx);
	xmlFreeDoc(doc);
	free(norm);
	return spec;
}

/* Escape @s for XML text or attribute values. */
static void esc(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<':
			fputs("&lt;", f);
			break;
		case '>':
			fputs("&gt;", f);
			break;
		case '&':
			fputs("&amp;", f);
			break;
		case '"':
			fputs("&quot;", f);
			break;
		case '\'':
			fputs("&apos;", f);
			break;
		default:
			fputc(*s, f);
		}
	}
}

static void elem(FILE *f, const char *indent, const char *tag, const char *val)
{
	if (!val)
		return;
	fprintf(f, "%s<%s>", indent, tag);
	esc(f, val);
	fprintf(f, "</%s>\n", tag);
}

char *spec_to_xml(const json_t *spec, char *err, size_t errlen)
{
#define STR(k) json_string_value(json_object_get(spec, k))
#define INT(k) ((long long)json_integer_value(json_object_get(spec, k)))
	char *buf = NULL, *norm;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	fprintf(f, "<domain type='kvm'>\n");
	elem(f, "  ", "name", STR("name"));
	elem(f, "  ", "uuid", STR("uuid"));
	fprintf(f, "  <metadata>\n    <lego:vnode xmlns:lego='%s'>\n", LEGO_XMLNS);
	fprintf(f, "      <lego:excache unit='bytes'>%lld</lego:excache>\n", INT("excache"));
	for (size_t i = 0; i < json_array_size(json_object_get(spec, "disks")); i++)
		fprintf(f, "      <lego:disk unit='bytes'>%lld</lego:disk>\n",
			(long long)json_integer_value(
				json_array_get(json_object_get(spec, "disks"), i)));
	if (STR("payload")) {
		fprintf(f, "      <lego:payload");
		if (STR("args")) {
			fprintf(f, " args='");
			esc(f, STR("args"));
			fprintf(f, "'");
		}
		fprintf(f, ">");
		esc(f, STR("payload"));
		fprintf(f, "</lego:payload>\n");
	}
	fprintf(f, "    </lego:vnode>\n  </metadata>\n");
	/* libvirt's form of memory that can grow: a maximum, and what there is now */
	if (INT("max_memory"))
		fprintf(f, "  <maxMemory unit='bytes'>%lld</maxMemory>\n", INT("max_memory"));
	fprintf(f, "  <memory unit='bytes'>%lld</memory>\n", INT("memory"));
	if (INT("max_memory"))
		fprintf(f, "  <currentMemory unit='bytes'>%lld</currentMemory>\n",
			INT("memory") + INT("hotplug"));
	fprintf(f, "  <vcpu>%lld</vcpu>\n", INT("cpus"));
	fprintf(f, "  <os>\n    <type arch='x86_64'>hvm</type>\n");
	elem(f, "    ", "kernel", STR("kernel"));
	elem(f, "    ", "initrd", STR("initrd"));
	elem(f, "    ", "cmdline", STR("cmdline"));
	fprintf(f, "  </os>\n  <devices>\n");
	for (size_t i = 0; i < json_array_size(json_object_get(spec, "disks")); i++) {
		fprintf(f, "    <disk type='volume' device='disk'>\n"
			   "      <source pool='lego' volume='");
		esc(f, STR("name"));
		if (i)
			fprintf(f, ".d%zu", i);
		fprintf(f, "'/>\n      <target dev='vd%c' bus='virtio'/>\n    </disk>\n",
			(char)('a' + i));
	}
	if (json_is_true(json_object_get(spec, "net"))) {
		fprintf(f, "    <interface type='bridge'>\n");
		if (STR("mac")) {
			fprintf(f, "      <mac address='");
			esc(f, STR("mac"));
			fprintf(f, "'/>\n");
		}
		fprintf(f, "      <source bridge='lego'/>\n      <model type='virtio'/>\n"
			   "    </interface>\n");
	}
	fprintf(f, "    <serial type='pty'/>\n  </devices>\n</domain>\n");
	fclose(f);
	pthread_mutex_lock(&virt_lock);
	norm = virt_normalise(buf, err, errlen);
	pthread_mutex_unlock(&virt_lock);
	free(buf);
	return norm;
#undef STR
#undef INT
}
