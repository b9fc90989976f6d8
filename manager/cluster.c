/*
 * cluster.c - the manager's model of the cluster and the flows that change
 * it: heartbeats, create (placement, volume, VMM), start, stop, resize,
 * destroy, and the monitor that marks silent components down.
 *
 * A vNode's spec (JSON, what the user asked for):
 *   name, cpus, memory, excache, disk (bytes, 0 for none),
 *   and either payload (+ args) or kernel (+ initrd, cmdline), or neither
 *   (the agent's boot kit: Debian's stock kernel).
 * Remote calls (storage server, agent) are made without the lock; a vNode in
 * the middle of one is in state "creating" and cannot be changed meanwhile.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "manager.h"
#include "storclient.h"
#include "util.h"
#include "xport.h"

#define AGENT_TIMEOUT_MS 15000

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

/* ---- the model ---- */

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

static struct comp *comp_find(struct manager *m, enum role r, const char *addr, int *index)
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

static void vnode_remove(struct manager *m, struct vnode *v)
{
	for (int i = 0; i < m->nr_vnodes; i++) {
		if (m->vnodes[i] == v) {
			m->vnodes[i] = m->vnodes[--m->nr_vnodes];
			break;
		}
	}
	vnode_free(v);
}

static struct place_server *ps_of(struct manager *m, enum role r, const char *addr)
{
	int i;

	return comp_find(m, r, addr, &i) ? &m->roles[r].ps[i] : NULL;
}

static void adjust(struct place_server *ps, uint64_t bytes, bool primary, int sign)
{
	if (!ps)
		return;
	ps->reserved += sign * (int64_t)bytes;
	ps->count += sign;
	if (primary)
		ps->primary += sign * (int64_t)bytes;
}

static uint64_t spec_u64(const json_t *spec, const char *key)
{
	return (uint64_t)json_integer_value(json_object_get(spec, key));
}

static const char *spec_str(const json_t *spec, const char *key)
{
	return json_string_value(json_object_get(spec, key));
}

/* What a vNode holds follows from its spec and placement, not kept twice. */
static uint64_t vnode_excache(const struct vnode *v)
{
	return spec_u64(v->spec, "excache");
}

static uint64_t vnode_disk(const struct vnode *v)
{
	return spec_u64(v->spec, "disk");
}

/* The memory's backup volume: every page, and a header page after them. */
static uint64_t backup_bytes(uint64_t memory)
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

/* The components that @v depends on and that are down, as a JSON array. */
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

/* Does @v depend on @c: its memory, its disk or memory backup, its VMM? */
static bool vnode_uses(const struct vnode *v, const struct comp *c)
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
	j = json_pack("{s:s,s:s,s:O,s:s,s:s,s:I,s:I,s:o,s:o,s:o,s:I}", "name", v->name, "state",
		      v->state, "spec", v->spec, "agent", v->agent, "storsrv", v->storsrv, "memory",
		      (json_int_t)v->placed_memory, "excache", (json_int_t)vnode_excache(v),
		      "slabs", slabs, "memsrvs", prim, "down", vnode_down_deps(m, v), "created",
		      (json_int_t)v->created_s);
	if (xc)
		json_object_set(j, "excache_use", xc);
	if (json_object_get(v->report, "exit_status"))
		json_object_set(j, "exit_status", json_object_get(v->report, "exit_status"));
	if (json_object_get(v->report, "pid"))
		json_object_set(j, "pid", json_object_get(v->report, "pid"));
	if (spec_u64(v->spec, "memory") != v->placed_memory ||
	    (running && spec_u64(v->spec, "cpus") != spec_u64(running, "cpus")))
		json_object_set_new(j, "pending", json_true()); /* waits for the next start */
	return j;
}

/* ---- heartbeats and failure detection ---- */

static void vnode_set_state(struct manager *m, struct vnode *v, const char *state)
{
	if (strcmp(v->state, state)) {
		log_info("vNode %s: %s -> %s", v->name, v->state, state);
		snprintf(v->state, sizeof(v->state), "%s", state);
		db_save_vnode(m, v);
	}
}

/*
 * The VMM's own word on where @v's memory is (its ExCache report's "route"):
 * after a failover or a refill it differs from the placement on record, and
 * the record follows it. Lock held.
 */
static void learn_route(struct manager *m, struct vnode *v, json_t *route)
{
	json_t *slabs = json_object_get(route, "slabs"), *s;
	uint64_t epoch = (uint64_t)json_integer_value(json_object_get(route, "epoch"));
	bool same = true;
	size_t i;

	if (!json_is_array(slabs) || (int)json_array_size(slabs) != v->nr_slabs ||
	    epoch <= v->epoch)
		return;
	json_array_foreach(slabs, i, s)
	{
		const char *p = json_string_value(json_object_get(s, "primary"));
		const char *sec = json_string_value(json_object_get(s, "secondary"));

		same &= p && !strcmp(p, v->slabs[i].primary) &&
			!strcmp(sec ? sec : "", v->slabs[i].secondary);
	}
	vnode_reserve(m, v, -1);
	json_array_foreach(slabs, i, s)
	{
		const char *p = json_string_value(json_object_get(s, "primary"));
		const char *sec = json_string_value(json_object_get(s, "secondary"));

		snprintf(v->slabs[i].primary, ADDR_LEN, "%s", p ? p : "");
		snprintf(v->slabs[i].secondary, ADDR_LEN, "%s", sec ? sec : "");
	}
	vnode_reserve(m, v, +1);
	v->epoch = epoch;
	if (!same)
		log_info("vNode %s: memory placement now at epoch %llu (%s)", v->name,
			 (unsigned long long)epoch,
			 json_string_value(json_object_get(route, "last_event")) ?: "");
	db_save_vnode(m, v);
}

/* An agent's report of its VMMs: {"NAME": {"state": "running"|"exited", ...}}. */
static void agent_report(struct manager *m, struct comp *c, json_t *vnodes)
{
	for (int i = 0; i < m->nr_vnodes; i++) {
		struct vnode *v = m->vnodes[i];
		json_t *r;

		if (strcmp(v->agent, c->addr) || !strcmp(v->state, "creating"))
			continue;
		r = json_object_get(vnodes, v->name);
		if (r) {
			const char *st = spec_str(r, "state");

			json_decref(v->report);
			v->report = json_incref(r);
			learn_route(m, v, json_object_get(json_object_get(r, "excache"), "route"));
			if (st && !strcmp(st, "running"))
				vnode_set_state(m, v, "running");
			else if (st && strcmp(v->state, "stopped"))
				vnode_set_state(
					m, v,
					json_integer_value(json_object_get(r, "exit_status"))
						? "failed"
						: "exited");
		} else if (!strcmp(v->state, "running")) {
			vnode_set_state(m, v, "lost"); /* its agent does not know it */
		}
	}
}

int manager_heartbeat(struct manager *m, json_t *beat, char *err, size_t errlen)
{
	int r = role_parse(spec_str(beat, "role"));
	const char *addr = spec_str(beat, "addr");
	json_t *cap = json_object_get(beat, "capacity");
	struct comp *c;
	int i;

	if (r < 0 || !addr || !addr[0] || strlen(addr) >= ADDR_LEN || !json_is_integer(cap) ||
	    json_integer_value(cap) < 0) {
		snprintf(err, errlen,
			 "a heartbeat needs role (memsrv, storsrv or agent), addr "
			 "(HOST:PORT) and capacity (bytes)");
		return 400;
	}
	pthread_mutex_lock(&m->lock);
	m->nr_heartbeats++;
	c = comp_find(m, r, addr, &i);
	if (!c) {
		c = comp_add(m, r, addr, (uint64_t)json_integer_value(cap));
		if (!c) {
			pthread_mutex_unlock(&m->lock);
			snprintf(err, errlen, "out of memory");
			return 500;
		}
		i = m->roles[r].n - 1;
		log_info("%s %s registered", role_name(r), addr);
		db_save_comp(m, c);
	} else if (!m->roles[r].ps[i].up) {
		log_info("%s %s is up again", role_name(r), addr);
	}
	c->last_seen_ms = mono_ms();
	c->used = (uint64_t)json_integer_value(json_object_get(beat, "used"));
	c->cpus = (uint32_t)json_integer_value(json_object_get(beat, "cpus"));
	json_decref(c->report);
	c->report = json_incref(beat);
	if (m->roles[r].ps[i].capacity != (uint64_t)json_integer_value(cap) ||
	    !m->roles[r].ps[i].up) {
		m->roles[r].ps[i].capacity = (uint64_t)json_integer_value(cap);
		m->roles[r].ps[i].up = true;
		db_save_comp(m, c);
	}
	if (r == ROLE_AGENT)
		agent_report(m, c, json_object_get(beat, "vnodes"));
	pthread_mutex_unlock(&m->lock);
	return 0;
}

static int agent_call(const char *agent, const char *method, const char *path, json_t *body,
		      json_t **out, char *err, size_t errlen);

struct refill_order {
	char agent[ADDR_LEN], name[NAME_LEN], addr[ADDR_LEN];
	const char *op; /* "secondary": fill it; "lost": fail over from it */
};

/* The up memory server with the most room for @need bytes, not @not; -1 if none. */
static int pick_memsrv(struct manager *m, uint64_t need, const char * not )
{
	struct comp_set *ms = &m->roles[ROLE_MEMSRV];
	uint64_t best_room = 0;
	int best = -1;

	for (int i = 0; i < ms->n; i++) {
		struct place_server *ps = &ms->ps[i];
		uint64_t room = ps->capacity > ps->reserved ? ps->capacity - ps->reserved : 0;

		if (!ps->up || (not &&!strcmp(ms->c[i].addr, not )) || room < need)
			continue;
		if (best < 0 || room > best_room)
			best = i, best_room = room;
	}
	return best;
}

/*
 * Whether a fill may be ordered for @v now (its @route as last reported): an
 * order takes a moment to show in the reports, so the next waits 15 s; but
 * when the VMM reports that the last one failed (say, a server being
 * restarted was not listening yet) after 2 s.
 */
static bool may_order(struct vnode *v, json_t *route)
{
	uint64_t failures = (uint64_t)json_integer_value(json_object_get(route, "fill_failures"));
	uint64_t done = (uint64_t)json_integer_value(json_object_get(route, "fill_done"));
	uint64_t total = (uint64_t)json_integer_value(json_object_get(route, "fill_total"));
	uint64_t since = mono_ms() - v->refill_ordered_ms;
	bool failed = failures > v->fill_failures_seen;

	if (done < total && !failed)
		return false; /* one under way */
	return since >= 15000 || (failed && since >= 2000);
}

/* Fill @o: tell @v's agent to @op (secondary, restore) with the server @addr. */
static bool order(struct refill_order *o, const char *op, struct vnode *v, const char *addr)
{
	json_t *route = json_object_get(json_object_get(v->report, "excache"), "route");

	v->refill_ordered_ms = mono_ms();
	v->fill_failures_seen =
		(uint64_t)json_integer_value(json_object_get(route, "fill_failures"));
	o->op = op;
	snprintf(o->agent, sizeof(o->agent), "%s", v->agent);
	snprintf(o->name, sizeof(o->name), "%s", v->name);
	snprintf(o->addr, sizeof(o->addr), "%s", addr);
	return true;
}

/*
 * Redundancy lost (a slab without a secondary, after a failover): choose a
 * memory server to be the new secondary of @v's bare slabs, the up one with
 * the most room that is not their primary. Lock held.
 */
static bool plan_refill(struct manager *m, struct vnode *v, struct refill_order *o)
{
	json_t *route = json_object_get(json_object_get(v->report, "excache"), "route");
	struct comp_set *ms = &m->roles[ROLE_MEMSRV];
	const char *primary = NULL;
	uint64_t need = 0;
	int best = -1;

	if (!route || strcmp(v->state, "running") || !may_order(v, route))
		return false;
	for (int i = 0; i < v->nr_slabs; i++) {
		if (!v->slabs[i].primary[0])
			return false; /* a restore first */
		if (!v->slabs[i].secondary[0]) {
			primary = primary ? primary : v->slabs[i].primary;
			need += v->slabs[i].size;
		}
	}
	if (!primary)
		return false;
	best = pick_memsrv(m, need, primary);
	return best >= 0 && order(o, "secondary", v, ms->c[best].addr);
}

/* Every copy of some slab lost: a restore from the backup, on a memory server with room. */
static bool plan_restore(struct manager *m, struct vnode *v, struct refill_order *o)
{
	json_t *route = json_object_get(json_object_get(v->report, "excache"), "route");
	struct comp_set *ms = &m->roles[ROLE_MEMSRV];
	json_t *slabs = json_object_get(route, "slabs"), *s;
	uint64_t need = 0;
	size_t i;
	int best = -1;

	if (!route || strcmp(v->state, "running") || !v->backup_storsrv[0] || !may_order(v, route))
		return false;
	json_array_foreach(slabs, i, s)
	{
		if (json_is_null(json_object_get(s, "primary")) && (int)i < v->nr_slabs)
			need += v->slabs[i].size;
	}
	if (!need)
		return false;
	best = pick_memsrv(m, need, NULL);
	return best >= 0 && order(o, "restore", v, ms->c[best].addr);
}

static void *monitor_main(void *arg)
{
	struct manager *m = arg;
	struct refill_order orders[8];

	for (;;) {
		int nr_orders = 0;

		pthread_mutex_lock(&m->lock);
		if (m->stop) {
			pthread_mutex_unlock(&m->lock);
			return NULL;
		}
		uint64_t now = mono_ms();

		for (int r = 0; r < NR_ROLES; r++) {
			for (int i = 0; i < m->roles[r].n; i++) {
				struct comp *c = &m->roles[r].c[i];
				struct place_server *ps = &m->roles[r].ps[i];
				json_t *deps;
				char *list;

				if (!ps->up || now - c->last_seen_ms <= (uint64_t)m->down_after_ms)
					continue;
				ps->up = false;
				c->down_since_ms = wall_ms();
				/* Running vNodes whose memory it holds fail over now, not
				 * at their next request to it. */
				for (int k = 0; r == ROLE_MEMSRV && k < m->nr_vnodes &&
						nr_orders < (int)ARRAY_SIZE(orders);
				     k++) {
					struct vnode *v = m->vnodes[k];

					if (!vnode_uses(v, c) || strcmp(v->state, "running"))
						continue;
					orders[nr_orders].op = "lost";
					snprintf(orders[nr_orders].agent, ADDR_LEN, "%s", v->agent);
					snprintf(orders[nr_orders].name, NAME_LEN, "%s", v->name);
					snprintf(orders[nr_orders++].addr, ADDR_LEN, "%s", c->addr);
				}
				deps = comp_json(m, r, i);
				list = json_dumps(json_object_get(deps, "vnodes"), JSON_COMPACT);
				log_warn(
					"%s %s is down: no heartbeat for %llu ms; vNodes that depend "
					"on it: %s",
					role_name(r), c->addr,
					(unsigned long long)(now - c->last_seen_ms), list);
				free(list);
				json_decref(deps);
				db_save_comp(m, c);
			}
		}
		for (int i = 0; i < m->nr_vnodes && nr_orders < (int)ARRAY_SIZE(orders); i++)
			nr_orders += plan_restore(m, m->vnodes[i], &orders[nr_orders]) ||
				     plan_refill(m, m->vnodes[i], &orders[nr_orders]);
		pthread_mutex_unlock(&m->lock);
		for (int i = 0; i < nr_orders; i++) {
			char path[NAME_LEN + 32], err[512];
			json_t *body = json_pack("{s:s}", "addr", orders[i].addr);

			snprintf(path, sizeof(path), "/v1/vnodes/%s/%s", orders[i].name,
				 orders[i].op);
			if (agent_call(orders[i].agent, "POST", path, body, NULL, err, sizeof(err)))
				log_warn("vNode %s: %s %s: %s", orders[i].name, orders[i].op,
					 orders[i].addr, err);
			else if (!strcmp(orders[i].op, "lost"))
				log_info("vNode %s: told to fail over from %s", orders[i].name,
					 orders[i].addr);
			else if (!strcmp(orders[i].op, "restore"))
				log_warn(
					"vNode %s: every copy of some memory was lost; restoring it "
					"from the backup on %s",
					orders[i].name, orders[i].addr);
			else
				log_info(
					"vNode %s: redundancy lost; filling %s as the new secondary",
					orders[i].name, orders[i].addr);
			json_decref(body);
		}
		usleep(100 * 1000);
	}
}

int manager_start_monitor(struct manager *m)
{
	return pthread_create(&m->monitor, NULL, monitor_main, m) ? -errno : 0;
}

int manager_init(struct manager *m, const char *db_path, char *err, size_t errlen)
{
	pthread_mutex_init(&m->lock, NULL);
	if (!m->slab_size)
		m->slab_size = 256 * MiB;
	if (!m->down_after_ms)
		m->down_after_ms = 3000;
	if (db_open(m, db_path, err, errlen))
		return -1;
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
	for (int i = 0; i < m->nr_vnodes; i++)
		vnode_free(m->vnodes[i]);
	free(m->vnodes);
	for (int r = 0; r < NR_ROLES; r++) {
		for (int i = 0; i < m->roles[r].n; i++)
			json_decref(m->roles[r].c[i].report);
		free(m->roles[r].c);
		free(m->roles[r].ps);
		free(m->roles[r].index);
	}
	db_close(m);
}

/* ---- remote calls: storage server volumes, agents ---- */

static int volume_op(const char *addr, uint16_t type, const char *name, const char *token_hex,
		     uint64_t size, char *err, size_t errlen)
{
	struct lmp_vol vol = {.size = size};
	struct xport *x;
	int ret;

	snprintf(vol.name, sizeof(vol.name), "%s", name);
	lmp_token_parse(token_hex, vol.token);
	ret = xport_connect(addr, 2000, 10000, &x, err, errlen);
	if (ret)
		return ret;
	ret = stor_vol(x, type, &vol);
	xport_close(x);
	if (ret)
		snprintf(err, errlen, "storage server %s: volume %s: %s", addr, name,
			 stor_strerror(ret));
	return ret;
}

static int agent_call(const char *agent, const char *method, const char *path, json_t *body,
		      json_t **out, char *err, size_t errlen)
{
	char url[ADDR_LEN + 128], why[512];
	int status;

	snprintf(url, sizeof(url), "http://%s%s", agent, path);
	status = http_call(method, url, body, out, AGENT_TIMEOUT_MS, why, sizeof(why));
	if (status < 200 || status >= 300) {
		snprintf(err, errlen, "host agent %s: %s", agent, why);
		return status < 0 ? 503 : status;
	}
	return 0;
}

static void hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

/* What the agent needs to run @v's VMM. Called with the lock held. */
static json_t *vmm_order(struct vnode *v)
{
	json_t *o = json_pack("{s:s,s:I,s:s,s:I,s:I,s:I,s:I}", "name", v->name, "vnode",
			      (json_int_t)v->id, "token", v->token, "cpus",
			      (json_int_t)spec_u64(v->spec, "cpus"), "memory",
			      (json_int_t)v->placed_memory, "excache", (json_int_t)vnode_excache(v),
			      "slab_size", (json_int_t)v->slab_size);
	json_t *memsrv = json_array(), *secondary = json_array();
	const char *keys[] = {"payload", "args", "kernel", "initrd", "cmdline"};
	bool replicated = true;

	for (int i = 0; i < v->nr_slabs; i++) {
		json_array_append_new(memsrv, json_string(v->slabs[i].primary));
		json_array_append_new(secondary, json_string(v->slabs[i].secondary));
		replicated &= v->slabs[i].secondary[0] != '\0';
	}
	json_object_set_new(o, "memsrv", memsrv);
	/* Each slab's write-backs go to its secondary too, and the VMM fails over. */
	if (replicated)
		json_object_set_new(o, "memsrv_secondary", secondary);
	else
		json_decref(secondary);
	json_object_set_new(o, "epoch", json_integer((json_int_t)v->epoch));
	if (replicated && v->backup_storsrv[0])
		json_object_set_new(
			o, "backup",
			json_pack("{s:o,s:s,s:i}", "url",
				  json_sprintf("storsrv://%s/%s.mem", v->backup_storsrv, v->name),
				  "token", v->backup_token, "interval_ms", 1000));
	if (v->storsrv[0])
		json_object_set_new(o, "disks",
				    json_pack("[{s:o,s:s}]", "url",
					      json_sprintf("storsrv://%s/%s", v->storsrv, v->name),
					      "token", v->vol_token));
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (spec_str(v->spec, keys[i]))
			json_object_set(o, keys[i], json_object_get(v->spec, keys[i]));
	return o;
}

/* ---- flows ---- */

/* Check and complete a spec in place; 0 or 400 with a reason. */
static int spec_check(json_t *spec, char *err, size_t errlen)
{
	const char *name = spec_str(spec, "name");
	json_t *cpus = json_object_get(spec, "cpus"), *mem = json_object_get(spec, "memory");
	json_t *xc = json_object_get(spec, "excache"), *disk = json_object_get(spec, "disk");
	const char *keys[] = {"payload", "args", "kernel", "initrd", "cmdline", "uuid"};

	if (!name || !lmp_vol_name_ok(name) || strlen(name) >= NAME_LEN - 1) {
		snprintf(err, errlen,
			 "a vNode needs a name of letters, digits, '_', '.' or '-' "
			 "(at most 62, not starting with '.')");
		return 400;
	}
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		json_t *k = json_object_get(spec, keys[i]);

		if (k && !json_is_string(k)) {
			snprintf(err, errlen, "%s must be a string", keys[i]);
			return 400;
		}
	}
	if (spec_str(spec, "payload") && spec_str(spec, "kernel")) {
		snprintf(err, errlen, "give a payload or a kernel, not both");
		return 400;
	}
	if (!json_object_get(spec, "uuid")) { /* a vNode keeps one identity, as in libvirt */
		uint8_t u[16];

		if (getrandom(u, sizeof(u), 0) != sizeof(u)) {
			snprintf(err, errlen, "no randomness for the vNode's UUID");
			return 500;
		}
		u[6] = (u[6] & 0x0f) | 0x40;
		u[8] = (u[8] & 0x3f) | 0x80;
		json_object_set_new(spec, "uuid",
				    json_sprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
						 "%02x%02x%02x%02x%02x%02x",
						 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7],
						 u[8], u[9], u[10], u[11], u[12], u[13], u[14],
						 u[15]));
	}
	if (!cpus)
		json_object_set_new(spec, "cpus", cpus = json_integer(1));
	if (!mem)
		json_object_set_new(spec, "memory", mem = json_integer((json_int_t)(256 * MiB)));
	if (!json_is_integer(cpus) || json_integer_value(cpus) < 1 ||
	    json_integer_value(cpus) > 64) {
		snprintf(err, errlen, "cpus must be between 1 and 64");
		return 400;
	}
	if (!json_is_integer(mem) || json_integer_value(mem) < (json_int_t)(16 * MiB) ||
	    json_integer_value(mem) > (json_int_t)(1024 * GiB) || json_integer_value(mem) % 4096) {
		snprintf(err, errlen, "memory must be whole pages, between 16 MiB and 1 TiB");
		return 400;
	}
	if (!xc) /* a quarter resident by default: the rest lives on the memory servers */
		json_object_set_new(
			spec, "excache",
			xc = json_integer(ALIGN_UP(json_integer_value(mem) / 4, (json_int_t)MiB)));
	if (!json_is_integer(xc) || json_integer_value(xc) < (json_int_t)MiB ||
	    json_integer_value(xc) > json_integer_value(mem)) {
		snprintf(err, errlen, "excache must be at least 1 MiB and at most the memory");
		return 400;
	}
	if (!disk)
		json_object_set_new(spec, "disk", disk = json_integer(0));
	if (!json_is_integer(disk) || json_integer_value(disk) < 0 ||
	    json_integer_value(disk) % 512) {
		snprintf(err, errlen, "disk must be a size in bytes, a multiple of 512 (0: none)");
		return 400;
	}
	return 0;
}

/* Place @v's memory anew (first start, or its size changed). Lock held. */
static int place_vnode_memory(struct manager *m, struct vnode *v, char *err, size_t errlen)
{
	struct comp_set *s = &m->roles[ROLE_MEMSRV];
	struct place_slab slabs[MAX_SLABS];
	uint64_t mem = spec_u64(v->spec, "memory");
	int nr = place_memory(s->ps, s->n, mem, m->slab_size, slabs, MAX_SLABS, err, errlen);
	struct slab_ref *refs;

	if (nr < 0)
		return nr;
	refs = calloc(nr, sizeof(*refs));
	if (!refs) {
		place_release(s->ps, slabs, nr);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (int i = 0; i < nr; i++) {
		refs[i].size = slabs[i].size;
		snprintf(refs[i].primary, ADDR_LEN, "%s", s->c[slabs[i].primary].addr);
		snprintf(refs[i].secondary, ADDR_LEN, "%s", s->c[slabs[i].secondary].addr);
	}
	free(v->slabs);
	v->slabs = refs;
	v->nr_slabs = nr;
	v->placed_memory = mem;
	v->slab_size = m->slab_size;
	return 0;
}

/* Undo what create reserved and recorded for @v, and forget it. Lock held. */
static void vnode_forget(struct manager *m, struct vnode *v)
{
	vnode_reserve(m, v, -1);
	db_delete_vnode(m, v->name);
	vnode_remove(m, v);
}

int vnode_create(struct manager *m, json_t *spec, json_t **out, char *err, size_t errlen)
{
	uint8_t rnd[LMP_TOKEN_LEN + 8];
	struct comp_set *st = &m->roles[ROLE_STORSRV], *ag = &m->roles[ROLE_AGENT];
	int status = spec_check(spec, err, errlen), si = -1, ai;
	struct vnode *v;
	json_t *order;
	char name[NAME_LEN];

	if (status)
		return status;
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
		snprintf(err, errlen, "no randomness for the vNode's token");
		return 500;
	}
	snprintf(name, sizeof(name), "%s", spec_str(spec, "name"));
	pthread_mutex_lock(&m->lock);
	if (vnode_find(m, name)) {
		pthread_mutex_unlock(&m->lock);
		snprintf(err, errlen, "a vNode named %s exists already (legoctl destroy %s)", name,
			 name);
		return 409;
	}
	v = vnode_add(m, name);
	if (!v) {
		pthread_mutex_unlock(&m->lock);
		snprintf(err, errlen, "out of memory");
		return 500;
	}
	v->spec = json_incref(spec);
	v->created_s = wall_ms() / 1000;
	v->epoch = 1;
	memcpy(&v->id, rnd + LMP_TOKEN_LEN, 8);
	v->id &= INT64_MAX; /* it goes through JSON */
	hex(rnd, LMP_TOKEN_LEN, v->token);
	snprintf(v->state, sizeof(v->state), "creating");
	/* Two-level placement: all of it, or nothing. */
	if (place_vnode_memory(m, v, err, errlen))
		goto refuse;
	if (vnode_disk(v)) {
		si = place_one(st->ps, st->n, vnode_disk(v), "storage server", err, errlen);
		if (si < 0)
			goto refuse_mem;
		snprintf(v->storsrv, ADDR_LEN, "%s", st->c[si].addr);
	}
	ai = place_one(ag->ps, ag->n, vnode_excache(v), "host agent with room for the ExCache", err,
		       errlen);
	if (ai < 0) {
		if (si >= 0) {
			st->ps[si].reserved -= vnode_disk(v);
			st->ps[si].count--;
			v->storsrv[0] = '\0';
		}
		goto refuse_mem;
	}
	snprintf(v->agent, ADDR_LEN, "%s", ag->c[ai].addr);
	/* The memory's backup, where there is room: without one a vNode still runs,
	 * but losing both copies of a slab would stop it. */
	si = place_one(st->ps, st->n, backup_bytes(v->placed_memory), "storage server", err,
		       errlen);
	if (si >= 0)
		snprintf(v->backup_storsrv, ADDR_LEN, "%s", st->c[si].addr);
	else
		log_warn("vNode %s gets no memory backup: %s", name, err);
	m->nr_placements++;
	db_save_vnode(m, v);
	order = vmm_order(v);
	pthread_mutex_unlock(&m->lock);

	/* Remote work without the lock: the vNode is "creating" meanwhile. */
	if (vnode_disk(v)) {
		uint8_t vt[LMP_TOKEN_LEN];

		if (getrandom(vt, sizeof(vt), 0) != sizeof(vt))
			memset(vt, 0, sizeof(vt));
		hex(vt, sizeof(vt), v->vol_token);
		if (volume_op(v->storsrv, LMP_VOL_CREATE, v->name, v->vol_token, vnode_disk(v), err,
			      errlen)) {
			status = 502;
			goto undo;
		}
		json_object_set_new(order, "disks",
				    json_pack("[{s:o,s:s}]", "url",
					      json_sprintf("storsrv://%s/%s", v->storsrv, v->name),
					      "token", v->vol_token));
	}
	if (v->backup_storsrv[0]) {
		uint8_t bt[LMP_TOKEN_LEN];
		char vol[NAME_LEN + 8], why[512];

		if (getrandom(bt, sizeof(bt), 0) != sizeof(bt))
			memset(bt, 0, sizeof(bt));
		hex(bt, sizeof(bt), v->backup_token);
		snprintf(vol, sizeof(vol), "%s.mem", v->name);
		if (volume_op(v->backup_storsrv, LMP_VOL_CREATE, vol, v->backup_token,
			      backup_bytes(v->placed_memory), why, sizeof(why))) {
			log_warn("vNode %s gets no memory backup: %s", v->name, why);
			pthread_mutex_lock(&m->lock);
			adjust(ps_of(m, ROLE_STORSRV, v->backup_storsrv),
			       backup_bytes(v->placed_memory), false, -1);
			v->backup_storsrv[0] = '\0';
			pthread_mutex_unlock(&m->lock);
		}
		json_decref(order);
		pthread_mutex_lock(&m->lock);
		order = vmm_order(v);
		pthread_mutex_unlock(&m->lock);
	}
	status = agent_call(v->agent, "POST", "/v1/vnodes", order, NULL, err, errlen);
	if (status) {
		char why[256], vol[NAME_LEN + 8];

		if (vnode_disk(v))
			volume_op(v->storsrv, LMP_VOL_DELETE, v->name, v->vol_token, 0, why,
				  sizeof(why));
		snprintf(vol, sizeof(vol), "%s.mem", v->name);
		if (v->backup_storsrv[0])
			volume_op(v->backup_storsrv, LMP_VOL_DELETE, vol, v->backup_token, 0, why,
				  sizeof(why));
		goto undo;
	}
	json_decref(order);
	pthread_mutex_lock(&m->lock);
	snprintf(v->state, sizeof(v->state), "running");
	db_save_vnode(m, v);
	if (out)
		*out = vnode_json(m, v);
	pthread_mutex_unlock(&m->lock);
	log_info("vNode %s created on agent %s", v->name, v->agent);
	return 0;
undo:
	json_decref(order);
	pthread_mutex_lock(&m->lock);
	log_warn("vNode %s not created: %s", v->name, err);
	vnode_forget(m, v);
	pthread_mutex_unlock(&m->lock);
	return status;
refuse_mem:
	vnode_reserve(m, &(struct vnode){.slabs = v->slabs, .nr_slabs = v->nr_slabs}, -1);
refuse:
	m->nr_refusals++;
	vnode_remove(m, v);
	pthread_mutex_unlock(&m->lock);
	return 507;
}

/* Look @name up and check it is not in the middle of a change. Lock held. */
static struct vnode *vnode_get(struct manager *m, const char *name, int *status, char *err,
			       size_t errlen)
{
	struct vnode *v = vnode_find(m, name);

	if (!v) {
		snprintf(err, errlen, "no vNode named %s (legoctl list)", name);
		*status = 404;
	} else if (!strcmp(v->state, "creating")) {
		snprintf(err, errlen, "vNode %s is being created or changed; try again", name);
		*status = 409;
		v = NULL;
	}
	return v;
}

int vnode_stop(struct manager *m, const char *name, char *err, size_t errlen)
{
	char agent[ADDR_LEN], path[NAME_LEN + 16];
	int status = 0;
	struct vnode *v;

	pthread_mutex_lock(&m->lock);
	v = vnode_get(m, name, &status, err, errlen);
	if (v)
		snprintf(agent, sizeof(agent), "%s", v->agent);
	pthread_mutex_unlock(&m->lock);
	if (!v)
		return status;
	snprintf(path, sizeof(path), "/v1/vnodes/%s", name);
	status = agent_call(agent, "DELETE", path, NULL, NULL, err, errlen);
	if (status == 404)
		status = 0; /* the agent has no such VMM: it is stopped */
	if (status)
		return status;
	pthread_mutex_lock(&m->lock);
	v = vnode_find(m, name);
	if (v) {
		vnode_set_state(m, v, "stopped");
		json_decref(v->report); /* what its VMM said is history now */
		v->report = NULL;
	}
	pthread_mutex_unlock(&m->lock);
	return 0;
}

int vnode_start(struct manager *m, const char *name, char *err, size_t errlen)
{
	int status = 0;
	struct vnode *v;
	json_t *order;
	char agent[ADDR_LEN], prev[16];
	bool resize_backup = false;

	pthread_mutex_lock(&m->lock);
	v = vnode_get(m, name, &status, err, errlen);
	if (v && !strcmp(v->state, "running")) {
		snprintf(err, errlen, "vNode %s is running", name);
		status = 409;
		v = NULL;
	}
	if (!v) {
		pthread_mutex_unlock(&m->lock);
		return status;
	}
	/* A new memory size takes effect now: its slabs are placed anew, and its
	 * backup volume (reserved here, resized below) follows. */
	if (spec_u64(v->spec, "memory") != v->placed_memory) {
		struct vnode old = {.nr_slabs = v->nr_slabs};
		struct place_server *bk = ps_of(m, ROLE_STORSRV, v->backup_storsrv);
		uint64_t old_memory = v->placed_memory;

		old.slabs = malloc(v->nr_slabs * sizeof(*old.slabs) + 1);
		if (!old.slabs) {
			pthread_mutex_unlock(&m->lock);
			snprintf(err, errlen, "out of memory");
			return 500;
		}
		memcpy(old.slabs, v->slabs, v->nr_slabs * sizeof(*old.slabs));
		vnode_reserve(m, &old, -1);
		if (place_vnode_memory(m, v, err, errlen)) {
			vnode_reserve(m, &old, +1);
			free(old.slabs);
			pthread_mutex_unlock(&m->lock);
			return 507;
		}
		free(old.slabs);
		adjust(bk, backup_bytes(old_memory), false, -1);
		adjust(bk, backup_bytes(v->placed_memory), false, +1);
		resize_backup = v->backup_storsrv[0] != '\0';
		db_save_vnode(m, v);
	}
	snprintf(prev, sizeof(prev), "%s", v->state);
	snprintf(v->state, sizeof(v->state), "creating");
	snprintf(agent, sizeof(agent), "%s", v->agent);
	pthread_mutex_unlock(&m->lock);
	if (resize_backup) { /* without the lock: the vNode is "creating" */
		char vol[NAME_LEN + 8], why[512];

		snprintf(vol, sizeof(vol), "%s.mem", v->name);
		if (volume_op(v->backup_storsrv, LMP_VOL_RESIZE, vol, v->backup_token,
			      backup_bytes(v->placed_memory), why, sizeof(why))) {
			log_warn("vNode %s runs without a memory backup: %s", v->name, why);
			volume_op(v->backup_storsrv, LMP_VOL_DELETE, vol, v->backup_token, 0, why,
				  sizeof(why));
			pthread_mutex_lock(&m->lock);
			adjust(ps_of(m, ROLE_STORSRV, v->backup_storsrv),
			       backup_bytes(v->placed_memory), false, -1);
			v->backup_storsrv[0] = '\0';
			pthread_mutex_unlock(&m->lock);
		}
	}
	pthread_mutex_lock(&m->lock);
	order = vmm_order(v);
	pthread_mutex_unlock(&m->lock);
	status = agent_call(agent, "POST", "/v1/vnodes", order, NULL, err, errlen);
	json_decref(order);
	pthread_mutex_lock(&m->lock);
	snprintf(v->state, sizeof(v->state), "%s", status ? prev : "running");
	db_save_vnode(m, v);
	pthread_mutex_unlock(&m->lock);
	return status;
}

int vnode_destroy(struct manager *m, const char *name, char *err, size_t errlen)
{
	int status = vnode_stop(m, name, err, errlen);
	struct vnode *v;
	char why[512];

	if (status == 503) /* the agent is gone, and its VMMs with it: nothing to stop */
		log_warn("destroying %s without stopping it: %s", name, err);
	else if (status)
		return status;
	pthread_mutex_lock(&m->lock);
	v = vnode_find(m, name);
	if (!v) {
		pthread_mutex_unlock(&m->lock);
		return 0;
	}
	if (vnode_disk(v) && v->storsrv[0] &&
	    volume_op(v->storsrv, LMP_VOL_DELETE, v->name, v->vol_token, 0, why, sizeof(why)) &&
	    !strstr(why, "No such file"))
		log_warn("vNode %s: its volume stays behind: %s", name, why);
	if (v->backup_storsrv[0]) {
		char vol[NAME_LEN + 8];

		snprintf(vol, sizeof(vol), "%s.mem", v->name);
		if (volume_op(v->backup_storsrv, LMP_VOL_DELETE, vol, v->backup_token, 0, why,
			      sizeof(why)) &&
		    !strstr(why, "No such file"))
			log_warn("vNode %s: its memory backup stays behind: %s", name, why);
	}
	vnode_forget(m, v);
	pthread_mutex_unlock(&m->lock);
	log_info("vNode %s destroyed", name);
	return 0;
}

int vnode_resize(struct manager *m, const char *name, json_t *req, json_t **out, char *err,
		 size_t errlen)
{
	json_t *xc = json_object_get(req, "excache"), *cpus = json_object_get(req, "cpus");
	json_t *mem = json_object_get(req, "memory");
	int status = 0;
	struct vnode *v;
	char agent[ADDR_LEN], path[NAME_LEN + 32];
	bool live;
	uint64_t old_xc;

	if ((!xc && !cpus && !mem) ||
	    (xc && (!json_is_integer(xc) || json_integer_value(xc) < (json_int_t)MiB)) ||
	    (cpus && (!json_is_integer(cpus) || json_integer_value(cpus) < 1 ||
		      json_integer_value(cpus) > 64)) ||
	    (mem && (!json_is_integer(mem) || json_integer_value(mem) < (json_int_t)(16 * MiB) ||
		     json_integer_value(mem) % 4096))) {
		snprintf(err, errlen,
			 "give excache (bytes, at least 1 MiB), cpus (1-64) or memory "
			 "(bytes, whole pages, at least 16 MiB)");
		return 400;
	}
	pthread_mutex_lock(&m->lock);
	v = vnode_get(m, name, &status, err, errlen);
	if (!v) {
		pthread_mutex_unlock(&m->lock);
		return status;
	}
	if (xc && (uint64_t)json_integer_value(xc) >
			  (mem ? (uint64_t)json_integer_value(mem) : spec_u64(v->spec, "memory"))) {
		pthread_mutex_unlock(&m->lock);
		snprintf(err, errlen, "the ExCache cannot be larger than the vNode's memory");
		return 400;
	}
	if (cpus)
		json_object_set(v->spec, "cpus", cpus);
	if (mem)
		json_object_set(v->spec, "memory", mem);
	old_xc = vnode_excache(v);
	live = xc && !strcmp(v->state, "running");
	if (xc) {
		struct place_server *ps = ps_of(m, ROLE_AGENT, v->agent);
		uint64_t want = (uint64_t)json_integer_value(xc);

		if (ps && want > old_xc && ps->reserved + (want - old_xc) > ps->capacity) {
			pthread_mutex_unlock(&m->lock);
			snprintf(err, errlen,
				 "host agent %s has no room for %llu more bytes of ExCache",
				 v->agent, (unsigned long long)(want - old_xc));
			return 507;
		}
		if (ps)
			ps->reserved += want - old_xc;
		json_object_set(v->spec, "excache", xc);
	}
	db_save_vnode(m, v);
	snprintf(agent, sizeof(agent), "%s", v->agent);
	pthread_mutex_unlock(&m->lock);
	if (live) {
		json_t *body = json_pack("{s:O}", "excache", xc);

		snprintf(path, sizeof(path), "/v1/vnodes/%s/resize", name);
		status = agent_call(agent, "POST", path, body, NULL, err, errlen);
		json_decref(body);
	}
	pthread_mutex_lock(&m->lock);
	v = vnode_find(m, name);
	if (status && v) { /* the live resize failed: the old size stands */
		struct place_server *ps = ps_of(m, ROLE_AGENT, v->agent);

		if (ps)
			ps->reserved -= vnode_excache(v) - old_xc;
		json_object_set_new(v->spec, "excache", json_integer((json_int_t)old_xc));
		db_save_vnode(m, v);
	}
	if (!status && v && out)
		*out = vnode_json(m, v);
	pthread_mutex_unlock(&m->lock);
	return status;
}
