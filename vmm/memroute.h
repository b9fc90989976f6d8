/*
 * memroute.h - where a vNode's memory lives, shared by the VMM's threads.
 *
 * The memory is cut in slabs; each slab has a primary memory server and,
 * when it is replicated, a secondary on another server. A write goes to both
 * and counts as done only when both have acknowledged it; a read goes to the
 * primary. When a server stops answering (its connection breaks or times
 * out), the route fails over: the slabs it was primary for are served by
 * their secondaries from then on, the slabs it was secondary for go on
 * without one, and the placement's epoch moves on, so the lost server, if it
 * comes back, is fenced (it refuses every connection of the old epoch, and a
 * connection of the new one unless it is refilled). The operation that met
 * the failure is retried on the new route; the time from its start to its
 * completion there is the failover pause.
 *
 * Each thread has a memroute_client: its own connections, rebuilt when the
 * route has changed (generation).
 */
#ifndef LEGO_VMM_MEMROUTE_H
#define LEGO_VMM_MEMROUTE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "memclient.h"

struct memroute_client;

#define MEMROUTE_MAX_SERVERS 32
#define MEMROUTE_PAUSES	     64 /* failover pauses remembered */
/*
 * A replicated route's I/O timeout: a server silent this long is failed over
 * from. Long enough that a server starved of CPU for a moment on a busy
 * machine is not taken for lost; a partition is usually reported sooner by
 * the manager (3 s without heartbeats), which then tells the VMM.
 */
#define MEMROUTE_IO_TIMEOUT_MS 4000

struct memroute_server {
	char addr[128];
	uint64_t since; /* the epoch since which it is in the route, holding current copies */
	bool lost;	/* failed over away from: never contacted again */
	int8_t rdma;	/* how the last connection to it went: 1 RDMA, 0 TCP, -1 none yet */
	/* over RDMA: where its pages are, for every connection at the current epoch (a
	 * newer placement's keys are new: a new table, the older ones kept on its next) */
	struct memclient_locs *locs;
};

struct memroute_slab {
	int16_t primary, secondary; /* server indexes; -1: none (primary: no copy left) */
	uint64_t backup_seq;	    /* route.backup_seq when it got its secondary */
};

struct memroute {
	pthread_mutex_t lock;
	pthread_rwlock_t copying;   /* writes hold it shared; a refill batch exclusively */
	struct memclient_cred cred; /* cred.epoch: the current epoch */
	uint64_t slab_pages;
	/* slabs[0, nr_slabs) are placed (have servers); the memory may grow
	 * (hotplug) up to max_slabs, which cover cred.nr_pages */
	_Atomic uint64_t nr_slabs;
	uint64_t max_slabs;
	struct memroute_slab *slabs; /* max_slabs of them */
	struct memroute_server servers[MEMROUTE_MAX_SERVERS];
	int nr_servers;
	int io_timeout_ms;
	_Atomic uint64_t generation;
	uint64_t backup_seq; /* bumped when a slab gets a secondary: it backs the slab up */
	/* failovers */
	uint64_t failovers;
	uint64_t pause_ns[MEMROUTE_PAUSES];
	uint64_t nr_pauses, pause_max_ns;
	char last_event[256];
	/* fills: a new secondary, or a restore */
	_Atomic uint64_t fill_done, fill_total; /* a refill or a restore under way */
	uint64_t fill_failures;			/* refills and restores that failed */
	char fill_error[256];			/* why the last one failed; "" after a success */
	/* backups, and restores from them when every copy of a slab is lost */
	bool has_backup;
	struct lmp_backup backup; /* first_page, nr_pages: per slab, filled in */
	pthread_cond_t restored;
	int restore_wait_ms;
	uint64_t lost_ms;	   /* wall clock: when a slab's last copy was lost */
	uint64_t restored_from_ms; /* the backup a restore used: its start */
	uint64_t restores;
	atomic_bool closing; /* the VMM is going away: refills, restores, waits end */
};

/*
 * memroute_init - @primaries is "HOST:PORT" for all the memory (without
 * @slab_pages), or "A,B,..." one per slab of @slab_pages: the slabs placed so
 * far, from the first (hotpluggable memory may need more later:
 * memroute_extend); @secondaries (NULL: none) the same for the secondaries,
 * each on another server than its slab's primary. -errno with a sentence in
 * @err.
 */
int memroute_init(struct memroute *r, const char *primaries, const char *secondaries,
		  uint64_t slab_pages, const struct memclient_cred *cred, char *err, size_t errlen);
void memroute_exit(struct memroute *r);

/*
 * memroute_set_backup - every secondary backs its slabs up to @volume on the
 * storage server @storsrv every @interval_ms; when a slab loses its last
 * copy, operations on it wait (at most @wait_ms) for memroute_restore instead
 * of failing. Before any client opens.
 */
void memroute_set_backup(struct memroute *r, const char *storsrv, const char *volume,
			 const uint8_t *token, uint32_t interval_ms, int wait_ms);

/*
 * memroute_restore - the slabs without a copy are refilled on @addr from the
 * backup volume and served from it; what the backup cannot hold (writes made
 * after it started) is named in last_event, never passed over. -errno with a
 * sentence in @err.
 */
int memroute_restore(struct memroute_client *c, const char *addr, char *err, size_t errlen);

/*
 * memroute_takeover - claim the vNode at @epoch on the route's first server
 * (LMP_HELLO_TAKEOVER): of two VMMs racing for the same epoch (a migration's
 * source and target) exactly one gets 0 and runs on; every client of @r
 * then connects again at @epoch, which fences the old one everywhere.
 * -ESTALE when the other was first, other -errno when the server cannot
 * say; a sentence in @err.
 */
int memroute_takeover(struct memroute *r, uint64_t epoch, char *err, size_t errlen);

/*
 * memroute_extend - slabs [nr_slabs, nr_slabs + @n) are placed on @primaries[i]
 * (and @secondaries[i], NULL: not replicated), for memory that is about to
 * be plugged. memroute_trim - only the first @nr slabs stay placed (the
 * pages of the others were discarded). -EBUSY while a refill or a restore is
 * under way, -EINVAL past max_slabs or for a slab's two copies on one server;
 * a sentence in @err.
 */
int memroute_extend(struct memroute *r, const char *const *primaries,
		    const char *const *secondaries, int n, char *err, size_t errlen);
int memroute_trim(struct memroute *r, uint64_t nr, char *err, size_t errlen);

/* memroute_placed_pages - the pages the placed slabs cover. */
uint64_t memroute_placed_pages(struct memroute *r);

/* memroute_epoch - the route's epoch now (failovers move it on). */
uint64_t memroute_epoch(struct memroute *r);

/* memroute_status - the route as JSON: epoch, slabs, failovers, pauses, fill, backup. */
struct json_t;
struct json_t *memroute_status(struct memroute *r);

struct memroute_client {
	struct memroute *r;
	uint64_t generation, epoch, backup_seq;	     /* of the route when it last caught up */
	struct memclient conn[MEMROUTE_MAX_SERVERS]; /* conn[i].x NULL: not connected */
	bool open;
};

/* memroute_open - a thread's client of @r, connected to every server in it. */
int memroute_open(struct memroute_client *c, struct memroute *r, char *err, size_t errlen);
void memroute_close(struct memroute_client *c);

/* memroute_read - @count pages from @first into @buf, from their primaries. -errno. */
int memroute_read(struct memroute_client *c, uint64_t first, uint32_t count, void *buf);

/*
 * memroute_write - @pages[i] from @data[i]; 0 only when every server that
 * must hold them (primary and secondary) has acknowledged them.
 */
int memroute_write(struct memroute_client *c, const uint64_t *pages, void *const *data,
		   uint32_t count);

/*
 * memroute_add_secondary - restore redundancy: @addr becomes the secondary
 * of every slab that has none (not where its primary is), at a new epoch; it
 * is refilled from scratch (LMP_HELLO_FRESH) with a copy of each such slab
 * read from its primary, while the guest goes on (writes meanwhile go to
 * both). Uses @c's thread; returns when the copy is complete. -errno with a
 * sentence in @err.
 */
int memroute_add_secondary(struct memroute_client *c, const char *addr, char *err, size_t errlen);

/*
 * memroute_lose - fail over from @addr now, as if it had stopped answering:
 * for a server the manager has declared down, which this VMM might otherwise
 * notice only at its next request to it (or after the I/O timeout). 0, or
 * -ENOENT if it is not in the route, or -EHOSTDOWN if a slab would be left
 * without a copy (then nothing changes).
 */
int memroute_lose(struct memroute *r, const char *addr);

/* memroute_close_all - the VMM is going away: refills, restores and waits give up. */
void memroute_close_all(struct memroute *r);

/*
 * memroute_discard - pages [@first, +@count) are no longer memory (unplugged):
 * every server holding them (primary, secondary) frees them. -errno.
 */
int memroute_discard(struct memroute_client *c, uint64_t first, uint64_t count);

/* memroute_release - the vNode is gone: every server frees its pages. */
int memroute_release(struct memroute_client *c);

/* Inside the route (memroute.c), for the fills of memroute_fill.c: */
/* memroute_server_index - @addr's index in the route, added if new; -1 when full. Lock held. */
int memroute_server_index(struct memroute *r, const char *addr);
/* memroute_slab_end - one past the last page of slab @k. */
uint64_t memroute_slab_end(const struct memroute *r, uint64_t k);
/* memroute_catch_up - @c's connections brought in line with the route, if it changed. */
int memroute_catch_up(struct memroute_client *c);

#endif
