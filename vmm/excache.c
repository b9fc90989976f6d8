/*
 * excache.c - fault service, eviction and write-back for the ExCache.
 *
 * Why write-protection and not UFFDIO_MOVE for eviction: the ExCache must
 * know which resident pages are dirty anyway (a clean page is dropped
 * without network traffic), and userfaultfd write-protection gives both at
 * once. A page installed after a read miss is write-protected; the first
 * write to it traps once and makes it DIRTY. To evict a DIRTY page the
 * evictor protects it again, copies it out, and drops it only after the
 * memory server acknowledged the copy. A guest write racing that window
 * traps; the fault thread marks the page DIRTY again and unprotects it, and
 * the evictor, seeing the page changed, keeps it (a wasted write-back, never
 * a lost write). A write that traps after the evictor committed to the drop
 * waits until the page is gone, then faults it back in from the server.
 *
 * Why one file of some 700 lines: the fault threads and the evictor are the
 * two sides of the page-state protocol argued above (one compare-and-swap
 * byte per page); split, that one argument would live in two places.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "excache.h"
#include "log.h"
#include "util.h"

#define PAGE 4096ULL

enum { XC_NONE, XC_REMOTE, XC_FETCH, XC_CLEAN, XC_DIRTY, XC_WB, XC_DROP, XC_UNPROT };
#define XC_REM 0x80 /* the memory server holds a copy of the page */
#define ST(s)  ((s)&0x7f)

static const uint8_t xc_zero_page[PAGE] __attribute__((aligned(4096)));

static int xc_thread_init(struct excache *xc, struct excache_thread *t, int index);

/* ---- userfaultfd operations on one page or a run of pages ---- */

static int xc_copy(struct excache *xc, uint64_t page, const void *src, uint64_t n, bool wp)
{
	struct uffdio_copy c = {
		.dst = (uint64_t)(uintptr_t)(xc->base + page * PAGE),
		.src = (uint64_t)(uintptr_t)src,
		.len = n * PAGE,
		.mode = wp ? UFFDIO_COPY_MODE_WP : 0,
	};

	while (ioctl(xc->uffd, UFFDIO_COPY, &c) < 0) {
		if (errno != EAGAIN || c.copy <= 0)
			return -errno;
		/* partially done: go on from where it stopped */
		c.dst += c.copy, c.src += c.copy, c.len -= c.copy;
		c.copy = 0;
	}
	return 0;
}

static int xc_protect(struct excache *xc, uint64_t page, bool protect)
{
	struct uffdio_writeprotect w = {
		.range = {(uint64_t)(uintptr_t)(xc->base + page * PAGE), PAGE},
		.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0, /* unprotecting wakes */
	};

	return ioctl(xc->uffd, UFFDIO_WRITEPROTECT, &w) < 0 ? -errno : 0;
}

static void xc_wake(struct excache *xc, uint64_t page)
{
	struct uffdio_range r = {(uint64_t)(uintptr_t)(xc->base + page * PAGE), PAGE};

	ioctl(xc->uffd, UFFDIO_WAKE, &r);
}

/* A never-written page read by the guest: the shared zero page, protected so
 * that its first write is seen. */
static int xc_zero_read(struct excache *xc, uint64_t page)
{
	struct uffdio_zeropage z = {
		.range = {(uint64_t)(uintptr_t)(xc->base + page * PAGE), PAGE},
		.mode = UFFDIO_ZEROPAGE_MODE_DONTWAKE,
	};

	if (ioctl(xc->uffd, UFFDIO_ZEROPAGE, &z) < 0 && errno != EEXIST)
		return -errno;
	if (xc_protect(xc, page, true))
		return -errno;
	xc_wake(xc, page);
	return 0;
}

/* ---- bookkeeping ---- */

static bool xc_cas(struct excache *xc, uint64_t page, uint8_t *expect, uint8_t to)
{
	return atomic_compare_exchange_strong(&xc->state[page], expect, to);
}

static void xc_fail(struct excache *xc, int err, const char *what)
{
	if (atomic_exchange(&xc->stop, true))
		return;
	vm_stop(xc->vm, VM_EXIT_VMM_ERROR,
		"memory server %s: %s: %s; the guest's memory is no longer reachable, so it is "
		"stopped",
		xc->cfg.memsrv, what, memclient_strerror(err));
	pthread_mutex_lock(&xc->lock);
	pthread_cond_broadcast(&xc->room);
	pthread_cond_broadcast(&xc->need_room);
	pthread_mutex_unlock(&xc->lock);
}

static uint64_t xc_low_water(struct excache *xc)
{
	uint64_t lim = xc->limit, low = lim / 16;

	return low < 8 ? 8 : low > 256 ? 256 : low;
}

/*
 * Take room for up to @want pages (at least one), waiting for the evictor if
 * the ExCache is full. Returns how many were granted; 0 when stopping.
 */
static uint64_t xc_reserve(struct excache *xc, uint64_t want)
{
	for (;;) {
		uint64_t r = xc->resident, lim = xc->limit;

		if (xc->stop)
			return 0;
		if (r < lim) {
			uint64_t n = lim - r < want ? lim - r : want;

			if (!atomic_compare_exchange_weak(&xc->resident, &r, r + n))
				continue;
			if (lim - r - n < xc_low_water(xc)) {
				pthread_mutex_lock(&xc->lock);
				pthread_cond_signal(&xc->need_room);
				pthread_mutex_unlock(&xc->lock);
			}
			return n;
		}
		pthread_mutex_lock(&xc->lock);
		pthread_cond_signal(&xc->need_room);
		if (xc->resident >= xc->limit && !xc->stop)
			pthread_cond_wait(&xc->room, &xc->lock);
		pthread_mutex_unlock(&xc->lock);
	}
}

static void xc_record_latency(struct excache *xc, uint64_t ns)
{
	struct excache_stats *s = &xc->stats;
	unsigned b = 0;

	for (uint64_t us = ns / 1000; us && b < XC_HIST_BUCKETS - 1; us >>= 1)
		b++;
	s->lat_hist[b]++;
	s->lat_ns[s->lat_next++ % XC_LAT_SAMPLES] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

/* ---- fault service ---- */

/*
 * How many pages to fetch for a miss at @page: pages just below it being
 * resident means a sequential run, and the run ahead is claimed (REMOTE ->
 * FETCH) up to a window that grows with the run's length.
 */
static uint64_t xc_claim_run(struct excache *xc, uint64_t page)
{
	uint64_t below = 0, want, n = 1;
	unsigned max = xc->cfg.prefetch_max;

	while (below < max && below < page) {
		uint8_t s = ST(xc->state[page - 1 - below]);

		if (s != XC_CLEAN && s != XC_DIRTY && s != XC_FETCH)
			break;
		below++;
	}
	if (below < 2)
		return 1;
	want = 2 * below < max ? 2 * below : max;
	while (n < want && page + n < xc->nr_pages) {
		uint8_t s = xc->state[page + n];

		if (s != (XC_REMOTE | XC_REM) || !xc_cas(xc, page + n, &s, XC_FETCH | XC_REM))
			break;
		n++;
	}
	return n;
}

/* Claimed pages given back: absent again. An access that faulted on one
 * meanwhile was left to the claim's install: it is woken to fault again. */
static void xc_unclaim(struct excache *xc, uint64_t first, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		xc->state[first + i] = XC_REMOTE | XC_REM;
		xc_wake(xc, first + i);
	}
}

static void xc_installed(struct excache *xc, uint64_t first, uint64_t n)
{
	pthread_mutex_lock(&xc->lock);
	for (uint64_t i = 0; i < n; i++)
		xc_policy_insert(&xc->policy, first + i);
	pthread_mutex_unlock(&xc->lock);
}

static void xc_fault_wp(struct excache *xc, uint64_t page)
{
	for (;;) {
		uint8_t s = xc->state[page];

		switch (ST(s)) {
		case XC_CLEAN:
		case XC_WB:
			/* UNPROT until it is writable: were it DIRTY already, the evictor
			 * could protect and write it back in between, and this unprotect
			 * would then let a write slip past a write-back in flight. */
			if (!xc_cas(xc, page, &s, XC_UNPROT | (s & XC_REM)))
				continue;
			xc->stats.wp_faults++;
			if (xc_protect(xc, page, false))
				log_err("cannot unprotect guest page %#llx: %s",
					(unsigned long long)page, strerror(errno));
			xc->state[page] = XC_DIRTY | (s & XC_REM);
			return;
		case XC_FETCH:
		case XC_DROP:
		case XC_UNPROT:
			sched_yield(); /* another thread finishes with it in a moment */
			continue;
		default:
			xc_wake(xc, page); /* writable or gone: the access simply retries */
			return;
		}
	}
}

/*
 * Whether @page is memory: boot RAM, or in a plugged block of the
 * hotpluggable region. A miss on an unplugged block is the guest's error:
 * it is never served, the guest is stopped.
 */
static bool xc_plugged(struct excache *xc, uint64_t page)
{
	const struct gmem *mem = &xc->vm->mem;
	int64_t b = gmem_hotplug_block(mem, page * PAGE);

	if (b < 0 || gmem_block_plugged(mem, (uint64_t)b))
		return true;
	vm_stop(xc->vm, VM_EXIT_GUEST_FAULT,
		"the guest touched guest-physical %#llx, in block %lld of its hotpluggable "
		"memory (virtio-mem), which is not plugged",
		(unsigned long long)(mem->hp.gpa + page * PAGE - mem->size), (long long)b);
	return false;
}

static void xc_fault(struct excache_thread *t, uint64_t addr, uint64_t flags)
{
	struct excache *xc = t->xc;
	uint64_t page = (addr - (uint64_t)(uintptr_t)xc->base) / PAGE, n, granted;
	bool write = flags & UFFD_PAGEFAULT_FLAG_WRITE;
	uint64_t t0 = now_ns();
	uint8_t s;
	int ret;

	if (page >= xc->nr_pages)
		return;
	if (flags & UFFD_PAGEFAULT_FLAG_WP) {
		xc_fault_wp(xc, page);
		return;
	}
	if (!xc_plugged(xc, page))
		return;
	for (;;) {
		s = xc->state[page];
		if (ST(s) == XC_NONE || ST(s) == XC_REMOTE) {
			if (xc_cas(xc, page, &s, XC_FETCH | (s & XC_REM)))
				break;
		} else if (ST(s) == XC_FETCH) {
			return; /* its owner's install wakes every access waiting on it */
		} else if (ST(s) == XC_DROP) {
			sched_yield();
		} else {
			xc_wake(xc, page); /* installed since this fault was queued */
			return;
		}
	}
	n = (s & XC_REM) && xc->cfg.prefetch_max > 1 ? xc_claim_run(xc, page) : 1;
	granted = xc_reserve(xc, n);
	if (!granted) {
		xc_unclaim(xc, page, n);
		return;
	}
	if (granted < n) {
		xc_unclaim(xc, page + granted, n - granted);
		n = granted;
	}
	xc->stats.misses++;
	if (s & XC_REM) {
		ret = memroute_read(&t->rc, page, (uint32_t)n, t->buf);
		if (ret) {
			xc_fail(xc, ret, "reading a page");
			return;
		}
		xc->stats.bytes_in += n * PAGE;
		xc->stats.fetches++;
		xc->stats.prefetched += n - 1;
		/* A write miss installs its page writable: it is dirty from the start. */
		ret = xc_copy(xc, page, t->buf, 1, !write);
		if (!ret && n > 1)
			ret = xc_copy(xc, page + 1, t->buf + PAGE, n - 1, true);
		for (uint64_t i = 1; i < n; i++)
			xc->state[page + i] = XC_CLEAN | XC_REM;
		xc->state[page] = (write ? XC_DIRTY : XC_CLEAN) | XC_REM;
	} else {
		xc->stats.zero_fills++;
		ret = write ? xc_copy(xc, page, xc_zero_page, 1, false) : xc_zero_read(xc, page);
		xc->state[page] = write ? XC_DIRTY : XC_CLEAN;
	}
	if (ret) {
		log_err("cannot install guest page %#llx: %s", (unsigned long long)page,
			strerror(-ret));
		xc_fail(xc, ret, "installing a page");
		return;
	}
	xc_installed(xc, page, n);
	xc_record_latency(xc, now_ns() - t0);
}

static void *xc_fault_thread(void *arg)
{
	struct excache_thread *t = arg;
	struct excache *xc = t->xc;

	uint64_t spin_until = 0;

	while (!xc->stop) {
		struct uffd_msg msg;
		ssize_t n;

		/* Sleep only after spin_us without a fault: misses come in bursts, and a
		 * thread woken per fault pays for the wake-up on every one of them. */
		if (xc->cfg.poll == EXCACHE_POLL_BLOCK && now_ns() >= spin_until) {
			struct pollfd pfd[2] = {{.fd = xc->uffd, .events = POLLIN},
						{.fd = xc->stop_fd, .events = POLLIN}};

			if (poll(pfd, 2, -1) < 0 && errno != EINTR)
				break;
			if (pfd[1].revents)
				break;
		}
		/* One event per read: the other threads take the other vCPUs' faults. */
		n = read(xc->uffd, &msg, sizeof(msg));
		if (n != sizeof(msg)) {
			if (n < 0 && errno != EAGAIN && errno != EINTR) {
				log_err("reading userfaultfd: %s", strerror(errno));
				break;
			}
			continue;
		}
		if (msg.event == UFFD_EVENT_PAGEFAULT)
			xc_fault(t, msg.arg.pagefault.address, msg.arg.pagefault.flags);
		spin_until = now_ns() + xc->cfg.spin_us * 1000ULL;
	}
	return NULL;
}

/* ---- eviction ---- */

static void xc_keep(struct excache *xc, uint64_t page)
{
	pthread_mutex_lock(&xc->lock);
	xc_policy_insert(&xc->policy, page);
	pthread_mutex_unlock(&xc->lock);
}

static void xc_gone(struct excache *xc, uint64_t page, uint8_t absent)
{
	if (madvise(xc->base + page * PAGE, PAGE, MADV_DONTNEED))
		log_err("MADV_DONTNEED of guest page %#llx: %s", (unsigned long long)page,
			strerror(errno));
	xc->state[page] = absent;
	xc->resident--;
	xc->stats.evictions++;
	pthread_mutex_lock(&xc->lock);
	xc_policy_evicted(&xc->policy, page);
	pthread_mutex_unlock(&xc->lock);
}

/*
 * Evict until @target pages are resident or a batch of dirty pages is
 * collected; dirty ones are written back (to every destination: today the
 * one memory server, with replication also the secondary's log) and dropped
 * once acknowledged. Returns false when there was nothing to evict.
 */
static bool xc_evict_batch(struct excache *xc, uint64_t target)
{
	struct excache_thread *t = &xc->evictor;
	uint64_t pages[LMP_MAX_PAGES];
	void *data[LMP_MAX_PAGES];
	uint32_t nr_dirty = 0;
	int ret;

	while (xc->resident > target && nr_dirty < LMP_MAX_PAGES) {
		int64_t v;
		uint8_t s;

		pthread_mutex_lock(&xc->lock);
		v = xc_policy_victim(&xc->policy);
		pthread_mutex_unlock(&xc->lock);
		if (v < 0)
			break;
		s = xc->state[v];
		if (ST(s) == XC_CLEAN && xc_cas(xc, v, &s, XC_DROP | (s & XC_REM))) {
			xc_gone(xc, v, s & XC_REM ? XC_REMOTE | XC_REM : XC_NONE);
			xc->stats.clean_drops++;
		} else if (ST(s) == XC_DIRTY && xc_cas(xc, v, &s, XC_WB | (s & XC_REM))) {
			/* From here guest writes trap: the copy below is stable. */
			if (xc_protect(xc, v, true)) {
				log_err("cannot write-protect guest page %#llx: %s",
					(unsigned long long)v, strerror(errno));
				xc->state[v] = XC_DIRTY | (s & XC_REM);
				xc_keep(xc, v);
				continue;
			}
			memcpy(t->buf + nr_dirty * PAGE, xc->base + v * PAGE, PAGE);
			pages[nr_dirty] = v;
			data[nr_dirty] = t->buf + nr_dirty * PAGE;
			nr_dirty++;
		} else if (ST(s) == XC_CLEAN || ST(s) == XC_DIRTY || ST(s) == XC_UNPROT) {
			xc_keep(xc, v); /* changed under us: still resident */
		}
	}
	if (nr_dirty) {
		ret = memroute_write(&t->rc, pages, data, nr_dirty);
		if (ret) {
			xc_fail(xc, ret, "writing pages back");
			return false;
		}
		xc->stats.bytes_out += nr_dirty * PAGE;
		for (uint32_t i = 0; i < nr_dirty; i++) {
			uint8_t s = xc->state[pages[i]];

			if (ST(s) == XC_WB && xc_cas(xc, pages[i], &s, XC_DROP | XC_REM)) {
				xc_gone(xc, pages[i], XC_REMOTE | XC_REM);
				xc->stats.dirty_writebacks++;
			} else {
				xc->stats.wb_aborted++; /* written during write-back: keep it */
				xc_keep(xc, pages[i]);
			}
		}
	}
	pthread_mutex_lock(&xc->lock);
	pthread_cond_broadcast(&xc->room);
	pthread_mutex_unlock(&xc->lock);
	return xc->resident <= target || nr_dirty > 0;
}

void excache_discard(struct excache *xc, uint64_t first, uint64_t n)
{
	for (uint64_t p = first; p < first + n && p < xc->nr_pages; p++) {
		for (;;) {
			uint8_t s = xc->state[p];

			if (ST(s) == XC_NONE) {
				break;
			} else if (ST(s) == XC_REMOTE) {
				if (xc_cas(xc, p, &s, XC_NONE)) {
					xc->stats.discarded++;
					break;
				}
			} else if (ST(s) == XC_CLEAN || ST(s) == XC_DIRTY) {
				if (xc_cas(xc, p, &s, XC_DROP | (s & XC_REM))) {
					xc_gone(xc, p, XC_NONE);
					xc->stats.discarded++;
					break;
				}
			} else {
				sched_yield(); /* a fetch or a write-back in flight: let it land */
			}
		}
	}
	pthread_mutex_lock(&xc->lock);
	pthread_cond_broadcast(&xc->room);
	pthread_mutex_unlock(&xc->lock);
	/* The servers free their copies; on the evictor's connections, after
	 * every write-back of these pages (each one waited for above). */
	pthread_mutex_lock(&xc->evict_lock);
	if (xc->evictor.rc.open) {
		int ret = memroute_discard(&xc->evictor.rc, first, n);

		if (ret)
			log_warn("the memory servers did not free %llu unplugged pages: %s",
				 (unsigned long long)n, memclient_strerror(ret));
	}
	pthread_mutex_unlock(&xc->evict_lock);
}

static void *xc_evictor_thread(void *arg)
{
	struct excache *xc = ((struct excache_thread *)arg)->xc;

	while (!xc->stop) {
		uint64_t low = xc_low_water(xc), lim = xc->limit;
		uint64_t target = lim > 2 * low ? lim - 2 * low : 0;

		pthread_mutex_lock(&xc->lock);
		if (!xc->stop && xc->resident + low <= xc->limit) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 50 * 1000000;
			if (ts.tv_nsec >= 1000000000)
				ts.tv_sec++, ts.tv_nsec -= 1000000000;
			pthread_cond_timedwait(&xc->need_room, &xc->lock, &ts);
		}
		pthread_mutex_unlock(&xc->lock);
		pthread_mutex_lock(&xc->evict_lock);
		while (!xc->stop && xc->resident > target)
			if (!xc_evict_batch(xc, target))
				break;
		pthread_mutex_unlock(&xc->evict_lock);
	}
	return NULL;
}

/* ---- the guest at rest: every page on the servers ---- */

int excache_flush(struct excache *xc)
{
	struct excache_thread *t = &xc->evictor; /* its connections: it waits meanwhile */
	uint64_t pages[LMP_MAX_PAGES];
	void *data[LMP_MAX_PAGES];
	uint64_t next = 0;
	int ret = 0;

	pthread_mutex_lock(&xc->evict_lock);
	while (!ret && next < xc->nr_pages) {
		uint32_t n = 0;

		for (; next < xc->nr_pages && n < LMP_MAX_PAGES; next++) {
			uint8_t s = xc->state[next];

			if (ST(s) != XC_DIRTY || !xc_cas(xc, next, &s, XC_WB | (s & XC_REM)))
				continue;
			if (xc_protect(xc, next, true)) {
				ret = -errno;
				xc->state[next] = s;
				break;
			}
			memcpy(t->buf + n * PAGE, xc->base + next * PAGE, PAGE);
			pages[n] = next;
			data[n] = t->buf + n * PAGE;
			n++;
		}
		if (n && !ret) {
			ret = memroute_write(&t->rc, pages, data, n);
			xc->stats.bytes_out += ret ? 0 : n * PAGE;
		}
		/* written back: clean, and (protected) a later write is seen again; not
		 * written: dirty and writable as before. A page the guest wrote during
		 * its write-back (a running guest: the pre-copy of a migration) left
		 * XC_WB in the write fault and is dirty again: it stays so. */
		for (uint32_t i = 0; i < n; i++) {
			uint8_t s = xc->state[pages[i]];

			if (ST(s) != XC_WB)
				continue;
			if (ret) {
				xc_protect(xc, pages[i], false);
				xc->state[pages[i]] = XC_DIRTY | (s & XC_REM);
			} else if (!xc_cas(xc, pages[i], &s, XC_CLEAN | XC_REM)) {
				continue; /* written just now: the fault made it dirty */
			}
		}
	}
	pthread_mutex_unlock(&xc->evict_lock);
	if (ret)
		log_err("writing the ExCache's dirty pages back: %s", memclient_strerror(ret));
	return ret;
}

void excache_remote_map(struct excache *xc, uint8_t *map)
{
	memset(map, 0, (xc->nr_pages + 7) / 8);
	for (uint64_t p = 0; p < xc->nr_pages; p++)
		if (xc->state[p] & XC_REM)
			map[p / 8] |= (uint8_t)(1u << (p % 8));
}

void excache_set_remote(struct excache *xc, const uint8_t *map)
{
	for (uint64_t p = 0; p < xc->nr_pages; p++)
		if (map[p / 8] & (1u << (p % 8)) && ST(xc->state[p]) == XC_NONE)
			xc->state[p] = XC_REMOTE | XC_REM;
}

void excache_resident_map(struct excache *xc, uint8_t *map)
{
	memset(map, 0, (xc->nr_pages + 7) / 8);
	for (uint64_t p = 0; p < xc->nr_pages; p++) {
		uint8_t s = ST(xc->state[p]);

		if (s == XC_CLEAN || s == XC_DIRTY || s == XC_WB || s == XC_UNPROT)
			map[p / 8] |= (uint8_t)(1u << (p % 8));
	}
}

/* ---- a restore's warm-up ---- */

static bool warm_bit(const uint8_t *map, uint64_t p)
{
	return map[p / 8] & (1u << (p % 8));
}

/* Room for @n pages without making the evictor drop any: how many were taken. */
static uint64_t xc_reserve_spare(struct excache *xc, uint64_t n)
{
	for (;;) {
		uint64_t r = xc->resident, lim = xc->limit, low = xc_low_water(xc);
		uint64_t spare = lim > r + low ? lim - r - low : 0;

		if (!spare || xc->stop)
			return 0;
		if (n > spare)
			n = spare;
		if (atomic_compare_exchange_weak(&xc->resident, &r, r + n))
			return n;
	}
}

static void *xc_warm_thread(void *arg)
{
	struct excache_thread *t = arg;
	struct excache *xc = t->xc;
	uint64_t t0 = now_ns(), p = 0;

	while (p < xc->nr_pages && !xc->stop) {
		uint64_t first, n = 0, granted;
		uint8_t s;
		int ret;

		if (!warm_bit(xc->warm, p)) {
			p++;
			continue;
		}
		/* a run of warm REMOTE pages, claimed (REMOTE -> FETCH) as a prefetch is */
		first = p;
		while (p < xc->nr_pages && n < LMP_MAX_PAGES && warm_bit(xc->warm, p)) {
			s = xc->state[p];
			if (s != (XC_REMOTE | XC_REM) || !xc_cas(xc, p, &s, XC_FETCH | XC_REM))
				break;
			n++, p++;
		}
		if (!n) { /* resident already, or being fetched by a fault: its business */
			p++;
			continue;
		}
		granted = xc_reserve_spare(xc, n);
		if (granted < n)
			xc_unclaim(xc, first + granted, n - granted);
		if (!granted)
			break; /* the ExCache is full: what the guest touches now decides */
		ret = memroute_read(&t->rc, first, (uint32_t)granted, t->buf);
		if (!ret)
			ret = xc_copy(xc, first, t->buf, granted, true);
		if (ret) {
			xc_unclaim(xc, first, granted);
			atomic_fetch_sub(&xc->resident, granted);
			log_warn("the warm-up after the restore stopped: %s",
				 memclient_strerror(ret));
			break;
		}
		for (uint64_t i = 0; i < granted; i++)
			xc->state[first + i] = XC_CLEAN | XC_REM;
		xc_installed(xc, first, granted);
		xc->stats.warmed += granted;
		xc->stats.bytes_in += granted * PAGE;
		if (granted < n)
			break;
	}
	xc->stats.warm_ns = now_ns() - t0;
	log_info("ExCache: %llu pages fetched ahead of the restored guest in %.1f ms",
		 (unsigned long long)xc->stats.warmed, xc->stats.warm_ns / 1e6);
	return NULL;
}

static int xc_warm_start(struct excache *xc)
{
	int ret = xc_thread_init(xc, &xc->warmer, -2);

	if (!ret)
		ret = thread_start_quiet(&xc->warmer.thread, xc_warm_thread, &xc->warmer);
	if (ret) {
		log_warn("no warm-up after the restore: %s", strerror(-ret));
		memroute_close(&xc->warmer.rc);
		free(xc->warmer.buf);
		xc->warmer.buf = NULL;
		return ret;
	}
	xc->warming = true;
	return 0;
}

int excache_warm(struct excache *xc, const uint8_t *map)
{
	size_t len = (xc->nr_pages + 7) / 8;

	free(xc->warm);
	xc->warm = malloc(len);
	if (!xc->warm)
		return -ENOMEM;
	memcpy(xc->warm, map, len);
	return xc->started ? xc_warm_start(xc) : 0;
}

/* ---- setup and teardown ---- */

static int xc_uffd_open(struct excache *xc)
{
	struct uffdio_api api = {.api = UFFD_API};
	struct uffdio_register reg = {
		.range = {(uint64_t)(uintptr_t)xc->base, xc->nr_pages * PAGE},
		.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
	};

	xc->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (xc->uffd < 0) {
		log_err("userfaultfd: %s (the ExCache needs it: run as root, or set "
			"vm.unprivileged_userfaultfd=1)",
			strerror(errno));
		return -errno;
	}
	if (ioctl(xc->uffd, UFFDIO_API, &api) < 0) {
		log_err("UFFDIO_API: %s", strerror(errno));
		return -errno;
	}
	if (!(api.features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
		log_err("this kernel's userfaultfd cannot write-protect anonymous memory (needs "
			"Linux 5.7 or later)");
		return -EOPNOTSUPP;
	}
	/* Nothing the guest needs is in RAM yet; whatever KVM or the kernel may
	 * have populated would be resident without the ExCache knowing. */
	madvise(xc->base, xc->nr_pages * PAGE, MADV_DONTNEED);
	if (ioctl(xc->uffd, UFFDIO_REGISTER, &reg) < 0) {
		log_err("UFFDIO_REGISTER of guest RAM: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

static int xc_thread_init(struct excache *xc, struct excache_thread *t, int index)
{
	char err[256];
	int ret;

	t->xc = xc;
	t->index = index;
	t->buf = aligned_alloc(PAGE, LMP_MAX_PAGES * PAGE);
	if (!t->buf)
		return -ENOMEM;
	ret = memroute_open(&t->rc, &xc->route, err, sizeof(err));
	if (ret)
		log_err("%s", err);
	return ret;
}

int excache_init(struct excache *xc, struct vm *vm, const struct excache_config *cfg)
{
	char a[32], b[32];
	int ret;

	memset(xc, 0, sizeof(*xc));
	xc->vm = vm;
	xc->cfg = *cfg;
	xc->uffd = xc->stop_fd = -1;
	xc->base = vm->mem.base;
	xc->nr_pages = vm->mem.map_size / PAGE; /* the hotpluggable region too */
	xc->limit = cfg->size / PAGE;
	if (xc->cfg.prefetch_max > LMP_MAX_PAGES)
		xc->cfg.prefetch_max = LMP_MAX_PAGES;
	if (xc->cfg.nr_fault_threads < 1)
		xc->cfg.nr_fault_threads = 1;
	pthread_mutex_init(&xc->lock, NULL);
	pthread_mutex_init(&xc->evict_lock, NULL);
	pthread_cond_init(&xc->room, NULL);
	pthread_cond_init(&xc->need_room, NULL);
	if (xc->limit < 64) {
		log_err("--excache %s is too small: at least 256K", format_size(cfg->size, a, 32));
		return -EINVAL;
	}
	xc->state = mmap(NULL, xc->nr_pages, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (xc->state == MAP_FAILED) {
		xc->state = NULL;
		return -ENOMEM;
	}
	ret = xc_policy_init(&xc->policy, xc->nr_pages, xc->limit);
	if (ret)
		return ret;
	xc->stop_fd = eventfd(0, EFD_CLOEXEC);
	ret = xc_uffd_open(xc);
	if (ret)
		return ret;
	{
		char err[256];

		ret = memroute_init(&xc->route, cfg->memsrv, cfg->memsrv_secondary,
				    cfg->slab_size / PAGE, &cfg->cred, err, sizeof(err));
		if (ret) {
			log_err("%s", err);
			return ret;
		}
		/* Losing every copy of a slab then pauses its accesses for at most
		 * two minutes, until the manager has a restore made. */
		if (cfg->backup_storsrv)
			memroute_set_backup(&xc->route, cfg->backup_storsrv, cfg->backup_volume,
					    cfg->backup_token, cfg->backup_interval_ms, 120000);
	}
	xc->faulters = calloc(xc->cfg.nr_fault_threads, sizeof(*xc->faulters));
	if (!xc->faulters)
		return -ENOMEM;
	log_info("ExCache: %s of %s resident at most, the rest on memory server %s",
		 format_size(cfg->size, a, sizeof(a)), format_size(vm->mem.size, b, sizeof(b)),
		 cfg->memsrv);
	return cfg->defer_connect ? 0 : excache_connect(xc);
}

int excache_connect(struct excache *xc)
{
	int ret;

	for (int i = xc->nr_threads; i < xc->cfg.nr_fault_threads; i++) {
		ret = xc_thread_init(xc, &xc->faulters[i], i);
		if (ret)
			return ret;
		xc->nr_threads++;
	}
	ret = xc_thread_init(xc, &xc->evictor, -1);
	if (ret)
		return ret;
	for (int i = 0; i < xc->nr_threads; i++)
		pthread_create(&xc->faulters[i].thread, NULL, xc_fault_thread, &xc->faulters[i]);
	pthread_create(&xc->evictor.thread, NULL, xc_evictor_thread, &xc->evictor);
	xc->started = true;
	if (xc->warm) /* a restore's warm-up, waiting for the connections */
		xc_warm_start(xc);
	return 0;
}

void excache_stop(struct excache *xc)
{
	uint64_t one = 1;

	if (xc->started) {
		atomic_store(&xc->stop, true);
		if (write(xc->stop_fd, &one, sizeof(one)) < 0)
			log_warn("cannot wake the fault threads: %s", strerror(errno));
		pthread_mutex_lock(&xc->lock);
		pthread_cond_broadcast(&xc->room);
		pthread_cond_broadcast(&xc->need_room);
		pthread_mutex_unlock(&xc->lock);
		for (int i = 0; i < xc->nr_threads; i++)
			pthread_join(xc->faulters[i].thread, NULL);
		pthread_join(xc->evictor.thread, NULL);
		if (xc->warming)
			pthread_join(xc->warmer.thread, NULL);
		xc->warming = false;
		xc->started = false;
	}
	/* Closing the userfaultfd wakes any access still waiting: it then proceeds
	 * as on ordinary memory, which only matters to a VM that is going away. */
	if (xc->uffd >= 0)
		close(xc->uffd);
	xc->uffd = -1;
}

void excache_exit(struct excache *xc)
{
	excache_stop(xc);
	if (xc->evictor.rc.open && !xc->keep_memory) {
		int ret = memroute_release(&xc->evictor.rc);

		if (ret)
			log_warn("memory server %s did not release the vNode's pages: %s",
				 xc->cfg.memsrv, memclient_strerror(ret));
	}
	for (int i = 0; i < xc->nr_threads; i++) {
		memroute_close(&xc->faulters[i].rc);
		free(xc->faulters[i].buf);
	}
	memroute_close(&xc->evictor.rc);
	if (xc->warmer.buf) {
		memroute_close(&xc->warmer.rc);
		free(xc->warmer.buf);
	}
	free(xc->warm);
	memroute_exit(&xc->route);
	free(xc->evictor.buf);
	free(xc->faulters);
	xc_policy_exit(&xc->policy);
	if (xc->state)
		munmap((void *)xc->state, xc->nr_pages);
	if (xc->stop_fd >= 0)
		close(xc->stop_fd);
	memset(xc, 0, sizeof(*xc));
	xc->uffd = xc->stop_fd = -1;
}

int excache_resize(struct excache *xc, uint64_t size)
{
	if (size / PAGE < 64)
		return -EINVAL;
	pthread_mutex_lock(&xc->lock);
	xc->limit = size / PAGE;
	xc_policy_resize(&xc->policy, xc->limit);
	xc->cfg.size = size;
	pthread_cond_broadcast(&xc->room);
	pthread_cond_signal(&xc->need_room);
	pthread_mutex_unlock(&xc->lock);
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

uint64_t excache_percentile(struct excache *xc, double pct)
{
	uint64_t n = xc->stats.lat_next < XC_LAT_SAMPLES ? xc->stats.lat_next : XC_LAT_SAMPLES;
	uint32_t *v;
	uint64_t r;

	if (!n)
		return 0;
	v = malloc(n * sizeof(*v));
	if (!v)
		return 0;
	memcpy(v, xc->stats.lat_ns, n * sizeof(*v));
	qsort(v, n, sizeof(*v), cmp_u32);
	r = v[(uint64_t)(pct / 100 * (n - 1))];
	free(v);
	return r;
}
