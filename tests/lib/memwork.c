/* memwork.c - the write-and-verify workload below the VMM (memwork.h). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "memwork.h"
#include "util.h"

struct worker {
	struct memroute *r;
	uint64_t first, pages;
	volatile bool *stop;
	uint64_t *acked; /* per page: the version last acknowledged, 0 never written */
	uint64_t writes, mismatches, seed;
	int error;
};

void memwork_fill(uint8_t *page, uint64_t pageno, uint64_t version)
{
	for (int i = 0; i < 4096; i += 16) {
		memcpy(page + i, &pageno, 8);
		memcpy(page + i + 8, &version, 8);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct memroute_client rc;
	static __thread uint8_t buf[8][4096], got[4096];
	char err[256];

	if (memroute_open(&rc, w->r, err, sizeof(err))) {
		w->error = -EIO;
		return NULL;
	}
	while (!*w->stop) {
		uint64_t nos[8];
		void *data[8];

		/* 8 different pages of this thread's own, each one version up */
		for (int i = 0; i < 8; i++) {
			uint64_t p = ((w->seed = w->seed * 6364136223846793005ULL +
						 1442695040888963407ULL) >>
				      33) %
				     w->pages;

			for (int j = 0; j < i; j++)
				if (nos[j] == w->first + p)
					p = (p + 1) % w->pages, j = -1;
			nos[i] = w->first + p;
			memwork_fill(buf[i], nos[i], w->acked[p] + 1);
			data[i] = buf[i];
		}
		w->error = memroute_write(&rc, nos, data, 8);
		if (w->error)
			break;
		for (int i = 0; i < 8; i++)
			w->acked[nos[i] - w->first]++;
		w->writes += 8;
		w->error = memroute_read(&rc, nos[0], 1, got); /* one read back at once */
		if (w->error)
			break;
		w->mismatches += memcmp(got, buf[0], 4096) != 0;
	}
	for (uint64_t p = 0; !w->error && p < w->pages; p++) {
		w->error = memroute_read(&rc, w->first + p, 1, got);
		memwork_fill(buf[0], w->first + p, w->acked[p]);
		if (!w->error && w->acked[p] && memcmp(got, buf[0], 4096))
			w->mismatches++;
	}
	memroute_close(&rc);
	return NULL;
}

void memwork_run(struct memroute *r, int threads, uint64_t pages, int run_ms, int cut_ms,
		 void (*cut)(void *), void *arg, struct memwork_result *res)
{
	struct worker w[MEMWORK_MAX_THREADS];
	pthread_t th[MEMWORK_MAX_THREADS];
	volatile bool stop = false;

	memset(res, 0, sizeof(*res));
	if (threads > MEMWORK_MAX_THREADS)
		threads = MEMWORK_MAX_THREADS;
	for (int i = 0; i < threads; i++) {
		w[i] = (struct worker){.r = r,
				       .first = (uint64_t)i * pages,
				       .pages = pages,
				       .stop = &stop,
				       .acked = calloc(pages, sizeof(uint64_t)),
				       .seed = now_ns() + (uint64_t)i};
		pthread_create(&th[i], NULL, worker_main, &w[i]);
	}
	if (cut) {
		usleep((useconds_t)cut_ms * 1000);
		cut(arg);
		usleep((useconds_t)(run_ms - cut_ms) * 1000);
	} else {
		usleep((useconds_t)run_ms * 1000);
	}
	stop = true;
	for (int i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		res->writes += w[i].writes;
		res->mismatches += w[i].mismatches;
		res->idle_threads += w[i].writes == 0;
		if (!res->error)
			res->error = w[i].error;
		free(w[i].acked);
	}
}
