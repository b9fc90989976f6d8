/* store.c - the page pool, per-vNode page tables, and capacity accounting. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "store.h"

/* Reserve address space only: memory is taken page by page as it is written. */
static void *store_reserve(uint64_t bytes)
{
	void *p = mmap(NULL, bytes ? bytes : 4096, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

int store_init(struct store *s, uint64_t capacity)
{
	memset(s, 0, sizeof(*s));
	s->capacity_pages = capacity / LMP_PAGE;
	if (s->capacity_pages == 0 || s->capacity_pages > UINT32_MAX - 1)
		return -EINVAL;
	s->pool = store_reserve(s->capacity_pages * LMP_PAGE);
	s->shares = store_reserve(s->capacity_pages * sizeof(uint32_t));
	if (!s->pool || !s->shares)
		return -ENOMEM;
	return store_chunks_init(s);
}

/* Page @p of @vn goes: its memory back to the system, its slot recycled (or, when
 * another vNode shares it, left to that one). */
static void store_free_page(struct store *s, struct store_vnode *vn, uint64_t p)
{
	uint32_t slot = vn->slots[p];

	if (!slot)
		return;
	vn->used--;
	vn->slots[p] = 0;
	if (s->shares[slot - 1]) {
		if (--s->shares[slot - 1] == 0)
			s->nr_shared--;
		return;
	}
	store_slot_free(s, slot - 1);
	s->used_pages--;
}

static void store_free_pages(struct store *s, struct store_vnode *vn)
{
	for (uint64_t p = 0; vn->used && p < vn->nr_pages; p++)
		store_free_page(s, vn, p);
}

/* store_epoch's rules for the epoch itself; 0 or -ESTALE. */
static int epoch_rules(struct store *s, struct store_vnode *vn, uint64_t epoch, uint64_t since,
		       uint32_t flags)
{
	if (vn->epoch == 0 && vn->used == 0) /* nothing held yet: nothing to be stale */
		return 0;
	if (epoch < vn->epoch || ((flags & LMP_HELLO_TAKEOVER) && epoch == vn->epoch))
		return -ESTALE; /* a newer placement exists (or was taken first): fenced */
	if (flags & LMP_HELLO_FRESH) {
		if (epoch == vn->epoch)
			return -ESTALE; /* only a newer placement may refill */
		store_free_pages(s, vn);
		memset(vn->slots, 0, vn->nr_pages * sizeof(uint32_t));
		if (vn->backup) { /* what a refill brings is backed up if it is asked again */
			memset(vn->backup->scope, 0, vn->nr_pages);
			memset(vn->backup->dirty, 0, vn->nr_pages);
		}
		return 0;
	}
	return vn->epoch < since ? -ESTALE : 0; /* a copy older than the client's placement */
}

int store_epoch(struct store *s, struct store_vnode *vn, uint64_t epoch, uint64_t since,
		uint32_t flags, uint64_t start)
{
	int ret;

	if (epoch < start)
		return -EINVAL; /* a VMM is never behind the epoch it was started at */
	if (start < vn->incarnation)
		return -ESTALE; /* a VMM started before one that came since: deposed */
	ret = epoch_rules(s, vn, epoch, since, flags);
	if (!ret) {
		vn->epoch = epoch;
		if (start > vn->incarnation)
			vn->incarnation = start;
	}
	return ret;
}

int store_backup_scope(struct store *s, struct store_vnode *vn, const struct lmp_backup *target)
{
	struct store_backup *b = vn->backup;

	(void)s;
	if (target->nr_pages == 0 || target->first_page >= vn->nr_pages ||
	    target->nr_pages > vn->nr_pages - target->first_page)
		return -ERANGE;
	if (!b) {
		b = calloc(1, sizeof(*b));
		if (!b)
			return -ENOMEM;
		b->scope = store_reserve(vn->nr_pages);
		b->dirty = store_reserve(vn->nr_pages);
		if (!b->scope || !b->dirty) {
			if (b->scope)
				munmap(b->scope, vn->nr_pages);
			if (b->dirty)
				munmap(b->dirty, vn->nr_pages);
			free(b);
			return -ENOMEM;
		}
		vn->backup = b;
	}
	b->target = *target;
	for (uint64_t p = target->first_page; p < target->first_page + target->nr_pages; p++) {
		if (!b->scope[p] && vn->slots[p]) {
			b->dirty[p] = 1;
			b->writes_since++;
		}
		b->scope[p] = 1;
	}
	return 0;
}

static void store_free_vnode(struct store *s, struct store_vnode *vn)
{
	store_chunks_disown(s, vn);
	if (vn->backup) {
		munmap(vn->backup->scope, vn->nr_pages);
		munmap(vn->backup->dirty, vn->nr_pages);
		free(vn->backup);
	}
	munmap(vn->slots, vn->nr_pages * sizeof(uint32_t));
	free(vn);
}

void store_exit(struct store *s)
{
	while (s->vnodes) {
		struct store_vnode *vn = s->vnodes;

		s->vnodes = vn->next;
		store_free_vnode(s, vn);
	}
	if (s->pool)
		munmap(s->pool, s->capacity_pages * LMP_PAGE);
	store_chunks_exit(s);
	if (s->shares)
		munmap(s->shares, s->capacity_pages * sizeof(uint32_t));
	memset(s, 0, sizeof(*s));
}

/* A vNode of @nr_pages bound to @token, first in the list, with no holder yet. */
static struct store_vnode *store_new_vnode(struct store *s, uint64_t id, uint64_t nr_pages,
					   const uint8_t *token)
{
	struct store_vnode *vn = calloc(1, sizeof(*vn));

	if (!vn)
		return NULL;
	vn->slots = store_reserve(nr_pages * sizeof(uint32_t));
	if (!vn->slots) {
		free(vn);
		return NULL;
	}
	vn->id = id;
	memcpy(vn->token, token, LMP_TOKEN_LEN);
	vn->nr_pages = nr_pages;
	vn->next = s->vnodes;
	s->vnodes = vn;
	s->nr_vnodes++;
	return vn;
}

struct store_vnode *store_find(struct store *s, uint64_t id)
{
	struct store_vnode *vn;

	for (vn = s->vnodes; vn && vn->id != id; vn = vn->next)
		;
	return vn;
}

int store_attach(struct store *s, uint64_t id, uint64_t nr_pages, const uint8_t *token,
		 struct store_vnode **out)
{
	struct store_vnode *vn;

	for (vn = s->vnodes; vn; vn = vn->next) {
		if (vn->id != id)
			continue;
		if (!lmp_token_equal(vn->token, token))
			return -EACCES;
		if (vn->nr_pages != nr_pages)
			return -EINVAL;
		vn->refs++;
		*out = vn;
		return 0;
	}
	if (nr_pages == 0 || nr_pages > (1ULL << 40) / LMP_PAGE)
		return -EINVAL;
	vn = store_new_vnode(s, id, nr_pages, token);
	if (!vn)
		return -ENOMEM;
	vn->refs = 1;
	*out = vn;
	return 0;
}

int store_clone(struct store *s, struct store_vnode *src, uint64_t src_epoch, uint64_t id,
		const uint8_t *token, uint64_t epoch, struct store_vnode **out)
{
	struct store_vnode *vn;

	if (epoch == 0)
		return -EINVAL;
	if (src->released || src->epoch != src_epoch)
		return -ESTALE;
	if (store_find(s, id))
		return -EEXIST;
	vn = store_new_vnode(s, id, src->nr_pages, token);
	if (!vn)
		return -ENOMEM;
	for (uint64_t p = 0; vn->used < src->used && p < src->nr_pages; p++) {
		uint32_t slot = src->slots[p];

		if (!slot)
			continue;
		if (s->shares[slot - 1]++ == 0)
			s->nr_shared++;
		vn->slots[p] = slot;
		vn->used++;
	}
	/* its placement starts where the manager says; no VMM has it yet */
	vn->epoch = epoch;
	*out = vn;
	return 0;
}

void store_detach(struct store *s, struct store_vnode *vn)
{
	if (--vn->refs == 0 && vn->released)
		store_free_vnode(s, vn);
}

const uint8_t *store_page(const struct store *s, const struct store_vnode *vn, uint64_t page)
{
	uint32_t slot = page < vn->nr_pages ? vn->slots[page] : 0;

	return slot ? s->pool + (uint64_t)(slot - 1) * LMP_PAGE : NULL;
}

uint64_t store_pages_needed(const struct store *s, const struct store_vnode *vn,
			    const uint64_t *pages, uint32_t n)
{
	const uint32_t *shares = s->shares;
	uint64_t need = 0;

	for (uint32_t i = 0; i < n; i++) {
		uint32_t slot;

		if (pages[i] >= vn->nr_pages)
			continue;
		slot = vn->slots[pages[i]];
		need += !slot || shares[slot - 1];
	}
	return need;
}

int store_write(struct store *s, struct store_vnode *vn, uint64_t page, const uint8_t *data)
{
	uint32_t slot;

	if (page >= vn->nr_pages)
		return -ERANGE;
	slot = vn->slots[page];
	if (slot && s->shares[slot - 1]) { /* shared with a clone: this one gets its own */
		if (s->used_pages == s->capacity_pages)
			return -ENOSPC;
		store_free_page(s, vn, page);
		slot = 0;
	}
	if (!slot) {
		if (s->used_pages == s->capacity_pages)
			return -ENOSPC;
		int64_t got = store_slot_alloc(s, vn);

		if (got < 0)
			return -ENOSPC; /* room only in chunks a device holds */
		slot = (uint32_t)got;
		vn->slots[page] = ++slot;
		s->used_pages++;
		vn->used++;
	}
	memcpy(s->pool + (uint64_t)(slot - 1) * LMP_PAGE, data, LMP_PAGE);
	if (vn->backup && vn->backup->scope[page]) {
		vn->backup->dirty[page] = 1;
		vn->backup->writes_since++;
	}
	return 0;
}

int store_discard(struct store *s, struct store_vnode *vn, uint64_t first, uint64_t n)
{
	if (first > vn->nr_pages || n > vn->nr_pages - first)
		return -ERANGE;
	for (uint64_t p = first; p < first + n; p++) {
		if (!vn->slots[p])
			continue;
		store_free_page(s, vn, p);
		if (vn->backup && vn->backup->scope[p]) {
			vn->backup->dirty[p] = 1; /* the backup learns it is zeros now */
			vn->backup->writes_since++;
		}
	}
	return 0;
}

void store_release(struct store *s, struct store_vnode *vn)
{
	struct store_vnode **pp;

	for (pp = &s->vnodes; *pp; pp = &(*pp)->next) {
		if (*pp == vn) {
			*pp = vn->next;
			s->nr_vnodes--;
			store_free_pages(s, vn);
			vn->released = true;
			if (!vn->refs) /* no connection holds it (a copy never started) */
				store_free_vnode(s, vn);
			return;
		}
	}
}
