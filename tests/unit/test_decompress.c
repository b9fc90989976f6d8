/* test_decompress.c - each kernel payload format, made by its own library, back through decompress(). */
#include <errno.h>
#include <stdbool.h>
#include <lz4.h>
#include <lzma.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "decompress.h"
#include "test.h"

#define PLAIN_LEN (9u << 20) /* more than one 8 MiB LZ4 legacy block */

static uint8_t *plain(void)
{
	uint8_t *p = malloc(PLAIN_LEN);
	uint64_t x = 0x9e3779b97f4a7c15ULL;

	/* compressible but not trivial: runs of text with pseudo-random bytes between */
	for (size_t i = 0; i < PLAIN_LEN; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (i / 64) % 3 ? (uint8_t)("lego vnode "[i % 11]) : (uint8_t)x;
	}
	return p;
}

static size_t make_gzip(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
	z_stream z = {0};

	ASSERT_EQ(
		deflateInit2(&z, 6, Z_DEFLATED, 15 + 16 /* gzip wrapper */, 8, Z_DEFAULT_STRATEGY),
		Z_OK);
	z.next_in = (uint8_t *)in;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	ASSERT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
	deflateEnd(&z);
	return z.total_out;
}

static size_t make_xz(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
	size_t pos = 0;

	ASSERT_EQ(lzma_easy_buffer_encode(1, LZMA_CHECK_CRC32, NULL, in, len, out, &pos, cap),
		  LZMA_OK);
	return pos;
}

/* The kernel's LZ4: the legacy frame, a magic and then (le32 size, block) pairs. */
static size_t make_lz4(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
	uint32_t magic = 0x184c2102, n;
	size_t pos = 4;

	memcpy(out, &magic, 4);
	for (size_t off = 0; off < len; off += 8u << 20) {
		size_t chunk = len - off < (8u << 20) ? len - off : 8u << 20;

		n = (uint32_t)LZ4_compress_default((const char *)in + off, (char *)out + pos + 4,
						   (int)chunk, (int)(cap - pos - 4));
		ASSERT(n > 0);
		memcpy(out + pos, &n, 4);
		pos += 4 + n;
	}
	return pos;
}

static size_t make_zstd(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
	size_t n = ZSTD_compress(out, cap, in, len, 3);

	ASSERT(!ZSTD_isError(n));
	return n;
}

static void round_trip(const char *name, enum decomp_format fmt, bool checked,
		       size_t (*make)(const uint8_t *, size_t, uint8_t *, size_t))
{
	uint8_t *in = plain(), *packed = malloc(PLAIN_LEN + (1 << 20)), *out = NULL;
	size_t packed_len = make(in, PLAIN_LEN, packed, PLAIN_LEN + (1 << 20)), out_len = 0;

	ASSERT_EQ(decomp_detect(packed, packed_len), fmt);
	ASSERT(!strcmp(decomp_name(fmt), name));
	ASSERT_EQ(decompress(packed, packed_len, 64u << 20, &out, &out_len), 0);
	ASSERT_EQ(out_len, PLAIN_LEN);
	ASSERT(!memcmp(out, in, PLAIN_LEN), "decompressed bytes differ");
	free(out);
	out = NULL;

	/* bigger than the caller allows: refused, not truncated */
	ASSERT_EQ(decompress(packed, packed_len, PLAIN_LEN / 2, &out, &out_len), -EFBIG);
	ASSERT(out == NULL);

	/* damage in the middle: an error, never a crash or a silent short result */
	packed[packed_len / 2] ^= 0x5a;
	packed[packed_len / 2 + 1] ^= 0xa5;
	packed[packed_len / 2 + 7] ^= 0xff;
	if (checked) {
		ASSERT_EQ(decompress(packed, packed_len, 64u << 20, &out, &out_len), -EBADMSG);
		ASSERT(out == NULL);
	} else {
		/* the LZ4 legacy frame has no checksum: damaged literals come out as damaged
		 * bytes (as they would in the kernel's own decompressor), but never more or
		 * fewer of them than the frame holds */
		int ret = decompress(packed, packed_len, 64u << 20, &out, &out_len);

		ASSERT(ret == -EBADMSG || (ret == 0 && out_len == PLAIN_LEN));
		free(out);
		out = NULL;
	}

	/* cut short */
	packed[packed_len / 2] ^= 0x5a;
	packed[packed_len / 2 + 1] ^= 0xa5;
	packed[packed_len / 2 + 7] ^= 0xff;
	ASSERT_EQ(decompress(packed, packed_len / 3, 64u << 20, &out, &out_len), -EBADMSG);
	free(in);
	free(packed);
}

TEST(decompress_gzip)
{
	round_trip("gzip", DECOMP_GZIP, true, make_gzip);
}

TEST(decompress_xz)
{
	round_trip("xz", DECOMP_XZ, true, make_xz);
}

TEST(decompress_lz4_legacy_frames)
{
	round_trip("lz4", DECOMP_LZ4, false, make_lz4);
}

TEST(decompress_zstd)
{
	round_trip("zstd", DECOMP_ZSTD, true, make_zstd);
}

TEST(decompress_lz4_block_size_out_of_bounds)
{
	uint8_t *in = plain(), *packed = malloc(PLAIN_LEN + (1 << 20)), *out = NULL;
	size_t packed_len = make_lz4(in, PLAIN_LEN, packed, PLAIN_LEN + (1 << 20)), out_len;
	uint32_t huge = 0x7fffffff;

	memcpy(packed + 4, &huge, 4); /* the first block claims more than the input holds */
	ASSERT_EQ(decompress(packed, packed_len, 64u << 20, &out, &out_len), -EBADMSG);
	ASSERT(out == NULL);
	free(in);
	free(packed);
}

TEST(decompress_unknown_format)
{
	static const uint8_t junk[64] = "this is not a compressed kernel";
	uint8_t *out = NULL;
	size_t out_len;

	ASSERT_EQ(decomp_detect(junk, sizeof(junk)), DECOMP_UNKNOWN);
	ASSERT_EQ(decompress(junk, sizeof(junk), 1 << 20, &out, &out_len), -ENOEXEC);
	ASSERT_EQ(decompress(junk, 0, 1 << 20, &out, &out_len), -ENOEXEC);
}
