/*
 * fuzz_memsrv.c - lego-memsrv's request handling (memsrv_handle, the seam
 * every transport calls) fed whatever a network peer could send: the input
 * is a run of frames, each a selector byte (which of two connections sends
 * it) and a struct lmp_hdr with its body. The magic and version are set, as
 * a peer that gets past the first check would; what lmp_hdr_check refuses
 * ends the input, as it ends a connection. Each answer must be a whole,
 * well-formed response, and the store's accounting must hold after every
 * request. A fresh server per input, so that a crash replays from its input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "log.h"
#include "memsrv.h"
#include "proto.h"

static uint8_t body[LMP_MAX_BODY] __attribute__((aligned(4096)));
static uint8_t out[SRV_MSG_MAX] __attribute__((aligned(4096)));

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct memsrv m;
	struct memsrv_session ss[2];
	const char *why;
	static int once;

	if (!once++)
		log_init("fuzz_memsrv", LOG_NONE); /* the server's refusals are its answers */
	memset(&m, 0, sizeof(m));
	memset(ss, 0, sizeof(ss));
	pthread_mutex_init(&m.lock, NULL);
	if (store_init(&m.store, 4ULL << 20))
		return 0;
	while (size >= 1 + sizeof(struct lmp_hdr)) {
		struct memsrv_session *s = &ss[data[0] & 1];
		struct lmp_hdr h, r;
		size_t n;

		memcpy(&h, data + 1, sizeof(h));
		data += 1 + sizeof(h), size -= 1 + sizeof(h);
		h.magic = LMP_MAGIC;
		h.version = LMP_VERSION;
		if (lmp_hdr_check(&h, &why) || h.len > size)
			break;
		memcpy(body, data, h.len);
		data += h.len, size -= h.len;
		n = memsrv_handle(&m, s, &h, body, out);
		must(n >= sizeof(r) && n <= SRV_MSG_MAX, "an answer of impossible length");
		memcpy(&r, out, sizeof(r));
		must(r.magic == LMP_MAGIC && r.id == h.id && r.type == (h.type | LMP_RESPONSE),
		     "an answer that is not the request's");
		must(sizeof(r) + r.len == n, "an answer whose header and length disagree");
		must(m.store.used_pages <= m.store.capacity_pages, "more pages held than capacity");
	}
	memsrv_session_end(&m, &ss[0]);
	memsrv_session_end(&m, &ss[1]);
	store_exit(&m.store);
	pthread_mutex_destroy(&m.lock);
	return 0;
}
