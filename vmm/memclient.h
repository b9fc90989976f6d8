/*
 * memclient.h - the VMM's connection to one memory server for one vNode:
 * authenticate, read pages, write batches of pages. One memclient is one
 * connection with one request in flight; the ExCache opens one per thread
 * that needs one, so no lock is taken here.
 */
#ifndef LEGO_VMM_MEMCLIENT_H
#define LEGO_VMM_MEMCLIENT_H

#include <stdint.h>

#include "proto.h"
#include "xport.h"

struct memclient {
	struct xport *x; /* the (first) server's connection */
	char addr[128];
	uint64_t bytes_in, bytes_out;
	/*
	 * A vNode whose memory is placed in slabs on several servers: slab i
	 * (pages [i * slab_pages, (i + 1) * slab_pages)) is on
	 * servers[slab_server[i]], each a memclient of its own. nr_servers is 0
	 * for one server, served by x directly.
	 */
	int nr_servers;
	struct memclient *servers;
	uint16_t *slab_server;
	uint64_t nr_slabs, slab_pages;
};

/* The vNode a memclient acts for. */
struct memclient_cred {
	uint64_t vnode;
	uint64_t nr_pages;
	uint8_t token[LMP_TOKEN_LEN];
};

/*
 * memclient_open - connect to @addr and authenticate with @cred. On error
 * returns -errno with a sentence for a person in @err.
 */
int memclient_open(struct memclient *mc, const char *addr, const struct memclient_cred *cred,
		   char *err, size_t errlen);

/*
 * memclient_open_slabs - @addrs is "HOST:PORT" for one server, or
 * "A,B,A,..." naming the server of each slab of @slab_pages pages, in order:
 * reads and writes then go to the server of their page's slab (a read that
 * crosses a slab boundary is split). Errors as memclient_open.
 */
int memclient_open_slabs(struct memclient *mc, const char *addrs, uint64_t slab_pages,
			 const struct memclient_cred *cred, char *err, size_t errlen);

/* memclient_close - hang up. */
void memclient_close(struct memclient *mc);

/* memclient_read - read @count pages from @first into @buf. -errno. */
int memclient_read(struct memclient *mc, uint64_t first, uint32_t count, void *buf);

/*
 * memclient_write - write @count pages (@pages[i] from @data[i]) and wait for
 * the server's acknowledgement: when this returns 0 the server holds them.
 */
int memclient_write(struct memclient *mc, const uint64_t *pages, void *const *data, uint32_t count);

/* memclient_release - the vNode is gone: the servers free its pages. */
int memclient_release(struct memclient *mc);

/* memclient_stat - the (first) server's capacity and use. */
int memclient_stat(struct memclient *mc, struct lmp_stat *st);

/* memclient_strerror - what a failed call's -errno means for a person. */
const char *memclient_strerror(int err);

#endif
