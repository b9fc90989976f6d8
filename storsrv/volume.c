/* volume.c - volumes as files in the data directory (see storsrv.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"
#include "volume.h"

static void file_name(char *out, size_t len, const char *name, const char *ext)
{
	snprintf(out, len, "%s.%s", name, ext);
}

int storsrv_open(struct storsrv *s, const char *dir)
{
	memset(s, 0, sizeof(*s));
	s->srv.listen_fd = -1;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		log_err("cannot create the data directory %s: %s", dir, strerror(errno));
		return -errno;
	}
	s->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dir_fd < 0) {
		log_err("cannot open the data directory %s: %s", dir, strerror(errno));
		return -errno;
	}
	s->dir = dir;
	return 0;
}

void storsrv_close(struct storsrv *s)
{
	while (s->volumes) {
		struct volume *v = s->volumes;

		s->volumes = v->next;
		close(v->fd);
		free(v);
	}
	close(s->dir_fd);
}

/* Open an existing volume from the data directory into the table. */
static struct volume *volume_load(struct storsrv *s, const char *name)
{
	char path[LMP_VOL_NAME_LEN + 8], hex[2 * LMP_TOKEN_LEN + 2] = "";
	struct volume *v;
	struct stat st;
	FILE *f;
	int tfd;

	file_name(path, sizeof(path), name, "token");
	tfd = openat(s->dir_fd, path, O_RDONLY | O_CLOEXEC);
	if (tfd < 0)
		return NULL;
	f = fdopen(tfd, "r");
	if (!f || !fgets(hex, sizeof(hex), f)) {
		if (f)
			fclose(f);
		else
			close(tfd);
		log_warn("volume %s: unreadable token file", name);
		return NULL;
	}
	fclose(f);
	hex[strcspn(hex, "\n")] = 0;
	v = calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	if (lmp_token_parse(hex, v->token)) {
		log_warn("volume %s: malformed token file", name);
		free(v);
		return NULL;
	}
	file_name(path, sizeof(path), name, "vol");
	v->fd = openat(s->dir_fd, path, O_RDWR | O_CLOEXEC);
	if (v->fd < 0 || fstat(v->fd, &st) < 0) {
		log_warn("volume %s: %s", name, strerror(errno));
		if (v->fd >= 0)
			close(v->fd);
		free(v);
		return NULL;
	}
	snprintf(v->name, sizeof(v->name), "%s", name);
	v->size = (uint64_t)st.st_size;
	v->refs = 1;
	v->next = s->volumes;
	s->volumes = v;
	return v;
}

int volume_get(struct storsrv *s, const char *name, const uint8_t *token, struct volume **out)
{
	struct volume *v;

	if (!lmp_vol_name_ok(name))
		return -EINVAL;
	for (v = s->volumes; v; v = v->next)
		if (!strcmp(v->name, name))
			break;
	if (!v && !(v = volume_load(s, name)))
		return -ENOENT;
	if (!lmp_token_equal(v->token, token))
		return -EACCES;
	*out = v;
	return 0;
}

void volume_hold(struct volume *v)
{
	v->refs++;
}

void volume_put(struct volume *v)
{
	if (--v->refs == 0) {
		close(v->fd);
		free(v);
	}
}

/* Write all of @len bytes of @buf to a new file @path in the directory, synced. */
static int write_new_file(struct storsrv *s, const char *path, const void *buf, size_t len,
			  int *fd_out)
{
	int fd = openat(s->dir_fd, path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0)
		return -errno;
	if ((len && write(fd, buf, len) != (ssize_t)len) || fsync(fd) < 0) {
		int ret = -errno;

		close(fd);
		unlinkat(s->dir_fd, path, 0);
		return ret ? ret : -EIO;
	}
	if (fd_out)
		*fd_out = fd;
	else
		close(fd);
	return 0;
}

/* The data of @in (@size bytes) into @out: its extents shared where the file
 * system can, else copied with the holes left out. */
static int copy_volume(int in, int out, uint64_t size)
{
	off_t off = 0;

	if (ioctl(out, FICLONE, in) == 0)
		return 0;
	while ((uint64_t)off < size) {
		off_t data = lseek(in, off, SEEK_DATA), hole;

		if (data < 0)
			return errno == ENXIO ? 0 : -errno; /* only a hole is left */
		hole = lseek(in, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		for (off_t pos = data; pos < hole;) {
			ssize_t n = copy_file_range(in, &pos, out, &(off_t){pos}, hole - pos, 0);

			if (n <= 0)
				return n < 0 ? -errno : -EIO;
		}
		off = hole;
	}
	return 0;
}

/* A new volume @req->name of @req->size bytes: its data from @src, or zeros. */
static int volume_make(struct storsrv *s, const struct lmp_vol *req, const struct volume *src)
{
	char vol[LMP_VOL_NAME_LEN + 8], tok[LMP_VOL_NAME_LEN + 8], hex[2 * LMP_TOKEN_LEN + 2];
	struct volume *v;
	int fd, ret;

	if (!lmp_vol_name_ok(req->name) || req->size == 0 || req->size % 512)
		return -EINVAL;
	for (v = s->volumes; v; v = v->next)
		if (!strcmp(v->name, req->name))
			return -EEXIST;
	file_name(vol, sizeof(vol), req->name, "vol");
	file_name(tok, sizeof(tok), req->name, "token");
	ret = write_new_file(s, vol, NULL, 0, &fd);
	if (ret)
		return ret;
	if (src && (ret = copy_volume(src->fd, fd, src->size)))
		goto undo_vol;
	if (ftruncate(fd, (off_t)req->size) < 0 || fsync(fd) < 0) {
		ret = -errno;
		goto undo_vol;
	}
	util_hex(req->token, LMP_TOKEN_LEN, hex);
	strcat(hex, "\n");
	ret = write_new_file(s, tok, hex, strlen(hex), NULL);
	if (ret)
		goto undo_vol;
	/* the token file last: a volume without one does not exist */
	if (fsync(s->dir_fd) < 0) {
		ret = -errno;
		unlinkat(s->dir_fd, tok, 0);
		goto undo_vol;
	}
	close(fd);
	if (src)
		log_info("volume %s created: %llu bytes, a copy of %s", req->name,
			 (unsigned long long)req->size, src->name);
	else
		log_info("volume %s created: %llu bytes", req->name, (unsigned long long)req->size);
	return 0;
undo_vol:
	close(fd);
	unlinkat(s->dir_fd, vol, 0);
	return ret;
}

int volume_create(struct storsrv *s, const struct lmp_vol *req)
{
	return volume_make(s, req, NULL);
}

int volume_clone(struct storsrv *s, const struct lmp_vol_clone *req)
{
	struct lmp_vol dst = req->dst;
	struct volume *src;
	int ret;

	if (!memchr(req->src, '\0', sizeof(req->src)) || dst.size)
		return -EINVAL;
	ret = volume_get(s, req->src, req->src_token, &src);
	if (ret)
		return ret;
	dst.size = src->size;
	return volume_make(s, &dst, src);
}

static void volume_unlink_table(struct storsrv *s, struct volume *v)
{
	for (struct volume **p = &s->volumes; *p; p = &(*p)->next) {
		if (*p == v) {
			*p = v->next;
			break;
		}
	}
}

int volume_delete(struct storsrv *s, const struct lmp_vol *req)
{
	char path[LMP_VOL_NAME_LEN + 8];
	struct volume *v;
	int ret = volume_get(s, req->name, req->token, &v);

	if (ret)
		return ret;
	/* the token first: from here the volume does not exist, whatever else fails */
	file_name(path, sizeof(path), v->name, "token");
	if (unlinkat(s->dir_fd, path, 0) < 0)
		return -errno;
	file_name(path, sizeof(path), v->name, "vol");
	unlinkat(s->dir_fd, path, 0);
	fsync(s->dir_fd);
	log_info("volume %s deleted", v->name);
	volume_unlink_table(s, v);
	v->deleted = true;
	volume_put(v); /* closed now, or by the last I/O still in flight */
	return 0;
}

int volume_resize(struct storsrv *s, const struct lmp_vol *req)
{
	struct volume *v;
	int ret = volume_get(s, req->name, req->token, &v);

	if (ret)
		return ret;
	if (req->size == 0 || req->size % 512)
		return -EINVAL;
	if (ftruncate(v->fd, (off_t)req->size) < 0 || fsync(v->fd) < 0)
		return -errno;
	log_info("volume %s resized: %llu -> %llu bytes", v->name, (unsigned long long)v->size,
		 (unsigned long long)req->size);
	v->size = req->size;
	return 0;
}

size_t volume_list(struct storsrv *s, struct lmp_vol_info *out, size_t max)
{
	char path[LMP_VOL_NAME_LEN + 8];
	DIR *d;
	struct dirent *e;
	size_t n = 0;
	int fd = dup(s->dir_fd);

	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	rewinddir(d);
	while (n < max && (e = readdir(d))) {
		size_t len = strlen(e->d_name);
		struct stat st;

		if (len < 7 || strcmp(e->d_name + len - 6, ".token") || len - 6 >= LMP_VOL_NAME_LEN)
			continue;
		memset(&out[n], 0, sizeof(out[n]));
		memcpy(out[n].name, e->d_name, len - 6);
		if (!lmp_vol_name_ok(out[n].name))
			continue;
		file_name(path, sizeof(path), out[n].name, "vol");
		if (fstatat(s->dir_fd, path, &st, 0) < 0)
			continue;
		out[n].size = (uint64_t)st.st_size;
		n++;
	}
	closedir(d);
	return n;
}
