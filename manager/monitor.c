/*
 * monitor.c - heartbeats and failure detection: components register and
 * stay up by their heartbeats, an agent's beat reports its VMMs (and where
 * their memory is now, after failovers), a component silent for
 * down_after_ms is marked down and the VMMs that use it are told, and a
 * vNode that lost redundancy or every copy of some memory gets a refill or
 * a restore ordered.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "manager.h"
#include "order.h"
#include "util.h"

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

		/* A stopped vNode's VMM is gone: a report of it running was built
		 * before the stop and arrived after it (nothing else starts one). */
		if (strcmp(v->agent, c->addr) || v->state == VNODE_CREATING ||
		    v->state == VNODE_STOPPED)
			continue;
		r = json_object_get(vnodes, v->name);
		if (r) {
			const char *st = spec_str(r, "state");

			json_decref(v->report);
			v->report = json_incref(r);
			learn_route(m, v, json_object_get(json_object_get(r, "excache"), "route"));
			if (v->state == VNODE_SAVED)
				continue; /* its VMM stopped after the snapshot */
			if (st && !strcmp(st, "running"))
				vnode_set_state(m, v,
						v->state == VNODE_PAUSED ? VNODE_PAUSED
									 : VNODE_RUNNING);
			else if (st)
				vnode_set_state(
					m, v,
					json_integer_value(json_object_get(r, "exit_status"))
						? VNODE_FAILED
						: VNODE_EXITED);
		} else if (v->state == VNODE_RUNNING || v->state == VNODE_PAUSED) {
			vnode_set_state(m, v, VNODE_LOST); /* its agent does not know it */
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

	if (r < 0 || !addr_ok(addr) || strlen(addr) >= ADDR_LEN || !json_is_integer(cap) ||
	    json_integer_value(cap) < 0) {
		snprintf(err, errlen,
			 "a heartbeat needs role (memsrv, storsrv or agent), addr "
			 "(HOST:PORT: a host name or address and a port) and capacity (bytes)");
		return -EINVAL;
	}
	pthread_mutex_lock(&m->lock);
	m->nr_heartbeats++;
	c = comp_find(m, r, addr, &i);
	if (!c) {
		c = comp_add(m, r, addr, (uint64_t)json_integer_value(cap));
		if (!c) {
			pthread_mutex_unlock(&m->lock);
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
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

/* A verb (order.h) for a vNode's VMM, sent to its agent once the lock is dropped. */
struct refill_order {
	char agent[ADDR_LEN], name[NAME_LEN], addr[ADDR_LEN];
	enum vnode_verb verb; /* MEMSRV_LOST, _SECONDARY or _RESTORE, with @addr */
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

/* Fill @o: tell @v's agent to carry out @verb with the server @addr. */
static bool order(struct refill_order *o, enum vnode_verb verb, struct vnode *v, const char *addr)
{
	json_t *route = json_object_get(json_object_get(v->report, "excache"), "route");

	v->refill_ordered_ms = mono_ms();
	v->fill_failures_seen =
		(uint64_t)json_integer_value(json_object_get(route, "fill_failures"));
	o->verb = verb;
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

	if (!route || v->state != VNODE_RUNNING || !may_order(v, route))
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
	return best >= 0 && order(o, VERB_MEMSRV_SECONDARY, v, ms->c[best].addr);
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

	if (!route || v->state != VNODE_RUNNING || !v->backup_storsrv[0] || !may_order(v, route))
		return false;
	json_array_foreach(slabs, i, s)
	{
		if (json_is_null(json_object_get(s, "primary")) && (int)i < v->nr_slabs)
			need += v->slabs[i].size;
	}
	if (!need)
		return false;
	best = pick_memsrv(m, need, NULL);
	return best >= 0 && order(o, VERB_MEMSRV_RESTORE, v, ms->c[best].addr);
}

static void *monitor_main(void *arg)
{
	struct manager *m = arg;
	struct refill_order orders[8];

	for (;;) {
		struct {
			char agent[ADDR_LEN], name[NAME_LEN];
			uint64_t size;
			int slabs;
		} trims[8];
		int nr_orders = 0, nr_trims = 0;

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

					if (!vnode_uses(v, c) || v->state != VNODE_RUNNING)
						continue;
					orders[nr_orders].verb = VERB_MEMSRV_LOST;
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
		/* memory given back by a guest: its slabs follow */
		for (int i = 0; i < m->nr_vnodes && nr_trims < (int)ARRAY_SIZE(trims); i++) {
			struct vnode *v = m->vnodes[i];

			if (memresize_plan_trim(m, v, &trims[nr_trims].size,
						&trims[nr_trims].slabs)) {
				snprintf(trims[nr_trims].agent, ADDR_LEN, "%s", v->agent);
				snprintf(trims[nr_trims++].name, NAME_LEN, "%s", v->name);
			}
		}
		pthread_mutex_unlock(&m->lock);
		for (int i = 0; i < nr_trims; i++) {
			char err[512];

			if (memresize_trim(m, trims[i].agent, trims[i].name, trims[i].size,
					   trims[i].slabs, err, sizeof(err)))
				log_warn("vNode %s: its unplugged slabs stay placed for now: %s",
					 trims[i].name, err);
		}
		for (int i = 0; i < nr_orders; i++) {
			const struct vnode_verb_def *d = &vnode_verbs[orders[i].verb];
			char path[NAME_LEN + 32], err[512];
			json_t *body = json_pack("{s:s}", d->arg, orders[i].addr);

			snprintf(path, sizeof(path), "/v1/vnodes/%s/%s", orders[i].name, d->op);
			if (agent_call(orders[i].agent, "POST", path, body, NULL, err, sizeof(err)))
				log_warn("vNode %s: %s %s: %s", orders[i].name, d->op,
					 orders[i].addr, err);
			else if (orders[i].verb == VERB_MEMSRV_LOST)
				log_info("vNode %s: told to fail over from %s", orders[i].name,
					 orders[i].addr);
			else if (orders[i].verb == VERB_MEMSRV_RESTORE)
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
