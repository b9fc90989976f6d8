/* volume.h - the volume table of lego-storsrv (see storsrv.h). All calls on the server's thread. */
#ifndef LEGO_STORSRV_VOLUME_H
#define LEGO_STORSRV_VOLUME_H

#include <stddef.h>

#include "storsrv.h"

/* volume_get - @name, opened from the data directory if need be, if @token is
 * its token. -EINVAL (bad name), -ENOENT, -EACCES. The table holds the reference. */
int volume_get(struct storsrv *s, const char *name, const uint8_t *token, struct volume **out);

/* volume_hold/volume_put - a reference for an I/O in flight. */
void volume_hold(struct volume *v);
void volume_put(struct volume *v);

/* Volume management, durable when they return 0; -errno otherwise (nothing half-made). */
int volume_create(struct storsrv *s, const struct lmp_vol *req);
int volume_delete(struct storsrv *s, const struct lmp_vol *req);
int volume_resize(struct storsrv *s, const struct lmp_vol *req);
/* volume_clone - see struct lmp_vol_clone: shared extents where the file system
 * can (FICLONE), else a copy of the data that leaves the holes holes. */
int volume_clone(struct storsrv *s, const struct lmp_vol_clone *req);

/* volume_list - at most @max volumes of the data directory into @out; how many. */
size_t volume_list(struct storsrv *s, struct lmp_vol_info *out, size_t max);

#endif
