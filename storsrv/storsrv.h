/*
 * storsrv.h - lego-storsrv: volumes (vNodes' virtio-blk disks, and later
 * memory backups) as files in a data directory, served over the wire
 * protocol (proto.h) on the common io_uring server (srv.h).
 *
 * Stateless by design: every request names its volume and carries the
 * volume's token, so a restarted server serves the next request exactly as
 * the old one would have. What the server keeps in memory (open files, the
 * tokens read from disk) is a cache of the data directory, rebuilt on
 * demand. Reads, writes and flushes are io_uring operations on the same ring
 * as the sockets, many in flight; a write with LMP_BLK_FUA is written with
 * RWF_DSYNC, a flush is an fdatasync, and a volume's creation is durable
 * (file, token and directory synced) before it is acknowledged.
 */
#ifndef LEGO_STORSRV_H
#define LEGO_STORSRV_H

#include <stdint.h>

#include "proto.h"
#include "srv.h"

/* One volume: DIR/NAME.vol (the bytes) and DIR/NAME.token (its token, hex). */
struct volume {
	char name[LMP_VOL_NAME_LEN];
	uint8_t token[LMP_TOKEN_LEN];
	uint64_t size;
	int fd;
	int refs;     /* the table's (until deleted) plus one per I/O in flight */
	bool deleted; /* gone from the table; the fd closes with the last I/O */
	struct volume *next;
};

struct storsrv {
	struct srv srv;
	int dir_fd; /* the data directory */
	const char *dir;
	struct volume *volumes; /* opened so far */
	uint64_t nr_requests, nr_errors, bytes_read, bytes_written;
};

/* storsrv_open - use @dir as the data directory (created if missing). -errno, logged. */
int storsrv_open(struct storsrv *s, const char *dir);
void storsrv_close(struct storsrv *s);

/* volctl_main - `lego-storsrv volume ARGS...` (volctl.c): a client of a running server. */
int volctl_main(int argc, char **argv);

/* storsrv_run - serve on @addr until SIGTERM/SIGINT. -errno, logged. */
int storsrv_run(struct storsrv *s, const char *addr);

#endif
