/*
 * model.c - the manager's model of the cluster: components by role (with a
 * hash index by address), vNodes, what each holds on which component, and
 * their JSON views.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "manager.h"
#include "util.h"

static const char *const role_names[NR_ROLES] = {"memsrv", "storsrv", "agent"};

const char *role_name(enum role r)
{
	return role_names[r];
}

int role_parse(const char *name)
{
	for (int i = 0; name && i < NR_ROLES; i++)
		if (!strcmp(name, role_names[i]))
			return i;
	return -1;
}

static const char *const state_names[NR_VNODE_STATES] = {
	[VNODE_CREATING] = "creating", [VNODE_RUNNING] = "running", [VNODE_STOPPED] = "stopped",
	[VNODE_EXITED] = "exited",     [VNODE_FAILED] = "failed",   [VNODE_LOST] = "lost",
	[VNODE_PAUSED] = "paused",     [VNODE_SAVED] = "saved",
};

const char *vnode_state_name(enum vnode_state s)
{
	return s < NR_VNODE_STATES ? state_names[s] : "?";
}

int vnode_state_parse(const char *name)
{
	for (int i = 0; name && i < NR_VNODE_STATES; i++)
		if (!strcmp(name, state_names[i]))
			return i;
	return -1;
}

static uint32_t addr_hash(const char *addr)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *addr; addr++)
		h = (h ^ (uint8_t)*addr) * 16777619u;
	return h;
}

/* Components are only ever added: the index is rebuilt as it grows. */
static int index_put(struct comp_set *s, int pos)
{
	if (2 * (s->n + 1) > s->index_cap) {
		int cap = s->index_cap ? 2 * s->index_cap : 64;
		int *idx = calloc(cap, sizeof(*idx));

		if (!idx)
			return -1;
		free(s->index);
		s->index = idx;
		s->index_cap = cap;
		for (int i = 0; i < s->n; i++)
			if (i != pos)
				index_put(s, i);
	}
	for (uint32_t h = addr_hash(s->c[pos].addr);; h++) {
		int *slot = &s->index[h & (s->index_cap - 1)];

		if (!*slot) {
			*slot = pos + 1;
			return 0;
		}
	}
}

struct comp *comp_find(struct manager *m, enum role r, const char *addr, int *index)
{
	struct comp_set *s = &m->roles[r];

	if (!s->index_cap)
		return NULL;
	for (uint32_t h = addr_hash(addr);; h++) {
		int pos = s->index[h & (s->index_cap - 1)] - 1;

		if (pos < 0)
			return NULL;
		if (!strcmp(s->c[pos].addr, addr)) {
			if (index)
				*index = pos;
			return &s->c[pos];
		}
	}
}

struct comp *comp_add(struct manager *m, enum role r, const char *addr, uint64_t capacity)
{
	struct comp_set *s = &m->roles[r];

	if (s->n == s->cap) {
		int cap = s->cap ? 2 * s->cap : 16;
		struct comp *c = realloc(s->c, cap * sizeof(*c));
		struct place_server *ps = c ? realloc(s->ps, cap * sizeof(*ps)) : NULL;

		if (c)
			s->c = c;
		if (!c || !ps)
			return NULL;
		s->ps = ps;
		s->cap = cap;
	}
	memset(&s->c[s->n], 0, sizeof(s->c[0]));
	memset(&s->ps[s->n], 0, sizeof(s->ps[0]));
	s->c[s->n].role = r;
	snprintf(s->c[s->n].addr, ADDR_LEN, "%s", addr);
	s->c[s->n].last_seen_ms = mono_ms();
	s->ps[s->n].capacity = capacity;
	s->ps[s->n].up = true;
	if (index_put(s, s->n))
		return NULL;
	return &s->c[s->n++];
}

static bool comp_up(const struct manager *m, const struct comp *c)
{
	const struct comp_set *s = &m->roles[c->role];

	return s->ps[c - s->c].up;
}

struct vnode *vnode_find(struct manager *m, const char *name)
{
	for (int i = 0; i < m->nr_vnodes; i++)
		if (!strcmp(m->vnodes[i]->name, name))
			return m->vnodes[i];
	return NULL;
}

struct vnode *vnode_add(struct manager *m, const char *name)
{
	struct vnode *v;

	if (m->nr_vnodes == m->cap_vnodes) {
		int cap = m->cap_vnodes ? 2 * m->cap_vnodes : 64;
		struct vnode **a = realloc(m->vnodes, cap * sizeof(*a));

		if (!a)
			return NULL;
		m->vnodes = a;
		m->cap_vnodes = cap;
	}
	v = calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	snprintf(v->name, sizeof(v->name), "%s", name);
	m->vnodes[m->nr_vnodes++] = v;
	return v;
}

static void vnode_free(struct vnode *v)
{
	json_decref(v->spec);
	json_decref(v->report);
	free(v->slabs);
	free(v);
}

void vnode_remove(struct manager *m, struct vnode *v)
{
	if (v->ip[0])
		ipam_put(&m->ipam, v->ip); /* the address goes with the vNode */
	for (int i = 0; i < m->nr_vnodes; i++) {
		if (m->vnodes[i] == v) {
			m->vnodes[i] = m->vnodes[--m->nr_vnodes];
			break;
		}
	}
	vnode_free(v);
}

struct place_server *ps_of(struct manager *m, enum role r, const char *addr)
{
	int i;

	return comp_find(m, r, addr, &i) ? &m->roles[r].ps[i] : NULL;
}

void adjust(struct place_server *ps, uint64_t bytes, bool primary, int sign)
{
	if (!ps)
		return;
	ps->reserved += sign * (int64_t)bytes;
	ps->count += sign;
	if (primary)
		ps->primary += sign * (int64_t)bytes;
}

uint64_t spec_u64(const json_t *spec, const char *key)
{
	return (uint64_t)json_integer_value(json_object_get(spec, key));
}

const char *spec_str(const json_t *spec, const char *key)
{
	return json_string_value(json_object_get(spec, key));
}

uint64_t vnode_excache(const struct vnode *v)
{
	return spec_u64(v->spec, "excache");
}

int vnode_nr_disks(const struct vnode *v)
{
	return (int)json_array_size(json_object_get(v->spec, "disks"));
}

uint64_t vnode_disk_size(const struct vnode *v, int i)
{
	return (uint64_t)json_integer_value(json_array_get(json_object_get(v->spec, "disks"), i));
}

void vnode_volume(const struct vnode *v, int i, char *name, size_t len)
{
	if (i)
		snprintf(name, len, "%s.d%d", v->name, i);
	else
		snprintf(name, len, "%s", v->name);
}

uint64_t vnode_disk(const struct vnode *v)
{
	uint64_t total = spec_u64(v->spec, "disk"); /* a record of before "disks" */

	for (int i = 0; i < vnode_nr_disks(v); i++)
		total += vnode_disk_size(v, i);
	return total;
}

uint64_t backup_bytes(uint64_t memory)
{
	return memory + LMP_PAGE;
}

void vnode_reserve(struct manager *m, struct vnode *v, int sign)
{
	for (int i = 0; i < v->nr_slabs; i++) {
		adjust(ps_of(m, ROLE_MEMSRV, v->slabs[i].primary), v->slabs[i].size, true, sign);
		adjust(ps_of(m, ROLE_MEMSRV, v->slabs[i].secondary), v->slabs[i].size, false, sign);
	}
	if (v->storsrv[0])
		adjust(ps_of(m, ROLE_STORSRV, v->storsrv), vnode_disk(v), false, sign);
	if (v->backup_storsrv[0])
		adjust(ps_of(m, ROLE_STORSRV, v->backup_storsrv), backup_bytes(v->placed_memory),
		       false, sign);
	if (v->agent[0])
		adjust(ps_of(m, ROLE_AGENT, v->agent), vnode_excache(v), false, sign);
}

/* Append @s (stolen) to @arr unless an equal string is there. */
static void append_unique(json_t *arr, json_t *s)
{
	size_t i;
	json_t *e;

	json_array_foreach(arr, i, e)
	{
		if (json_equal(e, s)) {
			json_decref(s);
			return;
		}
	}
	json_array_append_new(arr, s);
}

bool vnode_uses(const struct vnode *v, const struct comp *c)
{
	switch (c->role) {
	case ROLE_AGENT:
		return !strcmp(v->agent, c->addr);
	case ROLE_STORSRV:
		return !strcmp(v->storsrv, c->addr) || !strcmp(v->backup_storsrv, c->addr);
	case ROLE_MEMSRV:
		for (int s = 0; s < v->nr_slabs; s++)
			if (!strcmp(v->slabs[s].primary, c->addr) ||
			    !strcmp(v->slabs[s].secondary, c->addr))
				return true;
		return false;
	default:
		return false;
	}
}

/* Add "ROLE ADDR" to @down if that component is known and down (a hash lookup). */
static void add_if_down(struct manager *m, json_t *down, enum role r, const char *addr)
{
	struct comp *c = addr[0] ? comp_find(m, r, addr, NULL) : NULL;

	if (c && !comp_up(m, c))
		append_unique(down, json_sprintf("%s %s", role_name(r), addr));
}

/* The components that @v depends on and that are down. */
static json_t *vnode_down_deps(struct manager *m, struct vnode *v)
{
	json_t *down = json_array();

	for (int i = 0; i < v->nr_slabs; i++) {
		add_if_down(m, down, ROLE_MEMSRV, v->slabs[i].primary);
		add_if_down(m, down, ROLE_MEMSRV, v->slabs[i].secondary);
	}
	add_if_down(m, down, ROLE_STORSRV, v->storsrv);
	add_if_down(m, down, ROLE_STORSRV, v->backup_storsrv);
	add_if_down(m, down, ROLE_AGENT, v->agent);
	return down;
}

json_t *comp_json(struct manager *m, enum role r, int i)
{
	struct comp *c = &m->roles[r].c[i];
	struct place_server *ps = &m->roles[r].ps[i];
	json_t *j = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:i,s:I}", "role", role_name(r), "addr",
			      c->addr, "health", ps->up ? "up" : "down", "capacity",
			      (json_int_t)ps->capacity, "reserved", (json_int_t)ps->reserved,
			      "used", (json_int_t)c->used, "primary", (json_int_t)ps->primary,
			      "placements", (int)ps->count, "last_seen_ms_ago",
			      (json_int_t)(mono_ms() - c->last_seen_ms));
	json_t *deps = json_array();

	if (r == ROLE_AGENT)
		json_object_set_new(j, "cpus", json_integer(c->cpus));
	if (r == ROLE_MEMSRV) { /* what it serves over, as it said last */
		const char *rdma = json_string_value(json_object_get(c->report, "rdma"));

		json_object_set_new(j, "transports",
				    rdma ? json_pack("[s,s]", "tcp", "rdma")
					 : json_pack("[s]", "tcp"));
		if (rdma)
			json_object_set_new(j, "rdma", json_string(rdma));
	}
	if (r == ROLE_MEMSRV && json_object_get(c->report, "shared")) { /* as it said last */
		json_object_set(j, "shared", json_object_get(c->report, "shared"));
		json_object_set(j, "vnodes_held", json_object_get(c->report, "vnodes"));
	}
	if (!ps->up)
		json_object_set_new(j, "down_since_ms", json_integer((json_int_t)c->down_since_ms));
	/* The vNodes that depend on it: what a person wants to know when it is down. */
	for (int k = 0; k < m->nr_vnodes; k++) {
		struct vnode *v = m->vnodes[k];
		if (vnode_uses(v, c))
			json_array_append_new(deps, json_string(v->name));
	}
	json_object_set_new(j, "vnodes", deps);
	return j;
}

json_t *vnode_json(struct manager *m, struct vnode *v)
{
	json_t *slabs = json_array(), *prim = json_array(), *j;
	json_t *xc = json_object_get(v->report, "excache");
	json_t *running = json_object_get(v->report, "running"); /* what the VMM runs with */

	for (int i = 0; i < v->nr_slabs; i++) {
		json_array_append_new(slabs, json_pack("{s:I,s:s,s:s}", "size",
						       (json_int_t)v->slabs[i].size, "primary",
						       v->slabs[i].primary, "secondary",
						       v->slabs[i].secondary));
		append_unique(prim, json_string(v->slabs[i].primary));
	}
	bool live = running && (v->state == VNODE_RUNNING || v->state == VNODE_PAUSED);
	/* What runs, while it runs (its VMM's word); what it starts with, otherwise. */
	uint64_t mem = live && spec_u64(running, "memory") ? spec_u64(running, "memory")
		       : vnode_max_memory(v)		   ? vnode_memory_now(v)
							   : v->placed_memory;
	uint64_t cpus = live && spec_u64(running, "cpus") ? spec_u64(running, "cpus")
							  : spec_u64(v->spec, "cpus");
	json_t *next = json_object();

	j = json_pack("{s:s,s:s,s:O,s:s,s:s,s:I,s:I,s:I,s:o,s:o,s:o,s:I}", "name", v->name, "state",
		      vnode_state_name(v->state), "spec", v->spec, "agent", v->agent, "storsrv",
		      v->storsrv, "memory", (json_int_t)mem, "cpus", (json_int_t)cpus, "excache",
		      (json_int_t)vnode_excache(v), "slabs", slabs, "memsrvs", prim, "down",
		      vnode_down_deps(m, v), "created", (json_int_t)v->created_s);
	if (vnode_max_memory(v)) {
		json_object_set_new(j, "max_memory", json_integer((json_int_t)vnode_max_memory(v)));
		json_object_set_new(j, "memory_requested",
				    json_integer((json_int_t)vnode_memory_now(v)));
		json_object_set_new(j, "memory_placed", json_integer((json_int_t)v->placed_memory));
	}
	if (xc)
		json_object_set(j, "excache_use", xc);
	if (json_object_get(v->report, "exit_status"))
		json_object_set(j, "exit_status", json_object_get(v->report, "exit_status"));
	if (json_object_get(v->report, "last_words")) /* a failed VMM's */
		json_object_set(j, "last_words", json_object_get(v->report, "last_words"));
	if (json_object_get(v->report, "pid"))
		json_object_set(j, "pid", json_object_get(v->report, "pid"));
	if (v->ip[0])
		json_object_set_new(j, "net", json_pack("{s:s,s:s}", "ip", v->ip, "mac", v->mac));
	if (v->state == VNODE_SAVED)
		json_object_set_new(j, "snapshot", json_string(v->snapshot));
	/* What waits for the next start */
	if (!vnode_max_memory(v) && spec_u64(v->spec, "memory") != v->placed_memory)
		json_object_set_new(next, "memory",
				    json_integer((json_int_t)spec_u64(v->spec, "memory")));
	if (live && spec_u64(v->spec, "cpus") != cpus)
		json_object_set_new(next, "cpus",
				    json_integer((json_int_t)spec_u64(v->spec, "cpus")));
	if (json_object_size(next))
		json_object_set_new(j, "pending", json_true());
	json_object_set_new(j, "next_start", next);
	return j;
}

int manager_init(struct manager *m, const char *db_path, char *err, size_t errlen)
{
	pthread_mutex_init(&m->lock, NULL);
	if (!m->slab_size)
		m->slab_size = 256 * MiB;
	if (!m->down_after_ms)
		m->down_after_ms = 3000;
	int n = 0;

	if (store_open(m, db_path, err, errlen) || db_load(m, err, errlen))
		return -1;
	for (int r = 0; r < NR_ROLES; r++)
		n += m->roles[r].n;
	if (n || m->nr_vnodes)
		log_info("state loaded from %s: %d components, %d vNodes", m->store->name, n,
			 m->nr_vnodes);
	return 0;
}

/* Forget every component and vNode (the store keeps them). Lock held. */
static void model_clear(struct manager *m)
{
	for (int i = 0; i < m->nr_vnodes; i++) {
		if (m->vnodes[i]->ip[0] && m->ipam.used)
			ipam_put(&m->ipam, m->vnodes[i]->ip);
		vnode_free(m->vnodes[i]);
	}
	free(m->vnodes);
	m->vnodes = NULL;
	m->nr_vnodes = m->cap_vnodes = 0;
	for (int r = 0; r < NR_ROLES; r++) {
		for (int i = 0; i < m->roles[r].n; i++)
			json_decref(m->roles[r].c[i].report);
		free(m->roles[r].c);
		free(m->roles[r].ps);
		free(m->roles[r].index);
		memset(&m->roles[r], 0, sizeof(m->roles[r]));
	}
}

int manager_reload(struct manager *m, char *err, size_t errlen)
{
	model_clear(m);
	return db_load(m, err, errlen);
}

void manager_exit(struct manager *m)
{
	if (m->monitor) {
		pthread_mutex_lock(&m->lock);
		m->stop = true;
		pthread_mutex_unlock(&m->lock);
		pthread_join(m->monitor, NULL);
	}
	model_clear(m);
	ipam_exit(&m->ipam);
	store_close(m);
}

void vnode_set_state(struct manager *m, struct vnode *v, enum vnode_state state)
{
	if (v->state != state) {
		log_info("vNode %s: %s -> %s", v->name, vnode_state_name(v->state),
			 vnode_state_name(state));
		v->state = state;
		db_save_vnode(m, v);
	}
}
