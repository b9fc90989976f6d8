/* proto.c - header construction and validation for the wire protocol. */
#include <errno.h>
#include <string.h>

#include "proto.h"

_Static_assert(sizeof(struct lmp_hdr) == 32, "the wire header is 32 bytes");
_Static_assert(sizeof(struct lmp_hello) == 72, "hello body layout");
_Static_assert(sizeof(struct lmp_vol) == 104, "volume body layout");
_Static_assert(sizeof(struct lmp_backup) == 184, "backup body layout");
_Static_assert(sizeof(struct lmp_blk) == 112, "block body layout");
_Static_assert(sizeof(struct lmp_blk) + LMP_BLK_MAX <= LMP_MAX_BODY, "a largest write fits");

void lmp_hdr_init(struct lmp_hdr *h, uint16_t type, uint64_t id, uint32_t len, uint64_t arg)
{
	*h = (struct lmp_hdr){
		.magic = LMP_MAGIC,
		.version = LMP_VERSION,
		.type = type,
		.id = id,
		.len = len,
		.arg = arg,
	};
}

int lmp_hdr_check(const struct lmp_hdr *h, const char **why)
{
	if (h->magic != LMP_MAGIC) {
		*why = "bad magic: not a lego protocol peer";
		return -EPROTO;
	}
	if (h->version != LMP_VERSION) {
		*why = "unsupported protocol version";
		return -EPROTONOSUPPORT;
	}
	if (h->len > LMP_MAX_BODY) {
		*why = "message body longer than the protocol allows";
		return -EMSGSIZE;
	}
	return 0;
}

const char *lmp_type_name(uint16_t type)
{
	switch (type & ~LMP_RESPONSE) {
	case LMP_HELLO:
		return "HELLO";
	case LMP_READ:
		return "READ";
	case LMP_WRITE:
		return "WRITE";
	case LMP_RELEASE:
		return "RELEASE";
	case LMP_STAT:
		return "STAT";
	case LMP_PING:
		return "PING";
	case LMP_DISCARD:
		return "DISCARD";
	case LMP_CLONE:
		return "CLONE";
	case LMP_VOL_CREATE:
		return "VOL_CREATE";
	case LMP_VOL_DELETE:
		return "VOL_DELETE";
	case LMP_VOL_RESIZE:
		return "VOL_RESIZE";
	case LMP_VOL_LIST:
		return "VOL_LIST";
	case LMP_BLK_READ:
		return "BLK_READ";
	case LMP_BLK_WRITE:
		return "BLK_WRITE";
	case LMP_BLK_FLUSH:
		return "BLK_FLUSH";
	case LMP_VOL_STAT:
		return "VOL_STAT";
	case LMP_BLK_DISCARD:
		return "BLK_DISCARD";
	case LMP_BLK_WRITE_ZEROES:
		return "BLK_WRITE_ZEROES";
	case LMP_VOL_CLONE:
		return "VOL_CLONE";
	}
	return "UNKNOWN";
}

int lmp_token_parse(const char *hex, uint8_t token[LMP_TOKEN_LEN])
{
	if (strlen(hex) != 2 * LMP_TOKEN_LEN)
		return -EINVAL;
	for (int i = 0; i < LMP_TOKEN_LEN; i++) {
		int v = 0;

		for (int j = 0; j < 2; j++) {
			char c = hex[2 * i + j];

			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= c - '0';
			else if (c >= 'a' && c <= 'f')
				v |= c - 'a' + 10;
			else if (c >= 'A' && c <= 'F')
				v |= c - 'A' + 10;
			else
				return -EINVAL;
		}
		token[i] = (uint8_t)v;
	}
	return 0;
}

bool lmp_token_equal(const uint8_t *a, const uint8_t *b)
{
	uint8_t diff = 0;

	for (int i = 0; i < LMP_TOKEN_LEN; i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}

bool lmp_vol_name_ok(const char *name)
{
	size_t n = strnlen(name, LMP_VOL_NAME_LEN);

	if (n == 0 || n == LMP_VOL_NAME_LEN || name[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}
