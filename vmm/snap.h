/*
 * snap.h - the snapshot format: a vNode's state at rest (or on its way to
 * another host), as sections after a fixed header. Each section has a type,
 * a name (the module or part it belongs to), a length and a CRC-32 of its
 * bytes; the header has a magic, a format version, the section count and
 * its own CRC. A reader checks all of it before anything is used: a
 * damaged, truncated or foreign snapshot is refused with the reason.
 *
 * What is in one: the vNode's order (credentials included: the file is
 * written with mode 0600), the VM's interrupt controllers and timer, each
 * vCPU's registers and the state KVM keeps for it, each module's device
 * state, and guest memory only where it lives nowhere else (no memory
 * server): with an ExCache, its dirty pages are written back instead and
 * the memory servers hold all of it.
 */
#ifndef LEGO_VMM_SNAP_H
#define LEGO_VMM_SNAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SNAP_MAGIC   0x50414e534f47454cULL /* "LEGOSNAP" */
#define SNAP_VERSION 2			   /* 2: a section's CRC covers its name and length too */
#define SNAP_NAME    32			   /* a section's name, NUL included */

/* A snapshot being written: sections go to a file descriptor one after another. */
struct snap_writer {
	int fd;
	uint32_t nr;
	uint64_t bytes;
	int err; /* the first -errno; everything after it is a no-op */
	/* the section being written: where its header goes, its length and CRC so far */
	int64_t sec_at;
	uint64_t sec_len;
	uint32_t sec_crc;
	char sec_name[SNAP_NAME];
};

/*
 * snap_begin - start a snapshot in @fd, at its start: a file or a memfd
 * (the headers are written last, in place, so @fd must be seekable).
 */
void snap_begin(struct snap_writer *w, int fd);

/* snap_put - one section of @len bytes at @data, named @name. */
void snap_put(struct snap_writer *w, const char *name, const void *data, uint64_t len);

/* snap_open_section / snap_write / snap_close_section - one section written in pieces. */
void snap_open_section(struct snap_writer *w, const char *name);
void snap_write(struct snap_writer *w, const void *data, uint64_t len);
void snap_close_section(struct snap_writer *w);

/* snap_end - write the header: 0, or the first -errno of the whole snapshot. */
int snap_end(struct snap_writer *w);

/* A snapshot mapped into memory and checked. */
struct snap_section {
	char name[SNAP_NAME];
	const uint8_t *data;
	uint64_t len;
};

struct snap {
	uint8_t *buf;
	size_t size;
	uint32_t nr;
	struct snap_section *sections;
};

/*
 * snap_open - read the snapshot in @fd and check it (magic, version, every
 * length, every CRC). 0, or -EINVAL with why in @err (@errlen bytes).
 */
int snap_open(struct snap *s, int fd, char *err, size_t errlen);

/* snap_close - free what snap_open read. */
void snap_close(struct snap *s);

/* snap_get - the section named @name: its bytes and length (*@len), NULL if there is none. */
const void *snap_get(const struct snap *s, const char *name, uint64_t *len);

#endif
