/*
 * fuzz_order.c - the vNode order (common/order_json.c), the one typed
 * message manager, agent and VMM exchange, read from whatever JSON text a
 * caller could send: order_from_json and order_check either refuse it with
 * a reason or accept it; what they accept is written back and read again to
 * the same order (the round trip the agent and a migration rely on).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "order.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL), *back;
	struct vnode_order o, again;
	char err[512] = "";
	int ret;

	if (!j)
		return 0;
	order_init(&o);
	ret = order_from_json(&o, j, err, sizeof(err));
	json_decref(j);
	if (!ret)
		ret = order_check(&o, err, sizeof(err));
	if (ret) {
		if (!err[0]) {
			fprintf(stderr, "fuzz_order: refused without a reason\n");
			abort();
		}
		order_free(&o);
		return 0;
	}
	back = order_to_json(&o);
	order_init(&again);
	if (!back || order_from_json(&again, back, err, sizeof(err))) {
		fprintf(stderr, "fuzz_order: an accepted order does not read back: %s\n", err);
		abort();
	}
	json_decref(back);
	order_free(&again);
	order_free(&o);
	return 0;
}
