/*
 * decompress.h - the kernel payload decompressors, with the libraries Debian
 * ships (zlib, liblzma, liblz4, libzstd): the guest then starts in the
 * decompressed kernel instead of emulating its own decompressor.
 */
#ifndef LEGO_VMM_DECOMPRESS_H
#define LEGO_VMM_DECOMPRESS_H

#include <stddef.h>
#include <stdint.h>

enum decomp_format { DECOMP_UNKNOWN, DECOMP_GZIP, DECOMP_XZ, DECOMP_LZ4, DECOMP_ZSTD };

/* decomp_detect - the format of @in by its magic bytes. */
enum decomp_format decomp_detect(const uint8_t *in, size_t len);

/* decomp_name - "gzip", "xz", "lz4", "zstd" or "unknown". */
const char *decomp_name(enum decomp_format f);

/*
 * decompress - decompress @in (@len bytes, format detected) into a new
 * buffer of at most @max bytes. Returns 0 with *@out (malloc'd) and *@out_len,
 * or -errno: -ENOEXEC for an unknown format, -EBADMSG for corrupt input,
 * -EFBIG when the output would exceed @max.
 */
int decompress(const uint8_t *in, size_t len, size_t max, uint8_t **out, size_t *out_len);

#endif
