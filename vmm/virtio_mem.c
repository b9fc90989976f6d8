/*
 * virtio_mem.c - the virtio-mem device: one request queue, four requests
 * (plug, unplug, unplug all, state), a read-only configuration the host
 * changes to ask for more or less memory.
 *
 * What a request may do is the specification's (virtio 1.2, 5.15): a range
 * is block-aligned, non-empty and inside the usable region, or the answer is
 * ERROR; a plug beyond the requested size is NACKed; a plug of a block that
 * is plugged, or an unplug of one that is not, is an ERROR. Unplugged blocks
 * are inaccessible (VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE, offered and kept).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"
#include "virtio_mem.h"
#include "virtio_pci.h"

#define VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE (1ULL << 1)

enum { REQ_PLUG, REQ_UNPLUG, REQ_UNPLUG_ALL, REQ_STATE };
enum { RESP_ACK, RESP_NACK, RESP_BUSY, RESP_ERROR };
enum { STATE_PLUGGED, STATE_UNPLUGGED, STATE_MIXED };

struct mem_req {
	uint16_t type, pad[3];
	uint64_t addr;
	uint16_t nb_blocks, pad2[3];
} __attribute__((packed));

struct mem_resp {
	uint16_t type, pad[3];
	uint16_t state;
} __attribute__((packed));

/* The configuration layout (struct virtio_mem_config). */
#define CFG_BLOCK_SIZE	   0
#define CFG_NODE_ID	   8
#define CFG_ADDR	   16
#define CFG_REGION_SIZE	   24
#define CFG_USABLE_SIZE	   32
#define CFG_PLUGGED_SIZE   40
#define CFG_REQUESTED_SIZE 48
#define CFG_LEN		   56

struct virtio_mem {
	struct virtio_dev vd; /* first: the transport's callbacks get it */
	struct gmem *mem;
	uint64_t usable;
	pthread_mutex_t lock; /* requested, the stats, and block state changes */
	uint64_t requested;
	uint64_t plugs, unplugs, nacks, errors;
	virtio_mem_unplugged_fn unplugged;
	void *opaque;
};

static struct virtio_mem *to_mem(struct virtio_dev *vd)
{
	return (struct virtio_mem *)vd;
}

static uint64_t plugged_bytes(const struct virtio_mem *m)
{
	return atomic_load(&m->mem->hp.nr_plugged) * m->mem->hp.block_size;
}

static uint64_t mem_features(struct virtio_dev *vd)
{
	(void)vd;
	return VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE;
}

static void mem_config(struct virtio_dev *vd, uint32_t off, void *data, uint32_t len, bool is_write)
{
	struct virtio_mem *m = to_mem(vd);
	const struct gmem_hotplug *hp = &m->mem->hp;
	uint8_t cfg[CFG_LEN] = {0};
	uint64_t v;

	if (is_write)
		return; /* read-only for the driver */
	pthread_mutex_lock(&m->lock);
	memcpy(cfg + CFG_BLOCK_SIZE, &hp->block_size, 8);
	memcpy(cfg + CFG_ADDR, &hp->gpa, 8);
	memcpy(cfg + CFG_REGION_SIZE, &hp->size, 8);
	memcpy(cfg + CFG_USABLE_SIZE, &m->usable, 8);
	v = plugged_bytes(m);
	memcpy(cfg + CFG_PLUGGED_SIZE, &v, 8);
	memcpy(cfg + CFG_REQUESTED_SIZE, &m->requested, 8);
	pthread_mutex_unlock(&m->lock);
	memcpy(data, cfg + off, len); /* the transport checked off + len <= CFG_LEN */
}

/* Whether every block of [@first, +@n) is plugged (@want) or unplugged (!@want). */
static bool blocks_are(const struct virtio_mem *m, uint64_t first, uint64_t n, bool want)
{
	for (uint64_t b = first; b < first + n; b++)
		if (gmem_block_plugged(m->mem, b) != want)
			return false;
	return true;
}

/* The request's range as blocks, if it is one a request may name. */
static bool range_ok(const struct virtio_mem *m, uint64_t addr, uint16_t nb, uint64_t *first)
{
	const struct gmem_hotplug *hp = &m->mem->hp;
	uint64_t off = addr - hp->gpa, blocks = m->usable / hp->block_size;

	if (!nb || addr < hp->gpa || off % hp->block_size)
		return false;
	*first = off / hp->block_size;
	return *first < blocks && nb <= blocks - *first;
}

static uint16_t do_plug(struct virtio_mem *m, uint64_t first, uint16_t nb, bool plug)
{
	uint64_t size = (uint64_t)nb * m->mem->hp.block_size;

	if (plug && plugged_bytes(m) + size > m->requested)
		return RESP_NACK;
	if (!blocks_are(m, first, nb, !plug))
		return RESP_ERROR;
	int ret = gmem_plug(m->mem, first, nb, plug);

	if (ret) {
		log_warn("virtio-mem: cannot %splug %u block(s) at %llu: %s", plug ? "" : "un", nb,
			 (unsigned long long)first, strerror(-ret));
		return RESP_BUSY;
	}
	if (!plug && m->unplugged)
		m->unplugged(m->opaque, first, nb);
	return RESP_ACK;
}

static uint16_t do_unplug_all(struct virtio_mem *m)
{
	const struct gmem_hotplug *hp = &m->mem->hp;

	for (uint64_t b = 0; b < hp->nr_blocks;) {
		uint64_t n = 0;

		while (b + n < hp->nr_blocks && gmem_block_plugged(m->mem, b + n))
			n++;
		if (n && gmem_plug(m->mem, b, n, false))
			return RESP_BUSY;
		if (n && m->unplugged)
			m->unplugged(m->opaque, b, n);
		b += n ? n : 1;
	}
	return RESP_ACK;
}

static void handle(struct virtio_mem *m, struct mem_req *rq, struct mem_resp *rs)
{
	uint64_t first = 0;
	bool ok;

	rs->type = RESP_ERROR;
	pthread_mutex_lock(&m->lock);
	ok = rq->type == REQ_UNPLUG_ALL || range_ok(m, rq->addr, rq->nb_blocks, &first);
	if (!ok)
		;
	else if (rq->type == REQ_PLUG || rq->type == REQ_UNPLUG)
		rs->type = do_plug(m, first, rq->nb_blocks, rq->type == REQ_PLUG);
	else if (rq->type == REQ_UNPLUG_ALL)
		rs->type = do_unplug_all(m);
	else if (rq->type == REQ_STATE) {
		rs->type = RESP_ACK;
		rs->state = blocks_are(m, first, rq->nb_blocks, true)	 ? STATE_PLUGGED
			    : blocks_are(m, first, rq->nb_blocks, false) ? STATE_UNPLUGGED
									 : STATE_MIXED;
	}
	if (rs->type == RESP_ACK && rq->type == REQ_PLUG)
		m->plugs++;
	else if (rs->type == RESP_ACK && (rq->type == REQ_UNPLUG || rq->type == REQ_UNPLUG_ALL))
		m->unplugs++;
	else if (rs->type == RESP_NACK)
		m->nacks++;
	else if (rs->type == RESP_ERROR)
		m->errors++;
	pthread_mutex_unlock(&m->lock);
}

/* Copy between the chain and a buffer: the readable part (@to_dev) or the writable part. */
static uint32_t chain_copy(struct virtq_req *r, void *buf, uint32_t len, bool readable)
{
	uint32_t done = 0;

	for (int i = 0; i < r->nr_segs && done < len; i++) {
		struct virtq_seg *s = &r->segs[i];
		uint32_t n = s->len < len - done ? s->len : len - done;

		if (s->write == readable)
			continue;
		if (readable)
			memcpy((uint8_t *)buf + done, s->hva, n);
		else
			memcpy(s->hva, (uint8_t *)buf + done, n);
		done += n;
	}
	return done;
}

static void mem_notify(struct virtio_dev *vd, int q)
{
	struct virtio_mem *m = to_mem(vd);
	struct virtq_req *r = malloc(sizeof(*r));
	const char *why = NULL;
	int ret;

	if (!r)
		return;
	while ((ret = virtq_pop(&vd->vq[q], r, &why)) == 1) {
		struct mem_req rq;
		struct mem_resp rs = {0};
		uint32_t out;

		if (chain_copy(r, &rq, sizeof(rq), true) != sizeof(rq)) {
			virtio_fail(vd, "a request shorter than struct virtio_mem_req");
			break;
		}
		handle(m, &rq, &rs);
		out = chain_copy(r, &rs, sizeof(rs), false);
		if (out != sizeof(rs)) {
			virtio_fail(vd, "a request without room for struct virtio_mem_resp");
			break;
		}
		virtq_push(&vd->vq[q], r->head, out);
		virtio_used(vd, q);
	}
	if (ret < 0)
		virtio_fail(vd, why);
	free(r);
}

static const struct virtio_dev_ops mem_ops = {
	.name = "virtio-mem",
	.device_type = 24,
	.pci_class = 0x050000, /* memory controller: RAM */
	.nr_queues = 1,
	.config_len = CFG_LEN,
	.features = mem_features,
	.config = mem_config,
	.notify = mem_notify,
};

struct virtio_mem *virtio_mem_create(struct vm *vm, struct pci *pci, uint64_t usable,
				     uint64_t requested, virtio_mem_unplugged_fn unplugged,
				     void *opaque)
{
	struct virtio_mem *m;

	if (!vm->mem.hp.size || usable > vm->mem.hp.size || usable % vm->mem.hp.block_size ||
	    requested > usable || requested % vm->mem.hp.block_size) {
		log_err("virtio-mem: %llu bytes usable of a %llu-byte region, %llu requested: not "
			"whole blocks inside it",
			(unsigned long long)usable, (unsigned long long)vm->mem.hp.size,
			(unsigned long long)requested);
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->mem = &vm->mem;
	m->usable = usable;
	m->requested = requested;
	m->unplugged = unplugged;
	m->opaque = opaque;
	pthread_mutex_init(&m->lock, NULL);
	if (virtio_pci_init(&m->vd, vm, pci, &mem_ops)) {
		log_err("cannot add a virtio-mem device");
		free(m);
		return NULL;
	}
	return m;
}

void virtio_mem_destroy(struct virtio_mem *m)
{
	if (!m)
		return;
	virtio_pci_exit(&m->vd);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

int virtio_mem_request(struct virtio_mem *m, uint64_t bytes)
{
	if (bytes % m->mem->hp.block_size)
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	if (bytes > m->usable) {
		pthread_mutex_unlock(&m->lock);
		return -ERANGE;
	}
	m->requested = bytes;
	pthread_mutex_unlock(&m->lock);
	virtio_config_changed(&m->vd);
	return 0;
}

static uint64_t top_locked(struct virtio_mem *m)
{
	for (uint64_t b = m->mem->hp.nr_blocks; b > 0; b--)
		if (gmem_block_plugged(m->mem, b - 1))
			return b * m->mem->hp.block_size;
	return 0;
}

uint64_t virtio_mem_top(struct virtio_mem *m)
{
	uint64_t top;

	pthread_mutex_lock(&m->lock);
	top = top_locked(m);
	pthread_mutex_unlock(&m->lock);
	return top;
}

int virtio_mem_set_usable(struct virtio_mem *m, uint64_t bytes)
{
	int ret = 0;

	bytes -= bytes % m->mem->hp.block_size;
	if (bytes > m->mem->hp.size)
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	if (bytes < top_locked(m))
		ret = -EBUSY;
	else
		m->usable = bytes;
	if (!ret && m->requested > bytes)
		m->requested = bytes;
	pthread_mutex_unlock(&m->lock);
	if (!ret)
		virtio_config_changed(&m->vd);
	return ret;
}

void virtio_mem_stats(struct virtio_mem *m, struct virtio_mem_stats *st)
{
	pthread_mutex_lock(&m->lock);
	*st = (struct virtio_mem_stats){m->requested, m->usable, plugged_bytes(m), m->plugs,
					m->unplugs,   m->nacks,	 m->errors};
	pthread_mutex_unlock(&m->lock);
}

struct virtio_dev *virtio_mem_dev(struct virtio_mem *m)
{
	return &m->vd;
}

struct mem_state {
	uint64_t requested, usable, nr_blocks;
};

size_t virtio_mem_save(struct virtio_mem *m, void *buf)
{
	struct mem_state st;

	pthread_mutex_lock(&m->lock);
	st = (struct mem_state){m->requested, m->usable, m->mem->hp.nr_blocks};
	pthread_mutex_unlock(&m->lock);
	memcpy(buf, &st, sizeof(st));
	return sizeof(st);
}

int virtio_mem_load(struct virtio_mem *m, const void *buf, size_t len, const uint8_t *plugged,
		    uint64_t plugged_len)
{
	uint64_t nr = m->mem->hp.nr_blocks;
	struct mem_state st;

	if (len != sizeof(st))
		return -EINVAL;
	memcpy(&st, buf, sizeof(st));
	if (st.usable > m->mem->hp.size || st.nr_blocks != nr || st.requested > st.usable ||
	    plugged_len != (nr + 7) / 8) {
		log_err("virtio-mem: the snapshot's device (%llu blocks, %llu bytes usable) does "
			"not fit this one's region (%llu blocks)",
			(unsigned long long)st.nr_blocks, (unsigned long long)st.usable,
			(unsigned long long)nr);
		return -EINVAL;
	}
	m->requested = st.requested;
	m->usable = st.usable;
	for (uint64_t b = 0; b < nr; b++) {
		int ret = plugged[b / 8] >> (b % 8) & 1 ? gmem_plug(m->mem, b, 1, true) : 0;

		if (ret)
			return ret;
	}
	return 0;
}
