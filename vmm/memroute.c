/* memroute.c - slabs, replication and failover over memclients (see memroute.h). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "memroute.h"
#include "util.h"
#include "xport.h"

static int server_index(struct memroute *r, const char *addr)
{
	for (int i = 0; i < r->nr_servers; i++)
		if (!strcmp(r->servers[i].addr, addr))
			return i;
	if (r->nr_servers == MEMROUTE_MAX_SERVERS)
		return -1;
	snprintf(r->servers[r->nr_servers].addr, sizeof(r->servers[0].addr), "%s", addr);
	r->servers[r->nr_servers].since = r->cred.epoch;
	return r->nr_servers++;
}

/* Fill slot @which (0 primary, 1 secondary) of every slab from the list @list. */
static int parse_list(struct memroute *r, const char *list, int which, char *err, size_t errlen)
{
	char buf[4096], *save = NULL, *a;
	uint64_t n = 0;

	snprintf(buf, sizeof(buf), "%s", list);
	for (a = strtok_r(buf, ",", &save); a; a = strtok_r(NULL, ",", &save), n++) {
		int s = server_index(r, a);

		if (s < 0) {
			snprintf(err, errlen, "more than %d memory servers", MEMROUTE_MAX_SERVERS);
			return -E2BIG;
		}
		/* One address for all: every slab on it. */
		for (uint64_t k = n; k < r->nr_slabs; k += strchr(list, ',') ? r->nr_slabs : 1) {
			if (which)
				r->slabs[k].secondary = (int16_t)s;
			else
				r->slabs[k].primary = (int16_t)s;
		}
	}
	if (strchr(list, ',') && n != r->nr_slabs) {
		snprintf(err, errlen,
			 "%llu memory servers listed for %llu slabs of %llu pages: give one per "
			 "slab",
			 (unsigned long long)n, (unsigned long long)r->nr_slabs,
			 (unsigned long long)r->slab_pages);
		return -EINVAL;
	}
	return 0;
}

int memroute_init(struct memroute *r, const char *primaries, const char *secondaries,
		  uint64_t slab_pages, const struct memclient_cred *cred, char *err, size_t errlen)
{
	int ret;

	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	pthread_rwlock_init(&r->copying, NULL);
	pthread_cond_init(&r->restored, NULL);
	r->cred = *cred;
	if (!slab_pages || (!strchr(primaries, ',') && !(secondaries && strchr(secondaries, ','))))
		slab_pages = cred->nr_pages; /* one slab: the whole memory */
	if (!slab_pages) {
		snprintf(err, errlen, "the memory has no pages");
		return -EINVAL;
	}
	r->slab_pages = slab_pages;
	r->nr_slabs = (cred->nr_pages + slab_pages - 1) / slab_pages;
	r->slabs = calloc(r->nr_slabs, sizeof(*r->slabs));
	if (!r->slabs) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (uint64_t k = 0; k < r->nr_slabs; k++)
		r->slabs[k].secondary = -1;
	ret = parse_list(r, primaries, 0, err, errlen);
	if (!ret && secondaries)
		ret = parse_list(r, secondaries, 1, err, errlen);
	for (uint64_t k = 0; !ret && secondaries && k < r->nr_slabs; k++) {
		if (r->slabs[k].secondary == r->slabs[k].primary) {
			snprintf(err, errlen, "slab %llu has its primary and secondary on %s",
				 (unsigned long long)k, r->servers[r->slabs[k].primary].addr);
			ret = -EINVAL;
		}
	}
	/* Replicated: a silent server must be noticed in time for a short failover. */
	r->io_timeout_ms = secondaries ? MEMROUTE_IO_TIMEOUT_MS : 30000;
	if (ret)
		memroute_exit(r);
	return ret;
}

void memroute_exit(struct memroute *r)
{
	free(r->slabs);
	r->slabs = NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

uint64_t memroute_pause_percentile(struct memroute *r, int pct)
{
	uint64_t v[MEMROUTE_PAUSES], n;

	pthread_mutex_lock(&r->lock);
	n = r->nr_pauses < MEMROUTE_PAUSES ? r->nr_pauses : MEMROUTE_PAUSES;
	memcpy(v, r->pause_ns, n * sizeof(v[0]));
	pthread_mutex_unlock(&r->lock);
	if (!n)
		return 0;
	qsort(v, n, sizeof(v[0]), cmp_u64);
	return v[(n - 1) * (uint64_t)pct / 100];
}

json_t *memroute_status(struct memroute *r)
{
	json_t *slabs = json_array(), *j;
	uint64_t p50 = memroute_pause_percentile(r, 50), p99 = memroute_pause_percentile(r, 99);

	pthread_mutex_lock(&r->lock);
	for (uint64_t k = 0; k < r->nr_slabs; k++) {
		int p = r->slabs[k].primary, s = r->slabs[k].secondary;

		json_array_append_new(
			slabs, json_pack("{s:o,s:o}", "primary",
					 p < 0 ? json_null() : json_string(r->servers[p].addr),
					 "secondary",
					 s < 0 ? json_null() : json_string(r->servers[s].addr)));
	}
	j = json_pack("{s:I,s:I,s:o,s:I,s:I,s:I,s:I,s:s,s:I,s:I}", "epoch",
		      (json_int_t)r->cred.epoch, "slab_pages", (json_int_t)r->slab_pages, "slabs",
		      slabs, "failovers", (json_int_t)r->failovers, "pause_p50_ns", (json_int_t)p50,
		      "pause_p99_ns", (json_int_t)p99, "pause_max_ns", (json_int_t)r->pause_max_ns,
		      "last_event", r->last_event, "refill_done",
		      (json_int_t)atomic_load(&r->refill_done), "refill_total",
		      (json_int_t)atomic_load(&r->refill_total));
	if (r->has_backup)
		json_object_set_new(j, "backup",
				    json_pack("{s:s,s:s,s:I,s:I,s:I}", "storsrv", r->backup.storsrv,
					      "volume", r->backup.volume, "restores",
					      (json_int_t)r->restores, "restored_from_ms",
					      (json_int_t)r->restored_from_ms, "lost_ms",
					      (json_int_t)r->lost_ms));
	pthread_mutex_unlock(&r->lock);
	return j;
}

static bool in_use(struct memroute *r, int s)
{
	for (uint64_t k = 0; k < r->nr_slabs; k++)
		if (r->slabs[k].primary == s || r->slabs[k].secondary == s)
			return true;
	return false;
}

/* One past the last page of slab @k. */
static uint64_t slab_end(const struct memroute *r, uint64_t k)
{
	uint64_t end = (k + 1) * r->slab_pages;

	return end < r->cred.nr_pages ? end : r->cred.nr_pages;
}

static bool server_lost(int err);
static int failover_locked(struct memroute *r, int s, int why);

/*
 * Bring @c's connections in line with the route; a server that cannot be
 * reached is failed over from on the way. Route lock held.
 */
static int resync(struct memroute_client *c, char *err, size_t errlen)
{
	struct memroute *r = c->r;

	for (int s = 0; s < r->nr_servers; s++) {
		bool want = !r->servers[s].lost && in_use(r, s);

		/* A new epoch: every connection is made again at it, so that every
		 * server of the route learns it and fences the old ones. */
		if (c->epoch != r->cred.epoch && c->conn[s].x)
			memclient_close(&c->conn[s]);
		if (!want && c->conn[s].x) {
			memclient_close(&c->conn[s]);
		} else if (want && !c->conn[s].x) {
			int ret = memclient_open_at(&c->conn[s], r->servers[s].addr, &r->cred,
						    r->servers[s].since, 0, r->io_timeout_ms, err,
						    errlen);

			/* A secondary keeps the backup of its slabs. */
			for (uint64_t k = 0; !ret && r->has_backup && k < r->nr_slabs; k++) {
				struct lmp_backup b = r->backup;

				if (r->slabs[k].secondary != s)
					continue;
				b.first_page = k * r->slab_pages;
				b.nr_pages = slab_end(r, k) - b.first_page;
				ret = memclient_backup(&c->conn[s], &b);
				if (ret)
					snprintf(err, errlen,
						 "memory server %s refused the backup: %s",
						 r->servers[s].addr, memclient_strerror(ret));
			}
			if (ret && server_lost(ret) && !failover_locked(r, s, ret)) {
				memclient_close(&c->conn[s]);
				s = -1; /* the route changed: over again */
				continue;
			}
			if (ret)
				return ret;
		}
	}
	c->generation = atomic_load(&r->generation);
	c->epoch = r->cred.epoch;
	return 0;
}

int memroute_open(struct memroute_client *c, struct memroute *r, char *err, size_t errlen)
{
	int ret;

	memset(c, 0, sizeof(*c));
	c->r = r;
	pthread_mutex_lock(&r->lock);
	ret = resync(c, err, errlen);
	pthread_mutex_unlock(&r->lock);
	if (ret)
		memroute_close(c);
	else
		c->open = true;
	return ret;
}

void memroute_close(struct memroute_client *c)
{
	for (int s = 0; s < MEMROUTE_MAX_SERVERS; s++)
		memclient_close(&c->conn[s]);
	c->open = false;
}

/* Errors that mean the server is gone (rather than refusing a request). */
static bool server_lost(int err)
{
	switch (err) {
	case -ECONNRESET:
	case -ECONNREFUSED:
	case -ECONNABORTED:
	case -EPIPE:
	case -ETIMEDOUT:
	case -ENOTCONN:
	case -EHOSTUNREACH:
	case -ENETUNREACH:
	case -EIO:
	case -EPROTO:
		return true;
	}
	return false;
}

/* Fail over from server @s (lost with @why). Route lock held. */
static int failover_locked(struct memroute *r, int s, int why)
{
	uint64_t promoted = 0, dropped = 0, orphaned = 0;

	for (uint64_t k = 0; !r->has_backup && k < r->nr_slabs; k++) {
		if (r->slabs[k].primary == s && r->slabs[k].secondary < 0) {
			snprintf(r->last_event, sizeof(r->last_event),
				 "memory server %s lost (%s) and slab %llu has no secondary",
				 r->servers[s].addr, memclient_strerror(why),
				 (unsigned long long)k);
			return why;
		}
	}
	for (uint64_t k = 0; k < r->nr_slabs; k++) {
		struct memroute_slab *sl = &r->slabs[k];

		if (sl->primary == s) {
			if (sl->secondary < 0) { /* no copy left: the backup's turn */
				struct timespec ts;

				clock_gettime(CLOCK_REALTIME, &ts);
				if (!r->lost_ms)
					r->lost_ms = (uint64_t)ts.tv_sec * 1000 +
						     (uint64_t)ts.tv_nsec / 1000000;
				orphaned++;
			} else {
				promoted++;
			}
			sl->primary = sl->secondary;
			sl->secondary = -1;
		} else if (sl->secondary == s) {
			sl->secondary = -1;
			dropped++;
		}
	}
	r->servers[s].lost = true;
	r->cred.epoch++; /* the lost server, if it comes back, is fenced */
	r->failovers++;
	atomic_fetch_add(&r->generation, 1);
	pthread_cond_broadcast(&r->restored);
	snprintf(r->last_event, sizeof(r->last_event),
		 "memory server %s lost (%s): %llu slab(s) now served by their secondary, %llu "
		 "without a secondary, %llu with no copy left (waiting for a restore from the "
		 "backup); epoch %llu",
		 r->servers[s].addr, memclient_strerror(why), (unsigned long long)promoted,
		 (unsigned long long)dropped, (unsigned long long)orphaned,
		 (unsigned long long)r->cred.epoch);
	log_warn("%s", r->last_event);
	return 0;
}

/*
 * Server @s failed (with @why) for the client at generation @gen: fail over,
 * unless another thread has done so already. 0 when the route can go on;
 * @why when some slab it was primary for has no secondary.
 */
static int failover(struct memroute_client *c, int s, uint64_t gen, int why)
{
	struct memroute *r = c->r;
	int ret = 0;

	pthread_mutex_lock(&r->lock);
	if (atomic_load(&r->generation) == gen && !r->servers[s].lost)
		ret = failover_locked(r, s, why);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int memroute_lose(struct memroute *r, const char *addr)
{
	int ret = -ENOENT;

	pthread_mutex_lock(&r->lock);
	for (int s = 0; s < r->nr_servers; s++) {
		if (strcmp(r->servers[s].addr, addr) || r->servers[s].lost)
			continue;
		for (uint64_t k = 0; k < r->nr_slabs; k++) {
			if (r->slabs[k].primary == s && r->slabs[k].secondary < 0) {
				/* the only copy: the manager may be wrong; it answers us */
				snprintf(r->last_event, sizeof(r->last_event),
					 "memory server %s declared down, but slab %llu has no "
					 "secondary: it stays in use",
					 addr, (unsigned long long)k);
				ret = -EHOSTDOWN;
			}
		}
		if (ret != -EHOSTDOWN)
			ret = failover_locked(r, s, -EHOSTDOWN) ? -EHOSTDOWN : 0;
		break;
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

/* A slab has no copy left: wait for memroute_restore (or give up). */
static int wait_restore(struct memroute *r, uint64_t gen)
{
	struct timespec ts;
	int ret = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += r->restore_wait_ms / 1000;
	pthread_mutex_lock(&r->lock);
	while (atomic_load(&r->generation) == gen && ret != ETIMEDOUT && !atomic_load(&r->closing))
		ret = pthread_cond_timedwait(&r->restored, &r->lock, &ts);
	pthread_mutex_unlock(&r->lock);
	return ret == ETIMEDOUT || atomic_load(&r->closing) ? -EHOSTDOWN : 0;
}

static void record_pause(struct memroute *r, uint64_t ns)
{
	pthread_mutex_lock(&r->lock);
	r->pause_ns[r->nr_pauses++ % MEMROUTE_PAUSES] = ns;
	if (ns > r->pause_max_ns)
		r->pause_max_ns = ns;
	pthread_mutex_unlock(&r->lock);
}

/* Catch up with the route if it changed. */
static int catch_up(struct memroute_client *c)
{
	char err[256];
	int ret = 0;

	if (c->generation == atomic_load(&c->r->generation))
		return 0;
	pthread_mutex_lock(&c->r->lock);
	ret = resync(c, err, sizeof(err));
	pthread_mutex_unlock(&c->r->lock);
	if (ret)
		log_err("after a failover: %s", err);
	return ret;
}

/* One attempt of a read; on failure *@failed is the server that failed (or -1). */
static int read_once(struct memroute_client *c, uint64_t first, uint32_t count, uint8_t *buf,
		     int *failed)
{
	struct memroute *r = c->r;

	*failed = -1;
	while (count) {
		uint64_t slab = first / r->slab_pages, end = (slab + 1) * r->slab_pages;
		uint32_t n = end - first < count ? (uint32_t)(end - first) : count;
		int s, ret;

		if (slab >= r->nr_slabs)
			return -ERANGE;
		s = r->slabs[slab].primary;
		if (s < 0)
			return -EAGAIN; /* waiting for a restore */
		if (!c->conn[s].x) {	/* a server this client has not caught up with */
			*failed = s;
			return -ENOTCONN;
		}
		ret = memclient_read(&c->conn[s], first, n, buf);
		if (ret) {
			*failed = s;
			return ret;
		}
		first += n;
		count -= n;
		buf += (size_t)n * LMP_PAGE;
	}
	return 0;
}

/*
 * One attempt of a write: each batch of up to LMP_MAX_PAGES pages is sent to
 * every server that must hold some of it (primary and secondary) before any
 * answer is awaited, so that a replicated write costs about one round trip,
 * not two. On failure *@failed is the server that failed first.
 */
static int write_once(struct memroute_client *c, const uint64_t *pages, void *const *data,
		      uint32_t count, int *failed)
{
	static __thread uint64_t sel[MEMROUTE_MAX_SERVERS][LMP_MAX_PAGES];
	static __thread void *sel_data[MEMROUTE_MAX_SERVERS][LMP_MAX_PAGES];
	struct memroute *r = c->r;

	*failed = -1;
	for (uint32_t i = 0; i < count; i++) {
		uint64_t slab = pages[i] / r->slab_pages;

		if (slab < r->nr_slabs && r->slabs[slab].primary < 0)
			return -EAGAIN; /* waiting for a restore: nothing written */
	}
	for (uint32_t off = 0; off < count; off += LMP_MAX_PAGES) {
		uint32_t n = count - off < LMP_MAX_PAGES ? count - off : LMP_MAX_PAGES;
		uint32_t k[MEMROUTE_MAX_SERVERS] = {0};
		uint64_t id[MEMROUTE_MAX_SERVERS];
		bool sent[MEMROUTE_MAX_SERVERS] = {false};
		int ret = 0;

		for (uint32_t i = off; i < off + n; i++) {
			uint64_t slab = pages[i] / r->slab_pages;
			int to[2];

			if (slab >= r->nr_slabs)
				return -ERANGE;
			to[0] = r->slabs[slab].primary;
			to[1] = r->slabs[slab].secondary;
			for (int j = 0; j < 2; j++) {
				if (to[j] < 0)
					continue;
				sel[to[j]][k[to[j]]] = pages[i];
				sel_data[to[j]][k[to[j]]++] = data[i];
			}
		}
		for (int s = 0; s < r->nr_servers && !ret; s++) {
			if (!k[s])
				continue;
			if (!c->conn[s].x) {
				ret = -ENOTCONN;
			} else {
				ret = memclient_write_send(&c->conn[s], sel[s], sel_data[s], k[s],
							   &id[s]);
				sent[s] = !ret;
			}
			if (ret)
				*failed = s;
		}
		/* Every answer is awaited, even after a failure: connections stay in step. */
		for (int s = 0; s < r->nr_servers; s++) {
			int w = sent[s] ? memclient_write_wait(&c->conn[s], id[s], k[s]) : 0;

			if (w && !ret) {
				ret = w;
				*failed = s;
			}
		}
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Run @op until it succeeds on the current route, failing over as servers
 * are lost. Writes and reads are idempotent, so a retry is always safe.
 */
#define WITH_FAILOVER(c, call)                                                                     \
	({                                                                                         \
		uint64_t t0 = now_ns();                                                            \
		bool failed_over_ = false;                                                         \
		int ret_, failed_;                                                                 \
		for (;;) {                                                                         \
			uint64_t gen_;                                                             \
			ret_ = catch_up(c);                                                        \
			if (ret_)                                                                  \
				break;                                                             \
			gen_ = (c)->generation;                                                    \
			ret_ = call;                                                               \
			/* fenced because another thread moved the route on: catch up */           \
			if (ret_ == -ESTALE && gen_ != atomic_load(&(c)->r->generation))           \
				continue;                                                          \
			if (ret_ == -EAGAIN) {                                                     \
				failed_over_ = true;                                               \
				ret_ = wait_restore((c)->r, gen_);                                 \
				if (ret_)                                                          \
					break;                                                     \
				continue;                                                          \
			}                                                                          \
			if (!ret_ || failed_ < 0 || !server_lost(ret_))                            \
				break;                                                             \
			failed_over_ = true;                                                       \
			ret_ = failover(c, failed_, gen_, ret_);                                   \
			if (ret_)                                                                  \
				break;                                                             \
		}                                                                                  \
		if (!ret_ && failed_over_) /* from the start of the operation that met it */       \
			record_pause((c)->r, now_ns() - t0);                                       \
		ret_;                                                                              \
	})

int memroute_read(struct memroute_client *c, uint64_t first, uint32_t count, void *buf)
{
	return WITH_FAILOVER(c, read_once(c, first, count, buf, &failed_));
}

int memroute_write(struct memroute_client *c, const uint64_t *pages, void *const *data,
		   uint32_t count)
{
	int ret;

	pthread_rwlock_rdlock(&c->r->copying);
	ret = WITH_FAILOVER(c, write_once(c, pages, data, count, &failed_));
	pthread_rwlock_unlock(&c->r->copying);
	return ret;
}

/*
 * The pages of @buf (@n of them, the first being page @first) that are not all
 * zeros, into @pages/@data; returns how many. A zero page needs no copy: a
 * page never written reads as zeros from a memory server.
 */
static uint32_t nonzero_pages(uint8_t *buf, uint64_t first, uint32_t n, uint64_t *pages,
			      void **data)
{
	uint32_t k = 0;

	for (uint32_t i = 0; i < n; i++) {
		uint8_t *pg = buf + (size_t)i * LMP_PAGE;

		if (pg[0] == 0 && !memcmp(pg, pg + 1, LMP_PAGE - 1))
			continue;
		pages[k] = first + i;
		data[k++] = pg;
	}
	return k;
}

int memroute_add_secondary(struct memroute_client *c, const char *addr, char *err, size_t errlen)
{
	struct memroute *r = c->r;
	uint8_t *buf = NULL;
	struct memclient fresh;
	uint64_t todo = 0;
	bool *mine;
	int s, ret;

	mine = calloc(r->nr_slabs, sizeof(*mine));
	buf = malloc(LMP_MAX_PAGES * LMP_PAGE);
	if (!mine || !buf) {
		free(mine);
		free(buf);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_lock(&r->lock);
	s = server_index(r, addr);
	if (s < 0) {
		pthread_mutex_unlock(&r->lock);
		free(mine);
		free(buf);
		snprintf(err, errlen, "%s cannot be a secondary: too many memory servers", addr);
		return -EINVAL;
	}
	/* A server lost before (restarted, or back from a partition) is welcome:
	 * it is refilled from scratch, never trusted with what it held. */
	r->cred.epoch++; /* a placement the new server is part of, from scratch */
	r->servers[s].since = r->cred.epoch;
	ret = memclient_open_at(&fresh, addr, &r->cred, r->cred.epoch, LMP_HELLO_FRESH,
				r->io_timeout_ms, err, errlen);
	if (!ret)
		r->servers[s].lost = false;
	if (ret) {
		r->cred.epoch--;
		pthread_mutex_unlock(&r->lock);
		free(mine);
		free(buf);
		return ret;
	}
	memclient_close(&fresh);
	for (uint64_t k = 0; k < r->nr_slabs; k++) {
		if (r->slabs[k].secondary < 0 && r->slabs[k].primary >= 0 &&
		    r->slabs[k].primary != s) {
			r->slabs[k].secondary = (int16_t)s;
			mine[k] = true;
			todo += slab_end(r, k) - k * r->slab_pages;
		}
	}
	atomic_store(&r->refill_total, todo);
	atomic_store(&r->refill_done, 0);
	atomic_fetch_add(&r->generation, 1); /* from here on writes go to it too */
	snprintf(r->last_event, sizeof(r->last_event),
		 "memory server %s is being filled as the secondary of %llu page(s); epoch %llu",
		 addr, (unsigned long long)todo, (unsigned long long)r->cred.epoch);
	log_info("%s", r->last_event);
	pthread_mutex_unlock(&r->lock);

	/* Copy, a batch at a time, with writes held off only for the batch. */
	for (uint64_t k = 0; !ret && k < r->nr_slabs; k++) {
		uint64_t first = k * r->slab_pages, end = slab_end(r, k);

		for (uint64_t p = first; mine[k] && !ret && p < end; p += LMP_MAX_PAGES) {
			if (atomic_load(&r->closing)) {
				ret = -ECANCELED;
				break;
			}
			uint32_t n = end - p < LMP_MAX_PAGES ? (uint32_t)(end - p) : LMP_MAX_PAGES;
			uint64_t pages[LMP_MAX_PAGES];
			void *data[LMP_MAX_PAGES];
			uint32_t nonzero = 0;

			pthread_rwlock_wrlock(&r->copying);
			ret = WITH_FAILOVER(c, read_once(c, p, n, buf, &failed_));
			if (!ret)
				nonzero = nonzero_pages(buf, p, n, pages, data);
			if (!ret && nonzero && !c->conn[s].x)
				ret = catch_up(c);
			if (!ret && nonzero)
				ret = memclient_write(&c->conn[s], pages, data, nonzero);
			pthread_rwlock_unlock(&r->copying);
			atomic_fetch_add(&r->refill_done, n);
		}
	}
	free(mine);
	free(buf);
	pthread_mutex_lock(&r->lock);
	snprintf(r->last_event, sizeof(r->last_event),
		 ret ? "refilling memory server %s failed: %s"
		     : "memory server %s is the secondary again (%s): redundancy restored",
		 addr, ret ? memclient_strerror(ret) : "copy complete");
	pthread_mutex_unlock(&r->lock);
	if (ret)
		snprintf(err, errlen, "%s", r->last_event);
	else
		log_info("%s", r->last_event);
	return ret;
}

int memroute_release(struct memroute_client *c)
{
	int ret = 0;

	catch_up(c);
	for (int s = 0; s < c->r->nr_servers; s++) {
		int r;

		if (!c->conn[s].x)
			continue;
		r = memclient_release(&c->conn[s]);
		ret = ret ? ret : r;
	}
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

static int vol_read(struct xport *x, const struct lmp_backup *b, uint64_t offset, void *buf,
		    uint32_t len)
{
	struct lmp_blk blk = {.offset = offset, .length = len};
	struct iovec iov = {&blk, sizeof(blk)};
	struct lmp_hdr resp;
	int ret;

	memcpy(blk.volume, b->volume, sizeof(blk.volume));
	memcpy(blk.token, b->token, sizeof(blk.token));
	ret = xport_call(x, LMP_BLK_READ, 0, &iov, 1, &resp, buf, len);
	return ret ? ret : resp.status ? resp.status : resp.len == len ? 0 : -EPROTO;
}

/* The backup's header; 0, or -errno with a sentence in @err. */
static int backup_header(struct memroute *r, struct xport *x, struct lmp_backup_header *h,
			 char *err, size_t errlen)
{
	static __thread uint8_t page[LMP_PAGE];
	int ret = vol_read(x, &r->backup, r->cred.nr_pages * LMP_PAGE, page, LMP_PAGE);

	memcpy(h, page, sizeof(*h));
	if (ret)
		snprintf(err, errlen, "reading the backup on %s/%s: %s", r->backup.storsrv,
			 r->backup.volume, strerror(-ret));
	else if (h->magic != LMP_BACKUP_MAGIC || h->vnode != r->cred.vnode)
		snprintf(err, errlen, "%s/%s holds no completed backup of this vNode",
			 r->backup.storsrv, r->backup.volume);
	return ret ? ret : h->magic != LMP_BACKUP_MAGIC || h->vnode != r->cred.vnode ? -ENODATA : 0;
}

int memroute_restore(struct memroute_client *c, const char *addr, char *err, size_t errlen)
{
	struct memroute *r = c->r;
	uint8_t *buf;
	struct lmp_backup_header h = {0};
	struct memclient fresh = {0};
	struct xport *x = NULL;
	uint64_t restored = 0, pages = 0;
	bool *todo;
	int s = -1, ret;

	if (!r->has_backup) {
		snprintf(err, errlen, "this vNode's memory has no backup to restore from");
		return -ENODATA;
	}
	todo = calloc(r->nr_slabs, sizeof(*todo));
	buf = malloc(LMP_MAX_PAGES * LMP_PAGE);
	if (!todo || !buf) {
		free(todo);
		free(buf);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	ret = xport_connect(r->backup.storsrv, 2000, 30000, &x, err, errlen);
	if (!ret)
		ret = backup_header(r, x, &h, err, errlen);
	pthread_mutex_lock(&r->lock);
	if (!ret) {
		s = server_index(r, addr);
		if (s < 0) {
			snprintf(err, errlen, "%s cannot take the restore: too many memory servers",
				 addr);
			ret = -EINVAL;
		}
	}
	if (!ret) {
		r->cred.epoch++;
		r->servers[s].since = r->cred.epoch;
		ret = memclient_open_at(&fresh, addr, &r->cred, r->cred.epoch, LMP_HELLO_FRESH,
					r->io_timeout_ms, err, errlen);
		if (ret)
			r->cred.epoch--;
		else
			r->servers[s].lost = false; /* refilled from scratch: current again */
	}
	for (uint64_t k = 0; !ret && k < r->nr_slabs; k++)
		todo[k] = r->slabs[k].primary < 0;
	pthread_mutex_unlock(&r->lock);

	/* Nobody writes to these slabs meanwhile: their operations wait for this. */
	for (uint64_t k = 0; !ret && k < r->nr_slabs; k++) {
		uint64_t first = k * r->slab_pages, end = slab_end(r, k);

		for (uint64_t p = first; todo[k] && !ret && p < end; p += LMP_MAX_PAGES) {
			if (atomic_load(&r->closing)) {
				ret = -ECANCELED;
				break;
			}
			uint32_t n = end - p < LMP_MAX_PAGES ? (uint32_t)(end - p) : LMP_MAX_PAGES;
			uint64_t nos[LMP_MAX_PAGES];
			void *data[LMP_MAX_PAGES];
			uint32_t nz = 0;

			ret = vol_read(x, &r->backup, p * LMP_PAGE, buf, n * LMP_PAGE);
			if (!ret)
				nz = nonzero_pages(buf, p, n, nos, data);
			if (!ret && nz)
				ret = memclient_write(&fresh, nos, data, nz);
			pages += nz;
		}
		restored += todo[k] && !ret;
	}
	if (ret && !err[0])
		snprintf(err, errlen, "restoring on %s: %s", addr, memclient_strerror(ret));
	if (x)
		xport_close(x);
	memclient_close(&fresh);
	free(todo);
	free(buf);
	pthread_mutex_lock(&r->lock);
	if (!ret) {
		for (uint64_t k = 0; k < r->nr_slabs; k++)
			if (r->slabs[k].primary < 0)
				r->slabs[k].primary = (int16_t)s;
		time_t when = (time_t)(h.start_ms / 1000);
		struct tm tm;
		char at[32];

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
			(unsigned long long)pages, at,
			r->lost_ms > h.start_ms ? (r->lost_ms - h.start_ms) / 1000.0 : 0.0);
		log_warn("%s", r->last_event);
		r->lost_ms = 0;
		atomic_fetch_add(&r->generation, 1);
		pthread_cond_broadcast(&r->restored);
	} else {
		snprintf(r->last_event, sizeof(r->last_event), "restore on %s failed: %s", addr,
			 err);
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

void memroute_close_all(struct memroute *r)
{
	pthread_mutex_lock(&r->lock);
	atomic_store(&r->closing, true);
	pthread_cond_broadcast(&r->restored);
	pthread_mutex_unlock(&r->lock);
}
