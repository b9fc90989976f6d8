/*
 * fuzz_snap.c - the snapshot format (vmm/snap.c), written and read back.
 * The input names up to eight sections (a name, bytes) that the real writer
 * puts in a memfd, then damages the file or not: it cuts it short, or
 * flips one byte, or up to four bytes in a row (any burst a CRC-32 must
 * catch). snap_open must take an undamaged snapshot with exactly the
 * sections written, in order, and refuse a damaged one with a reason; it
 * may never read outside the file (ASan).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "snap.h"

#define MAX_SECTIONS 8

struct sec {
	char name[64];
	const uint8_t *data;
	uint16_t len;
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sec secs[MAX_SECTIONS];
	struct snap_writer w;
	struct snap s;
	char err[256] = "";
	bool names_ok = true, damaged = false;
	int nr, fd, ret;
	off_t file;

	if (size < 2)
		return 0;
	nr = data[0] % (MAX_SECTIONS + 1);
	data++, size--;
	for (int i = 0; i < nr; i++) {
		size_t n;

		if (size < 3)
			return 0;
		n = data[0] % 40; /* names of 32 bytes and more are the writer's to refuse */
		if (size < 1 + n + 2)
			return 0;
		memcpy(secs[i].name, data + 1, n);
		secs[i].name[n] = '\0';
		names_ok &= strlen(secs[i].name) < SNAP_NAME;
		memcpy(&secs[i].len, data + 1 + n, 2);
		data += 1 + n + 2, size -= 1 + n + 2;
		secs[i].len %= 4096;
		if (secs[i].len > size)
			secs[i].len = (uint16_t)size;
		secs[i].data = data;
		data += secs[i].len, size -= secs[i].len;
	}
	fd = memfd_create("fuzz_snap", MFD_CLOEXEC);
	must(fd >= 0, "no memfd");
	snap_begin(&w, fd);
	for (int i = 0; i < nr; i++)
		snap_put(&w, secs[i].name, secs[i].data, secs[i].len);
	ret = snap_end(&w);
	must(!ret == names_ok, "the writer took a name too long, or refused a good one");
	if (ret) {
		close(fd);
		return 0;
	}
	file = lseek(fd, 0, SEEK_END);
	if (size >= 5) { /* the damage */
		uint32_t at;
		uint8_t b[4] = {0}, x[4];

		memcpy(&at, data + 1, 4);
		if (data[0] % 4 == 1 && at % file != 0) {
			must(ftruncate(fd, at % file) == 0, "ftruncate");
			damaged = true;
		} else if (data[0] % 4 >= 2 && size >= 9) {
			size_t n = data[0] % 4 == 2 ? 1 : 1 + data[5] % 4;
			off_t pos = at % file;

			memcpy(x, data + 5, 4);
			if (data[0] % 4 == 2)
				x[0] = x[0] ? x[0] : 1;
			if (pos + (off_t)n > file)
				n = (size_t)(file - pos);
			must(pread(fd, b, n, pos) == (ssize_t)n, "pread");
			for (size_t i = 0; i < n; i++) {
				damaged |= x[i] != 0;
				b[i] ^= x[i];
			}
			must(pwrite(fd, b, n, pos) == (ssize_t)n, "pwrite");
		}
	}
	ret = snap_open(&s, fd, err, sizeof(err));
	close(fd);
	if (damaged) {
		must(ret != 0 && err[0], "a damaged snapshot was taken");
		return 0;
	}
	must(ret == 0, "an undamaged snapshot was refused");
	must(s.nr == (uint32_t)nr, "a snapshot with another number of sections");
	for (int i = 0; i < nr; i++) {
		must(!strcmp(s.sections[i].name, secs[i].name), "a section of another name");
		must(s.sections[i].len == secs[i].len &&
			     !memcmp(s.sections[i].data, secs[i].data, secs[i].len),
		     "a section that is not what was written");
	}
	snap_close(&s);
	return 0;
}
