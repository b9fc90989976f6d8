/* snap.c - the snapshot format (see snap.h): sections with CRCs after a checked header. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "snap.h"

struct snap_header {
	uint64_t magic;
	uint32_t version;
	uint32_t nr_sections;
	uint64_t bytes; /* after the header */
	uint32_t reserved;
	uint32_t crc; /* of the header, this field 0 */
};

struct snap_section_header {
	char name[SNAP_NAME];
	uint64_t len;
	uint32_t crc; /* of the section's bytes, then of this header but the crc */
	uint32_t reserved;
};

/* A section's CRC, from that of its bytes (@c): its header's fields go in too,
 * so that a damaged name cannot hand a section to another part (format 2). */
static uint32_t section_crc(uint32_t c, const struct snap_section_header *sh)
{
	c = (uint32_t)crc32(c, (const uint8_t *)sh, offsetof(struct snap_section_header, crc));
	return (uint32_t)crc32(c, (const uint8_t *)&sh->reserved, sizeof(sh->reserved));
}

static void put(struct snap_writer *w, const void *p, uint64_t len, off_t at)
{
	const uint8_t *b = p;

	while (!w->err && len) {
		ssize_t n = at >= 0 ? pwrite(w->fd, b, len, at) : write(w->fd, b, len);

		if (n < 0 && errno != EINTR) {
			w->err = -errno;
			return;
		}
		if (n > 0) {
			b += n;
			len -= (uint64_t)n;
			at = at >= 0 ? at + n : at;
		}
	}
}

void snap_begin(struct snap_writer *w, int fd)
{
	struct snap_header h = {0};

	*w = (struct snap_writer){.fd = fd, .sec_at = -1};
	put(w, &h, sizeof(h), 0); /* a placeholder: written for real at the end */
	if (!w->err && lseek(fd, sizeof(h), SEEK_SET) < 0)
		w->err = -errno;
}

void snap_open_section(struct snap_writer *w, const char *name)
{
	struct snap_section_header sh = {0};
	off_t at;

	if (w->err)
		return;
	if (strlen(name) >= SNAP_NAME || w->sec_at >= 0) {
		w->err = -EINVAL; /* a program error: a name too long, or sections nested */
		return;
	}
	at = lseek(w->fd, 0, SEEK_CUR);
	if (at < 0) {
		w->err = -errno;
		return;
	}
	snprintf(w->sec_name, sizeof(w->sec_name), "%s", name);
	w->sec_at = at;
	w->sec_len = 0;
	w->sec_crc = (uint32_t)crc32(0, NULL, 0);
	put(w, &sh, sizeof(sh), -1); /* its header once its length and CRC are known */
}

void snap_write(struct snap_writer *w, const void *data, uint64_t len)
{
	/* crc32 takes 32-bit lengths: in pieces */
	for (uint64_t off = 0; !w->err && off < len; off += 1u << 30) {
		uint64_t n = len - off < 1u << 30 ? len - off : 1u << 30;

		w->sec_crc = (uint32_t)crc32(w->sec_crc, (const uint8_t *)data + off, (uInt)n);
	}
	put(w, data, len, -1);
	w->sec_len += len;
}

void snap_close_section(struct snap_writer *w)
{
	struct snap_section_header sh = {.len = w->sec_len};

	if (w->err)
		return;
	memcpy(sh.name, w->sec_name, sizeof(sh.name));
	sh.crc = section_crc(w->sec_crc, &sh);
	put(w, &sh, sizeof(sh), w->sec_at);
	w->sec_at = -1;
	w->nr++;
	w->bytes += sizeof(sh) + w->sec_len;
}

void snap_put(struct snap_writer *w, const char *name, const void *data, uint64_t len)
{
	snap_open_section(w, name);
	snap_write(w, data, len);
	snap_close_section(w);
}

int snap_end(struct snap_writer *w)
{
	struct snap_header h = {.magic = SNAP_MAGIC,
				.version = SNAP_VERSION,
				.nr_sections = w->nr,
				.bytes = w->bytes};

	if (w->sec_at >= 0 && !w->err)
		w->err = -EINVAL; /* a section left open */
	h.crc = (uint32_t)crc32(0, (const uint8_t *)&h, sizeof(h));
	put(w, &h, sizeof(h), 0);
	if (!w->err && fsync(w->fd) < 0 && errno != EINVAL)
		w->err = -errno;
	return w->err;
}

int snap_open(struct snap *s, int fd, char *err, size_t errlen)
{
	struct snap_header h;
	struct stat st;
	size_t off = sizeof(h);
	uint32_t crc;

	memset(s, 0, sizeof(*s));
	if (fstat(fd, &st) < 0 || st.st_size < (off_t)sizeof(h)) {
		snprintf(err, errlen, "not a lego snapshot: shorter than its header");
		return -EINVAL;
	}
	s->size = (size_t)st.st_size;
	/* mapped, not read: a snapshot of a vNode whose memory is local is as large as it */
	s->buf = mmap(NULL, s->size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (s->buf == MAP_FAILED) {
		s->buf = NULL;
		snprintf(err, errlen, "cannot read the snapshot: %s", strerror(errno));
		return -EIO;
	}
	memcpy(&h, s->buf, sizeof(h));
	crc = h.crc;
	h.crc = 0;
	if (h.magic != SNAP_MAGIC) {
		snprintf(err, errlen, "not a lego snapshot (its magic is wrong)");
		goto bad;
	}
	if (h.version != SNAP_VERSION) {
		snprintf(err, errlen, "a snapshot of format version %u; this lego-vmm reads %u",
			 h.version, SNAP_VERSION);
		goto bad;
	}
	if (crc != (uint32_t)crc32(0, (const uint8_t *)&h, sizeof(h))) {
		snprintf(err, errlen, "the snapshot's header is damaged (CRC mismatch)");
		goto bad;
	}
	if (h.bytes != s->size - sizeof(h) || h.nr_sections > 4096) {
		snprintf(err, errlen,
			 "the snapshot is truncated or damaged: %zu bytes where its "
			 "header says %llu",
			 s->size - sizeof(h), (unsigned long long)h.bytes);
		goto bad;
	}
	s->sections = calloc(h.nr_sections + 1, sizeof(*s->sections));
	for (uint32_t i = 0; s->sections && i < h.nr_sections; i++) {
		struct snap_section_header sh;
		struct snap_section *sec = &s->sections[i];
		uint32_t c = (uint32_t)crc32(0, NULL, 0);

		if (s->size - off < sizeof(sh)) {
			snprintf(err, errlen, "the snapshot is truncated in section %u", i);
			goto bad;
		}
		memcpy(&sh, s->buf + off, sizeof(sh));
		off += sizeof(sh);
		if (sh.len > s->size - off || !memchr(sh.name, '\0', sizeof(sh.name))) {
			snprintf(err, errlen, "the snapshot is truncated or damaged in section %u",
				 i);
			goto bad;
		}
		for (uint64_t k = 0; k < sh.len; k += 1u << 30)
			c = (uint32_t)crc32(c, s->buf + off + k,
					    (uInt)(sh.len - k < 1u << 30 ? sh.len - k : 1u << 30));
		if (section_crc(c, &sh) != sh.crc) {
			snprintf(err, errlen, "the snapshot's section %s is damaged (CRC mismatch)",
				 sh.name);
			goto bad;
		}
		memcpy(sec->name, sh.name, sizeof(sec->name));
		sec->data = s->buf + off;
		sec->len = sh.len;
		off += sh.len;
		s->nr++;
	}
	if (!s->sections) {
		snprintf(err, errlen, "out of memory");
		goto bad;
	}
	return 0;
bad:
	snap_close(s);
	return -EINVAL;
}

void snap_close(struct snap *s)
{
	if (s->buf)
		munmap(s->buf, s->size);
	free(s->sections);
	memset(s, 0, sizeof(*s));
}

const void *snap_get(const struct snap *s, const char *name, uint64_t *len)
{
	for (uint32_t i = 0; i < s->nr; i++) {
		if (!strcmp(s->sections[i].name, name)) {
			*len = s->sections[i].len;
			return s->sections[i].data;
		}
	}
	return NULL;
}
