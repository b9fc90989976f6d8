/*
 * rdma.c - lego-memsrv's RDMA listener: the same requests as over TCP
 * (memsrv_handle), each a SEND on a reliable-connected queue pair, served by
 * one thread, and one-sided reads of a vNode's pages: LMP_LOCATE answers
 * where each page is, registering the chunk that holds it (chunks.c: a
 * chunk holds one vNode's pages only) in the listener's protection domain
 * for remote reads, under a key that is the vNode's and no other's. Keys are
 * revoked (the regions deregistered) when a newer placement takes the vNode
 * or it is released: a fenced client's reads then fail at the device.
 *
 * A connection continues a session that authenticated over TCP
 * (TLS and HELLO, with the credential for its vNode): that session asked for
 * a ticket (LMP_RDMA_TICKET), and the RDMA connection presents it in its
 * connection request. A ticket is good once, for RDMA_TICKET_MS; without one
 * (or with one spent or expired) the connection is rejected with -EACCES.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include "log.h"
#include "memsrv.h"
#include "rdma.h"
#include "util.h"

#define RDMA_TICKET_MS 10000
#define NR_TICKETS     64
#define MAX_RCONNS     256

struct rticket {
	uint8_t t[RDMA_TICKET_LEN];
	struct store_vnode *vn; /* held (a reference) while the ticket is good */
	uint64_t vnode_id, epoch, expires_ms;
};

struct rconn {
	struct rdma_ep ep;
	struct memsrv_session ss;
	struct rvnode *rv; /* the domain its queue pair is in */
	bool closing;	   /* a malformed message: disconnect once the error is sent */
	struct rconn *next;
};

/*
 * What is exposed of a vNode at its current placement (vn->rdma): a
 * protection domain of its own, which its connections' queue pairs and its
 * chunks' regions are in (a key is worthless on any other queue pair,
 * guessed or not), and a region per chunk of the pool it owns. A newer
 * placement gets a new one: the older one's regions are deregistered at
 * once (its clients' reads fail), and it goes with its last connection.
 */
struct rvnode {
	struct ibv_pd *pd;
	uint32_t nconns, nr_registered;
	struct ibv_mr *mr[]; /* per chunk of the store; NULL: not registered */
};

struct memsrv_rdma {
	struct memsrv *m;
	struct rdma_event_channel *ch;
	struct rdma_cm_id *listen;
	struct ibv_context *verbs; /* the device (one) */
	char addr[160];		   /* rdma://HOST:PORT */
	uint16_t port;
	int stop_fd;
	pthread_t thread;
	bool thread_started;
	struct rticket tickets[NR_TICKETS]; /* under m->lock */
	struct rconn *conns;
	int nr_conns;
	uint64_t nr_accepted, nr_rejected;
};

/* Drop expired tickets (m->lock held). */
static void tickets_sweep(struct memsrv_rdma *r)
{
	uint64_t now = mono_ms();

	for (int i = 0; i < NR_TICKETS; i++) {
		struct rticket *t = &r->tickets[i];

		if (t->vn && t->expires_ms <= now) {
			store_detach(&r->m->store, t->vn);
			t->vn = NULL;
		}
	}
}

int memsrv_rdma_ticket(struct memsrv *m, struct memsrv_session *ss, uint8_t *ticket, uint16_t *port)
{
	struct memsrv_rdma *r = m->rdma;
	struct rticket *t = NULL;

	if (!r)
		return -EOPNOTSUPP;
	tickets_sweep(r);
	for (int i = 0; i < NR_TICKETS && !t; i++)
		if (!r->tickets[i].vn)
			t = &r->tickets[i];
	if (!t)
		return -EBUSY; /* NR_TICKETS connections being made within RDMA_TICKET_MS */
	if (getrandom(t->t, sizeof(t->t), 0) != sizeof(t->t))
		return -EIO;
	t->vn = ss->vn;
	t->vn->refs++;
	t->vnode_id = ss->vnode_id;
	t->epoch = ss->epoch;
	t->expires_ms = mono_ms() + RDMA_TICKET_MS;
	memcpy(ticket, t->t, RDMA_TICKET_LEN);
	*port = r->port;
	return 0;
}

/* The session the ticket in @pd continues, the ticket spent; -EACCES if none. */
static int ticket_take(struct memsrv_rdma *r, const void *pd, size_t len, struct memsrv_session *ss)
{
	int ret = -EACCES;

	if (!pd || len < RDMA_TICKET_LEN)
		return ret;
	pthread_mutex_lock(&r->m->lock);
	tickets_sweep(r);
	for (int i = 0; i < NR_TICKETS; i++) {
		struct rticket *t = &r->tickets[i];

		if (t->vn && lmp_token_equal(t->t, pd)) {
			*ss = (struct memsrv_session){
				.vn = t->vn, .vnode_id = t->vnode_id, .epoch = t->epoch};
			t->vn = NULL; /* its reference goes to the session */
			ret = 0;
			break;
		}
	}
	pthread_mutex_unlock(&r->m->lock);
	return ret;
}

/* @vn's exposure, made with its protection domain on first use (m->lock held). */
static struct rvnode *rv_get(struct memsrv_rdma *r, struct store_vnode *vn)
{
	struct rvnode *rv = vn->rdma;

	if (rv)
		return rv;
	rv = calloc(1, sizeof(*rv) + r->m->store.nr_chunks * sizeof(rv->mr[0]));
	if (rv)
		rv->pd = ibv_alloc_pd(r->verbs);
	if (!rv || !rv->pd) {
		free(rv);
		return NULL;
	}
	vn->rdma = rv;
	return rv;
}

/* @rv is freed once nothing is registered and no connection is in its domain. */
static void rv_put(struct store_vnode *vn, struct rvnode *rv)
{
	if (!rv || rv->nconns || rv->nr_registered)
		return;
	ibv_dealloc_pd(rv->pd);
	free(rv);
	if (vn && vn->rdma == rv)
		vn->rdma = NULL;
}

static void conn_free(struct memsrv_rdma *r, struct rconn *c)
{
	struct rconn **pp;

	rdma_ep_destroy(&c->ep);
	rdma_destroy_id(c->ep.id);
	pthread_mutex_lock(&r->m->lock);
	for (pp = &r->conns; *pp && *pp != c; pp = &(*pp)->next)
		;
	if (*pp) {
		*pp = c->next;
		r->nr_conns--;
	}
	if (c->rv) {
		c->rv->nconns--;
		rv_put(c->ss.vn, c->rv);
	}
	pthread_mutex_unlock(&r->m->lock);
	memsrv_session_end(r->m, &c->ss);
	free(c);
}

static void reject(struct rdma_cm_id *id, int32_t status)
{
	rdma_reject(id, &status, sizeof(status));
}

/* A connection request (its event not yet acknowledged): accepted or rejected. */
static void conn_request(struct memsrv_rdma *r, struct rdma_cm_event *ev)
{
	struct rdma_conn_param cp = {
		.responder_resources = RDMA_RD_ATOM, .initiator_depth = 1, .rnr_retry_count = 7};
	struct rdma_cm_id *id = ev->id;
	struct memsrv_session ss;
	struct rvnode *rv = NULL;
	struct rconn *c;
	bool stale;
	int ret;

	ret = ticket_take(r, ev->param.conn.private_data, ev->param.conn.private_data_len, &ss);
	if (ret) {
		log_warn("refused an RDMA connection: no ticket of a session that authenticated");
		r->nr_rejected++;
		reject(id, ret);
		id->context = NULL;
		return;
	}
	pthread_mutex_lock(&r->m->lock);
	if (!r->verbs)
		r->verbs = id->verbs;
	/* one device serves; and a session fenced since its ticket was given must not join
	 * the newer placement's domain */
	stale = ss.epoch != ss.vn->epoch || ss.vn->released;
	rv = id->verbs == r->verbs && !stale ? rv_get(r, ss.vn) : NULL;
	if (rv)
		rv->nconns++;
	pthread_mutex_unlock(&r->m->lock);
	c = r->nr_conns < MAX_RCONNS && rv ? calloc(1, sizeof(*c)) : NULL;
	ret = stale ? -ESTALE : c ? rdma_ep_setup(&c->ep, id, rv->pd) : -ENOMEM;
	if (!ret)
		ret = rdma_accept(id, &cp) ? -errno : 0;
	if (ret) {
		log_warn("refused an RDMA connection for vNode %llu: %s",
			 (unsigned long long)ss.vnode_id, strerror(-ret));
		if (c)
			rdma_ep_destroy(&c->ep);
		free(c);
		pthread_mutex_lock(&r->m->lock);
		if (rv) {
			rv->nconns--;
			rv_put(ss.vn, rv);
		}
		pthread_mutex_unlock(&r->m->lock);
		memsrv_session_end(r->m, &ss);
		reject(id, ret);
		id->context = NULL;
		r->nr_rejected++;
		return;
	}
	c->ss = ss;
	c->ss.rdma = true;
	c->rv = rv;
	id->context = c;
	pthread_mutex_lock(&r->m->lock);
	c->next = r->conns;
	r->conns = c;
	r->nr_conns++;
	pthread_mutex_unlock(&r->m->lock);
	r->nr_accepted++;
	log_debug("vNode %llu: an RDMA connection", (unsigned long long)ss.vnode_id);
}

static void cm_events(struct memsrv_rdma *r)
{
	struct rdma_cm_event *ev;

	while (rdma_get_cm_event(r->ch, &ev) == 0) {
		struct rdma_cm_id *id = ev->id;
		enum rdma_cm_event_type type = ev->event;
		struct rconn *c;

		if (type == RDMA_CM_EVENT_CONNECT_REQUEST) {
			conn_request(r, ev);
			rdma_ack_cm_event(ev);
			if (!id->context)
				rdma_destroy_id(id);
			continue;
		}
		c = id->context;
		rdma_ack_cm_event(ev);
		switch (type) {
		case RDMA_CM_EVENT_DISCONNECTED:
		case RDMA_CM_EVENT_CONNECT_ERROR:
		case RDMA_CM_EVENT_UNREACHABLE:
		case RDMA_CM_EVENT_REJECTED:
		case RDMA_CM_EVENT_DEVICE_REMOVAL:
			if (c && id != r->listen)
				conn_free(r, c);
			break;
		default:
			break;
		}
	}
}

/* Serve what @c received; false when it must go. */
static bool conn_serve(struct memsrv_rdma *r, struct rconn *c)
{
	uint8_t *msg;
	uint32_t len;

	if (rdma_ep_drain(&c->ep) < 0)
		return false;
	while (!c->closing && (msg = rdma_ep_msg(&c->ep, &len))) {
		int slot = rdma_ep_send_slot(&c->ep);
		struct lmp_hdr h;
		const char *why;
		uint8_t *out;
		size_t n;

		if (slot < 0)
			break; /* every response buffer is in flight: on at its completion */
		out = rdma_ep_send_buf(&c->ep, slot);
		if (len < sizeof(h)) {
			c->closing = true;
			break;
		}
		memcpy(&h, msg, sizeof(h));
		if (lmp_hdr_check(&h, &why) || h.len != len - sizeof(h)) {
			struct lmp_hdr e;

			log_warn("vNode %llu: a malformed message over RDMA (%s): disconnected",
				 (unsigned long long)c->ss.vnode_id,
				 h.len != len - sizeof(h) ? "its length is not the message's"
							  : why);
			lmp_hdr_init(&e, h.type | LMP_RESPONSE, h.id, 0, 0);
			e.status = -EPROTO;
			memcpy(out, &e, sizeof(e));
			rdma_ep_send(&c->ep, slot, sizeof(e));
			c->closing = true;
			break;
		}
		n = memsrv_handle(r->m, &c->ss, &h, msg + sizeof(h), out);
		if (rdma_ep_send(&c->ep, slot, n) || rdma_ep_consume(&c->ep))
			return false;
	}
	if (c->closing && rdma_ep_send_slot(&c->ep) >= 0) {
		bool idle = true;

		for (int i = 0; i < RDMA_NR_SEND; i++)
			idle &= !c->ep.send_busy[i];
		if (idle)
			rdma_disconnect(c->ep.id); /* DISCONNECTED follows: freed then */
	}
	return true;
}

static void *rdma_thread(void *arg)
{
	struct memsrv_rdma *r = arg;
	struct pollfd pfd[MAX_RCONNS + 2];

	for (;;) {
		struct rconn *c, *next;
		int n = 0;

		pfd[n++] = (struct pollfd){.fd = r->stop_fd, .events = POLLIN};
		pfd[n++] = (struct pollfd){.fd = r->ch->fd, .events = POLLIN};
		for (c = r->conns; c && n < MAX_RCONNS + 2; c = c->next)
			pfd[n++] = (struct pollfd){.fd = c->ep.cc->fd, .events = POLLIN};
		if (poll(pfd, n, 1000) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents)
			break;
		cm_events(r);
		for (c = r->conns; c; c = next) {
			next = c->next;
			if (!conn_serve(r, c)) {
				rdma_disconnect(c->ep.id);
				conn_free(r, c);
			}
		}
		pthread_mutex_lock(&r->m->lock);
		tickets_sweep(r);
		pthread_mutex_unlock(&r->m->lock);
	}
	return NULL;
}

uint64_t memsrv_rdma_locate(struct memsrv *m, struct memsrv_session *ss, uint64_t page)
{
	struct memsrv_rdma *r = m->rdma;
	struct store *s = &m->store;
	struct store_vnode *vn = ss->vn;
	uint32_t slot = vn->slots[page];
	struct rvnode *rv = vn->rdma;
	int64_t c;

	if (!slot)
		return LMP_LOC_ZERO;
	if (!r || !rv || !ss->rdma)
		return LMP_LOC_MESSAGE;
	c = (slot - 1) / STORE_CHUNK_PAGES;
	if (s->chunks[c].owner != vn)
		return LMP_LOC_MESSAGE; /* a copy's page in its original's chunk, or mixed */
	if (!rv->mr[c]) {
		uint64_t first = (uint64_t)c * STORE_CHUNK_PAGES;
		uint64_t n = s->capacity_pages - first < STORE_CHUNK_PAGES
				     ? s->capacity_pages - first
				     : STORE_CHUNK_PAGES;
		struct ibv_mr *mr;

		if (store_chunk_pin(s, vn, slot - 1) < 0)
			return LMP_LOC_MESSAGE;
		mr = ibv_reg_mr(rv->pd, s->pool + first * LMP_PAGE, n * LMP_PAGE,
				IBV_ACCESS_REMOTE_READ);
		if (!mr) {
			log_warn("vNode %llu: cannot register a chunk for RDMA reads: %s",
				 (unsigned long long)vn->id, strerror(errno));
			store_chunk_unpin(s, (uint32_t)c);
			return LMP_LOC_MESSAGE;
		}
		rv->mr[c] = mr;
		rv->nr_registered++;
	}
	return (uint64_t)rv->mr[c]->rkey << 32 | (slot - 1 + LMP_LOC_SLOT0);
}

void memsrv_rdma_revoke(struct memsrv *m, struct store_vnode *vn)
{
	struct rvnode *rv = vn->rdma;

	if (!rv)
		return;
	vn->rdma = NULL; /* the next connection gets a new domain */
	for (uint32_t c = 0; rv->nr_registered && c < m->store.nr_chunks; c++) {
		if (!rv->mr[c])
			continue;
		ibv_dereg_mr(rv->mr[c]); /* its key is dead: reads under it fail */
		rv->nr_registered--;
		store_chunk_unpin(&m->store, c);
	}
	rv_put(NULL, rv);
}

/* The listener's own resources (its connections and tickets gone). */
static void listener_free(struct memsrv_rdma *r)
{
	if (r->listen)
		rdma_destroy_id(r->listen);
	if (r->ch)
		rdma_destroy_event_channel(r->ch);
	if (r->stop_fd >= 0)
		close(r->stop_fd);
	free(r);
}

int memsrv_rdma_listen(struct memsrv *m, const char *addr, char *why, size_t len)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res = NULL;
	struct memsrv_rdma *r;
	char host[256], port[16];
	int ret;

	if (rdma_parse_addr(addr, host, sizeof(host), port, sizeof(port))) {
		snprintf(why, len, "'%s' is not an address: use HOST:PORT", addr);
		return -EINVAL;
	}
	ret = rdma_why_off(why, len);
	if (ret)
		return ret;
	ret = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (ret) {
		snprintf(why, len, "cannot resolve %s: %s", addr, gai_strerror(ret));
		return -EINVAL;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		freeaddrinfo(res);
		return -ENOMEM;
	}
	r->m = m;
	r->stop_fd = eventfd(0, EFD_CLOEXEC);
	r->ch = rdma_create_event_channel();
	ret = r->ch && r->stop_fd >= 0 ? rdma_create_id(r->ch, &r->listen, r, RDMA_PS_TCP) : -1;
	if (!ret)
		ret = rdma_bind_addr(r->listen, res->ai_addr);
	if (!ret)
		ret = rdma_listen(r->listen, 64);
	freeaddrinfo(res);
	if (ret) {
		ret = -errno;
		snprintf(why, len,
			 "cannot listen for RDMA on %s: %s (no RDMA device has that address?)",
			 addr, strerror(-ret));
		listener_free(r);
		return ret;
	}
	fcntl(r->ch->fd, F_SETFL, fcntl(r->ch->fd, F_GETFL) | O_NONBLOCK);
	r->port = ntohs(rdma_get_src_port(r->listen));
	snprintf(r->addr, sizeof(r->addr), "rdma://%.128s:%u", host, r->port);
	m->rdma = r;
	return 0;
}

int memsrv_rdma_start(struct memsrv *m)
{
	/* SIGTERM and SIGINT are for the main loop (srv_run's signalfd), never this thread */
	int ret = m->rdma ? thread_start_quiet(&m->rdma->thread, rdma_thread, m->rdma) : 0;

	if (!ret && m->rdma)
		m->rdma->thread_started = true;
	return ret;
}

const char *memsrv_rdma_addr(const struct memsrv *m)
{
	return m->rdma ? m->rdma->addr : NULL;
}

void memsrv_rdma_stop(struct memsrv *m)
{
	struct memsrv_rdma *r = m->rdma;

	if (!r)
		return;
	if (r->thread_started) {
		uint64_t one = 1;

		if (write(r->stop_fd, &one, sizeof(one)) < 0)
			log_warn("cannot stop the RDMA thread: %s", strerror(errno));
		pthread_join(r->thread, NULL);
	}
	while (r->conns) {
		rdma_disconnect(r->conns->ep.id);
		conn_free(r, r->conns);
	}
	pthread_mutex_lock(&m->lock);
	for (int i = 0; i < NR_TICKETS; i++)
		if (r->tickets[i].vn)
			store_detach(&m->store, r->tickets[i].vn);
	for (struct store_vnode *vn = m->store.vnodes; vn; vn = vn->next)
		memsrv_rdma_revoke(m, vn);
	pthread_mutex_unlock(&m->lock);
	listener_free(r);
	m->rdma = NULL;
}
