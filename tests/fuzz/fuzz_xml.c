/*
 * fuzz_xml.c - libvirt domain XML as a caller posts it to the manager
 * (manager/xml.c: validated by libvirt, then read with XPath): a spec, or a
 * refusal with a reason. What it accepts is written as XML again and must
 * read back (dumpxml then create --from, as a user would).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "log.h"
#include "manager.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int once;
	char err[1024] = "", *xml, *again;
	json_t *spec, *back;

	if (!once++)
		log_init("fuzz_xml", LOG_NONE);
	xml = malloc(size + 1);
	if (!xml)
		return 0;
	memcpy(xml, data, size);
	xml[size] = '\0';
	spec = xml_to_spec(xml, err, sizeof(err));
	free(xml);
	if (!spec) {
		if (!err[0]) {
			fprintf(stderr, "fuzz_xml: refused without a reason\n");
			abort();
		}
		return 0;
	}
	again = spec_to_xml(spec, err, sizeof(err));
	back = again ? xml_to_spec(again, err, sizeof(err)) : NULL;
	if (!back) {
		fprintf(stderr, "fuzz_xml: an accepted domain does not read back: %s\n%s\n", err,
			again ? again : "(no XML)");
		abort();
	}
	json_decref(back);
	free(again);
	json_decref(spec);
	return 0;
}
