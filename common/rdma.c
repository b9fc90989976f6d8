/* rdma.c - RDMA endpoints: queue pair, registered message buffers, completions. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "rdma.h"
#include "util.h"

int rdma_spin_us = RDMA_SPIN_US;

/* wr_id: receive buffers first, then send buffers, then reads */
#define SEND_WR_BASE RDMA_NR_RECV
#define READ_WR_BASE (RDMA_NR_RECV + RDMA_NR_SEND)
#define BUF_BYTES    ((size_t)(RDMA_NR_RECV + RDMA_NR_SEND) * RDMA_MSG_MAX + RDMA_MAX_READ * LMP_PAGE)

static int post_recv(struct rdma_ep *ep, int idx)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)(ep->bufs + (size_t)idx * RDMA_MSG_MAX),
		.length = RDMA_MSG_MAX,
		.lkey = ep->mr->lkey,
	};
	struct ibv_recv_wr wr = {.wr_id = idx, .sg_list = &sge, .num_sge = 1}, *bad;

	return -ibv_post_recv(ep->id->qp, &wr, &bad);
}

int rdma_ep_setup(struct rdma_ep *ep, struct rdma_cm_id *id, struct ibv_pd *pd)
{
	const size_t bytes = BUF_BYTES;
	struct ibv_qp_init_attr qa = {
		.cap = {.max_send_wr = RDMA_NR_SEND + RDMA_MAX_READ,
			.max_recv_wr = RDMA_NR_RECV,
			.max_send_sge = 1,
			.max_recv_sge = 1},
		.qp_type = IBV_QPT_RC,
		.sq_sig_all = 1,
	};
	int ret = -ENOMEM;

	memset(ep, 0, sizeof(*ep));
	ep->id = id;
	ep->own_pd = !pd;
	ep->pd = pd ? pd : ibv_alloc_pd(id->verbs);
	ep->cc = ep->pd ? ibv_create_comp_channel(id->verbs) : NULL;
	ep->cq = ep->cc ? ibv_create_cq(id->verbs, RDMA_NR_RECV + RDMA_NR_SEND + RDMA_MAX_READ, ep,
					ep->cc, 0)
			: NULL;
	if (!ep->cq)
		goto fail;
	fcntl(ep->cc->fd, F_SETFL, fcntl(ep->cc->fd, F_GETFL) | O_NONBLOCK);
	qa.send_cq = qa.recv_cq = ep->cq;
	if (rdma_create_qp(id, ep->pd, &qa)) {
		ret = -errno;
		goto fail;
	}
	ep->bufs = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ep->bufs == MAP_FAILED) {
		ep->bufs = NULL;
		goto fail;
	}
	ep->mr = ibv_reg_mr(ep->pd, ep->bufs, bytes, IBV_ACCESS_LOCAL_WRITE);
	if (!ep->mr) {
		ret = -errno;
		goto fail;
	}
	for (int i = 0; i < RDMA_NR_RECV; i++) {
		ret = post_recv(ep, i);
		if (ret)
			goto fail;
	}
	ret = -ibv_req_notify_cq(ep->cq, 0);
	if (ret)
		goto fail;
	ep->armed = true;
	return 0;
fail:
	rdma_ep_destroy(ep);
	return ret ? ret : -EIO;
}

void rdma_ep_destroy(struct rdma_ep *ep)
{
	if (ep->id && ep->id->qp)
		rdma_destroy_qp(ep->id);
	if (ep->mr)
		ibv_dereg_mr(ep->mr);
	if (ep->bufs)
		munmap(ep->bufs, BUF_BYTES);
	if (ep->cq)
		ibv_destroy_cq(ep->cq);
	if (ep->cc)
		ibv_destroy_comp_channel(ep->cc);
	if (ep->pd && ep->own_pd)
		ibv_dealloc_pd(ep->pd);
	ep->mr = NULL;
	ep->bufs = NULL;
	ep->cq = NULL;
	ep->cc = NULL;
	ep->pd = NULL;
}

/* Take what the completion queue holds: the number of completions, or ep->error. */
static int poll_cq(struct rdma_ep *ep)
{
	struct ibv_wc wc[8];
	int n, total = 0;

	while ((n = ibv_poll_cq(ep->cq, 8, wc)) > 0) {
		for (int i = 0; i < n; i++) {
			if (wc[i].wr_id >= READ_WR_BASE)
				ep->reads_pending--;
			if (wc[i].status != IBV_WC_SUCCESS) {
				/* flushed: the peer went away, or we shut the queue pair down;
				 * a read refused: the key is gone (a newer placement fenced
				 * us, or the server's process is being torn down) */
				if (!ep->error)
					ep->error = wc[i].status == IBV_WC_WR_FLUSH_ERR
							    ? -ECONNRESET
						    : wc[i].status == IBV_WC_REM_ACCESS_ERR
							    ? -EKEYREVOKED
							    : -EIO;
				continue;
			}
			if (wc[i].wr_id >= READ_WR_BASE) {
				continue;
			} else if (wc[i].wr_id >= SEND_WR_BASE) {
				ep->send_busy[wc[i].wr_id - SEND_WR_BASE] = false;
			} else {
				int tail = (ep->recv_head + ep->recv_count) % RDMA_NR_RECV;

				ep->recv_q[tail] = (uint8_t)wc[i].wr_id;
				ep->recv_len[tail] = wc[i].byte_len;
				ep->recv_count++;
			}
		}
		total += n;
	}
	if (n < 0 && !ep->error)
		ep->error = -EIO;
	return ep->error ? ep->error : total;
}

int rdma_ep_drain(struct rdma_ep *ep)
{
	struct ibv_cq *cq;
	void *ctx;
	int n;

	/* the event that woke us (if any) is taken, the queue armed again, then polled:
	 * what completes after the poll raises a new event */
	while (ibv_get_cq_event(ep->cc, &cq, &ctx) == 0) {
		ibv_ack_cq_events(cq, 1);
		ep->armed = false;
	}
	n = poll_cq(ep);
	if (n < 0)
		return n;
	if (!ep->armed) {
		if (ibv_req_notify_cq(ep->cq, 0))
			return ep->error = -EIO;
		ep->armed = true;
		int m = poll_cq(ep);

		n = m < 0 ? m : n + m;
	}
	return n;
}

/* The connection's own events: the peer hung up (or the device went) is an error now. */
static void cm_watch(struct rdma_ep *ep)
{
	struct rdma_cm_event *ev;

	while (rdma_get_cm_event(ep->cm_ch, &ev) == 0) {
		if (ev->event == RDMA_CM_EVENT_DISCONNECTED ||
		    ev->event == RDMA_CM_EVENT_DEVICE_REMOVAL)
			if (!ep->error)
				ep->error = -ECONNRESET;
		rdma_ack_cm_event(ev);
	}
}

int rdma_ep_wait(struct rdma_ep *ep, int timeout_ms)
{
	uint64_t spin_end = now_ns() + (uint64_t)rdma_spin_us * 1000;
	uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : now_ns() + (uint64_t)timeout_ms * 1000000;
	int n;

	/* poll first, for a bounded time: no wake-up when the answer is quick */
	while (rdma_spin_us > 0) {
		n = poll_cq(ep);
		if (n) {
			ep->spins += n > 0;
			return n;
		}
		if (now_ns() >= spin_end)
			break;
	}
	for (;;) {
		struct pollfd pfd[2] = {{.fd = ep->cc->fd, .events = POLLIN},
					{.fd = ep->cm_ch ? ep->cm_ch->fd : -1, .events = POLLIN}};
		uint64_t now;
		int left;

		n = rdma_ep_drain(ep);
		if (n) {
			ep->sleeps += n > 0;
			return n;
		}
		now = now_ns();
		if (now >= deadline)
			return 0;
		left = deadline == UINT64_MAX ? -1 : (int)((deadline - now + 999999) / 1000000);
		if (poll(pfd, 2, left) < 0 && errno != EINTR)
			return -errno;
		if (pfd[1].revents)
			cm_watch(ep);
	}
}

int rdma_ep_send_slot(struct rdma_ep *ep)
{
	for (int i = 0; i < RDMA_NR_SEND; i++)
		if (!ep->send_busy[i])
			return i;
	return -1;
}

int rdma_ep_send(struct rdma_ep *ep, int slot, size_t len)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)rdma_ep_send_buf(ep, slot),
		.length = (uint32_t)len,
		.lkey = ep->mr->lkey,
	};
	struct ibv_send_wr wr =
				   {
					   .wr_id = SEND_WR_BASE + slot,
					   .sg_list = &sge,
					   .num_sge = 1,
					   .opcode = IBV_WR_SEND,
					   .send_flags = IBV_SEND_SIGNALED,
				   },
			   *bad;
	int ret;

	if (ep->error)
		return ep->error;
	ret = -ibv_post_send(ep->id->qp, &wr, &bad);
	if (!ret)
		ep->send_busy[slot] = true;
	return ret;
}

int rdma_ep_read(struct rdma_ep *ep, int idx, uint64_t raddr, uint32_t rkey)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)rdma_ep_read_buf(ep, idx),
		.length = LMP_PAGE,
		.lkey = ep->mr->lkey,
	};
	struct ibv_send_wr wr = {.wr_id = READ_WR_BASE + idx,
				 .sg_list = &sge,
				 .num_sge = 1,
				 .opcode = IBV_WR_RDMA_READ,
				 .send_flags = IBV_SEND_SIGNALED,
				 .wr.rdma = {.remote_addr = raddr, .rkey = rkey}},
			   *bad;
	int ret;

	if (ep->error)
		return ep->error;
	ret = -ibv_post_send(ep->id->qp, &wr, &bad);
	if (!ret)
		ep->reads_pending++;
	return ret;
}

uint8_t *rdma_ep_msg(struct rdma_ep *ep, uint32_t *len)
{
	int idx;

	if (!ep->recv_count)
		return NULL;
	idx = ep->recv_q[ep->recv_head];
	*len = ep->recv_len[ep->recv_head];
	return ep->bufs + (size_t)idx * RDMA_MSG_MAX;
}

int rdma_ep_consume(struct rdma_ep *ep)
{
	int idx = ep->recv_q[ep->recv_head];

	ep->recv_head = (ep->recv_head + 1) % RDMA_NR_RECV;
	ep->recv_count--;
	return ep->error ? ep->error : post_recv(ep, idx);
}

int rdma_cm_wait(struct rdma_event_channel *ch, enum rdma_cm_event_type want, int timeout_ms,
		 int32_t *reject)
{
	struct pollfd pfd = {.fd = ch->fd, .events = POLLIN};
	struct rdma_cm_event *ev;
	int n, got, status;

	do
		n = poll(&pfd, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return n < 0 ? -errno : -ETIMEDOUT;
	if (rdma_get_cm_event(ch, &ev))
		return -errno;
	got = ev->event;
	status = ev->status;
	if (got == RDMA_CM_EVENT_REJECTED && reject) {
		*reject = -ECONNREFUSED;
		if (ev->param.conn.private_data && ev->param.conn.private_data_len >= 4)
			memcpy(reject, ev->param.conn.private_data, sizeof(*reject));
	}
	rdma_ack_cm_event(ev);
	if (got == (int)want)
		return 0;
	switch (got) {
	case RDMA_CM_EVENT_REJECTED:
		return -ECONNREFUSED;
	case RDMA_CM_EVENT_ADDR_ERROR:
	case RDMA_CM_EVENT_ROUTE_ERROR:
	case RDMA_CM_EVENT_UNREACHABLE:
		return status < 0 ? status : -EHOSTUNREACH;
	case RDMA_CM_EVENT_CONNECT_ERROR:
		return -ECONNREFUSED;
	default:
		return -EPROTO;
	}
}

int rdma_why_off(char *why, size_t len)
{
	struct ibv_device **devs;
	int n = 0;

	if (access("/dev/infiniband/rdma_cm", R_OK | W_OK)) {
		snprintf(why, len,
			 "no RDMA connection manager (/dev/infiniband/rdma_cm: %s; the rdma_ucm "
			 "module is not loaded, or this host has no RDMA device)",
			 strerror(errno));
		return -ENODEV;
	}
	devs = ibv_get_device_list(&n);
	if (devs)
		ibv_free_device_list(devs);
	if (n <= 0) {
		snprintf(why, len,
			 "no RDMA device (ibv_get_device_list found none: no adapter, and no "
			 "soft-RoCE link: rdma link add rxe0 type rxe netdev IFACE)");
		return -ENODEV;
	}
	return 0;
}

int rdma_parse_addr(const char *addr, char *host, size_t hostlen, char *port, size_t portlen)
{
	const char *a = strncmp(addr, "rdma://", 7) == 0 ? addr + 7 : addr;
	const char *colon = strrchr(a, ':');

	if (!colon || colon == a || (size_t)(colon - a) >= hostlen || !colon[1] ||
	    strlen(colon + 1) >= portlen)
		return -EINVAL;
	memcpy(host, a, colon - a);
	host[colon - a] = '\0';
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	strcpy(port, colon + 1);
	for (const char *p = port; *p; p++)
		if (*p < '0' || *p > '9')
			return -EINVAL;
	return 0;
}
