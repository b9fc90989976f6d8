/*
 * backup.c - lego-memsrv backs vNodes' pages up to a storage server (see
 * struct lmp_backup): a thread of its own, one vNode at a time, copying the
 * pages written since their last backup (64 at a time, or what a stretch
 * of 32768 pages of its map holds, under the server's lock, so the request
 * loop is held up only for a copy and a short scan) and writing them to
 * the volume without the lock; then a flush, then the header. A backup that
 * fails (the storage server is away) marks its pages written again and is
 * tried at the next interval.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "memsrv.h"
#include "storclient.h"
#include "util.h"
#include "xport.h"

static int blk(struct xport *x, uint16_t type, const struct lmp_backup *t, uint64_t offset,
	       void *data, uint32_t len, uint32_t flags)
{
	return stor_blk(x, type, t->volume, t->token, offset, data, len, flags);
}

/* Pages of the written-map looked at per hold of the server's lock (~10 us). */
#define BACKUP_SCAN_PAGES 32768

/* Back @vn up once (it is held: it cannot be freed meanwhile). */
static int backup_once(struct memsrv *m, struct store_vnode *vn)
{
	static uint8_t buf[LMP_MAX_PAGES * LMP_PAGE];
	uint64_t pages[LMP_MAX_PAGES], cursor = 0, start = wall_ms(), written = 0;
	struct lmp_backup t;
	struct lmp_backup_header h = {0};
	struct xport *x = NULL;
	char err[256];
	int ret;

	pthread_mutex_lock(&m->lock);
	t = vn->backup->target;
	vn->backup->writes_since = 0; /* what is written from here on may miss this backup */
	pthread_mutex_unlock(&m->lock);
	ret = xport_connect(t.storsrv, 2000, 10000, &x, err, sizeof(err));
	for (bool more = !ret; more && !ret;) {
		uint32_t n = 0;
		uint64_t scan_end;

		pthread_mutex_lock(&m->lock);
		/* A bounded stretch of the map per hold: a large vNode with few pages
		 * written must not hold every other client up for the whole scan. */
		scan_end = cursor + BACKUP_SCAN_PAGES < vn->nr_pages ? cursor + BACKUP_SCAN_PAGES
								     : vn->nr_pages;
		for (; cursor < scan_end && n < LMP_MAX_PAGES && !vn->released; cursor++) {
			const uint8_t *p;

			if (!vn->backup->dirty[cursor])
				continue;
			vn->backup->dirty[cursor] = 0;
			p = store_page(&m->store, vn, cursor);
			if (p)
				memcpy(buf + (size_t)n * LMP_PAGE, p, LMP_PAGE);
			else
				memset(buf + (size_t)n * LMP_PAGE, 0, LMP_PAGE);
			pages[n++] = cursor;
		}
		more = cursor < vn->nr_pages && !vn->released;
		pthread_mutex_unlock(&m->lock);
		/* Runs of consecutive pages go in one write each. */
		for (uint32_t i = 0, j; i < n && !ret; i = j) {
			for (j = i + 1; j < n && pages[j] == pages[j - 1] + 1; j++)
				;
			ret = blk(x, LMP_BLK_WRITE, &t, lmp_backup_offset(pages[i]),
				  buf + (size_t)i * LMP_PAGE, (j - i) * LMP_PAGE, 0);
			if (!ret)
				written += j - i;
		}
		if (ret) { /* these go again next time */
			pthread_mutex_lock(&m->lock);
			for (uint32_t i = 0; i < n && !vn->released; i++)
				vn->backup->dirty[pages[i]] = 1;
			pthread_mutex_unlock(&m->lock);
		}
	}
	if (!ret)
		ret = blk(x, LMP_BLK_FLUSH, &t, 0, NULL, 0, 0);
	if (!ret) {
		static uint8_t hdr[LMP_PAGE];

		pthread_mutex_lock(&m->lock);
		h = (struct lmp_backup_header){LMP_BACKUP_MAGIC, vn->id, vn->backup->seq + 1, start,
					       vn->nr_pages};
		pthread_mutex_unlock(&m->lock);
		memset(hdr, 0, sizeof(hdr));
		memcpy(hdr, &h, sizeof(h));
		ret = blk(x, LMP_BLK_WRITE, &t, 0, hdr, LMP_PAGE, LMP_BLK_FUA);
	}
	if (x)
		xport_close(x);
	pthread_mutex_lock(&m->lock);
	if (!ret) {
		vn->backup->seq = h.seq;
		vn->backup->start_ms = start;
		vn->backup->pages += written;
		if (vn->backup->failing)
			log_info("vNode %llu: backups to %s/%s work again",
				 (unsigned long long)vn->id, t.storsrv, t.volume);
		vn->backup->failing = false;
	} else if (!vn->backup->failing) {
		vn->backup->failing = true;
		log_warn("vNode %llu: backup to %s/%s failed (%s); retrying every %u ms",
			 (unsigned long long)vn->id, t.storsrv, t.volume,
			 x ? stor_strerror(ret) : err, t.interval_ms);
	}
	pthread_mutex_unlock(&m->lock);
	return ret;
}

static void *backup_main(void *arg)
{
	struct memsrv *m = arg;

	for (;;) {
		struct store_vnode *due = NULL;

		pthread_mutex_lock(&m->lock);
		if (m->stop) {
			pthread_mutex_unlock(&m->lock);
			return NULL;
		}
		for (struct store_vnode *vn = m->store.vnodes; vn && !due; vn = vn->next) {
			struct store_backup *b = vn->backup;

			if (b && mono_ms() - b->last_try_ms >= b->target.interval_ms) {
				b->last_try_ms = mono_ms();
				due = vn;
				vn->refs++; /* held: not freed while backed up */
			}
		}
		pthread_mutex_unlock(&m->lock);
		if (!due) {
			usleep(50 * 1000);
			continue;
		}
		backup_once(m, due);
		pthread_mutex_lock(&m->lock);
		store_detach(&m->store, due);
		pthread_mutex_unlock(&m->lock);
	}
}

int memsrv_backup_start(struct memsrv *m)
{
	return thread_start_quiet(&m->backup_thread, backup_main, m);
}

void memsrv_backup_stop(struct memsrv *m)
{
	pthread_mutex_lock(&m->lock);
	m->stop = true;
	pthread_mutex_unlock(&m->lock);
	pthread_join(m->backup_thread, NULL);
}
