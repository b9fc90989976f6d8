/*
 * storclient.h - requests to a storage server (lego-storsrv) over an xport:
 * what every client of volumes shares (lego-storsrv's volume commands, the
 * manager, a memory server's backups, a restore). The VMM's disk has its own,
 * pipelined client (vmm/blk_net.c).
 */
#ifndef LEGO_STORCLIENT_H
#define LEGO_STORCLIENT_H

#include <stdint.h>

#include "proto.h"
#include "xport.h"

/* stor_vol - LMP_VOL_CREATE, _DELETE or _RESIZE of @v. The server's -errno. */
int stor_vol(struct xport *x, uint16_t type, const struct lmp_vol *v);

/*
 * stor_blk - LMP_BLK_READ (into @data), LMP_BLK_WRITE (from @data) or
 * LMP_BLK_FLUSH (@len 0) of @len bytes at @offset of @volume. -errno.
 */
int stor_blk(struct xport *x, uint16_t type, const char *volume, const uint8_t *token,
	     uint64_t offset, void *data, uint32_t len, uint32_t flags);

/*
 * stor_import - copy the file @fd (@size bytes) into @volume from its
 * start, 256 KiB per request, skipping its holes and zero blocks (a volume
 * reads zeros where it was never written), then flush. @progress, if not
 * NULL, is called with the bytes done so far now and then. -errno.
 */
int stor_import(struct xport *x, const char *volume, const uint8_t *token, int fd, uint64_t size,
		void (*progress)(void *arg, uint64_t done, uint64_t size), void *arg);

/* stor_strerror - what a volume request's -errno means for a person. */
const char *stor_strerror(int err);

#endif
