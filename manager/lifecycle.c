/*
 * lifecycle.c - a running vNode paused and resumed, moved to another host
 * agent while it runs, saved into a snapshot and restored from it.
 *
 * Migration moves the processor component only: the memory stays on its
 * memory servers and the disks on their storage server. The target agent
 * starts a VMM of the same order at the next epoch, waiting for the vNode
 * ("incoming", with a one-time token); the source VMM pauses, writes its
 * dirty pages back and hands its vCPU and device state over; the target
 * takes the vNode over on the memory servers, which fences the source (see
 * vmm/migrate.c for why exactly one of them runs afterwards, whatever
 * fails). The manager only has to learn which one it was.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "log.h"
#include "manager.h"
#include "order.h"
#include "util.h"

#define LIFECYCLE_TIMEOUT_MS 180000 /* a migration or snapshot, its waits included */

/*
 * The agent of vNode @name into @agent if it is in state @want; else -ENOENT
 * (no such vNode) or -EBUSY, with a sentence saying what @verb needs.
 */
static int agent_of(struct manager *m, const char *name, enum vnode_state want, const char *verb,
		    char *agent, char *err, size_t errlen)
{
	int status = 0;
	struct vnode *v;

	pthread_mutex_lock(&m->lock);
	v = vnode_lookup(m, name, &status, err, errlen);
	if (v && v->state != want) {
		snprintf(err, errlen, "vNode %s is %s: only a %s one can be %s", name,
			 vnode_state_name(v->state), vnode_state_name(want), verb);
		status = -EBUSY;
	} else if (v) {
		snprintf(agent, ADDR_LEN, "%s", v->agent);
	}
	pthread_mutex_unlock(&m->lock);
	return status;
}

int vnode_reboot(struct manager *m, const char *name, bool force, json_t **out, char *err,
		 size_t errlen)
{
	char agent[ADDR_LEN], path[NAME_LEN + 32];
	int status = agent_of(m, name, VNODE_RUNNING, "rebooted", agent, err, errlen);
	json_t *body;

	if (status)
		return status;
	snprintf(path, sizeof(path), "/v1/vnodes/%s/reboot", name);
	body = json_pack("{s:b}", "force", force);
	status = agent_call(agent, "POST", path, body, out, err, errlen);
	json_decref(body);
	return status;
}

int vnode_pause(struct manager *m, const char *name, bool pause, char *err, size_t errlen)
{
	char agent[ADDR_LEN], path[NAME_LEN + 32];
	int status = agent_of(m, name, pause ? VNODE_RUNNING : VNODE_PAUSED,
			      pause ? "paused" : "resumed", agent, err, errlen);
	struct vnode *v;
	json_t *body;

	if (status)
		return status;
	snprintf(path, sizeof(path), "/v1/vnodes/%s/%s", name, pause ? "pause" : "resume");
	body = json_object();
	status = agent_call(agent, "POST", path, body, NULL, err, errlen);
	json_decref(body);
	if (status)
		return status;
	pthread_mutex_lock(&m->lock);
	if ((v = vnode_find(m, name))) {
		vnode_set_state(m, v, pause ? VNODE_PAUSED : VNODE_RUNNING);
		db_save_vnode(m, v);
	}
	pthread_mutex_unlock(&m->lock);
	return 0;
}

/* The up agent other than @v's with the most room for its ExCache, or @to when given. Lock held. */
static int pick_target(struct manager *m, struct vnode *v, const char *to, char *err, size_t errlen)
{
	struct comp_set *ag = &m->roles[ROLE_AGENT];
	uint64_t xc = vnode_excache(v), best_room = 0;
	int best = -1;

	for (int i = 0; i < ag->n; i++) {
		struct place_server *ps = &ag->ps[i];
		uint64_t room = ps->capacity > ps->reserved ? ps->capacity - ps->reserved : 0;

		if (!strcmp(ag->c[i].addr, v->agent) || (to && strcmp(ag->c[i].addr, to)))
			continue;
		if (!ps->up || room < xc) {
			if (to)
				snprintf(err, errlen, "host agent %s is %s", to,
					 ps->up ? "without room for the vNode's ExCache" : "down");
			continue;
		}
		if (best < 0 || room > best_room)
			best = i, best_room = room;
	}
	if (best < 0 && to && !err[0])
		snprintf(err, errlen, "%s is not another host agent of the cluster (legoctl nodes)",
			 to);
	else if (best < 0 && !to)
		snprintf(err, errlen, "no other host agent has room for %s's ExCache", v->name);
	return best;
}

/* Whether @agent's VMM of @name still runs. */
static bool vmm_runs(const char *agent, const char *name)
{
	char path[NAME_LEN + 16], err[256];
	json_t *out = NULL, *vn;
	bool runs;

	if (agent_call(agent, "GET", "/v1/vnodes", NULL, &out, err, sizeof(err)))
		return false;
	snprintf(path, sizeof(path), "%s", name);
	vn = json_object_get(json_object_get(out, "vnodes"), path);
	runs = vn && !strcmp(spec_str(vn, "state") ?: "", "running");
	json_decref(out);
	return runs;
}

/* Forget @name's VMM on @agent: it stopped (it moved away), or it lost. */
static void drop_vmm(const char *agent, const char *name)
{
	char path[NAME_LEN + 16], err[256];

	snprintf(path, sizeof(path), "/v1/vnodes/%s", name);
	if (agent_call(agent, "DELETE", path, NULL, NULL, err, sizeof(err)) &&
	    !strstr(err, "no vNode"))
		log_warn("vNode %s: its VMM on %s stays behind: %s", name, agent, err);
}

int vnode_migrate(struct manager *m, const char *name, const char *to, json_t **out, char *err,
		  size_t errlen)
{
	char src[ADDR_LEN], dst[ADDR_LEN], host[ADDR_LEN], path[NAME_LEN + 32], tok[65];
	uint8_t token[LMP_TOKEN_LEN];
	json_t *order = NULL, *ans = NULL, *body;
	struct place_server *ps;
	struct vnode *v;
	uint64_t xc = 0, t0 = now_ns();
	int status = 0, ti;
	const char *incoming, *colon;
	bool moved;

	err[0] = '\0';
	if (getrandom(token, sizeof(token), 0) != sizeof(token)) {
		snprintf(err, errlen, "no randomness for the migration's token");
		return -EIO;
	}
	util_hex(token, sizeof(token), tok);
	pthread_mutex_lock(&m->lock);
	v = vnode_lookup(m, name, &status, err, errlen);
	if (v && v->state != VNODE_RUNNING) {
		snprintf(err, errlen, "vNode %s is %s: only a running one migrates", name,
			 vnode_state_name(v->state));
		status = -EINVAL;
		v = NULL;
	}
	ti = v ? pick_target(m, v, to, err, errlen) : -1;
	if (v && ti < 0) {
		status = to ? -EINVAL : -ENOSPC;
		v = NULL;
	}
	if (v) {
		struct comp_set *ag = &m->roles[ROLE_AGENT];

		snprintf(src, sizeof(src), "%s", v->agent);
		snprintf(dst, sizeof(dst), "%s", ag->c[ti].addr);
		xc = vnode_excache(v);
		ag->ps[ti].reserved += xc; /* the target's room, held while the VMM moves */
		ag->ps[ti].count++;
		order = vnode_order(v, &m->ipam);
		v->state = VNODE_CREATING; /* hands off meanwhile */
		colon = strrchr(dst, ':');
		snprintf(host, sizeof(host), "%.*s:0", (int)(colon - dst), dst);
		json_object_set_new(order, "epoch", json_integer((json_int_t)(v->epoch + 1)));
		json_object_set_new(order, "incoming", json_string(host));
		json_object_set_new(order, "migrate_token", json_string(tok));
	}
	pthread_mutex_unlock(&m->lock);
	explicit_bzero(token, sizeof(token));
	if (!v) {
		explicit_bzero(tok, sizeof(tok));
		return status;
	}
	log_info("vNode %s: migrating from %s to %s", name, src, dst);
	status = agent_run_order(m, dst, order, &ans, err, errlen);
	json_decref(order);
	incoming = json_string_value(json_object_get(ans, "incoming"));
	if (!status && !incoming) {
		snprintf(err, errlen, "host agent %s did not say where its VMM waits", dst);
		status = -EREMOTEIO;
	}
	if (!status) {
		body = json_pack("{s:s,s:s}", "to", incoming, "token", tok);
		snprintf(path, sizeof(path), "/v1/vnodes/%s/migrate", name);
		json_decref(ans);
		ans = NULL;
		status = agent_call_ms(src, "POST", path, body, &ans, LIFECYCLE_TIMEOUT_MS, err,
				       errlen);
		json_decref(body);
	}
	explicit_bzero(tok, sizeof(tok));
	/* Which one runs: the source said it moved, or (it failed) the target runs and
	 * the source does not, which the memory servers decided. */
	moved = !status || (!vmm_runs(src, name) && vmm_runs(dst, name));
	if (moved && status)
		log_warn("vNode %s: the migration reported a failure (%s), but the target runs it",
			 name, err);
	drop_vmm(moved ? src : dst, name);
	pthread_mutex_lock(&m->lock);
	v = vnode_find(m, name);
	if (v) {
		if (moved) {
			if ((ps = ps_of(m, ROLE_AGENT, src)))
				ps->reserved -= xc, ps->count--;
			snprintf(v->agent, ADDR_LEN, "%s", dst);
			v->epoch++; /* the VMM's report brings the exact one */
			json_decref(v->report);
			v->report = NULL;
		} else if ((ps = ps_of(m, ROLE_AGENT, dst))) {
			ps->reserved -= xc, ps->count--;
		}
		v->state = VNODE_RUNNING;
		db_save_vnode(m, v);
	}
	pthread_mutex_unlock(&m->lock);
	if (!moved) {
		json_decref(ans);
		return status ? status : -EREMOTEIO;
	}
	log_info("vNode %s: migrated to %s in %.0f ms", name, dst, (now_ns() - t0) / 1e6);
	*out = json_pack("{s:s,s:s,s:s,s:O,s:f}", "name", name, "from", src, "to", dst, "pause_ms",
			 json_object_get(ans, "pause_ms") ?: json_null(), "ms",
			 (now_ns() - t0) / 1e6);
	json_decref(ans);
	return 0;
}

int vnode_snapshot(struct manager *m, const char *name, const char *snap, json_t **out, char *err,
		   size_t errlen)
{
	char agent[ADDR_LEN], path[NAME_LEN + 32];
	enum vnode_state prev = VNODE_RUNNING;
	json_t *body, *ans = NULL;
	struct vnode *v;
	int status = 0;

	if (!snap || !lmp_vol_name_ok(snap) || strlen(snap) >= NAME_LEN) {
		snprintf(err, errlen, "a snapshot's name is letters, digits, '_', '.' or '-'");
		return -EINVAL;
	}
	pthread_mutex_lock(&m->lock);
	v = vnode_lookup(m, name, &status, err, errlen);
	if (v && v->state != VNODE_RUNNING && v->state != VNODE_PAUSED) {
		snprintf(err, errlen, "vNode %s is %s: only a running or paused one is saved", name,
			 vnode_state_name(v->state));
		status = -EINVAL;
		v = NULL;
	}
	if (v) {
		snprintf(agent, sizeof(agent), "%s", v->agent);
		prev = v->state;
		v->state = VNODE_CREATING;
	}
	pthread_mutex_unlock(&m->lock);
	if (!v)
		return status;
	body = json_pack("{s:s}", "snapshot", snap);
	snprintf(path, sizeof(path), "/v1/vnodes/%s/snapshot", name);
	status = agent_call_ms(agent, "POST", path, body, &ans, LIFECYCLE_TIMEOUT_MS, err, errlen);
	json_decref(body);
	if (!status)
		drop_vmm(agent, name); /* it stopped after the snapshot */
	pthread_mutex_lock(&m->lock);
	if ((v = vnode_find(m, name))) {
		v->state = status ? prev : VNODE_SAVED;
		if (!status) {
			snprintf(v->snapshot, sizeof(v->snapshot), "%s", snap);
			json_decref(v->report);
			v->report = NULL;
		}
		db_save_vnode(m, v);
	}
	pthread_mutex_unlock(&m->lock);
	if (status) {
		json_decref(ans);
		return status;
	}
	*out = json_pack("{s:s,s:s,s:s,s:O,s:O}", "name", name, "snapshot", snap, "agent", agent,
			 "ms", json_object_get(ans, "ms") ?: json_null(), "bytes",
			 json_object_get(ans, "bytes") ?: json_null());
	json_decref(ans);
	log_info("vNode %s saved as %s on %s", name, snap, agent);
	return 0;
}

int vnode_restore(struct manager *m, const char *name, const char *as, json_t **out, char *err,
		  size_t errlen)
{
	char agent[ADDR_LEN];
	json_t *order = NULL;
	struct vnode *v;
	int status = 0;

	if (as && strcmp(as, name))
		return vnode_copy(m, name, as, out, err, errlen);
	pthread_mutex_lock(&m->lock);
	v = vnode_lookup(m, name, &status, err, errlen);
	if (v && v->state != VNODE_SAVED) {
		snprintf(err, errlen,
			 "vNode %s is %s: only a saved one is restored (legoctl snapshot)", name,
			 vnode_state_name(v->state));
		status = -EINVAL;
		v = NULL;
	}
	if (v) {
		snprintf(agent, sizeof(agent), "%s", v->agent);
		order = vnode_order(v, &m->ipam);
		json_object_set_new(order, "restore", json_string(v->snapshot));
		v->state = VNODE_CREATING;
	}
	pthread_mutex_unlock(&m->lock);
	if (!v)
		return status;
	status = agent_run_order(m, agent, order, NULL, err, errlen);
	json_decref(order);
	pthread_mutex_lock(&m->lock);
	if ((v = vnode_find(m, name))) {
		v->state = status ? VNODE_SAVED : VNODE_RUNNING;
		if (!status) /* its memory moves on from here: the snapshot is spent */
			v->snapshot[0] = '\0';
		db_save_vnode(m, v);
	}
	pthread_mutex_unlock(&m->lock);
	if (!status)
		log_info("vNode %s restored from its snapshot on %s", name, agent);
	return status;
}
