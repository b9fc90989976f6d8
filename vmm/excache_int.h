/*
 * excache_int.h - what the ExCache's files share: the page states of the
 * protocol argued in excache.c, and the operations on them.
 */
#ifndef LEGO_VMM_EXCACHE_INT_H
#define LEGO_VMM_EXCACHE_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "excache.h"

#define PAGE 4096ULL

enum { XC_NONE, XC_REMOTE, XC_FETCH, XC_CLEAN, XC_DIRTY, XC_WB, XC_DROP, XC_UNPROT };
#define XC_REM 0x80 /* the memory server holds a copy of the page */
#define ST(s)  ((s)&0x7f)

static inline bool xc_cas(struct excache *xc, uint64_t page, uint8_t *expect, uint8_t to)
{
	return atomic_compare_exchange_strong(&xc->state[page], expect, to);
}

/* userfaultfd on @n pages from @page: install a copy of @src (write-protected if
 * @wp), protect or unprotect, wake the accesses waiting on them */
int xc_copy(struct excache *xc, uint64_t page, const void *src, uint64_t n, bool wp);
int xc_protect(struct excache *xc, uint64_t page, bool protect);
void xc_wake_range(struct excache *xc, uint64_t page, uint64_t n);
void xc_wake(struct excache *xc, uint64_t page);

/* pages below which the evictor is asked to make room */
uint64_t xc_low_water(struct excache *xc);
/* claimed (FETCH) pages given back: @absent again, their waiting accesses retry */
void xc_unclaim(struct excache *xc, uint64_t first, uint64_t n, uint8_t absent);
/* installed pages enter the replacement policy */
void xc_installed(struct excache *xc, uint64_t first, uint64_t n);

/* a thread's connections and buffer; the threads themselves */
int xc_thread_init(struct excache *xc, struct excache_thread *t, int index);
void *xc_fault_thread(void *arg);
void *xc_evictor_thread(void *arg);
int xc_warm_start(struct excache *xc);

#endif
