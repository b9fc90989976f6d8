/*
 * memresize.c - a running vNode's memory grown and shrunk live.
 *
 * A vNode created with a maximum (spec "max_memory"; a Linux vNode gets 4x
 * its memory by default) has a virtio-mem device over the memory between
 * what it boots with and the maximum. Its placement covers whole slabs of
 * what it has: boot memory plus "hotplug" (the spec's record of what the
 * guest is asked to have beyond it). To grow, the manager places the slabs
 * that are missing (primary and secondary, all or nothing, as at create),
 * hands them to the VMM with the new size, and the guest plugs. To shrink,
 * it asks for less; once the guest has given the memory back, the monitor
 * gives back the slabs no plugged block uses (memresize_plan_trim).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "manager.h"
#include "order.h"
#include "place.h"
#include "util.h"

uint64_t vnode_max_memory(const struct vnode *v)
{
	return spec_u64(v->spec, "max_memory");
}

uint64_t vnode_memory_now(const struct vnode *v)
{
	return spec_u64(v->spec, "memory") + spec_u64(v->spec, "hotplug");
}

uint64_t vnode_memory_running(const struct vnode *v)
{
	if (v->state != VNODE_RUNNING && v->state != VNODE_PAUSED)
		return vnode_memory_now(v);
	/* a size changed while it runs waits for the next start, unless live */
	return vnode_max_memory(v) ? vnode_memory_now(v) : v->placed_memory;
}

uint64_t vnode_place_target(const struct vnode *v, uint64_t slab_size)
{
	uint64_t mem = vnode_memory_now(v);

	/* The hotpluggable region continues where the boot memory ends: whole
	 * slabs, so that what the VMM may plug is what is reserved here. */
	return vnode_max_memory(v) ? ALIGN_UP(mem, slab_size) : mem;
}

int memresize_spec_check(json_t *spec, char *err, size_t errlen)
{
	uint64_t mem = spec_u64(spec, "memory");
	json_t *max = json_object_get(spec, "max_memory");

	if (!max && spec_str(spec, "kernel") && mem % ORDER_HOTPLUG_BLOCK == 0)
		json_object_set_new(spec, "max_memory", max = json_integer((json_int_t)(4 * mem)));
	if (max && (!json_is_integer(max) || (uint64_t)json_integer_value(max) <= mem ||
		    ((uint64_t)json_integer_value(max) - mem) % ORDER_HOTPLUG_BLOCK ||
		    (uint64_t)json_integer_value(max) > 1024 * GiB)) {
		snprintf(err, errlen,
			 "max_memory is more than the memory, by a multiple of 2 MiB, and at most "
			 "1 TiB");
		return -EINVAL;
	}
	json_object_del(spec, "hotplug"); /* a new vNode boots with its memory, no more */
	return 0;
}

/* A verb for @name's VMM through @agent: 0, or -errno with @err. */
static int vmm_memory(const char *agent, const char *name, json_t *body, json_t **out, char *err,
		      size_t errlen)
{
	char path[NAME_LEN + 32];
	int ret;

	snprintf(path, sizeof(path), "/v1/vnodes/%s/%s", name, vnode_verbs[VERB_MEMORY_RESIZE].op);
	ret = agent_call(agent, "POST", path, body, out, err, errlen);
	json_decref(body);
	return ret;
}

int vnode_memory_live(struct manager *m, const char *name, uint64_t total, json_t **out, char *err,
		      size_t errlen)
{
	struct comp_set *s = &m->roles[ROLE_MEMSRV];
	struct place_slab slabs[MAX_SLABS];
	uint64_t boot, max, old_placed, want;
	int status = 0, nr = 0, first;
	char agent[ADDR_LEN], bk[ADDR_LEN], bk_token[2 * LMP_TOKEN_LEN + 1], a[32], b[32];
	json_t *body, *prim, *sec;
	struct vnode *v;

	pthread_mutex_lock(&m->lock);
	v = vnode_lookup(m, name, &status, err, errlen);
	if (!v) {
		pthread_mutex_unlock(&m->lock);
		return status;
	}
	if (v->state != VNODE_RUNNING) {
		snprintf(err, errlen, "vNode %s is %s: its memory changes live only while it runs",
			 name, vnode_state_name(v->state));
		pthread_mutex_unlock(&m->lock);
		return -EAGAIN;
	}
	boot = spec_u64(v->spec, "memory");
	max = vnode_max_memory(v);
	if (total < boot || total > max || (total - boot) % ORDER_HOTPLUG_BLOCK) {
		snprintf(err, errlen,
			 "vNode %s's memory can be from %s (what it boots with) to %s (its "
			 "maximum), in steps of 2 MiB",
			 name, format_size(boot, a, sizeof(a)), format_size(max, b, sizeof(b)));
		pthread_mutex_unlock(&m->lock);
		return -EINVAL;
	}
	old_placed = v->placed_memory;
	first = v->nr_slabs;
	want = ALIGN_UP(total, v->slab_size);
	body = json_pack("{s:I}", vnode_verbs[VERB_MEMORY_RESIZE].arg, (json_int_t)total);
	if (want > old_placed) { /* the slabs it lacks: all of them, or none */
		struct slab_ref *refs;

		nr = vnode_place_slabs(m, v, want - old_placed, v->slab_size, slabs,
				       MAX_SLABS - v->nr_slabs, err, errlen);
		refs = nr < 0 ? NULL : realloc(v->slabs, (size_t)(first + nr) * sizeof(*refs));
		if (!refs) {
			if (nr >= 0) {
				place_release(s->ps, slabs, nr);
				snprintf(err, errlen, "out of memory");
			}
			pthread_mutex_unlock(&m->lock);
			json_decref(body);
			return nr < 0 ? nr : -ENOMEM;
		}
		v->slabs = refs;
		prim = json_array();
		sec = json_array();
		for (int i = 0; i < nr; i++) {
			struct slab_ref *r = &v->slabs[first + i];

			r->size = slabs[i].size;
			snprintf(r->primary, ADDR_LEN, "%s", s->c[slabs[i].primary].addr);
			snprintf(r->secondary, ADDR_LEN, "%s", s->c[slabs[i].secondary].addr);
			json_array_append_new(prim, json_string(r->primary));
			json_array_append_new(sec, json_string(r->secondary));
		}
		/* the backup's share follows the placement */
		adjust(ps_of(m, ROLE_STORSRV, v->backup_storsrv), backup_bytes(old_placed), false,
		       -1);
		v->nr_slabs += nr;
		v->placed_memory = want;
		adjust(ps_of(m, ROLE_STORSRV, v->backup_storsrv), backup_bytes(want), false, +1);
		json_object_set_new(body, "first_slab", json_integer(first));
		json_object_set_new(body, "memsrv", prim);
		json_object_set_new(body, "memsrv_secondary", sec);
		log_info("vNode %s: %d slab(s) placed for %s of memory", name, nr,
			 format_size(total, a, sizeof(a)));
	}
	snprintf(agent, sizeof(agent), "%s", v->agent);
	snprintf(bk, sizeof(bk), "%s", v->backup_storsrv);
	snprintf(bk_token, sizeof(bk_token), "%s", v->backup_token);
	pthread_mutex_unlock(&m->lock);
	/* The backup volume holds the slabs placed (header page first): it grows
	 * before the new slabs hold anything, or the grow does not happen. */
	if (nr > 0 && bk[0]) {
		char vol[NAME_LEN + 8], why[384];

		snprintf(vol, sizeof(vol), "%s.mem", name);
		status = volume_op(bk, LMP_VOL_RESIZE, vol, bk_token, backup_bytes(want), why,
				   sizeof(why));
		if (status)
			snprintf(err, errlen, "vNode %s's memory backup on %s could not grow: %s",
				 name, bk, why);
	}
	if (status)
		json_decref(body);
	else
		status = vmm_memory(agent, name, body, NULL, err, errlen);
	pthread_mutex_lock(&m->lock);
	v = vnode_find(m, name);
	if (v && status && nr > 0 && v->nr_slabs == first + nr) { /* undone: the old placement */
		place_release(s->ps, slabs, nr);
		adjust(ps_of(m, ROLE_STORSRV, v->backup_storsrv), backup_bytes(want), false, -1);
		v->nr_slabs = first;
		v->placed_memory = old_placed;
		adjust(ps_of(m, ROLE_STORSRV, v->backup_storsrv), backup_bytes(old_placed), false,
		       +1);
	} else if (v && !status) {
		json_object_set_new(v->spec, "hotplug", json_integer((json_int_t)(total - boot)));
		db_save_vnode(m, v);
		if (out)
			*out = vnode_json(m, v);
	}
	pthread_mutex_unlock(&m->lock);
	return status;
}

bool memresize_plan_trim(struct manager *m, struct vnode *v, uint64_t *size, int *slabs)
{
	json_t *hp = json_object_get(v->report, "hotplug");
	uint64_t requested = (uint64_t)json_integer_value(json_object_get(hp, "requested_bytes"));
	uint64_t now = (uint64_t)json_integer_value(json_object_get(hp, "memory_bytes"));
	json_int_t have = json_integer_value(json_object_get(hp, "slabs"));
	json_int_t need = json_integer_value(json_object_get(hp, "slabs_needed"));

	(void)m;
	if (!json_is_object(hp) || v->state != VNODE_RUNNING || !vnode_max_memory(v) ||
	    requested != now || requested != vnode_memory_now(v) || need < 1 || need >= have ||
	    have != v->nr_slabs || mono_ms() - v->trim_ordered_ms < 2000)
		return false; /* nothing to give back, or not yet, or not what is on record */
	v->trim_ordered_ms = mono_ms();
	*size = requested;
	*slabs = (int)need;
	return true;
}

int memresize_trim(struct manager *m, const char *agent, const char *name, uint64_t size, int slabs,
		   char *err, size_t errlen)
{
	json_t *body = json_pack("{s:I,s:i}", vnode_verbs[VERB_MEMORY_RESIZE].arg, (json_int_t)size,
				 "slabs", slabs);
	struct vnode *v;
	int ret = vmm_memory(agent, name, body, NULL, err, errlen);

	if (ret)
		return ret;
	pthread_mutex_lock(&m->lock);
	v = vnode_find(m, name);
	if (v && slabs < v->nr_slabs) {
		vnode_reserve(m, v, -1);
		v->nr_slabs = slabs;
		v->placed_memory = (uint64_t)slabs * v->slab_size;
		vnode_reserve(m, v, +1);
		json_decref(v->report); /* it speaks of the slabs given back: wait for the next */
		v->report = NULL;
		db_save_vnode(m, v);
		log_info("vNode %s: the slabs of memory it gave back are free: %d placed", name,
			 slabs);
	}
	pthread_mutex_unlock(&m->lock);
	return 0;
}
