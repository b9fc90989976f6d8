/*
 * memclient.h - the VMM's connection to one memory server for one vNode:
 * authenticate, read pages, write batches of pages. One memclient is one
 * connection with one request in flight; the ExCache opens one per thread
 * that needs one, so no lock is taken here.
 */
#ifndef LEGO_VMM_MEMCLIENT_H
#define LEGO_VMM_MEMCLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "proto.h"
#include "xport.h"

/*
 * Where one server's pages are, for one-sided reads over RDMA (LMP_LOC_*
 * values, LMP_LOC_UNKNOWN until asked): one table for every connection of a
 * VMM to that server, since a page another connection writes moves. A
 * writer forgets the pages it sends and sets where they are once the server
 * acknowledged them; a reader that asked sets only what is still unknown.
 */
struct memclient_locs {
	_Atomic uint64_t *e;
	uint64_t nr;
	_Atomic uint64_t base;	     /* the server's address of its pool (0: not yet known) */
	uint64_t epoch;		     /* the placement its keys are of (a user's to set) */
	_Atomic uint64_t one_sided;  /* pages read with it by RDMA READ */
	struct memclient_locs *next; /* (a user's list) */
};

/* memclient_locs_init - a table for @nr pages, every one unknown. 0 or -ENOMEM. */
int memclient_locs_init(struct memclient_locs *l, uint64_t nr);
/* memclient_locs_reset - every page unknown again (a new placement: the keys are new). */
void memclient_locs_reset(struct memclient_locs *l);
void memclient_locs_free(struct memclient_locs *l);

struct memclient {
	struct xport *x;
	char addr[128];
	bool rdma;		     /* x is an RDMA connection: reads are one-sided */
	struct memclient_locs *locs; /* where its pages are (&own, or shared: memclient_share) */
	struct memclient_locs own;
	uint64_t wpages[LMP_MAX_PAGES]; /* the write in flight (memclient_write_send) */
	uint32_t nr_wpages;
	uint64_t one_sided, two_sided; /* pages read each way */
	uint8_t *tmp;		       /* where a mixed batch's one-sided reads land first */
	uint64_t nr_pages;
	uint64_t bytes_in, bytes_out;
};

/* How the pages travel (after authenticating over TCP, with TLS in a cluster). */
enum memclient_transport {
	MEMCLIENT_TCP,
	MEMCLIENT_RDMA, /* over RDMA, or fail (the server or this host has none) */
	MEMCLIENT_AUTO, /* over RDMA where both ends have it, else TCP */
};

/* The vNode a memclient acts for. */
struct memclient_cred {
	uint64_t vnode;
	uint64_t nr_pages;
	uint8_t token[LMP_TOKEN_LEN];
	uint64_t epoch; /* the placement's epoch (0 without a manager) */
	enum memclient_transport transport;
};

/* memclient_transport_parse - "tcp", "rdma" or "auto" (NULL: tcp); -1 for anything else. */
int memclient_transport_parse(const char *name);

/*
 * memclient_open - connect to @addr and authenticate with @cred. On error
 * returns -errno with a sentence for a person in @err.
 */
int memclient_open(struct memclient *mc, const char *addr, const struct memclient_cred *cred,
		   char *err, size_t errlen);

/*
 * memclient_open_at - memclient_open for a client that has had this server in
 * its placement since epoch @since (see struct lmp_hello), with HELLO @flags,
 * and at most @io_timeout_ms for any answer.
 */
int memclient_open_at(struct memclient *mc, const char *addr, const struct memclient_cred *cred,
		      uint64_t since, uint32_t flags, int io_timeout_ms, char *err, size_t errlen);

/* memclient_share - read with @l (shared with the VMM's other connections to that server)
 * instead of a table of its own. */
void memclient_share(struct memclient *mc, struct memclient_locs *l);

/* memclient_close - hang up. */
void memclient_close(struct memclient *mc);

/* memclient_read - read @count pages from @first into @buf. -errno. */
int memclient_read(struct memclient *mc, uint64_t first, uint32_t count, void *buf);

/*
 * memclient_write - write @count pages (@pages[i] from @data[i]) and wait for
 * the server's acknowledgement: when this returns 0 the server holds them.
 */
int memclient_write(struct memclient *mc, const uint64_t *pages, void *const *data, uint32_t count);

/*
 * memclient_write_send / memclient_write_wait - memclient_write of at most
 * LMP_MAX_PAGES pages in two halves, so that a write can be in flight to
 * several servers at once. After a failed send, do not wait.
 */
int memclient_write_send(struct memclient *mc, const uint64_t *pages, void *const *data,
			 uint32_t count, uint64_t *id);
int memclient_write_wait(struct memclient *mc, uint64_t id, uint32_t count);

/* memclient_backup - ask the server to back pages up (struct lmp_backup). -errno. */
int memclient_backup(struct memclient *mc, const struct lmp_backup *b);

/* memclient_backup_stat - how the server's backups of the vNode are doing. */
int memclient_backup_stat(struct memclient *mc, struct lmp_backup_stat *st);

/* memclient_discard - pages [@first, +@count) are no longer memory: the server frees them. */
int memclient_discard(struct memclient *mc, uint64_t first, uint32_t count);

/* memclient_release - the vNode is gone: the server frees its pages. */
int memclient_release(struct memclient *mc);

/* memclient_stat - the server's capacity and use. */
int memclient_stat(struct memclient *mc, struct lmp_stat *st);

/* memclient_strerror - what a failed call's -errno means for a person. */
const char *memclient_strerror(int err);

#endif
