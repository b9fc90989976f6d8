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
#include "storclient.h"
#include "xport.h"

int memroute_server_index(struct memroute *r, const char *addr)
{
	for (int i = 0; i < r->nr_servers; i++)
		if (!strcmp(r->servers[i].addr, addr))
			return i;
	if (r->nr_servers == MEMROUTE_MAX_SERVERS)
		return -1;
	snprintf(r->servers[r->nr_servers].addr, sizeof(r->servers[0].addr), "%s", addr);
	r->servers[r->nr_servers].since = r->cred.epoch;
	r->servers[r->nr_servers].rdma = -1;
	return r->nr_servers++;
}

/* Fill slot @which (0 primary, 1 secondary) of every slab from the list @list. */
static int parse_list(struct memroute *r, const char *list, int which, char *err, size_t errlen)
{
	char *buf = strdup(list), *save = NULL, *a;
	uint64_t n = 0;

	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (a = strtok_r(buf, ",", &save); a; a = strtok_r(NULL, ",", &save), n++) {
		int s = memroute_server_index(r, a);

		if (s < 0) {
			free(buf);
			snprintf(err, errlen, "more than %d memory servers", MEMROUTE_MAX_SERVERS);
			return -E2BIG;
		}
		if (n >= r->max_slabs) {
			free(buf);
			snprintf(err, errlen,
				 "more memory servers listed than the %llu slabs of %llu pages "
				 "the memory has",
				 (unsigned long long)r->max_slabs,
				 (unsigned long long)r->slab_pages);
			return -EINVAL;
		}
		if (which)
			r->slabs[n].secondary = (int16_t)s;
		else
			r->slabs[n].primary = (int16_t)s;
	}
	free(buf);
	if (!which)
		r->nr_slabs = n;
	else if (n != r->nr_slabs) {
		snprintf(err, errlen, "%llu secondaries listed for %llu slabs: give one per slab",
			 (unsigned long long)n, (unsigned long long)r->nr_slabs);
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
	if (!slab_pages)
		slab_pages = cred->nr_pages; /* one slab: the whole memory */
	if (!slab_pages) {
		snprintf(err, errlen, "the memory has no pages");
		return -EINVAL;
	}
	r->slab_pages = slab_pages;
	r->max_slabs = (cred->nr_pages + slab_pages - 1) / slab_pages;
	r->slabs = calloc(r->max_slabs, sizeof(*r->slabs));
	if (!r->slabs) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (uint64_t k = 0; k < r->max_slabs; k++)
		r->slabs[k].primary = r->slabs[k].secondary = -1;
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

uint64_t memroute_placed_pages(struct memroute *r)
{
	uint64_t n = atomic_load(&r->nr_slabs) * r->slab_pages;

	return n < r->cred.nr_pages ? n : r->cred.nr_pages;
}

static bool fill_under_way(struct memroute *r)
{
	return atomic_load(&r->fill_done) != atomic_load(&r->fill_total);
}

int memroute_extend(struct memroute *r, const char *const *primaries,
		    const char *const *secondaries, int n, char *err, size_t errlen)
{
	uint64_t first;
	int ret = 0;

	pthread_mutex_lock(&r->lock);
	first = r->nr_slabs;
	if (fill_under_way(r)) {
		snprintf(err, errlen, "a refill of the memory is under way: try again after it");
		ret = -EBUSY;
	} else if (n < 0 || first + (uint64_t)n > r->max_slabs) {
		snprintf(err, errlen, "%llu slabs placed and %d more: past the %llu the memory has",
			 (unsigned long long)first, n, (unsigned long long)r->max_slabs);
		ret = -EINVAL;
	}
	for (int i = 0; !ret && i < n; i++) {
		int p = memroute_server_index(r, primaries[i]);
		int s = secondaries ? memroute_server_index(r, secondaries[i]) : -1;

		if (p < 0 || (secondaries && s < 0)) {
			snprintf(err, errlen, "more than %d memory servers", MEMROUTE_MAX_SERVERS);
			ret = -E2BIG;
		} else if (p == s || r->servers[p].lost || (s >= 0 && r->servers[s].lost)) {
			snprintf(err, errlen, "slab %llu: its copies on %s and %s cannot be",
				 (unsigned long long)(first + (uint64_t)i), primaries[i],
				 secondaries ? secondaries[i] : "none");
			ret = -EINVAL;
		} else {
			r->slabs[first + (uint64_t)i] =
				(struct memroute_slab){(int16_t)p, (int16_t)s, r->backup_seq + 1};
		}
	}
	if (!ret) {
		r->backup_seq++; /* their secondaries back them up */
		atomic_store(&r->nr_slabs, first + (uint64_t)n);
		atomic_fetch_add(&r->generation, 1); /* clients connect to the new servers */
		snprintf(r->last_event, sizeof(r->last_event),
			 "%d slab(s) placed for hotplugged memory: %llu in all", n,
			 (unsigned long long)(first + (uint64_t)n));
	} else {
		for (int i = 0; i < n && first + (uint64_t)i < r->max_slabs; i++)
			r->slabs[first + (uint64_t)i] = (struct memroute_slab){-1, -1};
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int memroute_trim(struct memroute *r, uint64_t nr, char *err, size_t errlen)
{
	int ret = 0;

	pthread_mutex_lock(&r->lock);
	if (fill_under_way(r)) {
		snprintf(err, errlen, "a refill of the memory is under way: try again after it");
		ret = -EBUSY;
	} else if (!nr || nr > r->nr_slabs) {
		snprintf(err, errlen, "%llu slabs are placed, not fewer than %llu",
			 (unsigned long long)r->nr_slabs, (unsigned long long)nr);
		ret = -EINVAL;
	} else {
		for (uint64_t k = nr; k < r->nr_slabs; k++)
			r->slabs[k] = (struct memroute_slab){-1, -1};
		atomic_store(&r->nr_slabs, nr);
		snprintf(r->last_event, sizeof(r->last_event),
			 "slabs of unplugged memory given back: %llu placed",
			 (unsigned long long)nr);
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

void memroute_exit(struct memroute *r)
{
	for (int s = 0; s < r->nr_servers; s++)
		while (r->servers[s].locs) {
			struct memclient_locs *l = r->servers[s].locs;

			r->servers[s].locs = l->next;
			memclient_locs_free(l);
			free(l);
		}
	free(r->slabs);
	r->slabs = NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The failover pause percentile @pct over the last MEMROUTE_PAUSES, ns (0: none). */
static uint64_t memroute_pause_percentile(struct memroute *r, int pct)
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
	json_t *slabs = json_array(), *servers = json_array(), *j;
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
	for (int s = 0; s < r->nr_servers; s++) {
		const char *how = r->servers[s].rdma < 0 ? NULL
				  : r->servers[s].rdma	 ? "rdma"
							 : "tcp";
		uint64_t one_sided = 0;

		for (struct memclient_locs *l = r->servers[s].locs; l; l = l->next)
			one_sided += atomic_load_explicit(&l->one_sided, memory_order_relaxed);
		json_array_append_new(servers,
				      json_pack("{s:s,s:s?,s:b,s:I}", "addr", r->servers[s].addr,
						"transport", how, "lost", r->servers[s].lost,
						"one_sided_reads", (json_int_t)one_sided));
	}
	j = json_pack("{s:I,s:I,s:o,s:o,s:I,s:I,s:I,s:I,s:s,s:I,s:I,s:I,s:s}", "epoch",
		      (json_int_t)r->cred.epoch, "slab_pages", (json_int_t)r->slab_pages, "slabs",
		      slabs, "servers", servers, "failovers", (json_int_t)r->failovers,
		      "pause_p50_ns", (json_int_t)p50, "pause_p99_ns", (json_int_t)p99,
		      "pause_max_ns", (json_int_t)r->pause_max_ns, "last_event", r->last_event,
		      "fill_done", (json_int_t)atomic_load(&r->fill_done), "fill_total",
		      (json_int_t)atomic_load(&r->fill_total), "fill_failures",
		      (json_int_t)r->fill_failures, "fill_error", r->fill_error);
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

uint64_t memroute_slab_end(const struct memroute *r, uint64_t k)
{
	uint64_t end = (k + 1) * r->slab_pages;

	return end < r->cred.nr_pages ? end : r->cred.nr_pages;
}

static bool server_lost(int err);
static int failover_locked(struct memroute *r, int s, int why, bool keep_only_copies);

/*
 * A secondary keeps the backup of its slabs: ask @s (connected) for those it
 * became the secondary of after @since (0: all). Route lock held.
 */
static int ask_backups(struct memroute_client *c, int s, uint64_t since, char *err, size_t errlen)
{
	struct memroute *r = c->r;
	int ret = 0;

	for (uint64_t k = 0; !ret && r->has_backup && k < r->nr_slabs; k++) {
		struct lmp_backup b = r->backup;

		if (r->slabs[k].secondary != s || (since && r->slabs[k].backup_seq <= since))
			continue;
		b.first_page = k * r->slab_pages;
		b.nr_pages = memroute_slab_end(r, k) - b.first_page;
		ret = memclient_backup(&c->conn[s], &b);
		if (ret)
			snprintf(err, errlen, "memory server %s refused the backup: %s",
				 r->servers[s].addr, memclient_strerror(ret));
	}
	return ret;
}

/* A new connection to server @s reads with the table every connection to it shares. */
static void share_locs(struct memroute *r, int s, struct memclient *mc)
{
	struct memroute_server *sv = &r->servers[s];

	sv->rdma = mc->rdma;
	if (!mc->rdma)
		return;
	if (!sv->locs || sv->locs->epoch != r->cred.epoch) {
		/* a new placement: new keys, a new table (connections still at the older one
		 * keep theirs, and cannot mix old keys into the new) */
		struct memclient_locs *l = calloc(1, sizeof(*l));

		if (!l || memclient_locs_init(l, r->cred.nr_pages)) {
			free(l);
			return; /* (out of memory: it keeps a table of its own) */
		}
		l->epoch = r->cred.epoch;
		l->next = sv->locs;
		sv->locs = l;
	}
	memclient_share(mc, sv->locs);
}

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
		} else if (want && c->conn[s].x && c->backup_seq != r->backup_seq) {
			/* slabs placed live, or given it as their new secondary */
			int ret = ask_backups(c, s, c->backup_seq, err, errlen);

			if (ret && server_lost(ret) &&
			    !failover_locked(r, s, ret, !r->has_backup)) {
				memclient_close(&c->conn[s]);
				s = -1;
				continue;
			}
			if (ret)
				return ret;
		} else if (want && !c->conn[s].x) {
			int ret = memclient_open_at(&c->conn[s], r->servers[s].addr, &r->cred,
						    r->servers[s].since, 0, r->io_timeout_ms, err,
						    errlen);

			if (!ret) {
				share_locs(r, s, &c->conn[s]);
				ret = ask_backups(c, s, 0, err, errlen);
			}
			if (ret && server_lost(ret) &&
			    !failover_locked(r, s, ret, !r->has_backup)) {
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
	c->backup_seq = r->backup_seq;
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
	/* over RDMA, a key that stopped working: the server fenced us, or it died (its
	 * regions go before its connections). Failing over tells them apart: a live
	 * server that fenced us did so for a newer placement, which the secondary
	 * refuses us too (-ESTALE). */
	case -EKEYREVOKED:
		return true;
	}
	return false;
}

/*
 * Fail over from server @s (lost with @why). A slab whose only copy is on it
 * keeps it (and @why is returned, nothing changed) when @keep_only_copies;
 * otherwise it is left without a copy, waiting for a restore. Lock held.
 */
static int failover_locked(struct memroute *r, int s, int why, bool keep_only_copies)
{
	uint64_t promoted = 0, dropped = 0, orphaned = 0;

	for (uint64_t k = 0; keep_only_copies && k < r->nr_slabs; k++) {
		if (r->slabs[k].primary == s && r->slabs[k].secondary < 0) {
			snprintf(r->last_event, sizeof(r->last_event),
				 "memory server %s %s, but slab %llu has no secondary: %s",
				 r->servers[s].addr,
				 why == -EHOSTDOWN ? "declared down" : memclient_strerror(why),
				 (unsigned long long)k,
				 why == -EHOSTDOWN ? "it stays in use" : "its memory is lost");
			return why;
		}
	}
	for (uint64_t k = 0; k < r->nr_slabs; k++) {
		struct memroute_slab *sl = &r->slabs[k];

		if (sl->primary == s) {
			if (sl->secondary < 0 && !r->lost_ms) /* no copy left: the backup's turn */
				r->lost_ms = wall_ms();
			orphaned += sl->secondary < 0;
			promoted += sl->secondary >= 0;
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
 * @why when a slab it was primary for has no other copy and no backup.
 */
static int failover(struct memroute_client *c, int s, uint64_t gen, int why)
{
	struct memroute *r = c->r;
	int ret = 0;

	pthread_mutex_lock(&r->lock);
	if (atomic_load(&r->generation) == gen && !r->servers[s].lost)
		ret = failover_locked(r, s, why, !r->has_backup);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int memroute_lose(struct memroute *r, const char *addr)
{
	int ret = -ENOENT;

	pthread_mutex_lock(&r->lock);
	for (int s = 0; s < r->nr_servers; s++) {
		/* The manager may be wrong: a server holding an only copy stays. */
		if (!strcmp(r->servers[s].addr, addr) && !r->servers[s].lost) {
			ret = failover_locked(r, s, -EHOSTDOWN, true);
			break;
		}
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

int memroute_takeover(struct memroute *r, uint64_t epoch, char *err, size_t errlen)
{
	struct memclient mc = {0};
	struct memclient_cred cred;
	int s, ret = -ENOENT;

	pthread_mutex_lock(&r->lock);
	for (s = 0; s < r->nr_servers && (r->servers[s].lost || !in_use(r, s)); s++)
		;
	if (s == r->nr_servers) {
		snprintf(err, errlen, "no memory server is left to take the vNode over on");
		goto out;
	}
	/* The servers have held the current copies since the epoch taken over from
	 * at the latest (the placement is the one the other VMM used). */
	for (int i = 0; i < r->nr_servers; i++)
		if (epoch && r->servers[i].since > epoch - 1)
			r->servers[i].since = epoch - 1;
	cred = r->cred;
	cred.epoch = epoch;
	ret = memclient_open_at(&mc, r->servers[s].addr, &cred, r->servers[s].since,
				LMP_HELLO_TAKEOVER, r->io_timeout_ms, err, errlen);
	memclient_close(&mc);
	explicit_bzero(&cred, sizeof(cred));
	if (ret == -ESTALE) {
		snprintf(err, errlen, "memory server %s: epoch %llu was taken first",
			 r->servers[s].addr, (unsigned long long)epoch);
		goto out;
	}
	if (ret)
		goto out;
	r->cred.epoch = epoch; /* every client connects again at it: the rest learn it */
	atomic_fetch_add(&r->generation, 1);
	snprintf(r->last_event, sizeof(r->last_event), "took the vNode over at epoch %llu on %s",
		 (unsigned long long)epoch, r->servers[s].addr);
out:
	pthread_mutex_unlock(&r->lock);
	return ret;
}

uint64_t memroute_epoch(struct memroute *r)
{
	uint64_t e;

	pthread_mutex_lock(&r->lock);
	e = r->cred.epoch;
	pthread_mutex_unlock(&r->lock);
	return e;
}

int memroute_catch_up(struct memroute_client *c)
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
			if (r->slabs[slab].primary < 0)
				return -EAGAIN; /* waiting for a restore (writing again is harmless) */
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

/* One attempt of an operation; on failure *@failed is the server that failed (or -1). */
typedef int (*route_op)(struct memroute_client *c, void *arg, int *failed);

/*
 * Run @op until it succeeds on the current route, failing over as servers
 * are lost and waiting for restores. Writes and reads are idempotent, so a
 * retry is always safe. A failover's pause is counted from the start of the
 * operation that met it.
 */
static int run(struct memroute_client *c, route_op op, void *arg)
{
	uint64_t t0 = now_ns();
	bool paused = false;
	int ret, failed;

	for (;;) {
		uint64_t gen;

		ret = memroute_catch_up(c);
		if (ret)
			break;
		gen = c->generation;
		ret = op(c, arg, &failed);
		if ((ret == -ESTALE || ret == -EKEYREVOKED) &&
		    gen != atomic_load(&c->r->generation))
			continue; /* fenced because another thread moved the route on */
		if (ret == -EAGAIN) {
			paused = true;
			ret = wait_restore(c->r, gen);
			if (ret)
				break;
			continue;
		}
		if (!ret || failed < 0 || !server_lost(ret))
			break;
		paused = true;
		ret = failover(c, failed, gen, ret);
		if (ret)
			break;
	}
	if (!ret && paused)
		record_pause(c->r, now_ns() - t0);
	return ret;
}

struct read_args {
	uint64_t first;
	uint32_t count;
	void *buf;
};

static int read_op(struct memroute_client *c, void *arg, int *failed)
{
	struct read_args *a = arg;

	return read_once(c, a->first, a->count, a->buf, failed);
}

struct write_args {
	const uint64_t *pages;
	void *const *data;
	uint32_t count;
};

static int write_op(struct memroute_client *c, void *arg, int *failed)
{
	struct write_args *a = arg;

	return write_once(c, a->pages, a->data, a->count, failed);
}

int memroute_read(struct memroute_client *c, uint64_t first, uint32_t count, void *buf)
{
	struct read_args a = {first, count, buf};

	return run(c, read_op, &a);
}

int memroute_write(struct memroute_client *c, const uint64_t *pages, void *const *data,
		   uint32_t count)
{
	struct write_args a = {pages, data, count};
	int ret;

	pthread_rwlock_rdlock(&c->r->copying);
	ret = run(c, write_op, &a);
	pthread_rwlock_unlock(&c->r->copying);
	return ret;
}

int memroute_discard(struct memroute_client *c, uint64_t first, uint64_t count)
{
	struct memroute *r = c->r;
	int ret = memroute_catch_up(c);

	for (uint64_t p = first; !ret && p < first + count;) {
		uint64_t k = p / r->slab_pages, end = memroute_slab_end(r, k);
		uint32_t n = (uint32_t)((end < first + count ? end : first + count) - p);
		int who[2];

		if (end <= p)
			break; /* past the vNode's memory */
		pthread_mutex_lock(&r->lock);
		who[0] = k < r->nr_slabs ? r->slabs[k].primary : -1;
		who[1] = k < r->nr_slabs ? r->slabs[k].secondary : -1;
		pthread_mutex_unlock(&r->lock);
		for (int i = 0; i < 2; i++)
			if (who[i] >= 0 && c->conn[who[i]].x)
				ret = ret ? ret : memclient_discard(&c->conn[who[i]], p, n);
		p += n;
	}
	return ret;
}

int memroute_release(struct memroute_client *c)
{
	int ret = 0;

	memroute_catch_up(c);
	for (int s = 0; s < c->r->nr_servers; s++) {
		int r;

		if (!c->conn[s].x)
			continue;
		r = memclient_release(&c->conn[s]);
		ret = ret ? ret : r;
	}
	return ret;
}

void memroute_close_all(struct memroute *r)
{
	pthread_mutex_lock(&r->lock);
	atomic_store(&r->closing, true);
	pthread_cond_broadcast(&r->restored);
	pthread_mutex_unlock(&r->lock);
}
