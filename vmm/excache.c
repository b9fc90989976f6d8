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
 * A page fetched for a read is installed writable, with a sum of its content
 * (--excache-writes sums, the default): it counts as DIRTY, but when it is
 * evicted (or flushed) it is summed again once protected, and an unchanged
 * page is dropped (or made CLEAN) without a write-back.
 * Why not write-protected, as a read of a never-written page still is: on a
 * shadow-paging host a write-protected page costs a KVM exit on first
 * access that KVM could have saved by mapping it with its neighbours (it
 * maps ahead only pages it may write), and the guest's first write to it a
 * trap and a hand-off. A page whose sum is 0 is one the guest wrote (a
 * write fault, a write miss), written back as before. The sum is 64 bits: a
 * write that leaves the page's sum as it was is lost with odds of 2^-64 a
 * page for content that is not built to collide (the guest can only hurt
 * its own memory by building it).
 *
 * Why these in one file: the fault threads, the evictor and the flush are
 * the sides of the page-state protocol argued above (one compare-and-swap
 * byte per page); split, that one argument would live in two places. The
 * vNode at rest and back (excache_rest.c) and setting up and tearing down
 * (excache_setup.c) use it through excache_int.h.
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
#include "excache_int.h"
#include "log.h"
#include "util.h"
#include "sandbox.h"

static const uint8_t xc_zero_pages[LMP_MAX_PAGES * PAGE] __attribute__((aligned(4096)));

/* ---- userfaultfd operations on one page or a run of pages ---- */

int xc_copy(struct excache *xc, uint64_t page, const void *src, uint64_t n, bool wp)
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

/* Write-protect (or not) @n pages from @page: one invalidation of the guest's
 * mappings for the run (on a shadow-paging host an exit of each vCPU that
 * maps it), not one per page. */
static int xc_protect_range(struct excache *xc, uint64_t page, uint64_t n, bool protect)
{
	struct uffdio_writeprotect w = {
		.range = {(uint64_t)(uintptr_t)(xc->base + page * PAGE), n * PAGE},
		.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0, /* unprotecting wakes */
	};

	return ioctl(xc->uffd, UFFDIO_WRITEPROTECT, &w) < 0 ? -errno : 0;
}

int xc_protect(struct excache *xc, uint64_t page, bool protect)
{
	return xc_protect_range(xc, page, 1, protect);
}

/* Accesses waiting on pages [@page, @page + @n) retry. */
void xc_wake_range(struct excache *xc, uint64_t page, uint64_t n)
{
	struct uffdio_range r = {(uint64_t)(uintptr_t)(xc->base + page * PAGE), n * PAGE};

	ioctl(xc->uffd, UFFDIO_WAKE, &r);
}

void xc_wake(struct excache *xc, uint64_t page)
{
	xc_wake_range(xc, page, 1);
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

/* A 64-bit sum of a page's content (never 0: 0 means "no sum"), four lanes of
 * xxh64's round, so that it costs a fraction of a microsecond. */
static uint64_t xc_page_sum(const void *page)
{
	const uint64_t P1 = 0x9E3779B185EBCA87ULL, P2 = 0xC2B2AE3D27D4EB4FULL,
		       P3 = 0x165667B19E3779F9ULL;
	uint64_t acc[4] = {P1 + P2, P2, 0, -P1}, w, h;
	const uint8_t *p = page;

	for (size_t i = 0; i < PAGE; i += 32)
		for (int k = 0; k < 4; k++) {
			memcpy(&w, p + i + 8 * k, 8);
			acc[k] += w * P2;
			acc[k] = (acc[k] << 31 | acc[k] >> 33) * P1;
		}
	h = (acc[0] << 1 | acc[0] >> 63) + (acc[1] << 7 | acc[1] >> 57) +
	    (acc[2] << 12 | acc[2] >> 52) + (acc[3] << 18 | acc[3] >> 46);
	h ^= h >> 33;
	h *= P2;
	h ^= h >> 29;
	h *= P3;
	h ^= h >> 32;
	return h | 1;
}

/* Whether DIRTY page @page, protected, holds at @data what it held when fetched. */
static bool xc_unchanged(struct excache *xc, uint64_t page, const void *data)
{
	return xc->sum[page] && xc_page_sum(data) == xc->sum[page];
}

/* ---- bookkeeping ---- */

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

uint64_t xc_low_water(struct excache *xc)
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

static void xc_record_steps(struct excache *xc, const uint64_t t[XC_STEPS + 1])
{
	struct excache_steps *st = &xc->stats.steps;
	uint64_t i = st->next++ % XC_STEP_SAMPLES;

	for (int k = 0; k < XC_STEPS; k++) {
		uint64_t ns = k == XC_STEP_SERVICE ? t[XC_STEPS] - t[0] : t[k + 1] - t[k];

		st->ns[k][i] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
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

/* Whether @page is memory: boot RAM, or in a plugged block of the hotpluggable region. */
static bool xc_is_memory(struct excache *xc, uint64_t page)
{
	const struct gmem *mem = &xc->vm->mem;
	int64_t b = gmem_hotplug_block(mem, page * PAGE);

	return b < 0 || gmem_block_plugged(mem, (uint64_t)b);
}

/*
 * How many pages to install for a miss at @page, the run ahead claimed
 * (@absent -> FETCH) up to a window that grows with the run's length:
 * - a miss on a page the server holds (@absent = REMOTE), with pages just
 *   below it resident: a sequential read, fetched ahead;
 * - a write to a never-written page (@absent = NONE), with pages just below
 *   it dirty: a sequential writer (a program filling its memory), given
 *   zero pages ahead, writable. They are dirty from the start (a write to
 *   them is not seen), so each costs a write-back if it is evicted before
 *   the guest writes it; in exchange, a run is one hand-off, not one per page.
 */
static uint64_t xc_claim_run(struct excache *xc, uint64_t page, uint8_t absent)
{
	uint64_t below = 0, want, n = 1;
	unsigned max = xc->cfg.prefetch_max;

	while (below < max && below < page) {
		uint8_t s = ST(xc->state[page - 1 - below]);

		if (absent == XC_NONE ? s != XC_DIRTY || xc->sum[page - 1 - below]
				      : s != XC_CLEAN && s != XC_DIRTY && s != XC_FETCH)
			break;
		below++;
	}
	if (below < 2)
		return 1;
	want = 2 * below < max ? 2 * below : max;
	while (n < want && page + n < xc->nr_pages) {
		uint8_t s = xc->state[page + n];

		if (s != absent || (absent == XC_NONE && !xc_is_memory(xc, page + n)) ||
		    !xc_cas(xc, page + n, &s, XC_FETCH | (absent & XC_REM)))
			break;
		n++;
	}
	return n;
}

/* Claimed pages given back: absent again (@absent: REMOTE | REM or NONE). An
 * access that faulted on one meanwhile was left to the claim's install: it is
 * woken to fault again. */
void xc_unclaim(struct excache *xc, uint64_t first, uint64_t n, uint8_t absent)
{
	for (uint64_t i = 0; i < n; i++)
		xc->state[first + i] = absent;
	xc_wake_range(xc, first, n);
}

void xc_installed(struct excache *xc, uint64_t first, uint64_t n)
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
			xc->sum[page] = 0; /* written: what it held when fetched says nothing */
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
 * xc_is_memory, for a miss: one on an unplugged block is the guest's error:
 * it is never served, the guest is stopped.
 */
static bool xc_plugged(struct excache *xc, uint64_t page)
{
	const struct gmem *mem = &xc->vm->mem;

	if (xc_is_memory(xc, page))
		return true;
	vm_stop(xc->vm, VM_EXIT_GUEST_FAULT,
		"the guest touched guest-physical %#llx, in block %lld of its hotpluggable "
		"memory (virtio-mem), which is not plugged",
		(unsigned long long)(mem->hp.gpa + page * PAGE - mem->size),
		(long long)gmem_hotplug_block(mem, page * PAGE));
	return false;
}

static void xc_fault(struct excache_thread *t, uint64_t addr, uint64_t flags)
{
	struct excache *xc = t->xc;
	uint64_t page = (addr - (uint64_t)(uintptr_t)xc->base) / PAGE, n, granted;
	bool write = flags & UFFD_PAGEFAULT_FLAG_WRITE;
	uint64_t t0 = now_ns(), ts[XC_STEPS + 1] = {t0};
	uint8_t s, absent;
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
	absent = s & XC_REM ? XC_REMOTE | XC_REM : XC_NONE;
	n = xc->cfg.prefetch_max > 1 && (absent != XC_NONE || write)
		    ? xc_claim_run(xc, page, absent)
		    : 1;
	granted = xc_reserve(xc, n);
	if (!granted) {
		xc_unclaim(xc, page, n, absent);
		return;
	}
	if (granted < n) {
		xc_unclaim(xc, page + granted, n - granted, absent);
		n = granted;
	}
	xc->stats.misses++;
	if (s & XC_REM) {
		ts[XC_STEP_ROOM + 1] = now_ns();
		ret = memroute_read(&t->rc, page, (uint32_t)n, t->buf);
		ts[XC_STEP_FETCH + 1] = now_ns();
		if (ret) {
			xc_fail(xc, ret, "reading a page");
			return;
		}
		xc->stats.bytes_in += n * PAGE;
		xc->stats.fetches++;
		xc->stats.prefetched += n - 1;
		if (!xc->cfg.writes_wp) {
			/* Writable, with sums; the page a write missed on is written. The
			 * sums are of the fetched bytes, taken after the vCPU is woken (the
			 * pages stay FETCH, out of the evictor's reach, until then). */
			ret = xc_copy(xc, page, t->buf, n, false);
			for (uint64_t i = 0; i < n; i++)
				xc->sum[page + i] =
					i || !write ? xc_page_sum(t->buf + i * PAGE) : 0;
			for (uint64_t i = 1; i < n; i++)
				xc->state[page + i] = XC_DIRTY | XC_REM;
			xc->state[page] = XC_DIRTY | XC_REM;
		} else {
			/* A write miss installs its page writable: dirty from the start. */
			xc->sum[page] = 0;
			ret = xc_copy(xc, page, t->buf, 1, !write);
			if (!ret && n > 1)
				ret = xc_copy(xc, page + 1, t->buf + PAGE, n - 1, true);
			for (uint64_t i = 1; i < n; i++)
				xc->state[page + i] = XC_CLEAN | XC_REM;
			xc->state[page] = (write ? XC_DIRTY : XC_CLEAN) | XC_REM;
		}
	} else if (write) {
		xc->stats.zero_fills++;
		xc->stats.zeroed_ahead += n - 1;
		for (uint64_t i = 0; i < n; i++)
			xc->sum[page + i] = 0;
		ret = xc_copy(xc, page, xc_zero_pages, n, false);
		for (uint64_t i = 0; i < n; i++)
			xc->state[page + i] = XC_DIRTY;
	} else {
		xc->stats.zero_fills++;
		ret = xc_zero_read(xc, page);
		xc->state[page] = XC_CLEAN;
	}
	if (ret) {
		log_err("cannot install guest page %#llx: %s", (unsigned long long)page,
			strerror(-ret));
		xc_fail(xc, ret, "installing a page");
		return;
	}
	if (s & XC_REM)
		ts[XC_STEP_INSTALL + 1] = now_ns();
	xc_installed(xc, page, n);
	ts[XC_STEPS] = now_ns();
	if (s & XC_REM)
		xc_record_steps(xc, ts);
	xc_record_latency(xc, ts[XC_STEPS] - t0);
}

void *xc_fault_thread(void *arg)
{
	struct excache_thread *t = arg;
	struct excache *xc = t->xc;
	uint64_t spin_until = 0;
	char name[16];

	snprintf(name, sizeof(name), "xc-fault%d", t->index);
	sandbox_enter(SB_MEMORY, name);

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

/*
 * Pages on their way out (XC_DROP), dropped together: one MADV_DONTNEED per
 * run of neighbours. Each call invalidates the guest's mappings of its range
 * (on a shadow-paging host, an exit of every vCPU that maps it), so a scan's
 * victims, which are neighbours, cost one invalidation per run, not per page.
 */
struct xc_drops {
	uint32_t n;
	uint64_t page[LMP_MAX_PAGES];
	uint8_t absent[LMP_MAX_PAGES]; /* the state each page is left in */
};

static void xc_drops_flush(struct excache *xc, struct xc_drops *d)
{
	for (uint32_t i = 0, j; i < d->n; i = j) {
		for (j = i + 1; j < d->n && d->page[j] == d->page[j - 1] + 1; j++)
			;
		if (madvise(xc->base + d->page[i] * PAGE, (j - i) * PAGE, MADV_DONTNEED))
			log_err("MADV_DONTNEED of guest pages %#llx+%u: %s",
				(unsigned long long)d->page[i], j - i, strerror(errno));
	}
	for (uint32_t i = 0; i < d->n; i++)
		xc->state[d->page[i]] = d->absent[i];
	xc->resident -= d->n;
	xc->stats.evictions += d->n;
	pthread_mutex_lock(&xc->lock);
	for (uint32_t i = 0; i < d->n; i++)
		xc_policy_evicted(&xc->policy, d->page[i]);
	pthread_mutex_unlock(&xc->lock);
	d->n = 0;
}

static void xc_drops_add(struct excache *xc, struct xc_drops *d, uint64_t page, uint8_t absent)
{
	d->page[d->n] = page;
	d->absent[d->n++] = absent;
	if (d->n == LMP_MAX_PAGES)
		xc_drops_flush(xc, d);
}

static void xc_gone(struct excache *xc, uint64_t page, uint8_t absent)
{
	struct xc_drops d = {0};

	xc_drops_add(xc, &d, page, absent);
	xc_drops_flush(xc, &d);
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
	uint64_t pages[LMP_MAX_PAGES], cand[LMP_MAX_PAGES];
	void *data[LMP_MAX_PAGES];
	struct xc_drops drops = {0};
	uint32_t nr_dirty = 0, nr_cand = 0;
	uint64_t evicted = xc->stats.evictions;
	int ret;

	/* Clean victims go at once; dirty ones (WB from here) are protected below,
	 * in runs of neighbours. */
	while (xc->resident - drops.n - nr_cand > target && nr_cand < LMP_MAX_PAGES) {
		int64_t v;
		uint8_t s;

		pthread_mutex_lock(&xc->lock);
		v = xc_policy_victim(&xc->policy);
		pthread_mutex_unlock(&xc->lock);
		if (v < 0)
			break;
		s = xc->state[v];
		if (ST(s) == XC_CLEAN && xc_cas(xc, v, &s, XC_DROP | (s & XC_REM))) {
			xc->stats.clean_drops++;
			xc_drops_add(xc, &drops, v, s & XC_REM ? XC_REMOTE | XC_REM : XC_NONE);
		} else if (ST(s) == XC_DIRTY && xc_cas(xc, v, &s, XC_WB | (s & XC_REM))) {
			uint32_t i = nr_cand++;

			for (; i && cand[i - 1] > (uint64_t)v; i--) /* kept in order */
				cand[i] = cand[i - 1];
			cand[i] = (uint64_t)v;
		} else if (ST(s) == XC_CLEAN || ST(s) == XC_DIRTY || ST(s) == XC_UNPROT) {
			xc_keep(xc, v); /* changed under us: still resident */
		}
	}
	for (uint32_t i = 0, j; i < nr_cand; i = j) {
		for (j = i + 1; j < nr_cand && cand[j] == cand[j - 1] + 1; j++)
			;
		/* From here guest writes trap: the copies below are stable. */
		if (xc_protect_range(xc, cand[i], j - i, true)) {
			log_err("cannot write-protect guest pages %#llx+%u: %s",
				(unsigned long long)cand[i], j - i, strerror(errno));
			for (uint32_t k = i; k < j; k++) {
				xc->state[cand[k]] = XC_DIRTY | (xc->state[cand[k]] & XC_REM);
				xc_keep(xc, cand[k]);
			}
			continue;
		}
		for (uint32_t k = i; k < j; k++) {
			uint64_t v = cand[k];
			uint8_t s = xc->state[v];

			/* protected: summed in place, copied only to be written back */
			if (xc_unchanged(xc, v, xc->base + v * PAGE)) {
				/* as fetched: the servers hold it already */
				if (ST(s) == XC_WB && xc_cas(xc, v, &s, XC_DROP | XC_REM)) {
					xc->stats.clean_drops++;
					xc->stats.unchanged_drops++;
					xc_drops_add(xc, &drops, v, XC_REMOTE | XC_REM);
				} else {
					xc_keep(xc, v); /* written since it was protected */
				}
				continue;
			}
			memcpy(t->buf + nr_dirty * PAGE, xc->base + v * PAGE, PAGE);
			pages[nr_dirty] = v;
			data[nr_dirty] = t->buf + nr_dirty * PAGE;
			nr_dirty++;
		}
	}
	xc_drops_flush(xc, &drops); /* not held in XC_DROP over a round trip */
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
				xc->stats.dirty_writebacks++;
				xc_drops_add(xc, &drops, pages[i], XC_REMOTE | XC_REM);
			} else {
				xc->stats.wb_aborted++; /* written during write-back: keep it */
				xc_keep(xc, pages[i]);
			}
		}
	}
	xc_drops_flush(xc, &drops);
	pthread_mutex_lock(&xc->lock);
	pthread_cond_broadcast(&xc->room);
	pthread_mutex_unlock(&xc->lock);
	return xc->resident <= target || nr_dirty > 0 || xc->stats.evictions != evicted;
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

void *xc_evictor_thread(void *arg)
{
	struct excache *xc = ((struct excache_thread *)arg)->xc;

	sandbox_enter(SB_MEMORY, "xc-evictor");
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

		while (!ret && next < xc->nr_pages && n < LMP_MAX_PAGES) {
			uint64_t first = next, k = 0;

			/* a run of dirty neighbours (WB from here), protected at once */
			for (; next < xc->nr_pages && n + k < LMP_MAX_PAGES; next++) {
				uint8_t s = xc->state[next];

				if (ST(s) != XC_DIRTY ||
				    !xc_cas(xc, next, &s, XC_WB | (s & XC_REM))) {
					if (k)
						break;
					first = next + 1;
					continue;
				}
				k++;
			}
			if (k && (ret = xc_protect_range(xc, first, k, true))) {
				for (uint64_t p = first; p < first + k; p++)
					xc->state[p] = XC_DIRTY | (xc->state[p] & XC_REM);
				break;
			}
			for (uint64_t p = first; p < first + k; p++) {
				uint8_t s = xc->state[p];

				if (xc_unchanged(xc, p, xc->base + p * PAGE)) {
					/* as fetched: clean now (protected), nothing to write */
					xc_cas(xc, p, &s, XC_CLEAN | XC_REM);
					continue;
				}
				memcpy(t->buf + n * PAGE, xc->base + p * PAGE, PAGE);
				pages[n] = p;
				data[n] = t->buf + n * PAGE;
				n++;
			}
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
