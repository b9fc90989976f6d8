/*
 * memwork.h - the write-and-verify workload below the VMM, for the
 * replication tests and bench-failover: threads, each on pages of its own,
 * write batches of 8 pages (each a version higher than the last one
 * acknowledged) through a memroute and read one back; at the end every page
 * is checked against the version last acknowledged for it.
 */
#ifndef LEGO_TEST_MEMWORK_H
#define LEGO_TEST_MEMWORK_H

#include <stdint.h>

#include "memroute.h"

#define MEMWORK_MAX_THREADS 8

struct memwork_result {
	uint64_t writes;     /* pages acknowledged */
	uint64_t mismatches; /* pages that did not read back as acknowledged */
	int error;	     /* the first error a thread met (it then stopped), or 0 */
	int idle_threads;    /* threads that wrote nothing */
};

/*
 * memwork_run - @threads threads of @pages pages each (the vNode of @r has
 * threads x pages pages) for @run_ms; @cut(@arg), if not NULL, is called
 * after @cut_ms, while they run.
 */
void memwork_run(struct memroute *r, int threads, uint64_t pages, int run_ms, int cut_ms,
		 void (*cut)(void *), void *arg, struct memwork_result *res);

/* memwork_fill - the page a thread writes: page number and version in every 16 bytes. */
void memwork_fill(uint8_t *page, uint64_t pageno, uint64_t version);

#endif
