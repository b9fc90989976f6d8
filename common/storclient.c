/* storclient.c - volume and block requests to a storage server (storclient.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

int stor_import(struct xport *x, const char *volume, const uint8_t *token, int fd, uint64_t size,
		void (*progress)(void *arg, uint64_t done, uint64_t size), void *arg)
{
	uint8_t *buf = malloc(LMP_BLK_MAX), *zero = calloc(1, LMP_BLK_MAX);
	uint64_t off = 0, reported = 0;
	int ret = buf && zero ? 0 : -ENOMEM;

	while (!ret && off < size) {
		off_t data = lseek(fd, (off_t)off, SEEK_DATA);
		ssize_t n;
		uint32_t len;

		if (data < 0) /* no data after @off: the rest is a hole */
			break;
		off = (uint64_t)data & ~511ULL;
		n = pread(fd, buf, LMP_BLK_MAX, (off_t)off);
		if (n <= 0) {
			ret = n < 0 ? -errno : 0;
			break;
		}
		len = (uint32_t)((n + 511) & ~511);
		memset(buf + n, 0, len - n);
		if (memcmp(buf, zero, len))
			ret = stor_blk(x, LMP_BLK_WRITE, volume, token, off, buf, len, 0);
		off += (uint64_t)n;
		if (progress && off - reported >= (64u << 20)) {
			progress(arg, off, size);
			reported = off;
		}
	}
	if (!ret)
		ret = stor_blk(x, LMP_BLK_FLUSH, volume, token, 0, NULL, 0, 0);
	if (!ret && progress)
		progress(arg, size, size);
	free(buf);
	free(zero);
	return ret;
}
