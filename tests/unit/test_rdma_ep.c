/*
 * test_rdma_ep.c - common/rdma.c's endpoint against a fake completion queue
 * and queue pair (the verbs' inline calls go through the context's ops, which
 * the test provides): messages in arrival order whatever buffers they land
 * in, send buffers freed by their completions, one-sided reads counted, and
 * failed completions mapped to what the transport's users act on. Needs no
 * RDMA device: runs everywhere.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rdma.h"
#include "test.h"

static struct ibv_wc cq_q[64];
static int cq_n;
static uint64_t recv_posted[64], send_posted[64];
static struct ibv_send_wr last_send;
static int nr_recv, nr_send;

static int fake_poll(struct ibv_cq *cq, int n, struct ibv_wc *wc)
{
	int k = cq_n < n ? cq_n : n;

	(void)cq;
	memcpy(wc, cq_q, k * sizeof(*wc));
	memmove(cq_q, cq_q + k, (cq_n - k) * sizeof(*wc));
	cq_n -= k;
	return k;
}

static int fake_post_recv(struct ibv_qp *qp, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad)
{
	(void)qp, (void)bad;
	recv_posted[nr_recv++] = wr->wr_id;
	return 0;
}

static int fake_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr, struct ibv_send_wr **bad)
{
	(void)qp, (void)bad;
	send_posted[nr_send++] = wr->wr_id;
	last_send = *wr;
	return 0;
}

static void complete(uint64_t wr_id, enum ibv_wc_status status, uint32_t len)
{
	cq_q[cq_n++] = (struct ibv_wc){.wr_id = wr_id, .status = status, .byte_len = len};
}

static struct ibv_context ctx;
static struct ibv_cq cq = {.context = &ctx};
static struct ibv_qp qp = {.context = &ctx};
static struct rdma_cm_id id = {.qp = &qp};
static struct ibv_mr mr = {.lkey = 7};

/* An endpoint as rdma_ep_setup leaves it, on the fakes. */
static void fake_ep(struct rdma_ep *ep)
{
	size_t bytes = (size_t)(RDMA_NR_RECV + RDMA_NR_SEND) * RDMA_MSG_MAX +
		       (size_t)RDMA_MAX_READ * LMP_PAGE;

	ctx.ops.poll_cq = fake_poll;
	ctx.ops.post_recv = fake_post_recv;
	ctx.ops.post_send = fake_post_send;
	memset(ep, 0, sizeof(*ep));
	ep->id = &id;
	ep->cq = &cq;
	ep->mr = &mr;
	ep->bufs = calloc(1, bytes);
	ASSERT(ep->bufs);
	cq_n = nr_recv = nr_send = 0;
	rdma_spin_us = 1000000; /* the wait finds what is queued while it polls */
}

TEST(messages_come_in_arrival_order_and_their_buffers_are_posted_again)
{
	struct rdma_ep ep;
	uint32_t len;
	uint8_t *m;

	fake_ep(&ep);
	ASSERT(rdma_ep_msg(&ep, &len) == NULL);
	/* the second buffer filled first, then the fourth */
	memcpy(ep.bufs + 1 * RDMA_MSG_MAX, "first", 5);
	memcpy(ep.bufs + 3 * RDMA_MSG_MAX, "second", 6);
	complete(1, IBV_WC_SUCCESS, 5);
	complete(3, IBV_WC_SUCCESS, 6);
	ASSERT_EQ(rdma_ep_wait(&ep, 0), 2);
	m = rdma_ep_msg(&ep, &len);
	ASSERT(m && len == 5 && !memcmp(m, "first", 5));
	ASSERT_EQ(rdma_ep_consume(&ep), 0);
	ASSERT_EQ(nr_recv, 1);
	ASSERT_EQ(recv_posted[0], 1); /* its buffer, posted again */
	m = rdma_ep_msg(&ep, &len);
	ASSERT(m && len == 6 && !memcmp(m, "second", 6));
	ASSERT_EQ(rdma_ep_consume(&ep), 0);
	ASSERT_EQ(recv_posted[1], 3);
	ASSERT(rdma_ep_msg(&ep, &len) == NULL);
	free(ep.bufs);
}

TEST(send_buffers_are_busy_until_their_completion)
{
	struct rdma_ep ep;
	int slot;

	fake_ep(&ep);
	for (int i = 0; i < RDMA_NR_SEND; i++) {
		slot = rdma_ep_send_slot(&ep);
		ASSERT_EQ(slot, i);
		ASSERT_EQ(rdma_ep_send(&ep, slot, 32), 0);
		ASSERT_EQ(last_send.opcode, IBV_WR_SEND);
		ASSERT_EQ(last_send.sg_list->length, 32);
		ASSERT(last_send.sg_list->addr == (uintptr_t)rdma_ep_send_buf(&ep, slot));
	}
	ASSERT_EQ(rdma_ep_send_slot(&ep), -1); /* all in flight */
	complete(send_posted[2], IBV_WC_SUCCESS, 0);
	ASSERT_EQ(rdma_ep_wait(&ep, 0), 1);
	ASSERT_EQ(rdma_ep_send_slot(&ep), 2);
	free(ep.bufs);
}

TEST(one_sided_reads_are_counted_until_they_complete)
{
	struct rdma_ep ep;

	fake_ep(&ep);
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(rdma_ep_read(&ep, i, 0x1000 * (i + 1), 0xabc0 + i), 0);
		ASSERT_EQ(last_send.opcode, IBV_WR_RDMA_READ);
		ASSERT_EQ(last_send.wr.rdma.remote_addr, 0x1000 * (i + 1));
		ASSERT_EQ(last_send.wr.rdma.rkey, 0xabc0 + i);
		ASSERT_EQ(last_send.sg_list->length, LMP_PAGE);
		ASSERT(last_send.sg_list->addr == (uintptr_t)rdma_ep_read_buf(&ep, i));
	}
	ASSERT_EQ(ep.reads_pending, 3);
	complete(send_posted[0], IBV_WC_SUCCESS, LMP_PAGE);
	complete(send_posted[2], IBV_WC_SUCCESS, LMP_PAGE);
	ASSERT_EQ(rdma_ep_wait(&ep, 0), 2);
	ASSERT_EQ(ep.reads_pending, 1);
	ASSERT(rdma_ep_msg(&ep, &(uint32_t){0}) == NULL); /* a read is not a message */
	complete(send_posted[1], IBV_WC_SUCCESS, LMP_PAGE);
	ASSERT_EQ(rdma_ep_wait(&ep, 0), 1);
	ASSERT_EQ(ep.reads_pending, 0);
	free(ep.bufs);
}

TEST(a_refused_read_is_a_revoked_key_and_a_flush_a_reset)
{
	struct rdma_ep ep;

	fake_ep(&ep);
	ASSERT_EQ(rdma_ep_read(&ep, 0, 0x1000, 1), 0);
	ASSERT_EQ(rdma_ep_read(&ep, 1, 0x2000, 1), 0);
	complete(send_posted[0], IBV_WC_REM_ACCESS_ERR, 0);
	complete(send_posted[1], IBV_WC_WR_FLUSH_ERR, 0); /* what follows in the failed pair */
	ASSERT_EQ(rdma_ep_wait(&ep, 0), -EKEYREVOKED);
	ASSERT_EQ(ep.reads_pending, 0); /* both accounted for: their buffers are free */
	ASSERT_EQ(rdma_ep_send(&ep, 0, 8), -EKEYREVOKED); /* nothing is posted after */
	ASSERT_EQ(nr_send, 2);
	ASSERT_EQ(rdma_ep_consume(&(struct rdma_ep){.error = -EKEYREVOKED, .recv_count = 1}),
		  -EKEYREVOKED);
	free(ep.bufs);

	fake_ep(&ep); /* the peer went away: everything posted is flushed */
	complete(2, IBV_WC_WR_FLUSH_ERR, 0);
	ASSERT_EQ(rdma_ep_wait(&ep, 0), -ECONNRESET);
	free(ep.bufs);
}
