/*
 * rdma.h - RDMA (rdma-core verbs) endpoints for the data path: one
 * reliable-connected queue pair with its own protection domain, completion
 * queue and registered message buffers. Messages are the wire protocol's
 * (proto.h: a header and its body), one per SEND; a peer's messages are
 * received in order into RDMA_NR_RECV buffers that are posted again once
 * consumed. A sender that finds no receive posted is held back by the
 * hardware (receiver-not-ready retries without end), never dropped.
 *
 * Used by the client transport (xport_rdma.c, "rdma://HOST:PORT") and by
 * lego-memsrv's RDMA listener. Connections are made with the RDMA
 * connection manager (librdmacm).
 *
 * Completions are found by polling the completion queue for at most a
 * bounded time (RDMA_SPIN_US by default, rdma_spin_us to change it), then
 * by sleeping on the completion channel: a waiter burns at most that much
 * CPU per wait.
 */
#ifndef LEGO_RDMA_H
#define LEGO_RDMA_H

#include <rdma/rdma_cma.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define RDMA_NR_RECV  4
#define RDMA_NR_SEND  4
#define RDMA_MAX_READ LMP_MAX_PAGES /* one-sided page reads in flight at once */
#define RDMA_RD_ATOM  16	    /* of them, at the responder at once */
#define RDMA_MSG_MAX  (sizeof(struct lmp_hdr) + LMP_MAX_BODY)
#define RDMA_SPIN_US  50

/* The connection's private data: the client proves which session it continues. */
#define RDMA_TICKET_LEN LMP_TOKEN_LEN

struct rdma_ep {
	struct rdma_cm_id *id;
	struct ibv_pd *pd;
	bool own_pd; /* made by rdma_ep_setup (else the caller's, shared) */
	struct ibv_comp_channel *cc;
	struct ibv_cq *cq;
	struct ibv_mr *mr;
	uint8_t *bufs; /* RDMA_NR_RECV receive buffers, RDMA_NR_SEND send buffers, then
			* RDMA_MAX_READ pages that one-sided reads land in */
	int reads_pending;
	/* received messages not yet consumed, in arrival order */
	uint8_t recv_q[RDMA_NR_RECV];
	uint32_t recv_len[RDMA_NR_RECV];
	int recv_head, recv_count;
	bool send_busy[RDMA_NR_SEND];
	int error; /* -errno: a completion failed, the queue pair is unusable */
	/* a client's own connection events (NULL: someone else takes them): a waiter
	 * also watches it, and a disconnection is then an error at once */
	struct rdma_event_channel *cm_ch;
	bool armed;	/* a completion event was asked for and not yet taken */
	uint64_t spins; /* waits that ended while polling (no sleep) */
	uint64_t sleeps;
};

/* rdma_spin_us - the most a waiter polls before it sleeps (0: never polls). */
extern int rdma_spin_us;

/*
 * rdma_ep_setup - the resources of @ep on @id's device, its queue pair
 * created (in protection domain @pd, or one of its own when NULL) and every
 * receive posted. 0 or -errno (@ep is then torn down).
 */
int rdma_ep_setup(struct rdma_ep *ep, struct rdma_cm_id *id, struct ibv_pd *pd);

/* rdma_ep_destroy - free what rdma_ep_setup made (not @ep->id). */
void rdma_ep_destroy(struct rdma_ep *ep);

/*
 * rdma_ep_drain - take every completion that is there, without waiting (the
 * completion channel's descriptor is non-blocking: poll it with others).
 * The number taken, or ep->error.
 */
int rdma_ep_drain(struct rdma_ep *ep);

/* rdma_ep_wait - rdma_ep_drain, waiting for at least one completion up to
 * @timeout_ms (-1: forever). The number taken, 0 on timeout, or -errno. */
int rdma_ep_wait(struct rdma_ep *ep, int timeout_ms);

/* rdma_ep_send_slot - a free send buffer's index, or -1 when all are in flight. */
int rdma_ep_send_slot(struct rdma_ep *ep);

static inline uint8_t *rdma_ep_send_buf(struct rdma_ep *ep, int slot)
{
	return ep->bufs + (size_t)(RDMA_NR_RECV + slot) * RDMA_MSG_MAX;
}

/* rdma_ep_send - send the first @len bytes of send buffer @slot. 0 or -errno. */
int rdma_ep_send(struct rdma_ep *ep, int slot, size_t len);

/*
 * rdma_ep_read - a one-sided read of one page at @raddr of the peer's memory
 * key @rkey into read buffer @idx (below RDMA_MAX_READ); it is done when
 * reads_pending is 0 again. 0 or -errno. A read the peer refuses (a key it
 * revoked: it fenced us, or its process is going away) fails the queue pair:
 * ep->error is then -EKEYREVOKED.
 */
int rdma_ep_read(struct rdma_ep *ep, int idx, uint64_t raddr, uint32_t rkey);

static inline uint8_t *rdma_ep_read_buf(struct rdma_ep *ep, int idx)
{
	return ep->bufs + (size_t)(RDMA_NR_RECV + RDMA_NR_SEND) * RDMA_MSG_MAX +
	       (size_t)idx * LMP_PAGE;
}

/* rdma_ep_msg - the oldest received message not yet consumed (its length in
 * *@len), or NULL. */
uint8_t *rdma_ep_msg(struct rdma_ep *ep, uint32_t *len);

/* rdma_ep_consume - the oldest message is done with: its buffer is posted again. */
int rdma_ep_consume(struct rdma_ep *ep);

/*
 * rdma_cm_wait - the next event on @ch, which must be @want, within
 * @timeout_ms: 0 (the event acknowledged; a REJECTED one's private data, an
 * int32 -errno from the server, is in *@reject when not NULL), or -errno.
 */
int rdma_cm_wait(struct rdma_event_channel *ch, enum rdma_cm_event_type want, int timeout_ms,
		 int32_t *reject);

/*
 * rdma_why_off - whether this host can use RDMA: 0, or -errno with a
 * sentence in @why (no RDMA device, no connection manager, ...).
 */
int rdma_why_off(char *why, size_t len);

/* rdma_parse_addr - "rdma://HOST:PORT" or "HOST:PORT" into @host and @port. 0 or -EINVAL. */
int rdma_parse_addr(const char *addr, char *host, size_t hostlen, char *port, size_t portlen);

#endif
