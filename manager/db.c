/*
 * db.c - the manager's state in SQLite: one row per component and one per
 * vNode (its spec, placement and state as JSON). Written through on every
 * change, read back at start. WAL mode: a crash loses nothing committed.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "manager.h"
#include "util.h"

static const char *const schema =
	"PRAGMA journal_mode=WAL;"
	"PRAGMA synchronous=NORMAL;"
	"CREATE TABLE IF NOT EXISTS components ("
	"  role TEXT NOT NULL, addr TEXT NOT NULL, capacity INTEGER NOT NULL,"
	"  up INTEGER NOT NULL, PRIMARY KEY (role, addr));"
	"CREATE TABLE IF NOT EXISTS vnodes (name TEXT PRIMARY KEY, data TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS join_tokens (id TEXT PRIMARY KEY, hash TEXT NOT NULL,"
	"  role TEXT NOT NULL, expires INTEGER NOT NULL, used INTEGER NOT NULL);";

int db_open(struct manager *m, const char *path, char *err, size_t errlen)
{
	char *msg = NULL;

	if (sqlite3_open(path, &m->db) != SQLITE_OK) {
		snprintf(err, errlen, "cannot open the database %s: %s", path,
			 m->db ? sqlite3_errmsg(m->db) : "out of memory");
		sqlite3_close(m->db);
		m->db = NULL;
		return -1;
	}
	sqlite3_busy_timeout(m->db, 5000);
	if (sqlite3_exec(m->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "database %s: %s", path, msg);
		sqlite3_free(msg);
		sqlite3_close(m->db);
		m->db = NULL;
		return -1;
	}
	return 0;
}

void db_close(struct manager *m)
{
	sqlite3_close(m->db);
	m->db = NULL;
}

static int run(struct manager *m, const char *sql, const char *a, const char *b, int64_t x,
	       int64_t y)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(m->db, sql, -1, &st, NULL) != SQLITE_OK) {
		log_err("database: %s", sqlite3_errmsg(m->db));
		return -1;
	}
	sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
	if (b)
		sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, x);
	sqlite3_bind_int64(st, 4, y);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		log_err("database: %s", sqlite3_errmsg(m->db));
		return -1;
	}
	return 0;
}

int db_save_comp(struct manager *m, const struct comp *c)
{
	const struct comp_set *s = &m->roles[c->role];
	const struct place_server *ps = &s->ps[c - s->c];

	return run(m,
		   "INSERT INTO components (role, addr, capacity, up) VALUES (?1, ?2, ?3, ?4) "
		   "ON CONFLICT (role, addr) DO UPDATE SET capacity = ?3, up = ?4",
		   role_name(c->role), c->addr, (int64_t)ps->capacity, ps->up);
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

int db_save_vnode(struct manager *m, const struct vnode *v)
{
	json_t *rec = vnode_record(v);
	char *text = json_dumps(rec, JSON_COMPACT);
	int ret = run(m,
		      "INSERT INTO vnodes (name, data) VALUES (?1, ?2) "
		      "ON CONFLICT (name) DO UPDATE SET data = ?2",
		      v->name, text, 0, 0);

	free(text);
	json_decref(rec);
	return ret;
}

int db_delete_vnode(struct manager *m, const char *name)
{
	return run(m, "DELETE FROM vnodes WHERE name = ?1", name, NULL, 0, 0);
}

static void copy(char *dst, size_t n, json_t *rec, const char *key)
{
	const char *s = json_string_value(json_object_get(rec, key));

	snprintf(dst, n, "%s", s ? s : "");
}

#define U64(rec, key) ((uint64_t)json_integer_value(json_object_get(rec, key)))

static int load_vnode(struct manager *m, const char *name, const char *data)
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

int db_load(struct manager *m, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int n = 0;

	if (sqlite3_prepare_v2(m->db, "SELECT role, addr, capacity, up FROM components", -1, &st,
			       NULL) != SQLITE_OK)
		goto fail;
	while (sqlite3_step(st) == SQLITE_ROW) {
		int r = role_parse((const char *)sqlite3_column_text(st, 0));
		struct comp *c;

		if (r < 0)
			continue;
		c = comp_add(m, r, (const char *)sqlite3_column_text(st, 1),
			     (uint64_t)sqlite3_column_int64(st, 2));
		/* Up until it misses heartbeats from now on: it had no chance to send any. */
		if (c && !sqlite3_column_int(st, 3)) {
			m->roles[r].ps[m->roles[r].n - 1].up = false;
			c->down_since_ms = wall_ms();
		}
		n++;
	}
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(m->db, "SELECT name, data FROM vnodes", -1, &st, NULL) != SQLITE_OK)
		goto fail;
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (load_vnode(m, (const char *)sqlite3_column_text(st, 0),
			       (const char *)sqlite3_column_text(st, 1))) {
			snprintf(err, errlen, "vNode %s: its record in the database is damaged",
				 sqlite3_column_text(st, 0));
			sqlite3_finalize(st);
			return -1;
		}
	}
	sqlite3_finalize(st);
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
	if (n || m->nr_vnodes)
		log_info("state loaded: %d components, %d vNodes", n, m->nr_vnodes);
	return 0;
fail:
	snprintf(err, errlen, "database: %s", sqlite3_errmsg(m->db));
	return -1;
}
