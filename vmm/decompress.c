/* decompress.c - gzip, xz, lz4 (the kernel's legacy frames) and zstd into one buffer. */
#include <errno.h>
#include <lz4.h>
#include <lzma.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "decompress.h"

#define LZ4_LEGACY_MAGIC 0x184c2102U
#define LZ4_LEGACY_BLOCK (8U << 20)

enum decomp_format decomp_detect(const uint8_t *in, size_t len)
{
	if (len >= 2 && in[0] == 0x1f && (in[1] == 0x8b || in[1] == 0x9e))
		return DECOMP_GZIP;
	if (len >= 6 && !memcmp(in,
				"\xfd"
				"7zXZ\0",
				6))
		return DECOMP_XZ;
	if (len >= 4 && !memcmp(in, "\x02\x21\x4c\x18", 4))
		return DECOMP_LZ4;
	if (len >= 4 && !memcmp(in, "\x28\xb5\x2f\xfd", 4))
		return DECOMP_ZSTD;
	return DECOMP_UNKNOWN;
}

const char *decomp_name(enum decomp_format f)
{
	static const char *const names[] = {"unknown", "gzip", "xz", "lz4", "zstd"};

	return names[f];
}

/* Grow *buf so that it holds at least @need bytes, within @max. */
static int grow(uint8_t **buf, size_t *cap, size_t need, size_t max)
{
	size_t n = *cap ? *cap : 1 << 20;
	uint8_t *p;

	if (need > max)
		return -EFBIG;
	while (n < need)
		n *= 2;
	if (n > max)
		n = max;
	if (n <= *cap)
		return 0;
	p = realloc(*buf, n);
	if (!p)
		return -ENOMEM;
	*buf = p;
	*cap = n;
	return 0;
}

static int gunzip(const uint8_t *in, size_t len, size_t max, uint8_t **out, size_t *out_len)
{
	z_stream z = {.next_in = (Bytef *)in, .avail_in = (uInt)len};
	size_t cap = 0;
	int ret = inflateInit2(&z, 16 + MAX_WBITS), err = 0;

	if (ret != Z_OK)
		return -ENOMEM;
	do {
		if ((err = grow(out, &cap, z.total_out + 1, max)))
			break;
		z.next_out = *out + z.total_out;
		z.avail_out = (uInt)(cap - z.total_out);
		ret = inflate(&z, Z_NO_FLUSH);
	} while (ret == Z_OK);
	if (!err && ret != Z_STREAM_END)
		err = ret == Z_BUF_ERROR && z.total_out == max ? -EFBIG : -EBADMSG;
	*out_len = z.total_out;
	inflateEnd(&z);
	return err;
}

static int unxz(const uint8_t *in, size_t len, size_t max, uint8_t **out, size_t *out_len)
{
	lzma_stream s = LZMA_STREAM_INIT;
	size_t cap = 0;
	lzma_ret ret;
	int err = 0;

	if (lzma_stream_decoder(&s, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK)
		return -ENOMEM;
	s.next_in = in;
	s.avail_in = len;
	do {
		if ((err = grow(out, &cap, s.total_out + 1, max)))
			break;
		s.next_out = *out + s.total_out;
		s.avail_out = cap - s.total_out;
		ret = lzma_code(&s, LZMA_FINISH);
	} while (ret == LZMA_OK);
	if (!err && ret != LZMA_STREAM_END)
		err = -EBADMSG;
	*out_len = s.total_out;
	lzma_end(&s);
	return err;
}

/* The kernel's LZ4 is the legacy format: a magic, then blocks of (le32 size, data),
 * each at most 8 MiB uncompressed; what follows the last block is not LZ4. */
static int unlz4(const uint8_t *in, size_t len, size_t max, uint8_t **out, size_t *out_len)
{
	size_t pos = 4, cap = 0, total = 0;
	int err;

	while (pos + 4 <= len) {
		uint32_t blk;
		int n;

		memcpy(&blk, in + pos, 4);
		if (blk == LZ4_LEGACY_MAGIC) { /* a concatenated stream */
			pos += 4;
			continue;
		}
		if (blk > (uint32_t)LZ4_compressBound(LZ4_LEGACY_BLOCK) || blk > len - pos - 4)
			break; /* the trailer (the kernel's size word) or garbage: the end */
		if ((err = grow(out, &cap, total + LZ4_LEGACY_BLOCK, max)) &&
		    (err = grow(out, &cap, max, max)))
			return err;
		n = LZ4_decompress_safe((const char *)in + pos + 4, (char *)*out + total, (int)blk,
					(int)(cap - total));
		if (n < 0)
			return total + LZ4_LEGACY_BLOCK > max ? -EFBIG : -EBADMSG;
		total += n;
		pos += 4 + blk;
	}
	if (!total)
		return -EBADMSG;
	*out_len = total;
	return 0;
}

static int unzstd(const uint8_t *in, size_t len, size_t max, uint8_t **out, size_t *out_len)
{
	ZSTD_DStream *ds = ZSTD_createDStream();
	ZSTD_inBuffer ib = {in, len, 0};
	size_t cap = 0, ret = 1;
	int err = 0;

	if (!ds)
		return -ENOMEM;
	ZSTD_initDStream(ds);
	*out_len = 0;
	while (ib.pos < ib.size && ret != 0) {
		ZSTD_outBuffer ob;

		if ((err = grow(out, &cap, *out_len + 1, max)))
			break;
		ob = (ZSTD_outBuffer){*out, cap, *out_len};
		ret = ZSTD_decompressStream(ds, &ob, &ib);
		*out_len = ob.pos;
		if (ZSTD_isError(ret)) {
			err = -EBADMSG;
			break;
		}
	}
	if (!err && ret != 0)
		err = -EBADMSG; /* truncated frame */
	ZSTD_freeDStream(ds);
	return err;
}

int decompress(const uint8_t *in, size_t len, size_t max, uint8_t **out, size_t *out_len)
{
	int ret;

	*out = NULL;
	*out_len = 0;
	switch (decomp_detect(in, len)) {
	case DECOMP_GZIP:
		ret = gunzip(in, len, max, out, out_len);
		break;
	case DECOMP_XZ:
		ret = unxz(in, len, max, out, out_len);
		break;
	case DECOMP_LZ4:
		ret = unlz4(in, len, max, out, out_len);
		break;
	case DECOMP_ZSTD:
		ret = unzstd(in, len, max, out, out_len);
		break;
	default:
		return -ENOEXEC;
	}
	if (ret) {
		free(*out);
		*out = NULL;
	}
	return ret;
}
