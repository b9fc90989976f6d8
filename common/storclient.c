/* storclient.c - volume and block requests to a storage server (storclient.h). */
#include <errno.h>
#include <string.h>

#include "storclient.h"

int stor_vol(struct xport *x, uint16_t type, const struct lmp_vol *v)
{
	struct iovec iov = {(void *)v, sizeof(*v)};
	struct lmp_hdr resp;
	int ret = xport_call(x, type, 0, &iov, 1, &resp, NULL, 0);

	return ret ? ret : resp.status;
}

int stor_blk(struct xport *x, uint16_t type, const char *volume, const uint8_t *token,
	     uint64_t offset, void *data, uint32_t len, uint32_t flags)
{
	struct lmp_blk b = {.offset = offset, .length = len, .flags = flags};
	bool read = type == LMP_BLK_READ;
	struct iovec iov[2] = {{&b, sizeof(b)}, {data, len}};
	struct lmp_hdr resp;
	int ret;

	strncpy(b.volume, volume, sizeof(b.volume) - 1);
	memcpy(b.token, token, sizeof(b.token));
	ret = xport_call(x, type, 0, iov, read || !len ? 1 : 2, &resp, read ? data : NULL,
			 read ? len : 0);
	if (ret)
		return ret;
	if (resp.status)
		return resp.status;
	return read && resp.len != len ? -EPROTO : 0;
}

const char *stor_strerror(int err)
{
	switch (err) {
	case -EACCES:
		return "wrong token for this volume";
	case -ENOENT:
		return "no such volume";
	case -EEXIST:
		return "a volume of that name exists";
	case -EINVAL:
		return "invalid name or size (names: letters, digits, _ . -; sizes: multiples of "
		       "512)";
	}
	return strerror(-err);
}
