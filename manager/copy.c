/*
 * copy.c - a saved vNode restored as a new one (legoctl restore NAME --name
 * COPY): a second vNode that runs on from the first one's snapshot, while
 * the first stays saved and can be restored, or copied, again.
 *
 * Nothing of the memory travels. The copy's slabs are placed on the very
 * servers that hold the original's, primary on primary and secondary on
 * secondary, and each of those servers shares the pages it holds with the
 * copy (LMP_CLONE: copy on write, a page table's worth of work). Its disks
 * are copied on the storage server that holds them (LMP_VOL_CLONE), its
 * memory gets a backup volume of its own, and the original's agent, which
 * holds the snapshot, runs it. The copy is a vNode like any other from then
 * on: its own number, token, credential, epoch and volumes.
 *
 * A vNode with a network interface is not copied: its guest keeps the
 * address and MAC it booted with in its running kernel, so a copy would
 * answer on the original's address.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "manager.h"
#include "util.h"

/* The memory servers of @v's slabs, each once: into @out (room for 2 * nr_slabs). */
static int slab_servers(const struct vnode *v, char (*out)[ADDR_LEN])
{
	int n = 0;

	for (int i = 0; i < v->nr_slabs; i++) {
		const char *both[2] = {v->slabs[i].primary, v->slabs[i].secondary};

		for (int k = 0; k < 2; k++) {
			int j;

			if (!both[k][0])
				continue;
			for (j = 0; j < n && strcmp(out[j], both[k]); j++)
				;
			if (j == n)
				snprintf(out[n++], ADDR_LEN, "%s", both[k]);
		}
	}
	return n;
}

/* The first of @v's servers that its reservations overfill, or NULL. Lock held. */
static const char *overfilled(struct manager *m, const struct vnode *v)
{
	for (int i = 0; i < v->nr_slabs; i++) {
		const char *both[2] = {v->slabs[i].primary, v->slabs[i].secondary};

		for (int k = 0; k < 2; k++) {
			struct place_server *ps =
				both[k][0] ? ps_of(m, ROLE_MEMSRV, both[k]) : NULL;

			if (both[k][0] && (!ps || !ps->up || ps->reserved > ps->capacity))
				return both[k];
		}
	}
	if (v->storsrv[0]) {
		struct place_server *ps = ps_of(m, ROLE_STORSRV, v->storsrv);

		if (!ps || !ps->up || ps->reserved > ps->capacity)
			return v->storsrv;
	}
	if (v->agent[0]) {
		struct place_server *ps = ps_of(m, ROLE_AGENT, v->agent);

		if (!ps || !ps->up || ps->reserved > ps->capacity)
			return v->agent;
	}
	return NULL;
}

/* A new vNode @as that @v's snapshot can run as: placed where @v is, reserved. Lock held. */
static struct vnode *copy_record(struct manager *m, const struct vnode *v, const char *as,
				 char *err, size_t errlen)
{
	json_t *spec = json_deep_copy(v->spec);
	const char *full;
	struct vnode *c;

	if (!spec || json_object_set_new(spec, "name", json_string(as))) {
		json_decref(spec);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c = vnode_new(m, as, spec, v->vol_token[0] != '\0', err, errlen);
	json_decref(spec);
	if (c && !(c->slabs = malloc(v->nr_slabs * sizeof(*c->slabs) + 1))) {
		vnode_remove(m, c);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (!c)
		return NULL;
	memcpy(c->slabs, v->slabs, v->nr_slabs * sizeof(*c->slabs));
	c->nr_slabs = v->nr_slabs;
	c->placed_memory = v->placed_memory;
	c->slab_size = v->slab_size;
	snprintf(c->agent, ADDR_LEN, "%s", v->agent);
	snprintf(c->storsrv, ADDR_LEN, "%s", v->storsrv);
	vnode_reserve(m, c, +1);
	full = overfilled(m, c);
	if (full) {
		snprintf(err, errlen,
			 "a copy of %s lives where %s does, and %s has no room for it (or is down)",
			 v->name, v->name, full);
		vnode_reserve(m, c, -1);
		vnode_remove(m, c);
		m->nr_refusals++;
		return NULL;
	}
	vnode_place_backup(m, c); /* a backup of its own, as at create */
	m->nr_placements++;
	db_save_vnode(m, c);
	return c;
}

/* Share @v's pages with @c on every server of theirs; on failure, none keeps any. */
static int copy_memory(struct vnode *v, struct vnode *c, uint64_t *pages, char *err, size_t errlen)
{
	char(*servers)[ADDR_LEN] = calloc(2 * (size_t)v->nr_slabs + 1, ADDR_LEN), why[512];
	int n = servers ? slab_servers(v, servers) : 0, done, ret = servers ? 0 : -ENOMEM;

	*pages = 0;
	for (done = 0; !ret && done < n; done++) {
		uint64_t shared = 0;

		ret = memsrv_clone_op(servers[done], v, c, 0, &shared, err, errlen);
		*pages += shared;
	}
	if (ret) /* the ones done forget the copy again */
		for (int i = 0; i < done - 1; i++)
			if (memsrv_clone_op(servers[i], NULL, c, LMP_CLONE_DROP, NULL, why,
					    sizeof(why)))
				log_warn("vNode %s: %s", c->name, why);
	free(servers);
	return ret;
}

void vnode_drop_memory(struct vnode *c)
{
	char(*servers)[ADDR_LEN] = calloc(2 * (size_t)c->nr_slabs + 1, ADDR_LEN), why[512];
	int n = servers ? slab_servers(c, servers) : 0;

	for (int i = 0; i < n; i++)
		if (memsrv_clone_op(servers[i], NULL, c, LMP_CLONE_DROP, NULL, why, sizeof(why)) &&
		    !strstr(why, "holds no page"))
			log_warn("vNode %s: %s", c->name, why);
	free(servers);
}

/* @v's disks copied as @c's on their storage server; on failure, none is left. */
static int copy_disks(struct vnode *v, struct vnode *c, char *err, size_t errlen)
{
	int n = v->storsrv[0] ? (vnode_nr_disks(v) ? vnode_nr_disks(v) : 1) : 0;

	for (int i = 0; i < n; i++) {
		char from[NAME_LEN + 8], to[NAME_LEN + 8];
		int ret;

		vnode_volume(v, i, from, sizeof(from));
		vnode_volume(c, i, to, sizeof(to));
		ret = volume_clone_op(v->storsrv, from, v->vol_token, to, c->vol_token, err,
				      errlen);
		if (ret) {
			vnode_delete_volumes(c, i); /* those made so far */
			return ret;
		}
	}
	return 0;
}

int vnode_copy(struct manager *m, const char *name, const char *as, json_t **out, char *err,
	       size_t errlen)
{
	struct vnode *v, *c = NULL;
	uint64_t pages = 0, t0 = now_ns();
	json_t *order = NULL;
	char agent[ADDR_LEN];
	int status = 0;

	if (!as || !lmp_vol_name_ok(as) || strlen(as) >= NAME_LEN - 1) {
		snprintf(err, errlen,
			 "a copy needs a name of letters, digits, '_', '.' or '-' (not starting "
			 "with '.')");
		return -EINVAL;
	}
	pthread_mutex_lock(&m->lock);
	v = vnode_lookup(m, name, &status, err, errlen);
	if (v && v->state != VNODE_SAVED) {
		snprintf(err, errlen,
			 "vNode %s is %s: only a saved one is copied (legoctl snapshot %s SNAP "
			 "first)",
			 name, vnode_state_name(v->state), name);
		status = -EINVAL;
	} else if (v && v->ip[0]) {
		snprintf(err, errlen,
			 "vNode %s has a network interface, and its guest keeps the address %s it "
			 "booted with: a copy would answer on it. Copies are made of vNodes "
			 "created with --no-net",
			 name, v->ip);
		status = -EINVAL;
	} else if (v && vnode_find(m, as)) {
		snprintf(err, errlen, "a vNode named %s exists already (legoctl destroy %s)", as,
			 as);
		status = -EEXIST;
	} else if (v && !(c = copy_record(m, v, as, err, errlen))) {
		status = -ENOSPC;
	}
	if (status || !v) {
		pthread_mutex_unlock(&m->lock);
		return status;
	}
	v->state = VNODE_CREATING; /* hands off the original while it is copied */
	snprintf(agent, sizeof(agent), "%s", v->agent);
	order = vnode_order(c, &m->ipam);
	json_object_set_new(order, "restore", json_string(v->snapshot));
	json_object_set_new(order, "restore_of", json_string(v->name));
	pthread_mutex_unlock(&m->lock);

	/* Remote work without the lock: both vNodes are "creating" meanwhile. */
	status = order ? copy_memory(v, c, &pages, err, errlen) : -ENOMEM;
	if (!status && (status = copy_disks(v, c, err, errlen)))
		vnode_drop_memory(c);
	if (!status) {
		vnode_backup_volume(m, c);
		status = agent_run_order(m, agent, order, NULL, err, errlen);
		if (status) {
			vnode_drop_volumes(c);
			vnode_drop_memory(c);
		}
	}
	json_decref(order);
	pthread_mutex_lock(&m->lock);
	v->state = VNODE_SAVED;
	if (status) {
		log_warn("vNode %s not copied as %s: %s", name, as, err);
		vnode_forget(m, c);
		pthread_mutex_unlock(&m->lock);
		return status;
	}
	c->state = VNODE_RUNNING;
	db_save_vnode(m, c);
	if (out) {
		*out = vnode_json(m, c);
		json_object_set_new(*out, "copy_of", json_string(name));
		json_object_set_new(*out, "pages_shared", json_integer((json_int_t)pages));
		json_object_set_new(*out, "ms", json_real((now_ns() - t0) / 1e6));
	}
	pthread_mutex_unlock(&m->lock);
	log_info("vNode %s: a copy of %s from its snapshot %s, running on %s (%llu pages shared)",
		 as, name, v->snapshot, agent, (unsigned long long)pages);
	return 0;
}
