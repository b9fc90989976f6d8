/*
 * store.h - lego-memsrv's page store: pages of many vNodes in one pool of
 * fixed capacity. A page takes memory only once it is first written; a page
 * never written reads as zeros. Each vNode is bound to its token on first
 * contact, and only that token reaches its pages.
 *
 * A vNode may be cloned (store_clone): the copy's pages share the pool's
 * slots with the original's until either writes one (copy on write), so a
 * clone costs a page table, not the memory. A shared slot counts once in
 * used_pages (what the pool holds) and once per holder in each vNode's used.
 */
#ifndef LEGO_MEMSRV_STORE_H
#define LEGO_MEMSRV_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "proto.h"

/* A vNode's backup to a storage server (memsrv/backup.c). */
struct store_backup {
	struct lmp_backup target; /* first_page, nr_pages unused: see scope */
	uint8_t *scope;		  /* per page: 1 if it is backed up here */
	uint8_t *dirty;		  /* per page: written since it was last backed up */
	uint64_t seq, start_ms, writes_since, pages;
	uint64_t last_try_ms;
	bool failing;
};

/* Slots come by chunks of this many, each a vNode's own (chunks.c). */
#define STORE_CHUNK_PAGES 512

struct store_chunk {
	struct store_vnode *owner; /* NULL: free, or mixed */
	uint32_t used;		   /* slots taken */
	uint32_t pins;		   /* registered with an RDMA device (by its owner's clients) */
	uint32_t idx;		   /* in owner->chunks */
	bool mixed;		   /* holds pages of more than one vNode: never exposed */
	uint64_t map[STORE_CHUNK_PAGES / 64]; /* taken slots */
};

struct store_vnode {
	uint64_t id;
	uint8_t token[LMP_TOKEN_LEN];
	uint64_t nr_pages;
	uint32_t *slots;	     /* per guest page: pool slot + 1, or 0 when never written */
	uint64_t used;		     /* pages of this vNode in the pool */
	int refs;		     /* connections authenticated for it */
	bool released;		     /* its pages are gone; freed with its last connection */
	uint64_t epoch;		     /* the newest placement epoch a client presented */
	uint64_t incarnation;	     /* the newest start epoch of a VMM's credential seen */
	struct store_backup *backup; /* NULL: none */
	uint32_t *chunks;	     /* the chunks it owns */
	uint32_t nr_chunks, cap_chunks, room; /* room: where a free slot was last found */
	void *rdma;			      /* what memsrv's RDMA listener exposes of it */
	struct store_vnode *next;
};

struct store {
	uint8_t *pool;
	uint64_t capacity_pages;
	uint64_t used_pages;
	struct store_chunk *chunks;
	uint32_t nr_chunks, next_chunk; /* chunks at and above next_chunk were never used */
	uint32_t *free_chunks;		/* wholly free chunks below next_chunk */
	uint32_t nr_free_chunks;
	uint32_t *shares;   /* per slot: holders besides the first (copy on write) */
	uint64_t nr_shared; /* slots with more than one holder */
	struct store_vnode *vnodes;
	uint64_t nr_vnodes;
};

/* store_init - a store holding at most @capacity bytes of pages. -errno. */
int store_init(struct store *s, uint64_t capacity);

/* store_exit - free every vNode and the pool. */
void store_exit(struct store *s);

/*
 * store_attach - the vNode @id for a connection that presents @token: created
 * (bound to @token, @nr_pages long) on first contact. -EACCES for a wrong
 * token, -EINVAL when @nr_pages disagrees with the vNode's size.
 */
int store_attach(struct store *s, uint64_t id, uint64_t nr_pages, const uint8_t *token,
		 struct store_vnode **out);

/* store_detach - a connection for @vn went away (the pages stay, unless released). */
void store_detach(struct store *s, struct store_vnode *vn);

/* store_page - the stored copy of @page of @vn, or NULL if never written. */
const uint8_t *store_page(const struct store *s, const struct store_vnode *vn, uint64_t page);

/* store_pages_needed - how many of @pages (@n of them) need a slot of their own to be written. */
uint64_t store_pages_needed(const struct store *s, const struct store_vnode *vn,
			    const uint64_t *pages, uint32_t n);

/* store_write - store @data as @page of @vn. -ERANGE past its end, -ENOSPC when full. */
int store_write(struct store *s, struct store_vnode *vn, uint64_t page, const uint8_t *data);

/*
 * store_epoch - a client at placement @epoch wants @vn (see struct lmp_hello):
 * 0 and the vNode is at @epoch, or -ESTALE when its copy is not current for
 * that client. LMP_HELLO_FRESH drops every page first; LMP_HELLO_TAKEOVER
 * wants @epoch newer than any seen. @start is the epoch the client's
 * credential says the manager started it at (0: no credential): a VMM
 * started before the newest one seen is deposed (-ESTALE), whatever epoch
 * it names, and one naming an epoch before its start is refused (-EINVAL).
 */
int store_epoch(struct store *s, struct store_vnode *vn, uint64_t epoch, uint64_t since,
		uint32_t flags, uint64_t start);

/*
 * store_backup_scope - from now on, back up the pages of @vn in
 * [@target->first_page, + @target->nr_pages) to @target's volume (the pages
 * held already count as written). -ERANGE, -ENOMEM.
 */
int store_backup_scope(struct store *s, struct store_vnode *vn, const struct lmp_backup *target);

/*
 * store_discard - free pages [@first, @first + @n) of @vn (they read as zeros
 * after, and are backed up as zeros). -ERANGE past its end.
 */
int store_discard(struct store *s, struct store_vnode *vn, uint64_t first, uint64_t n);

/*
 * store_clone - a new vNode @id bound to @token at @epoch, with every page
 * @src holds here shared with it (copy on write): both read the same until
 * either writes. @src must be at @src_epoch (-ESTALE: its copy here is not
 * the current one) and not released; -EEXIST when @id is known, -EINVAL for
 * a size or epoch of 0, -ENOMEM.
 */
int store_clone(struct store *s, struct store_vnode *src, uint64_t src_epoch, uint64_t id,
		const uint8_t *token, uint64_t epoch, struct store_vnode **out);

/* chunks.c: the slots' allocation. */
int store_chunks_init(struct store *s);
void store_chunks_exit(struct store *s);
/* store_slot_alloc - a free slot for a page of @vn, in a chunk of its own where one has
 * room; -1 when the pool is full. */
int64_t store_slot_alloc(struct store *s, struct store_vnode *vn);
/* store_slot_free - @slot is free again (no vNode holds it). */
void store_slot_free(struct store *s, uint32_t slot);
/* store_chunks_disown - @vn goes: its chunks are free, or mixed where pages stay. */
void store_chunks_disown(struct store *s, struct store_vnode *vn);
/* store_chunk_pin - the chunk of @slot, held by an RDMA device for @vn's clients: its
 * index, or -EPERM when it is not @vn's own (it must not be exposed to @vn). */
int64_t store_chunk_pin(struct store *s, const struct store_vnode *vn, uint32_t slot);
/* store_chunk_unpin - the device let go of chunk @c. */
void store_chunk_unpin(struct store *s, uint32_t c);

/* store_find - the vNode @id, or NULL. */
struct store_vnode *store_find(struct store *s, uint64_t id);

/*
 * store_release - drop every page of @vn and forget it; connections still
 * attached to it find it released, and it is freed with the last of them.
 */
void store_release(struct store *s, struct store_vnode *vn);

#endif
