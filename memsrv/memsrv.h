/*
 * memsrv.h - lego-memsrv: serves vNodes' pages over the wire protocol. The
 * request handling (memsrv_handle) knows nothing of sockets; the common
 * io_uring TCP server (srv.h) is one transport for it, and an RDMA one
 * would be another.
 */
#ifndef LEGO_MEMSRV_H
#define LEGO_MEMSRV_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "srv.h"
#include "store.h"

struct memsrv_rdma;

struct memsrv {
	struct store store;
	struct srv srv;
	struct memsrv_rdma *rdma; /* NULL: no RDMA listener (rdma.c) */
	uint64_t nr_requests, nr_errors;
	const char *listen_addr; /* as announced to the manager */
	pthread_mutex_t lock;	 /* the store: the request loop and the backup thread */
	pthread_t backup_thread;
	bool stop;
};

/* The per-connection part of the protocol state. */
struct memsrv_session {
	struct store_vnode *vn; /* NULL until HELLO succeeded */
	uint64_t vnode_id;
	uint64_t epoch;		     /* the placement epoch it said HELLO at */
	const struct pki_peer *peer; /* its client's certificate (TLS), or NULL */
	bool rdma;		     /* over RDMA: pages may be located and read one-sided */
};

/*
 * memsrv_handle - serve one request (@h already passed lmp_hdr_check, @body
 * holds h->len bytes) and write the whole response into @out (room for
 * LMP_MAX_BODY + a header). Returns the response's length.
 */
size_t memsrv_handle(struct memsrv *m, struct memsrv_session *ss, const struct lmp_hdr *h,
		     const uint8_t *body, uint8_t *out);

/* memsrv_session_end - the connection of @ss is gone. */
void memsrv_session_end(struct memsrv *m, struct memsrv_session *ss);

/* memsrv_backup_start/stop - the thread that backs vNodes up (backup.c). */
int memsrv_backup_start(struct memsrv *m);
void memsrv_backup_stop(struct memsrv *m);

/*
 * memsrv_rdma_listen - listen for RDMA connections on "HOST:PORT" too (the
 * requests are the same; see rdma.c). 0, or -errno with a sentence in @why
 * (no RDMA device, ...): then there is none, and TCP serves on.
 */
int memsrv_rdma_listen(struct memsrv *m, const char *addr, char *why, size_t len);

/* memsrv_rdma_start/stop - the thread that serves RDMA connections (when listening). */
int memsrv_rdma_start(struct memsrv *m);
void memsrv_rdma_stop(struct memsrv *m);

/* memsrv_rdma_addr - "rdma://HOST:PORT" when listening for RDMA, or NULL. */
const char *memsrv_rdma_addr(const struct memsrv *m);

/*
 * memsrv_rdma_ticket - a ticket (RDMA_TICKET_LEN bytes into @ticket) for one
 * RDMA connection continuing the session @ss (which said HELLO), and the
 * RDMA port in *@port; -EOPNOTSUPP without RDMA. m->lock held.
 */
int memsrv_rdma_ticket(struct memsrv *m, struct memsrv_session *ss, uint8_t *ticket,
		       uint16_t *port);

/*
 * memsrv_rdma_locate - where @page of @ss's vNode is for a one-sided read (an
 * LMP_LOC_* value; its chunk registered with the device on first use). m->lock held.
 */
uint64_t memsrv_rdma_locate(struct memsrv *m, struct memsrv_session *ss, uint64_t page);

/* memsrv_rdma_revoke - every memory key of @vn is revoked (a newer placement took it, or it
 * is released): its clients' one-sided reads fail from now on. m->lock held. */
void memsrv_rdma_revoke(struct memsrv *m, struct store_vnode *vn);

/* memsrv_listen - bind and listen on "HOST:PORT". -errno, logged. */
int memsrv_listen(struct memsrv *m, const char *addr);

/* memsrv_run - serve connections until SIGTERM/SIGINT, then close the socket. */
int memsrv_run(struct memsrv *m);

#endif
