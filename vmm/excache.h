/*
 * excache.h - the ExCache: guest RAM served on demand from a memory server.
 *
 * Guest RAM is registered with userfaultfd. A miss (a guest or VMM access to
 * a page that is not resident) stops on the userfaultfd and a fault thread
 * installs the page: fetched from the memory server, or zero-filled when it
 * was never written (the ExCache knows which pages exist remotely). At most
 * `size` bytes are resident: an evictor thread drops clean pages and writes
 * dirty ones back, acknowledged, before it drops them. Hits never trap.
 *
 * Page life: NONE (never written) and REMOTE (held by the memory server) are
 * absent; CLEAN is resident and write-protected; DIRTY is resident and
 * writable; FETCH, WB (write-back in flight), DROP and UNPROT (being made
 * writable) are transitions, owned by one thread. All changes are compare-and-swap on a byte per page.
 */
#ifndef LEGO_VMM_EXCACHE_H
#define LEGO_VMM_EXCACHE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "excache_policy.h"
#include "memroute.h"
#include "vm.h"

enum excache_poll { EXCACHE_POLL_BLOCK, EXCACHE_POLL_SPIN };

struct excache_config {
	uint64_t size;	    /* bytes resident at most */
	const char *memsrv; /* "HOST:PORT" of the memory server, or one per slab, comma-separated */
	const char *memsrv_secondary; /* the same for the secondaries, or NULL: not replicated */
	uint64_t slab_size;	      /* bytes per slab when servers are listed per slab */
	/* the secondaries back up to this storage server's volume (NULL: none) */
	const char *backup_storsrv, *backup_volume;
	uint8_t backup_token[LMP_TOKEN_LEN];
	uint32_t backup_interval_ms;
	struct memclient_cred cred;
	int nr_fault_threads;	/* faults served concurrently (one per vCPU) */
	enum excache_poll poll; /* how fault threads wait for faults */
	unsigned prefetch_max;	/* pages fetched at once on a sequential run; 1 = off */
	unsigned spin_us;	/* with POLL_BLOCK: poll this long after a fault before sleeping */
	bool writes_wp;		/* pages fetched for a read are installed write-protected (their
				 * first write traps), not writable with a content sum */
	bool defer_connect;	/* connect only at excache_connect (a migration's target) */
};

#define XC_HIST_BUCKETS 24 /* miss latency, log2 microseconds */
#define XC_LAT_SAMPLES	65536
#define XC_STEP_SAMPLES 4096

/* A miss served from a memory server, taken apart (the latest ones, a ring). */
enum { XC_STEP_ROOM, XC_STEP_FETCH, XC_STEP_INSTALL, XC_STEP_SERVICE, XC_STEPS };
struct excache_steps {
	_Atomic uint64_t next;
	uint32_t ns[XC_STEPS][XC_STEP_SAMPLES]; /* room: waiting for the evictor; fetch:
						 * the read from the server; install:
						 * UFFDIO_COPY and the wake; service: all
						 * of it, from the fault's event read */
};

struct excache_stats {
	_Atomic uint64_t misses;	   /* faults on absent pages */
	_Atomic uint64_t zero_fills;	   /* ... served without the network */
	_Atomic uint64_t fetches;	   /* ... served from the memory server */
	_Atomic uint64_t prefetched;	   /* pages installed ahead of a sequential run */
	_Atomic uint64_t zeroed_ahead;	   /* never-written pages given ahead of a writer */
	_Atomic uint64_t wp_faults;	   /* first write to a clean page */
	_Atomic uint64_t evictions;	   /* pages that left */
	_Atomic uint64_t clean_drops;	   /* ... without network traffic */
	_Atomic uint64_t unchanged_drops;  /* ... of them writable, their content sum unchanged */
	_Atomic uint64_t dirty_writebacks; /* ... written back and acknowledged first */
	_Atomic uint64_t wb_aborted;	   /* write-backs whose page was written meanwhile */
	_Atomic uint64_t discarded;	   /* pages unplugged: dropped, no longer memory */
	_Atomic uint64_t warmed;	   /* pages fetched ahead after a restore (excache_warm) */
	_Atomic uint64_t warm_ns;	   /* ... and how long that took, once done */
	_Atomic uint64_t bytes_in, bytes_out;
	_Atomic uint64_t lat_hist[XC_HIST_BUCKETS];
	_Atomic uint64_t lat_next;
	uint32_t lat_ns[XC_LAT_SAMPLES]; /* the latest miss latencies, a ring */
	struct excache_steps steps;
};

struct excache_thread {
	struct excache *xc;
	pthread_t thread;
	int index;
	struct memroute_client rc;
	uint8_t *buf; /* LMP_MAX_PAGES pages */
};

struct excache {
	struct vm *vm;
	struct excache_config cfg;
	uint8_t *base;
	uint64_t nr_pages;
	int uffd;
	int stop_fd;
	atomic_bool stop;
	_Atomic uint8_t *state;
	uint64_t *sum; /* a DIRTY page fetched for a read: its content's sum then (0: none) */
	_Atomic uint64_t resident;
	_Atomic uint64_t limit;

	pthread_mutex_t lock; /* protects the policy; with the conds, waiting for room */
	pthread_cond_t room, need_room;
	struct xc_policy policy;

	int nr_threads;
	struct excache_thread *faulters;
	struct excache_thread evictor;
	struct excache_thread warmer; /* a restore's warm-up (excache_warm), while it runs */
	uint8_t *warm;		      /* ... its pages: one bit each */
	bool warming;
	bool started;
	bool keep_memory; /* at exit, leave the pages on the memory servers (the vNode goes on) */
	pthread_mutex_t evict_lock; /* held by the evictor while it evicts, and by a flush */
	struct excache_stats stats;
	struct memroute route; /* where the pages that are not resident live */
};

/*
 * excache_init - register @vm's RAM with userfaultfd, connect to the memory
 * server and start the fault and evictor threads. From here on every access
 * to guest RAM, the VMM's own included, goes through the ExCache. -errno,
 * logged with what to do.
 */
int excache_init(struct excache *xc, struct vm *vm, const struct excache_config *cfg);

/*
 * excache_connect - with cfg.defer_connect: connect to the memory servers and
 * start the threads now (until then, an access to guest RAM would wait).
 */
int excache_connect(struct excache *xc);

/*
 * excache_stop - stop the threads and release userfaultfd, which lets any
 * access still waiting proceed (the VM must already be stopping). Idempotent.
 */
void excache_stop(struct excache *xc);

/* excache_exit - stop, tell the memory server the vNode is gone, free everything. */
void excache_exit(struct excache *xc);

/*
 * excache_flush - write every dirty page back, acknowledged, and keep it
 * resident and clean: the memory servers then hold all of the guest's
 * memory once the guest is paused and its devices quiet. On a running guest
 * it is a pre-copy: a page written meanwhile stays dirty, for the next
 * flush. 0 or -errno (the servers could not take the pages).
 */
int excache_flush(struct excache *xc);

/* excache_remote_map - one bit per page into @map: set where the memory servers hold it. */
void excache_remote_map(struct excache *xc, uint8_t *map);

/*
 * excache_set_remote - before the guest first runs: the pages whose bit is
 * set in @map are on the memory servers (a restored vNode's memory).
 */
void excache_set_remote(struct excache *xc, const uint8_t *map);

/* excache_resident_map - one bit per page into @map: set where the page is resident here. */
void excache_resident_map(struct excache *xc, uint8_t *map);

/*
 * excache_warm - after a restore (a snapshot or a migration), fetch the
 * pages whose bit is set in @map (those resident when the vNode was saved:
 * the working set its ExCache knew) ahead of the guest, in runs, on a thread
 * of its own while the guest runs: it finds them resident instead of
 * faulting on each. Only REMOTE pages are fetched, as far as the ExCache
 * has room without evicting; a fault on a page being fetched waits for it,
 * as on a prefetch. Starts at excache_connect if not connected yet.
 */
int excache_warm(struct excache *xc, const uint8_t *map);

/*
 * excache_discard - pages [@first, @first + @n) are no longer memory (their
 * block was unplugged): dropped from here without a write-back, freed on
 * the memory servers, and never fetched again (a miss on them is refused,
 * see gmem_block_plugged).
 */
void excache_discard(struct excache *xc, uint64_t first, uint64_t n);

/* excache_resize - change the most bytes resident, while the guest runs. */
int excache_resize(struct excache *xc, uint64_t size);

/* excache_percentile - the @pct percentile of recent miss latencies, in ns. */
uint64_t excache_percentile(struct excache *xc, double pct);
/* excache_step_percentile - the same for one step (XC_STEP_*) of remote misses. */
uint64_t excache_step_percentile(struct excache *xc, int step, double pct);

#endif
