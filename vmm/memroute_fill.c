/*
 * memroute_fill.c - filling a memory server with a copy of slabs while the
 * guest runs: a new secondary from the primaries (redundancy restored), or
 * the slabs that lost every copy from their backup on a storage server
 * (restore). The route itself is memroute.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "memroute.h"
#include "storclient.h"
#include "util.h"
#include "xport.h"

/*
 * Make @addr part of the route from scratch, at a new epoch: its copy of the
 * vNode is dropped (LMP_HELLO_FRESH) over @fresh, which stays open at that
 * epoch for the fill. A server lost before (restarted, or back from a
 * partition) is welcome: it is refilled, never trusted with what it held.
 * Returns its index, or -errno with a sentence in @err. Lock held.
 */
static int join_fresh(struct memroute *r, const char *addr, struct memclient *fresh, char *err,
		      size_t errlen)
{
	int s = memroute_server_index(r, addr), ret;

	if (s < 0) {
		snprintf(err, errlen, "%s: more than %d memory servers", addr,
			 MEMROUTE_MAX_SERVERS);
		return -E2BIG;
	}
	r->cred.epoch++;
	ret = memclient_open_at(fresh, addr, &r->cred, r->cred.epoch, LMP_HELLO_FRESH,
				r->io_timeout_ms, err, errlen);
	if (ret) {
		r->cred.epoch--;
		return ret;
	}
	r->servers[s].since = r->cred.epoch;
	r->servers[s].lost = false;
	return s;
}

/* Where a fill reads from: @n pages from page @first into @buf. */
typedef int (*fill_source)(void *src, uint64_t first, uint32_t n, uint8_t *buf);

/*
 * Copy the slabs marked in @todo from @from to @to, LMP_MAX_PAGES at a time,
 * leaving out zero pages (a page never written reads as zeros anyway). With
 * @hold_writes, write-backs wait for each batch: the slabs are in use and a
 * write-back must not land between a batch's read and its write. Progress
 * goes to fill_done. -errno.
 */
static int fill(struct memroute *r, const bool *todo, fill_source from, void *src,
		struct memclient *to, bool hold_writes, uint64_t *copied)
{
	uint8_t *buf = malloc(LMP_MAX_PAGES * LMP_PAGE);
	int ret = buf ? 0 : -ENOMEM;

	*copied = 0;
	for (uint64_t k = 0; !ret && k < r->nr_slabs; k++) {
		for (uint64_t p = k * r->slab_pages; todo[k] && !ret && p < memroute_slab_end(r, k);
		     p += LMP_MAX_PAGES) {
			uint32_t n = (uint32_t)(memroute_slab_end(r, k) - p < LMP_MAX_PAGES
							? memroute_slab_end(r, k) - p
							: LMP_MAX_PAGES);
			uint64_t pages[LMP_MAX_PAGES];
			void *data[LMP_MAX_PAGES];
			uint32_t nz = 0;

			if (atomic_load(&r->closing)) {
				ret = -ECANCELED;
				break;
			}
			if (hold_writes)
				pthread_rwlock_wrlock(&r->copying);
			ret = from(src, p, n, buf);
			for (uint32_t i = 0; !ret && i < n; i++) {
				uint8_t *pg = buf + (size_t)i * LMP_PAGE;

				if (pg[0] || memcmp(pg, pg + 1, LMP_PAGE - 1)) {
					pages[nz] = p + i;
					data[nz++] = pg;
				}
			}
			if (!ret && nz)
				ret = memclient_write(to, pages, data, nz);
			if (hold_writes)
				pthread_rwlock_unlock(&r->copying);
			*copied += nz;
			atomic_fetch_add(&r->fill_done, n);
		}
	}
	free(buf);
	return ret;
}

/* Mark the slabs that @want, and count their pages into fill_total. Lock held. */
static bool *fill_plan(struct memroute *r, bool (*want)(const struct memroute_slab *, int), int s)
{
	bool *todo = calloc(r->nr_slabs, sizeof(*todo));
	uint64_t total = 0;

	for (uint64_t k = 0; todo && k < r->nr_slabs; k++) {
		todo[k] = want(&r->slabs[k], s);
		total += todo[k] ? memroute_slab_end(r, k) - k * r->slab_pages : 0;
	}
	atomic_store(&r->fill_total, total);
	atomic_store(&r->fill_done, 0);
	return todo;
}

static int read_primary(void *src, uint64_t first, uint32_t n, uint8_t *buf)
{
	return memroute_read(src, first, n, buf);
}

static bool lacks_secondary(const struct memroute_slab *sl, int s)
{
	return sl->secondary < 0 && sl->primary >= 0 && sl->primary != s;
}

int memroute_add_secondary(struct memroute_client *c, const char *addr, char *err, size_t errlen)
{
	struct memroute *r = c->r;
	struct memclient fresh;
	uint64_t copied;
	bool *todo;
	int s, ret;

	pthread_mutex_lock(&r->lock);
	s = join_fresh(r, addr, &fresh, err, errlen);
	if (s < 0) {
		snprintf(r->fill_error, sizeof(r->fill_error),
			 "filling memory server %s as a secondary failed: %s", addr, err);
		r->fill_failures++;
		pthread_mutex_unlock(&r->lock);
		return s;
	}
	todo = fill_plan(r, lacks_secondary, s);
	r->backup_seq++;
	for (uint64_t k = 0; todo && k < r->nr_slabs; k++) {
		if (todo[k]) {
			r->slabs[k].secondary = (int16_t)s;
			r->slabs[k].backup_seq = r->backup_seq;
		}
	}
	atomic_fetch_add(&r->generation, 1); /* from here on write-backs go to it too */
	snprintf(r->last_event, sizeof(r->last_event),
		 "memory server %s is being filled as a secondary (%llu pages); epoch %llu", addr,
		 (unsigned long long)atomic_load(&r->fill_total),
		 (unsigned long long)r->cred.epoch);
	log_info("%s", r->last_event);
	pthread_mutex_unlock(&r->lock);

	ret = todo ? fill(r, todo, read_primary, c, &fresh, true, &copied) : -ENOMEM;
	memclient_close(&fresh);
	free(todo);
	pthread_mutex_lock(&r->lock);
	snprintf(r->last_event, sizeof(r->last_event),
		 ret ? "filling memory server %s as a secondary failed: %s"
		     : "memory server %s is a secondary again (%s): redundancy restored",
		 addr, ret ? memclient_strerror(ret) : "copy complete");
	r->fill_failures += ret != 0;
	snprintf(r->fill_error, sizeof(r->fill_error), "%s", ret ? r->last_event : "");
	pthread_mutex_unlock(&r->lock);
	if (ret)
		snprintf(err, errlen, "%s", r->last_event);
	else
		log_info("%s", r->last_event);
	return ret;
}

void memroute_set_backup(struct memroute *r, const char *storsrv, const char *volume,
			 const uint8_t *token, uint32_t interval_ms, int wait_ms)
{
	memset(&r->backup, 0, sizeof(r->backup));
	snprintf(r->backup.storsrv, sizeof(r->backup.storsrv), "%s", storsrv);
	snprintf(r->backup.volume, sizeof(r->backup.volume), "%s", volume);
	memcpy(r->backup.token, token, LMP_TOKEN_LEN);
	r->backup.interval_ms = interval_ms;
	r->restore_wait_ms = wait_ms;
	r->has_backup = true;
}

/* The backup's header; 0, or -errno with a sentence in @err. */
static int backup_header(struct memroute *r, struct xport *x, struct lmp_backup_header *h,
			 char *err, size_t errlen)
{
	uint8_t page[LMP_PAGE];
	int ret =
		stor_blk(x, LMP_BLK_READ, r->backup.volume, r->backup.token, 0, page, LMP_PAGE, 0);

	memcpy(h, page, sizeof(*h));
	if (ret)
		snprintf(err, errlen, "reading the backup on %s/%s: %s", r->backup.storsrv,
			 r->backup.volume, stor_strerror(ret));
	else if (h->magic != LMP_BACKUP_MAGIC || h->vnode != r->cred.vnode)
		ret = -ENODATA;
	if (ret == -ENODATA)
		snprintf(err, errlen, "%s/%s holds no completed backup of this vNode",
			 r->backup.storsrv, r->backup.volume);
	return ret;
}

struct backup_source {
	struct xport *x;
	const struct lmp_backup *b;
};

static int read_backup(void *src, uint64_t first, uint32_t n, uint8_t *buf)
{
	struct backup_source *bs = src;

	return stor_blk(bs->x, LMP_BLK_READ, bs->b->volume, bs->b->token, lmp_backup_offset(first),
			buf, n * LMP_PAGE, 0);
}

static bool without_copy(const struct memroute_slab *sl, int s)
{
	(void)s;
	return sl->primary < 0;
}

int memroute_restore(struct memroute_client *c, const char *addr, char *err, size_t errlen)
{
	struct memroute *r = c->r;
	struct lmp_backup_header h = {0};
	struct backup_source src = {.b = &r->backup};
	struct memclient fresh = {0};
	uint64_t copied = 0, restored = 0;
	bool *todo = NULL;
	int s = -1, ret;

	if (!r->has_backup) {
		snprintf(err, errlen, "this vNode's memory has no backup to restore from");
		return -ENODATA;
	}
	ret = xport_connect(r->backup.storsrv, 2000, 30000, &src.x, err, errlen);
	if (!ret)
		ret = backup_header(r, src.x, &h, err, errlen);
	pthread_mutex_lock(&r->lock);
	if (!ret) {
		s = join_fresh(r, addr, &fresh, err, errlen);
		ret = s < 0 ? s : 0;
	}
	if (!ret) {
		todo = fill_plan(r, without_copy, s);
		ret = todo ? 0 : -ENOMEM;
	}
	pthread_mutex_unlock(&r->lock);
	/* Nobody writes to these slabs meanwhile: their operations wait for this. */
	if (!ret)
		ret = fill(r, todo, read_backup, &src, &fresh, false, &copied);
	if (ret && !err[0])
		snprintf(err, errlen, "restoring on %s: %s", addr, memclient_strerror(ret));
	xport_close(src.x);
	memclient_close(&fresh);
	pthread_mutex_lock(&r->lock);
	if (!ret) {
		time_t when = (time_t)(h.start_ms / 1000);
		struct tm tm;
		char at[32];

		for (uint64_t k = 0; k < r->nr_slabs; k++) {
			if (todo[k]) {
				r->slabs[k].primary = (int16_t)s;
				restored++;
			}
		}
		gmtime_r(&when, &tm);
		strftime(at, sizeof(at), "%Y-%m-%d %H:%M:%S UTC", &tm);
		r->restores++;
		r->restored_from_ms = h.start_ms;
		snprintf(
			r->last_event, sizeof(r->last_event),
			"every copy of %llu slab(s) was lost; restored on %s from backup %llu (%llu "
			"pages) started at %s: writes made after it, in the last %.1f s before the "
			"loss, may be lost",
			(unsigned long long)restored, addr, (unsigned long long)h.seq,
			(unsigned long long)copied, at,
			r->lost_ms > h.start_ms ? (r->lost_ms - h.start_ms) / 1000.0 : 0.0);
		log_warn("%s", r->last_event);
		r->lost_ms = 0;
		r->fill_error[0] = '\0';
		atomic_fetch_add(&r->generation, 1);
		pthread_cond_broadcast(&r->restored);
	} else {
		snprintf(r->last_event, sizeof(r->last_event), "restore on %s failed: %s", addr,
			 err);
		snprintf(r->fill_error, sizeof(r->fill_error), "%s", r->last_event);
		r->fill_failures++;
	}
	pthread_mutex_unlock(&r->lock);
	free(todo);
	return ret;
}
