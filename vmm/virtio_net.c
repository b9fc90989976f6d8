/*
 * virtio_net.c - virtio-net: frames between the guest's queues and a
 * network backend (net.h), each with its virtio-net header, so that
 * checksum and segmentation offloads pass through. Transmit runs on the
 * transport's thread at each kick. Receive has a thread of its own: it
 * waits for a frame from the backend and for buffers from the guest, and
 * copies each frame into one buffer, or into several with MRG_RXBUF. A
 * malformed chain or an oversized frame is the guest's error: the device
 * asks for a reset. A backend that fails (its TAP deleted) is said once in
 * the status; the guest goes on, its frames dropped.
 */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "util.h"
#include "virtio_net.h"
#include "virtio_pci.h"
#include "sandbox.h"

/* Feature bits and the status of virtio 1.2, 5.1.3 (linux/virtio_net.h defines
 * VIRTIO_F_VERSION_1 otherwise than virtio_pci.h does: not included). */
#define VIRTIO_NET_F_CSUM	0
#define VIRTIO_NET_F_GUEST_CSUM 1
#define VIRTIO_NET_F_MAC	5
#define VIRTIO_NET_F_GUEST_TSO4 7
#define VIRTIO_NET_F_GUEST_TSO6 8
#define VIRTIO_NET_F_GUEST_ECN	9
#define VIRTIO_NET_F_HOST_TSO4	11
#define VIRTIO_NET_F_HOST_TSO6	12
#define VIRTIO_NET_F_HOST_ECN	13
#define VIRTIO_NET_F_MRG_RXBUF	15
#define VIRTIO_NET_F_STATUS	16
#define VIRTIO_NET_S_LINK_UP	1

#define Q_RX	    0
#define Q_TX	    1
#define RX_MAX_BUFS 64 /* merged buffers for one frame */

#define F(bit) (1ULL << (bit))
#define NET_FEATURES                                                                               \
	(F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_MAC) |                 \
	 F(VIRTIO_NET_F_GUEST_TSO4) | F(VIRTIO_NET_F_GUEST_TSO6) | F(VIRTIO_NET_F_GUEST_ECN) |     \
	 F(VIRTIO_NET_F_HOST_TSO4) | F(VIRTIO_NET_F_HOST_TSO6) | F(VIRTIO_NET_F_HOST_ECN) |        \
	 F(VIRTIO_NET_F_MRG_RXBUF) | F(VIRTIO_NET_F_STATUS))

struct virtio_net {
	struct virtio_dev vd;
	struct net_backend *be;
	uint8_t mac[6];
	bool mrg; /* MRG_RXBUF negotiated */
	pthread_t rx_thread;
	bool rx_started;
	int rx_wake; /* eventfd: buffers added, the device reset or ready, or stop */
	atomic_bool stopping;
	pthread_mutex_t rx_lock; /* the receive queue and the frame below */
	uint8_t *frame;		 /* read from the backend, waiting for buffers */
	size_t frame_len;	 /* 0: none */
	struct virtq_req *reqs;	 /* RX_MAX_BUFS chains of one frame */
	struct iovec *tx_iov;
	pthread_mutex_t err_lock;
	char error[160]; /* the backend failed: why ("" while it works) */
	_Atomic bool be_dead;
	struct virtio_net_stats st;
};

static struct virtio_net *to_net(struct virtio_dev *vd)
{
	return container_of(vd, struct virtio_net, vd);
}

static uint64_t net_features(struct virtio_dev *vd)
{
	(void)vd;
	return NET_FEATURES;
}

static void net_config(struct virtio_dev *vd, uint32_t off, void *data, uint32_t len, bool is_write)
{
	struct virtio_net *n = to_net(vd);
	uint8_t cfg[12] = {0};
	uint16_t status = n->be_dead ? 0 : VIRTIO_NET_S_LINK_UP, pairs = 1;

	if (is_write)
		return; /* the MAC is the host's to choose (no CTRL_MAC_ADDR) */
	memcpy(cfg, n->mac, 6);
	memcpy(cfg + 6, &status, 2);
	memcpy(cfg + 8, &pairs, 2);
	memcpy(data, cfg + off, len);
}

/* The backend failed: said once, and from now on frames are dropped. */
static void backend_failed(struct virtio_net *n, const char *what, int err)
{
	pthread_mutex_lock(&n->err_lock);
	if (!n->error[0]) {
		snprintf(n->error, sizeof(n->error), "%s: %s %s: the link is down", n->be->name,
			 what, strerror(-err));
		log_warn("virtio-net: %s; the guest goes on without it", n->error);
	}
	n->be_dead = true;
	pthread_mutex_unlock(&n->err_lock);
}

/* ---- transmit: on the transport's thread ---- */

static void net_tx(struct virtio_net *n)
{
	struct virtio_dev *vd = &n->vd;
	struct virtq_req *vr = malloc(sizeof(*vr));
	const char *why = NULL;
	bool used = false;
	int ret;

	if (!vr)
		return;
	while ((ret = virtq_pop(&vd->vq[Q_TX], vr, &why)) == 1) {
		size_t len = 0;

		for (int i = 0; i < vr->nr_segs && !why; i++) {
			if (vr->segs[i].write)
				why = "a transmit buffer the device would write";
			n->tx_iov[i] = (struct iovec){vr->segs[i].hva, vr->segs[i].len};
			len += vr->segs[i].len;
		}
		if (!why && len < NET_HDR_LEN)
			why = "a frame shorter than its virtio-net header";
		else if (!why && len > NET_FRAME_MAX)
			why = "a frame larger than 64 KiB and its headers";
		if (why) {
			virtio_fail(vd, why);
			break;
		}
		if (!n->be_dead) {
			ret = n->be->ops->send(n->be, n->tx_iov, vr->nr_segs);
			if (ret == -EINVAL || ret == -ENOBUFS || ret == -EAGAIN) {
				n->st.tx_dropped++; /* a frame the host's stack refused */
			} else if (ret) {
				backend_failed(n, "sending", ret);
			} else {
				n->st.tx_frames++;
				n->st.tx_bytes += len - NET_HDR_LEN;
			}
		} else {
			n->st.tx_dropped++;
		}
		virtq_push(&vd->vq[Q_TX], vr->head, 0);
		used = true;
	}
	if (ret < 0)
		virtio_fail(vd, why);
	if (used)
		virtio_used(vd, Q_TX);
	free(vr);
}

static void net_notify(struct virtio_dev *vd, int q)
{
	struct virtio_net *n = to_net(vd);
	uint64_t one = 1;

	if (q == Q_TX)
		net_tx(n);
	else if (write(n->rx_wake, &one, sizeof(one)) < 0) /* buffers for a waiting frame */
		log_warn("virtio-net: cannot wake the receiver: %s", strerror(errno));
}

/* ---- receive: on the receiver's thread ---- */

enum rx_result { RX_DONE, RX_NO_BUFFERS, RX_BROKEN };

/*
 * Deliver the waiting frame: pop chains until they hold it (one chain
 * without MRG_RXBUF), then copy it in and return them. Called with rx_lock.
 */
static enum rx_result rx_deliver(struct virtio_net *n, const char **why)
{
	struct virtq *vq = &n->vd.vq[Q_RX];
	uint32_t lens[RX_MAX_BUFS];
	size_t room = 0, off = 0;
	uint16_t nbufs = 0;
	int ret;

	while (room < n->frame_len) {
		struct virtq_req *vr = &n->reqs[nbufs];
		size_t chain = 0;

		if (nbufs == (n->mrg ? RX_MAX_BUFS : 1)) {
			/* the guest's buffers cannot hold it: the frame goes, they stay */
			virtq_unpop(vq, nbufs);
			n->st.rx_dropped++;
			n->frame_len = 0;
			return RX_DONE;
		}
		ret = virtq_pop(vq, vr, why);
		if (ret < 0)
			return RX_BROKEN;
		if (ret == 0) {
			virtq_unpop(vq, nbufs);
			return RX_NO_BUFFERS;
		}
		for (int i = 0; i < vr->nr_segs; i++) {
			if (!vr->segs[i].write) {
				*why = "a receive buffer the device may not write";
				return RX_BROKEN;
			}
			chain += vr->segs[i].len;
		}
		if (chain < NET_HDR_LEN && nbufs == 0) {
			*why = "a receive buffer smaller than the virtio-net header";
			return RX_BROKEN;
		}
		room += chain;
		nbufs++;
	}
	memcpy(n->frame + 10, &nbufs, 2); /* num_buffers, in the header's last field */
	for (uint16_t b = 0; b < nbufs; b++) {
		struct virtq_req *vr = &n->reqs[b];

		lens[b] = 0;
		for (int i = 0; i < vr->nr_segs && off < n->frame_len; i++) {
			size_t k = n->frame_len - off < vr->segs[i].len ? n->frame_len - off
									: vr->segs[i].len;

			memcpy(vr->segs[i].hva, n->frame + off, k);
			off += k;
			lens[b] += (uint32_t)k;
		}
	}
	for (uint16_t b = 0; b < nbufs; b++)
		virtq_push(vq, n->reqs[b].head, lens[b]);
	n->st.rx_frames++;
	n->st.rx_bytes += n->frame_len - NET_HDR_LEN;
	n->frame_len = 0;
	return RX_DONE;
}

/*
 * Move what can be moved: read frames from the backend while the guest has
 * buffers for them. Returns whether any buffer was used; *@why set if the
 * guest broke the queue. Called with rx_lock.
 */
static bool rx_pump(struct virtio_net *n, const char **why)
{
	struct virtio_dev *vd = &n->vd;
	bool ready = (vd->status & VIRTIO_STATUS_DRIVER_OK) &&
		     !(vd->status & VIRTIO_STATUS_NEEDS_RESET) && vd->vq[Q_RX].ready;
	bool used = false;

	if (vd->quiesced)
		return false; /* at rest: frames wait in the backend meanwhile */
	for (int budget = 256; budget > 0 && !n->be_dead; budget--) {
		if (!n->frame_len) {
			ssize_t got = n->be->ops->recv(n->be, n->frame, NET_FRAME_MAX);

			if (got == -EAGAIN)
				break;
			if (got < 0) {
				backend_failed(n, "receiving", (int)got);
				break;
			}
			if (got < NET_HDR_LEN)
				continue;
			n->frame_len = (size_t)got;
		}
		if (!ready) { /* no driver to take it: the wire drops it */
			n->st.rx_dropped++;
			n->frame_len = 0;
			continue;
		}
		switch (rx_deliver(n, why)) {
		case RX_DONE:
			used = true;
			continue;
		case RX_NO_BUFFERS:
			return used;
		case RX_BROKEN:
			n->frame_len = 0;
			return used;
		}
	}
	return used;
}

static void *rx_main(void *arg)
{
	struct virtio_net *n = arg;

	sandbox_enter(SB_DEVICE, "net-rx");
	while (!n->stopping) {
		/* the backend is watched only while nothing waits for buffers */
		bool idle = n->frame_len || n->be_dead || n->vd.quiesced;
		struct pollfd pfd[2] = {{.fd = n->rx_wake, .events = POLLIN},
					{.fd = idle ? -1 : n->be->fd, .events = POLLIN}};
		const char *why = NULL;
		uint64_t cnt;
		bool used;

		if (poll(pfd, 2, 1000) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents && read(n->rx_wake, &cnt, sizeof(cnt)) < 0)
			continue;
		if (n->stopping)
			break;
		pthread_mutex_lock(&n->rx_lock);
		used = rx_pump(n, &why);
		pthread_mutex_unlock(&n->rx_lock);
		/* outside rx_lock: both take the transport's lock, which a reset holds */
		if (why)
			virtio_fail(&n->vd, why);
		if (used)
			virtio_used(&n->vd, Q_RX);
	}
	return NULL;
}

static void wake_rx(struct virtio_net *n)
{
	uint64_t one = 1;

	if (write(n->rx_wake, &one, sizeof(one)) < 0)
		log_warn("virtio-net: cannot wake the receiver: %s", strerror(errno));
}

static void net_driver_ok(struct virtio_dev *vd, uint64_t features)
{
	struct virtio_net *n = to_net(vd);
	unsigned rx = (features & F(VIRTIO_NET_F_GUEST_CSUM) ? NET_RX_CSUM : 0) |
		      (features & F(VIRTIO_NET_F_GUEST_TSO4) ? NET_RX_TSO4 : 0) |
		      (features & F(VIRTIO_NET_F_GUEST_TSO6) ? NET_RX_TSO6 : 0) |
		      (features & F(VIRTIO_NET_F_GUEST_ECN) ? NET_RX_ECN : 0);
	int ret;

	n->mrg = features & F(VIRTIO_NET_F_MRG_RXBUF);
	if (!n->be_dead && (ret = n->be->ops->offloads(n->be, rx)))
		log_warn("virtio-net: %s takes no offloads (%s): frames come whole", n->be->name,
			 strerror(-ret));
	wake_rx(n);
}

static void net_reset(struct virtio_dev *vd)
{
	struct virtio_net *n = to_net(vd);

	/* The receiver lets go of the queue; a frame it held is dropped. */
	pthread_mutex_lock(&n->rx_lock);
	if (n->frame_len)
		n->st.rx_dropped++;
	n->frame_len = 0;
	n->mrg = false;
	if (!n->be_dead)
		n->be->ops->offloads(n->be, 0);
	pthread_mutex_unlock(&n->rx_lock);
}

/* The receiver is out of rx_pump, and stays out while the transport is quiesced. */
static void net_quiesce(struct virtio_dev *vd)
{
	struct virtio_net *n = to_net(vd);

	pthread_mutex_lock(&n->rx_lock);
	pthread_mutex_unlock(&n->rx_lock);
}

static void net_unquiesce(struct virtio_dev *vd)
{
	wake_rx(to_net(vd));
}

static const struct virtio_dev_ops net_ops = {
	.name = "virtio-net",
	.device_type = 1,
	.pci_class = 0x020000,
	.nr_queues = 2,
	.config_len = 12,
	.features = net_features,
	.config = net_config,
	.notify = net_notify,
	.driver_ok = net_driver_ok,
	.reset = net_reset,
	.quiesce = net_quiesce,
	.unquiesce = net_unquiesce,
};

struct virtio_net *virtio_net_create(struct vm *vm, struct pci *pci, struct net_backend *backend,
				     const uint8_t mac[6])
{
	struct virtio_net *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->be = backend;
	memcpy(n->mac, mac, 6);
	n->frame = malloc(NET_FRAME_MAX);
	n->reqs = calloc(RX_MAX_BUFS, sizeof(*n->reqs));
	n->tx_iov = calloc(VIRTQ_MAX_SEGS, sizeof(*n->tx_iov));
	n->rx_wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	pthread_mutex_init(&n->rx_lock, NULL);
	pthread_mutex_init(&n->err_lock, NULL);
	if (!n->frame || !n->reqs || !n->tx_iov || n->rx_wake < 0 ||
	    virtio_pci_init(&n->vd, vm, pci, &net_ops)) {
		log_err("cannot add a virtio-net device for %s", backend->name);
		goto fail;
	}
	if (pthread_create(&n->rx_thread, NULL, rx_main, n)) {
		virtio_pci_exit(&n->vd);
		goto fail;
	}
	n->rx_started = true;
	return n;
fail:
	if (n->rx_wake >= 0)
		close(n->rx_wake);
	free(n->frame);
	free(n->reqs);
	free(n->tx_iov);
	free(n);
	return NULL;
}

void virtio_net_destroy(struct virtio_net *n)
{
	if (!n)
		return;
	n->stopping = true;
	wake_rx(n);
	if (n->rx_started)
		pthread_join(n->rx_thread, NULL);
	virtio_pci_exit(&n->vd);
	n->be->ops->close(n->be);
	close(n->rx_wake);
	pthread_mutex_destroy(&n->rx_lock);
	pthread_mutex_destroy(&n->err_lock);
	free(n->frame);
	free(n->reqs);
	free(n->tx_iov);
	free(n);
}

struct virtio_dev *virtio_net_dev(struct virtio_net *n)
{
	return &n->vd;
}

void virtio_net_stats(struct virtio_net *n, struct virtio_net_stats *st, char *error, size_t len)
{
	*st = n->st;
	pthread_mutex_lock(&n->err_lock);
	snprintf(error, len, "%s", n->error);
	pthread_mutex_unlock(&n->err_lock);
}
