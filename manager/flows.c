/*
 * flows.c - what changes a vNode: create (placement, volumes, the VMM),
 * start, stop, resize, destroy. Remote calls (storage server, agent) are
 * made without the lock; a vNode in the middle of one is in state
 * "creating" and cannot be changed meanwhile.
 * What a spec may say is checked in spec.c.
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

void vnode_delete_volumes(struct vnode *v, int n)
{
	for (int i = 0; i < n; i++) {
		char vol[NAME_LEN + 8], why[512];

		vnode_volume(v, i, vol, sizeof(vol));
		if (volume_op(v->storsrv, LMP_VOL_DELETE, vol, v->vol_token, 0, why, sizeof(why)) &&
		    !strstr(why, "no such volume"))
			log_warn("vNode %s: its volume %s stays behind: %s", v->name, vol, why);
	}
}

void vnode_backup_volume(struct manager *m, struct vnode *v)
{
	uint8_t bt[LMP_TOKEN_LEN];
	char vol[NAME_LEN + 8], why[512];

	if (!v->backup_storsrv[0])
		return;
	snprintf(vol, sizeof(vol), "%s.mem", v->name);
	if (getrandom(bt, sizeof(bt), 0) != sizeof(bt)) /* never a guessable token */
		snprintf(why, sizeof(why), "no randomness for its volume's token");
	else
		util_hex(bt, sizeof(bt), v->backup_token);
	explicit_bzero(bt, sizeof(bt));
	if (!v->backup_token[0] ||
	    volume_op(v->backup_storsrv, LMP_VOL_CREATE, vol, v->backup_token,
		      backup_bytes(v->placed_memory), why, sizeof(why))) {
		log_warn("vNode %s gets no memory backup: %s", v->name, why);
		pthread_mutex_lock(&m->lock);
		adjust(ps_of(m, ROLE_STORSRV, v->backup_storsrv), backup_bytes(v->placed_memory),
		       false, -1);
		v->backup_storsrv[0] = '\0';
		pthread_mutex_unlock(&m->lock);
	}
}

void vnode_drop_volumes(struct vnode *v)
{
	char vol[NAME_LEN + 8], why[512];

	if (v->storsrv[0])
		vnode_delete_volumes(v, vnode_nr_disks(v) ? vnode_nr_disks(v) : 1);
	if (!v->backup_storsrv[0])
		return;
	snprintf(vol, sizeof(vol), "%s.mem", v->name);
	if (volume_op(v->backup_storsrv, LMP_VOL_DELETE, vol, v->backup_token, 0, why,
		      sizeof(why)) &&
	    !strstr(why, "no such volume"))
		log_warn("vNode %s: its memory backup stays behind: %s", v->name, why);
}

int vnode_place_slabs(struct manager *m, const struct vnode *v, uint64_t size, uint64_t slab_size,
		      struct place_slab *out, int max, char *err, size_t errlen)
{
	struct comp_set *s = &m->roles[ROLE_MEMSRV];
	const char *t = spec_str(v->spec, "transport");
	bool rdma = t && !strcmp(t, "rdma"), *up = NULL;
	int nr;

	if (rdma && s->n && !(up = calloc(s->n, sizeof(*up)))) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (int i = 0; rdma && i < s->n; i++) { /* the others are as good as down for it */
		up[i] = s->ps[i].up;
		s->ps[i].up &= json_is_string(json_object_get(s->c[i].report, "rdma"));
	}
	nr = place_memory(s->ps, s->n, size, slab_size, out, max, err, errlen);
	for (int i = 0; rdma && i < s->n; i++)
		s->ps[i].up = up[i];
	free(up);
	if (nr == -ENOSPC && rdma) {
		size_t len = strlen(err);

		snprintf(err + len, errlen - len,
			 " (the vNode asks for \"transport\": \"rdma\": only memory servers that "
			 "serve RDMA count)");
	}
	return nr;
}

/* Place @v's memory anew (first start, or its size changed). Lock held. */
static int place_vnode_memory(struct manager *m, struct vnode *v, char *err, size_t errlen)
{
	struct comp_set *s = &m->roles[ROLE_MEMSRV];
	struct place_slab slabs[MAX_SLABS];
	uint64_t mem = vnode_place_target(v, m->slab_size);
	int nr = vnode_place_slabs(m, v, mem, m->slab_size, slabs, MAX_SLABS, err, errlen);
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

void vnode_forget(struct manager *m, struct vnode *v)
{
	vnode_reserve(m, v, -1);
	db_delete_vnode(m, v->name);
	vnode_remove(m, v);
}

struct vnode *vnode_new(struct manager *m, const char *name, json_t *spec, bool volumes, char *err,
			size_t errlen)
{
	uint8_t rnd[2 * LMP_TOKEN_LEN + 8];
	struct vnode *v;

	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
		snprintf(err, errlen, "no randomness for %s's tokens", name);
		return NULL;
	}
	v = vnode_add(m, name);
	if (!v) {
		explicit_bzero(rnd, sizeof(rnd));
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	v->spec = json_incref(spec);
	v->created_s = wall_ms() / 1000;
	v->epoch = 1;
	v->state = VNODE_CREATING;
	memcpy(&v->id, rnd + 2 * LMP_TOKEN_LEN, 8);
	v->id &= INT64_MAX; /* it goes through JSON */
	util_hex(rnd, LMP_TOKEN_LEN, v->token);
	if (volumes) /* one token for all of the vNode's volumes */
		util_hex(rnd + LMP_TOKEN_LEN, LMP_TOKEN_LEN, v->vol_token);
	explicit_bzero(rnd, sizeof(rnd));
	return v;
}

void vnode_place_backup(struct manager *m, struct vnode *v)
{
	struct comp_set *st = &m->roles[ROLE_STORSRV];
	char why[256];
	int si = place_one(st->ps, st->n, backup_bytes(v->placed_memory), "storage server", why,
			   sizeof(why));

	/* without one a vNode still runs, but losing both copies of a slab would stop it */
	if (si >= 0)
		snprintf(v->backup_storsrv, ADDR_LEN, "%s", st->c[si].addr);
	else
		log_warn("vNode %s gets no memory backup: %s", v->name, why);
}

int vnode_create(struct manager *m, json_t *spec, json_t **out, char *err, size_t errlen)
{
	struct comp_set *st = &m->roles[ROLE_STORSRV], *ag = &m->roles[ROLE_AGENT];
	int status = spec_check(spec, err, errlen), si = -1, ai;
	struct vnode *v;
	json_t *order;
	char name[NAME_LEN];

	if (status)
		return status;
	snprintf(name, sizeof(name), "%s", spec_str(spec, "name"));
	pthread_mutex_lock(&m->lock);
	if (vnode_find(m, name)) {
		pthread_mutex_unlock(&m->lock);
		snprintf(err, errlen, "a vNode named %s exists already (legoctl destroy %s)", name,
			 name);
		return -EEXIST;
	}
	if (json_is_true(json_object_get(spec, "net")) && !m->ipam.used) {
		pthread_mutex_unlock(&m->lock);
		snprintf(err, errlen,
			 "this cluster has no network for vNodes (lego-manager runs without "
			 "--subnet): create %s with --no-net",
			 name);
		return -EINVAL;
	}
	v = vnode_new(m, name, spec, json_array_size(json_object_get(spec, "disks")) > 0, err,
		      errlen);
	if (!v) {
		pthread_mutex_unlock(&m->lock);
		return -ENOMEM;
	}
	/* Its address, then two-level placement: all of it, or nothing. */
	if (json_is_true(json_object_get(spec, "net"))) {
		char subnet[20];

		if (ipam_take(&m->ipam, v->ip)) {
			ipam_gateway(&m->ipam, subnet);
			snprintf(err, errlen, "no address left in the vNodes' subnet (gateway %s)",
				 subnet);
			goto refuse;
		}
		ipam_mac(v->ip, v->mac);
	}
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
	vnode_place_backup(m, v);
	m->nr_placements++;
	db_save_placement(m, v);
	pthread_mutex_unlock(&m->lock);

	/* Remote work without the lock: the vNode is "creating" meanwhile. */
	for (int i = 0; i < vnode_nr_disks(v); i++) {
		char vol[NAME_LEN + 8];

		vnode_volume(v, i, vol, sizeof(vol));
		if (volume_op(v->storsrv, LMP_VOL_CREATE, vol, v->vol_token, vnode_disk_size(v, i),
			      err, errlen)) {
			vnode_delete_volumes(v, i);
			status = -EREMOTEIO;
			goto undo;
		}
	}
	vnode_backup_volume(m, v);
	if (json_object_get(v->spec, "image")) {
		/* Its first disk waits for an image: the client imports it, then starts it. */
		pthread_mutex_lock(&m->lock);
		v->state = VNODE_STOPPED;
		db_save_vnode(m, v);
		if (out) {
			*out = vnode_json(m, v);
			json_object_set_new(
				*out, "import",
				json_pack("{s:o,s:s}", "url",
					  json_sprintf("storsrv://%s/%s", v->storsrv, v->name),
					  "token", v->vol_token));
		}
		pthread_mutex_unlock(&m->lock);
		log_info("vNode %s created, waiting for its image before it starts", v->name);
		return 0;
	}
	pthread_mutex_lock(&m->lock);
	order = vnode_order(v, &m->ipam);
	pthread_mutex_unlock(&m->lock);
	status = agent_run_order(m, v->agent, order, NULL, err, errlen);
	json_decref(order);
	if (status) {
		vnode_drop_volumes(v);
		goto undo;
	}
	pthread_mutex_lock(&m->lock);
	v->state = VNODE_RUNNING;
	db_save_vnode(m, v);
	if (out)
		*out = vnode_json(m, v);
	pthread_mutex_unlock(&m->lock);
	log_info("vNode %s created on agent %s", v->name, v->agent);
	return 0;
undo:
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
	return -ENOSPC;
}

/* Look @name up and check it is not in the middle of a change. Lock held. */
struct vnode *vnode_lookup(struct manager *m, const char *name, int *status, char *err,
			   size_t errlen)
{
	struct vnode *v = vnode_find(m, name);

	if (!v) {
		snprintf(err, errlen, "no vNode named %s (legoctl list)", name);
		*status = -ENOENT;
	} else if (v->state == VNODE_CREATING) {
		snprintf(err, errlen, "vNode %s is being created or changed; try again", name);
		*status = -EBUSY;
		v = NULL;
	}
	return v;
}

int vnode_stop(struct manager *m, const char *name, const struct stop_opts *how, json_t **out,
	       char *err, size_t errlen)
{
	char agent[ADDR_LEN], path[NAME_LEN + 32];
	int status = 0;
	struct vnode *v, kept = {0}; /* a saved vNode's memory on the servers */
	bool running;

	pthread_mutex_lock(&m->lock);
	v = vnode_lookup(m, name, &status, err, errlen);
	if (v)
		snprintf(agent, sizeof(agent), "%s", v->agent);
	running = v && (v->state == VNODE_RUNNING || v->state == VNODE_PAUSED);
	if (v && v->state == VNODE_SAVED && v->nr_slabs &&
	    (kept.slabs = malloc(v->nr_slabs * sizeof(*v->slabs)))) {
		memcpy(kept.slabs, v->slabs, v->nr_slabs * sizeof(*v->slabs));
		kept.nr_slabs = v->nr_slabs;
		kept.id = v->id;
		memcpy(kept.token, v->token, sizeof(kept.token));
		memcpy(kept.name, v->name, sizeof(kept.name));
	}
	pthread_mutex_unlock(&m->lock);
	if (!v)
		return status;
	if (how && !how->force && running) { /* the power button first */
		json_t *body = json_pack("{s:i}", "timeout_s", how->timeout_s);

		snprintf(path, sizeof(path), "/v1/vnodes/%s/shutdown", name);
		status = agent_call_ms(agent, "POST", path, body, out, (how->timeout_s + 30) * 1000,
				       err, errlen);
		json_decref(body);
	} else {
		snprintf(path, sizeof(path), "/v1/vnodes/%s", name);
		status = agent_call(agent, "DELETE", path, NULL, NULL, err, errlen);
	}
	if (status == -ENOENT)
		status = 0;	   /* the agent has no such VMM: it is stopped */
	if (!status && kept.slabs) /* its snapshot goes, and with it the memory kept for it */
		vnode_drop_memory(&kept);
	free(kept.slabs);
	if (status)
		return status;
	pthread_mutex_lock(&m->lock);
	v = vnode_find(m, name);
	if (v) {
		vnode_set_state(m, v, VNODE_STOPPED);
		v->snapshot[0] = '\0';	/* a saved one's snapshot is dropped */
		json_decref(v->report); /* what its VMM said is history now */
		v->report = NULL;
		db_save_vnode(m, v);
	}
	pthread_mutex_unlock(&m->lock);
	return 0;
}

int vnode_start(struct manager *m, const char *name, char *err, size_t errlen)
{
	int status = 0;
	struct vnode *v;
	json_t *order;
	char agent[ADDR_LEN];
	enum vnode_state prev;
	bool resize_backup = false;

	pthread_mutex_lock(&m->lock);
	v = vnode_lookup(m, name, &status, err, errlen);
	if (v && (v->state == VNODE_RUNNING || v->state == VNODE_PAUSED)) {
		snprintf(err, errlen, "vNode %s is %s", name, vnode_state_name(v->state));
		status = -EEXIST;
		v = NULL;
	} else if (v && v->state == VNODE_SAVED) {
		snprintf(err, errlen,
			 "vNode %s is saved: legoctl restore %s brings it back where it was (a "
			 "stop drops the snapshot, then it boots anew)",
			 name, name);
		status = -EEXIST;
		v = NULL;
	}
	if (!v) {
		pthread_mutex_unlock(&m->lock);
		return status;
	}
	/* A new memory size takes effect now: its slabs are placed anew, and its
	 * backup volume (reserved here, resized below) follows. */
	if (vnode_place_target(v, v->slab_size ? v->slab_size : m->slab_size) != v->placed_memory) {
		struct vnode old = {.nr_slabs = v->nr_slabs};
		struct place_server *bk = ps_of(m, ROLE_STORSRV, v->backup_storsrv);
		uint64_t old_memory = v->placed_memory;

		old.slabs = malloc(v->nr_slabs * sizeof(*old.slabs) + 1);
		if (!old.slabs) {
			pthread_mutex_unlock(&m->lock);
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		memcpy(old.slabs, v->slabs, v->nr_slabs * sizeof(*old.slabs));
		vnode_reserve(m, &old, -1);
		if (place_vnode_memory(m, v, err, errlen)) {
			vnode_reserve(m, &old, +1);
			free(old.slabs);
			pthread_mutex_unlock(&m->lock);
			return -ENOSPC;
		}
		free(old.slabs);
		adjust(bk, backup_bytes(old_memory), false, -1);
		adjust(bk, backup_bytes(v->placed_memory), false, +1);
		resize_backup = v->backup_storsrv[0] != '\0';
		db_save_vnode(m, v);
	}
	prev = v->state;
	v->state = VNODE_CREATING;
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
	order = vnode_order(v, &m->ipam);
	pthread_mutex_unlock(&m->lock);
	status = agent_run_order(m, agent, order, NULL, err, errlen);
	json_decref(order);
	pthread_mutex_lock(&m->lock);
	v->state = status ? prev : VNODE_RUNNING;
	db_save_vnode(m, v);
	pthread_mutex_unlock(&m->lock);
	return status;
}

int vnode_destroy(struct manager *m, const char *name, char *err, size_t errlen)
{
	int status = vnode_stop(m, name, NULL, NULL, err, errlen);
	struct vnode *v;

	if (status == -EHOSTUNREACH) /* the agent is gone, and its VMMs with it: nothing to stop */
		log_warn("destroying %s without stopping it: %s", name, err);
	else if (status)
		return status;
	pthread_mutex_lock(&m->lock);
	v = vnode_find(m, name);
	if (!v) {
		pthread_mutex_unlock(&m->lock);
		return 0;
	}
	vnode_drop_volumes(v);
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
	bool live, mem_live = false;
	uint64_t old_xc, limit;

	if ((!xc && !cpus && !mem) ||
	    (xc && (!json_is_integer(xc) || json_integer_value(xc) < (json_int_t)MiB)) ||
	    (cpus && (!json_is_integer(cpus) || json_integer_value(cpus) < 1 ||
		      json_integer_value(cpus) > 64)) ||
	    (mem && (!json_is_integer(mem) || json_integer_value(mem) < (json_int_t)(16 * MiB) ||
		     json_integer_value(mem) % 4096))) {
		snprintf(err, errlen,
			 "give excache (bytes, at least 1 MiB), cpus (1-64) or memory "
			 "(bytes, whole pages, at least 16 MiB)");
		return -EINVAL;
	}
	pthread_mutex_lock(&m->lock);
	v = vnode_lookup(m, name, &status, err, errlen);
	if (!v) {
		pthread_mutex_unlock(&m->lock);
		return status;
	}
	/* Memory changes live where the vNode can take it (a maximum, and running) */
	mem_live = mem && vnode_max_memory(v) && v->state == VNODE_RUNNING;
	/* ... checked against the memory it will have: a live change, or the
	 * memory that runs (not one waiting for the next start) */
	limit = mem && (mem_live || v->state != VNODE_RUNNING) ? (uint64_t)json_integer_value(mem)
							       : vnode_memory_running(v);
	if (xc && (uint64_t)json_integer_value(xc) > limit) {
		pthread_mutex_unlock(&m->lock);
		snprintf(err, errlen,
			 "the ExCache cannot be larger than the vNode's memory (%llu MiB%s)",
			 (unsigned long long)(limit >> 20),
			 v->state == VNODE_RUNNING ? ", what runs now" : "");
		return -EINVAL;
	}
	if (mem && !mem_live && vnode_max_memory(v) &&
	    (uint64_t)json_integer_value(mem) >= vnode_max_memory(v)) {
		pthread_mutex_unlock(&m->lock);
		snprintf(err, errlen, "vNode %s's memory must stay below its maximum (%llu MiB)",
			 name, (unsigned long long)(vnode_max_memory(v) >> 20));
		return -EINVAL;
	}
	if (cpus)
		json_object_set(v->spec, "cpus", cpus);
	if (mem && !mem_live) { /* what it boots with next, nothing hotplugged */
		json_object_set(v->spec, "memory", mem);
		json_object_del(v->spec, "hotplug");
	}
	old_xc = vnode_excache(v);
	live = xc && v->state == VNODE_RUNNING;
	if (xc) {
		struct place_server *ps = ps_of(m, ROLE_AGENT, v->agent);
		uint64_t want = (uint64_t)json_integer_value(xc);

		if (ps && want > old_xc && ps->reserved + (want - old_xc) > ps->capacity) {
			pthread_mutex_unlock(&m->lock);
			snprintf(err, errlen,
				 "host agent %s has no room for %llu more bytes of ExCache",
				 v->agent, (unsigned long long)(want - old_xc));
			return -ENOSPC;
		}
		if (ps)
			ps->reserved += want - old_xc;
		json_object_set(v->spec, "excache", xc);
	}
	db_save_vnode(m, v);
	snprintf(agent, sizeof(agent), "%s", v->agent);
	pthread_mutex_unlock(&m->lock);
	if (mem_live) /* first: a smaller ExCache might not fit the old memory */
		status = vnode_memory_live(m, name, (uint64_t)json_integer_value(mem), NULL, err,
					   errlen);
	if (live && !status) {
		const struct vnode_verb_def *d = &vnode_verbs[VERB_EXCACHE_RESIZE];
		json_t *body = json_pack("{s:O}", d->arg, xc);

		snprintf(path, sizeof(path), "/v1/vnodes/%s/%s", name, d->op);
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
	if (!status && v && out) {
		*out = vnode_json(m, v);
		/* which change applies when */
		json_object_set_new(*out, "applied",
				    json_pack("{s:s?,s:s?,s:s?}", "memory",
					      mem ? (mem_live ? "live" : "next start") : NULL,
					      "cpus", cpus ? "next start" : NULL, "excache",
					      xc ? (live ? "live" : "next start") : NULL));
	}
	pthread_mutex_unlock(&m->lock);
	return status;
}
