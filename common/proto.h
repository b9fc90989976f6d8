/*
 * proto.h - lego's binary wire protocol for the data paths: pages, blocks
 * and memory backups (the control plane, heartbeats included, is JSON over
 * HTTP: common/http.h). Every message is a fixed 32-byte
 * little-endian header followed by `len` bytes of body. Requests carry a
 * client-chosen id that the response repeats; a response has LMP_RESPONSE
 * set in its type and a status (0 or -errno). Every length is checked
 * against LMP_MAX_BODY before it is used, and an unknown type gets an
 * -EOPNOTSUPP response, never a crash.
 */
#ifndef LEGO_PROTO_H
#define LEGO_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LMP_MAGIC     0x31504d4cU /* "LMP1" */
#define LMP_VERSION   2		  /* 2: HELLO carries placement epochs */
#define LMP_PAGE      4096U
#define LMP_MAX_PAGES 64				     /* pages in one READV or WRITEV */
#define LMP_MAX_BODY  (LMP_MAX_PAGES * (LMP_PAGE + 8) + 128) /* also a BLK_WRITE of LMP_BLK_MAX */
#define LMP_TOKEN_LEN 32

enum lmp_type {
	LMP_HELLO = 1,	 /* body: struct lmp_hello; authenticates the connection for one vNode */
	LMP_READ = 2,	 /* arg: first page; body: u32 count; response body: count pages */
	LMP_WRITE = 3,	 /* arg: count; body: count x (u64 page, 4096 bytes); response: status */
	LMP_RELEASE = 4, /* drop every page of the vNode (it is gone) */
	LMP_STAT = 5,	 /* response body: struct lmp_stat */
	LMP_BACKUP = 6,	 /* body: struct lmp_backup: back these pages up to a volume */
	LMP_BACKUP_STAT = 7,  /* response body: struct lmp_backup_stat */
	LMP_PING = 8,	      /* answered at once, empty, by the server loop: it serves this
			      * connection (a client waiting on slow I/O asks, to tell) */
	LMP_DISCARD = 9,      /* arg: first page; body: u32 count: those pages are no longer
			      * memory (unplugged): freed, they read as zeros after */
	LMP_CLONE = 10,	      /* body: struct lmp_clone; from the manager, on a connection
			      * without HELLO: a vNode's pages shared with a new one */
	LMP_RDMA_TICKET = 11, /* on a connection that said HELLO: response body
			       * LMP_TOKEN_LEN bytes, a ticket that lets one RDMA connection
			       * continue this session (within 10 s, once); arg: the
			       * server's RDMA port. -EOPNOTSUPP: the server has no RDMA */
	LMP_LOCATE = 12,      /* over RDMA only: arg: first page; body: u32 count (at most
			       * LMP_LOC_MAX); response body: count u64 locations (below);
			       * response arg: the server's address of its pool */

	/* Volumes (lego-storsrv). Every request is self-contained: it names the
	 * volume and carries its token; nothing depends on an earlier request. */
	LMP_VOL_CREATE = 16, /* body: struct lmp_vol (name, token, size) */
	LMP_VOL_DELETE = 17, /* body: struct lmp_vol (name, token) */
	LMP_VOL_RESIZE = 18, /* body: struct lmp_vol (name, token, new size) */
	LMP_VOL_LIST = 19,   /* response body: struct lmp_vol_info[] (arg: how many) */
	LMP_BLK_READ = 20,   /* body: struct lmp_blk; response body: length bytes */
	LMP_BLK_WRITE = 21,  /* body: struct lmp_blk, then length bytes */
	LMP_BLK_FLUSH = 22,  /* body: struct lmp_blk (offset, length 0): all writes durable */
	LMP_VOL_STAT = 23,   /* body: struct lmp_vol (name, token); response: struct lmp_vol_info */
	LMP_BLK_DISCARD = 24, /* body: struct lmp_blk (offset, length of the range): may go, reads
			       * as zeros after (its space goes back: a hole in the file) */
	LMP_BLK_WRITE_ZEROES = 25, /* body: struct lmp_blk: the range reads as zeros */
	LMP_VOL_CLONE = 26,	   /* body: struct lmp_vol_clone */
	LMP_RESPONSE = 0x8000,
};

/*
 * Where a page is, for a one-sided RDMA READ (LMP_LOCATE, and LMP_WRITE with
 * LMP_WRITE_LOC): LMP_LOC_ZERO (never written: zeros), LMP_LOC_MESSAGE (not
 * exposed: read it with LMP_READ), or (rkey << 32 | slot + LMP_LOC_SLOT0):
 * 4 KiB at pool + slot * 4096 under memory key rkey. Keys are the vNode's
 * only, and revoked when a newer placement takes it (its reads then fail).
 */
#define LMP_LOC_MAX	512
#define LMP_LOC_UNKNOWN 0 /* (a client's own: not asked yet) */
#define LMP_LOC_ZERO	1
#define LMP_LOC_MESSAGE 2
#define LMP_LOC_SLOT0	3
#define LMP_WRITE_LOC	(1ULL << 32) /* in LMP_WRITE's arg: answer with the pages' locations */

struct lmp_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint64_t id;	/* request id, echoed in the response */
	uint32_t len;	/* body bytes after the header */
	int32_t status; /* responses: 0 or -errno */
	uint64_t arg;	/* type-specific */
};

struct lmp_hello {
	uint64_t vnode;		      /* the vNode this connection acts for */
	uint64_t nr_pages;	      /* its guest memory in pages */
	uint8_t token[LMP_TOKEN_LEN]; /* its secret */
	/*
	 * Placement epochs (0 throughout without a manager). The server keeps the
	 * newest epoch it has seen for the vNode and answers -ESTALE to requests
	 * of connections made at an older one: a fenced client can never read or
	 * overwrite the current copy. A HELLO at a newer epoch is accepted when
	 * the server's copy is current: its epoch is at least @since, the epoch
	 * since which the client has had this server in the placement; or, with
	 * LMP_HELLO_FRESH, by dropping every page (the server is being refilled).
	 */
	uint64_t epoch;
	uint64_t since;
	uint32_t flags;
	uint32_t reserved;
};

#define LMP_HELLO_FRESH 1u /* drop what is held for the vNode: a refill follows */
/*
 * Take the vNode over at @epoch: accepted only if it is newer than every
 * epoch the server has seen for it, so that of two clients racing to the
 * same new epoch (a migration's source and target) exactly one wins.
 */
#define LMP_HELLO_TAKEOVER 2u

/*
 * A copy of vNode @src (at placement @src_epoch: its copy on this server must
 * be current) as the new vNode @dst, bound to @dst_token, at placement
 * @dst_epoch: every page the server holds for @src, shared copy-on-write.
 * Only the manager's credential may ask (in a cluster), and it must know
 * @src_token. LMP_CLONE_DROP forgets @dst, which no VMM may hold (a copy
 * that never ran, a saved vNode whose snapshot is dropped): its token only.
 */
struct lmp_clone {
	uint64_t src, src_epoch;
	uint8_t src_token[LMP_TOKEN_LEN];
	uint64_t dst, dst_epoch;
	uint8_t dst_token[LMP_TOKEN_LEN];
	uint32_t flags;
	uint32_t reserved;
};

#define LMP_CLONE_DROP 1u

struct lmp_stat {
	uint64_t capacity_pages;
	uint64_t used_pages;  /* over all vNodes */
	uint64_t vnode_pages; /* of the vNode this connection is for */
	uint64_t nr_vnodes;
};

#define LMP_VOL_NAME_LEN 64	      /* with the terminating NUL */
#define LMP_BLK_MAX	 (256 * 1024) /* most bytes in one BLK_READ or BLK_WRITE */
#define LMP_BLK_FUA	 1u	      /* lmp_blk.flags: durable before the response */

struct lmp_vol {
	char name[LMP_VOL_NAME_LEN]; /* [A-Za-z0-9_.-], not starting with '.' */
	uint8_t token[LMP_TOKEN_LEN];
	uint64_t size; /* bytes, a multiple of 512 */
};

/* A new volume @dst (name, token; size 0) with the contents of @src, which
 * must be given with its token; its size is @src's. */
struct lmp_vol_clone {
	struct lmp_vol dst;
	char src[LMP_VOL_NAME_LEN];
	uint8_t src_token[LMP_TOKEN_LEN];
};

struct lmp_vol_info {
	char name[LMP_VOL_NAME_LEN];
	uint64_t size;
};

struct lmp_blk {
	char volume[LMP_VOL_NAME_LEN];
	uint8_t token[LMP_TOKEN_LEN];
	uint64_t offset; /* bytes, a multiple of 512 */
	uint32_t length; /* bytes, a multiple of 512, at most LMP_BLK_MAX (any, for a
			  * discard or zeroes: no data travels) */
	uint32_t flags;	 /* LMP_BLK_FUA */
};

/*
 * A memory server keeps a backup of a vNode's pages in [first_page,
 * first_page + nr_pages) on a storage server's volume: a struct
 * lmp_backup_header in its first page, page p at lmp_backup_offset(p). The
 * volume holds the slabs placed so far (a page and their pages): it grows
 * with the vNode's memory, and the header never moves. Every interval_ms the
 * server writes the pages written since the last backup, flushes, then the
 * header. Everything acknowledged before the header's start_ms is in the
 * backup. A vNode's page ranges are asked for one by one (LMP_BACKUP per
 * slab): a slab placed later is added to what is backed up.
 */
struct lmp_backup {
	char storsrv[64]; /* HOST:PORT */
	char volume[LMP_VOL_NAME_LEN];
	uint8_t token[LMP_TOKEN_LEN];
	uint64_t first_page, nr_pages;
	uint32_t interval_ms;
	uint32_t reserved;
};

struct lmp_backup_stat {
	uint64_t seq;	       /* backups completed */
	uint64_t start_ms;     /* wall clock at the start of the last completed one */
	uint64_t writes_since; /* page writes since then: what a loss now could lose */
	uint64_t pages;	       /* pages written to the volume in all */
};

#define LMP_BACKUP_MAGIC 0x32504b424f47454cULL /* "LEGOBKP2": the header first */

/* lmp_backup_offset - where page @page of the vNode is on its backup volume. */
static inline uint64_t lmp_backup_offset(uint64_t page)
{
	return (page + 1) * LMP_PAGE;
}

struct lmp_backup_header {
	uint64_t magic;
	uint64_t vnode, seq, start_ms, nr_pages;
};

/* lmp_vol_name_ok - a volume name that is safe as a file name and printable. */
bool lmp_vol_name_ok(const char *name);

/* lmp_hdr_init - a request (or response) header of @type for @id with @len body bytes. */
void lmp_hdr_init(struct lmp_hdr *h, uint16_t type, uint64_t id, uint32_t len, uint64_t arg);

/*
 * lmp_hdr_check - validate a header received from the wire: magic, version
 * and body length. Returns 0 or a negative errno with a reason in @why.
 */
int lmp_hdr_check(const struct lmp_hdr *h, const char **why);

/* lmp_status_ok - a response's status is 0 or a -errno (what a peer says otherwise is
 * malformed: a positive or huge one must not reach a caller as a result). */
static inline bool lmp_status_ok(int32_t status)
{
	return status <= 0 && status > -4096;
}

/* lmp_type_name - "READ", "WRITE", ... for messages and logs. */
const char *lmp_type_name(uint16_t type);

/* lmp_token_parse - 64 hex digits into @token; -EINVAL if malformed. */
int lmp_token_parse(const char *hex, uint8_t token[LMP_TOKEN_LEN]);

/* lmp_token_equal - constant-time comparison of two tokens. */
bool lmp_token_equal(const uint8_t *a, const uint8_t *b);

#endif
