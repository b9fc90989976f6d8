/*
 * store.c - the manager's state, whichever store keeps it (store.h): the
 * records of components and vNodes, and the calls the model makes, passed
 * on to the backend chosen at start.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "manager.h"
#include "store.h"
#include "util.h"

int store_open(struct manager *m, const char *where, char *err, size_t errlen)
{
	const struct store_ops *ops = strncmp(where, "etcd://", 7) ? &store_sqlite : &store_etcd;
	int ret;

	m->store = ops;
	ret = ops == &store_etcd ? store_etcd_open(m, where, err, errlen)
				 : store_sqlite_open(m, where, err, errlen);
	if (ret)
		m->store = NULL;
	return ret;
}

void store_close(struct manager *m)
{
	if (m->store)
		m->store->close(m);
	m->store = NULL;
}

void store_batch(struct manager *m, bool begin)
{
	if (m->store->batch)
		m->store->batch(m, begin);
}

bool store_is_shared(const struct manager *m)
{
	return m->store == &store_etcd;
}

int db_load(struct manager *m, char *err, size_t errlen)
{
	int ret = m->store->load(m, err, errlen);

	if (ret)
		return ret;
	for (int i = 0; i < m->nr_vnodes; i++) {
		struct vnode *v = m->vnodes[i];

		vnode_reserve(m, v, +1);
		if (v->ip[0] && ipam_mark(&m->ipam, v->ip)) {
			log_warn("vNode %s had %s, outside the subnet or taken twice: it runs "
				 "without a network until it is made again",
				 v->name, v->ip);
			v->ip[0] = v->mac[0] = '\0';
		}
	}
	return 0;
}

int db_save_comp(struct manager *m, const struct comp *c)
{
	const struct comp_set *s = &m->roles[c->role];
	const struct place_server *ps = &s->ps[c - s->c];

	return m->store->save_comp(m, role_name(c->role), c->addr, (int64_t)ps->capacity, ps->up);
}

int store_load_comp(struct manager *m, const char *role, const char *addr, uint64_t capacity,
		    bool up)
{
	int r = role_parse(role);
	struct comp *c;

	if (r < 0)
		return 0; /* a role this version does not know */
	c = comp_add(m, r, addr, capacity);
	/* Up until it misses heartbeats from now on: it had no chance to send any. */
	if (c && !up) {
		m->roles[r].ps[m->roles[r].n - 1].up = false;
		c->down_since_ms = wall_ms();
	}
	return c ? 0 : -1;
}

/*
 * The fields of a vNode's record, one list for writing and reading it (the
 * spec and the slabs are added by hand): a field added to struct vnode and
 * not here is simply not kept.
 */
#define STR_FIELD(f)                                                                               \
	{                                                                                          \
#f, offsetof(struct vnode, f), sizeof(((struct vnode *)0)->f)                      \
	}
#define U64_FIELD(f)                                                                               \
	{                                                                                          \
#f, offsetof(struct vnode, f), 0                                                   \
	}
static const struct {
	const char *key;
	size_t off, len; /* len: a string's buffer; 0: a uint64_t */
} vnode_fields[] = {
	U64_FIELD(id),		 STR_FIELD(token),
	U64_FIELD(created_s),	 U64_FIELD(placed_memory),
	U64_FIELD(slab_size),	 STR_FIELD(agent),
	STR_FIELD(storsrv),	 STR_FIELD(vol_token),
	U64_FIELD(epoch),	 STR_FIELD(backup_storsrv),
	STR_FIELD(backup_token), STR_FIELD(ip),
	STR_FIELD(mac),		 STR_FIELD(snapshot),
};

static json_t *vnode_record(const struct vnode *v)
{
	json_t *slabs = json_array(), *rec = json_object();

	for (size_t i = 0; i < ARRAY_SIZE(vnode_fields); i++) {
		const char *p = (const char *)v + vnode_fields[i].off;

		json_object_set_new(rec, vnode_fields[i].key,
				    vnode_fields[i].len
					    ? json_string(p)
					    : json_integer((json_int_t) * (const uint64_t *)p));
	}
	for (int i = 0; i < v->nr_slabs; i++)
		json_array_append_new(slabs, json_pack("{s:I,s:s,s:s}", "size",
						       (json_int_t)v->slabs[i].size, "primary",
						       v->slabs[i].primary, "secondary",
						       v->slabs[i].secondary));
	json_object_set_new(rec, "slabs", slabs);
	json_object_set_new(rec, "state", json_string(vnode_state_name(v->state)));
	json_object_set(rec, "spec", v->spec);
	return rec;
}

static int save(struct manager *m, const struct vnode *v,
		int (*fn)(struct manager *, const char *, const char *))
{
	json_t *rec = vnode_record(v);
	char *text = json_dumps(rec, JSON_COMPACT);
	int ret = text ? fn(m, v->name, text) : -ENOMEM;

	free(text);
	json_decref(rec);
	return ret;
}

int db_save_vnode(struct manager *m, const struct vnode *v)
{
	return save(m, v, m->store->save_vnode);
}

int db_save_placement(struct manager *m, const struct vnode *v)
{
	return save(m, v, m->store->save_placement ?: m->store->save_vnode);
}

int db_delete_vnode(struct manager *m, const char *name)
{
	return m->store->delete_vnode(m, name);
}

static void copy(char *dst, size_t n, json_t *rec, const char *key)
{
	const char *s = json_string_value(json_object_get(rec, key));

	snprintf(dst, n, "%s", s ? s : "");
}

#define U64(rec, key) ((uint64_t)json_integer_value(json_object_get(rec, key)))

int store_load_vnode(struct manager *m, const char *name, const char *data)
{
	json_t *rec = json_loads(data, 0, NULL), *slabs, *e;
	struct vnode *v;
	int state;
	size_t i;

	if (!rec || !(v = vnode_add(m, name))) {
		json_decref(rec);
		return -1;
	}
	for (i = 0; i < ARRAY_SIZE(vnode_fields); i++) {
		char *p = (char *)v + vnode_fields[i].off;

		if (vnode_fields[i].len)
			copy(p, vnode_fields[i].len, rec, vnode_fields[i].key);
		else
			*(uint64_t *)p = U64(rec, vnode_fields[i].key);
	}
	v->spec = json_incref(json_object_get(rec, "spec"));
	state = vnode_state_parse(json_string_value(json_object_get(rec, "state")));
	slabs = json_object_get(rec, "slabs");
	v->nr_slabs = (int)json_array_size(slabs);
	v->slabs = calloc(v->nr_slabs + 1, sizeof(*v->slabs));
	json_array_foreach(slabs, i, e)
	{
		v->slabs[i].size = U64(e, "size");
		copy(v->slabs[i].primary, ADDR_LEN, e, "primary");
		copy(v->slabs[i].secondary, ADDR_LEN, e, "secondary"); /* "": none */
	}
	json_decref(rec);
	if (!v->spec || !v->slabs || state < 0)
		return -1;
	/* A create that the previous manager did not finish is undone by the agent
	 * never having heard of it; here it is simply not running. */
	v->state = state == VNODE_CREATING ? VNODE_FAILED : (enum vnode_state)state;
	return 0;
}
