/*
 * excache_rest.c - the ExCache of a vNode at rest and back: which pages the
 * memory servers hold and which were resident (a snapshot's and a
 * migration's maps), and the warm-up that fetches the resident ones again
 * after a restore. Pages change state by the protocol of excache.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "excache.h"
#include "excache_int.h"
#include "log.h"
#include "util.h"
#include "sandbox.h"

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

	sandbox_enter(SB_MEMORY, "xc-warmer");
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
			xc_unclaim(xc, first + granted, n - granted, XC_REMOTE | XC_REM);
		if (!granted)
			break; /* the ExCache is full: what the guest touches now decides */
		ret = memroute_read(&t->rc, first, (uint32_t)granted, t->buf);
		if (!ret)
			ret = xc_copy(xc, first, t->buf, granted, true);
		if (ret) {
			xc_unclaim(xc, first, granted, XC_REMOTE | XC_REM);
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

int xc_warm_start(struct excache *xc)
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
