/*
 * test_snap.c - the snapshot format (vmm/snap.h): sections written whole or
 * in pieces come back byte for byte; every kind of damage is refused with
 * its reason before anything is used.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "snap.h"
#include "test.h"

/* A snapshot of three sections in a memfd: "a" (5 bytes), "big" (3 MiB in pieces), "empty". */
static int make(uint8_t **big_out)
{
	int fd = memfd_create("snap", 0);
	struct snap_writer w;
	uint8_t *big = malloc(3 << 20);

	ASSERT(fd >= 0 && big);
	for (int i = 0; i < 3 << 20; i++)
		big[i] = (uint8_t)(i * 7 + (i >> 12));
	snap_begin(&w, fd);
	snap_put(&w, "a", "hello", 5);
	snap_open_section(&w, "big");
	for (int off = 0; off < 3 << 20; off += 4096)
		snap_write(&w, big + off, 4096);
	snap_close_section(&w);
	snap_put(&w, "empty", "", 0);
	ASSERT_EQ(snap_end(&w), 0);
	*big_out = big;
	return fd;
}

static void refused(int fd, const char *why)
{
	struct snap s;
	char err[256] = "";

	ASSERT_EQ(snap_open(&s, fd, err, sizeof(err)), -EINVAL);
	ASSERT(strstr(err, why), "expected \"%s\", got \"%s\"", why, err);
}

TEST(sections_come_back_byte_for_byte)
{
	uint8_t *big;
	int fd = make(&big);
	struct snap s;
	char err[256];
	uint64_t len;
	const uint8_t *p;

	ASSERT(snap_open(&s, fd, err, sizeof(err)) == 0, "%s", err);
	ASSERT_EQ(s.nr, 3);
	p = snap_get(&s, "a", &len);
	ASSERT(p && len == 5 && !memcmp(p, "hello", 5));
	p = snap_get(&s, "big", &len);
	ASSERT(p && len == 3 << 20 && !memcmp(p, big, 3 << 20));
	p = snap_get(&s, "empty", &len);
	ASSERT(p && len == 0);
	ASSERT(snap_get(&s, "missing", &len) == NULL);
	snap_close(&s);
	free(big);
	close(fd);
}

TEST(damage_of_every_kind_is_refused_with_its_reason)
{
	uint8_t *big, b;
	int fd = make(&big);
	off_t size = lseek(fd, 0, SEEK_END);
	uint32_t v = SNAP_VERSION + 1;
	char newer[64];

	/* a byte of a section's data */
	ASSERT_EQ(pread(fd, &b, 1, size / 2), 1);
	b ^= 0x40;
	ASSERT_EQ(pwrite(fd, &b, 1, size / 2), 1);
	refused(fd, "section big is damaged (CRC mismatch)");
	b ^= 0x40;
	ASSERT_EQ(pwrite(fd, &b, 1, size / 2), 1);
	/* a section's name (its CRC covers it: a damaged name could hand the section to
	 * another part of the vNode; format 1 took it) */
	ASSERT_EQ(pread(fd, &b, 1, 32), 1); /* the first section's, "a", after the header */
	b ^= 2;
	ASSERT_EQ(pwrite(fd, &b, 1, 32), 1);
	refused(fd, "section c is damaged (CRC mismatch)");
	b ^= 2;
	ASSERT_EQ(pwrite(fd, &b, 1, 32), 1);
	/* the version (a field of the header, its CRC made anew would still be refused) */
	ASSERT_EQ(pwrite(fd, &v, 4, 8), 4);
	snprintf(newer, sizeof(newer), "format version %u", SNAP_VERSION + 1);
	refused(fd, newer);
	v = SNAP_VERSION;
	ASSERT_EQ(pwrite(fd, &v, 4, 8), 4);
	/* the header's section count */
	ASSERT_EQ(pread(fd, &b, 1, 12), 1);
	b ^= 1;
	ASSERT_EQ(pwrite(fd, &b, 1, 12), 1);
	refused(fd, "header is damaged");
	b ^= 1;
	ASSERT_EQ(pwrite(fd, &b, 1, 12), 1);
	/* cut short, and grown */
	ASSERT_EQ(ftruncate(fd, size - 100), 0);
	refused(fd, "truncated");
	ASSERT_EQ(ftruncate(fd, size + 100), 0);
	refused(fd, "truncated or damaged");
	ASSERT_EQ(ftruncate(fd, 10), 0);
	refused(fd, "shorter than its header");
	/* not one at all */
	ASSERT_EQ(ftruncate(fd, 0), 0);
	{
		static const char text[] = "#!/bin/sh\necho this is no snapshot at all, none\n";

		ASSERT_EQ(pwrite(fd, text, sizeof(text), 0), (ssize_t)sizeof(text));
	}
	refused(fd, "not a lego snapshot");
	free(big);
	close(fd);
}

TEST(a_section_name_too_long_or_left_open_fails_the_snapshot)
{
	int fd = memfd_create("snap", 0);
	struct snap_writer w;

	snap_begin(&w, fd);
	snap_put(&w, "a-name-much-longer-than-thirty-one-bytes", "x", 1);
	ASSERT(snap_end(&w) < 0, "a name too long was taken");
	ASSERT_EQ(ftruncate(fd, 0), 0);
	snap_begin(&w, fd);
	snap_open_section(&w, "open");
	ASSERT(snap_end(&w) < 0, "a section left open was taken");
	close(fd);
}
