/*
 * db.c - the manager's state in SQLite (store.h): one row per component,
 * one per vNode (its record as JSON), one per join token. Written through
 * on every change, read back at start. WAL mode: a crash loses nothing
 * committed. The embedded default: one manager, on one host.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "manager.h"
#include "store.h"
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

#define DB(m) ((sqlite3 *)(m)->store_data)

int store_sqlite_open(struct manager *m, const char *path, char *err, size_t errlen)
{
	sqlite3 *db = NULL;
	char *msg = NULL;

	if (sqlite3_open(path, &db) != SQLITE_OK) {
		snprintf(err, errlen, "cannot open the database %s: %s", path,
			 db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return -1;
	}
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_exec(db, schema, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "database %s: %s", path, msg);
		sqlite3_free(msg);
		sqlite3_close(db);
		return -1;
	}
	m->store_data = db;
	return 0;
}

static void sq_close(struct manager *m)
{
	sqlite3_close(DB(m));
	m->store_data = NULL;
}

/* One statement with text ?1, ?2 (if @b) and numbers ?3, ?4; sqlite3_changes() or -1. */
static int run(struct manager *m, const char *sql, const char *a, const char *b, int64_t x,
	       int64_t y)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(DB(m), sql, -1, &st, NULL) != SQLITE_OK) {
		log_err("database: %s", sqlite3_errmsg(DB(m)));
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
		log_err("database: %s", sqlite3_errmsg(DB(m)));
		return -1;
	}
	return sqlite3_changes(DB(m));
}

static int sq_save_comp(struct manager *m, const char *role, const char *addr, int64_t capacity,
			bool up)
{
	return run(m,
		   "INSERT INTO components (role, addr, capacity, up) VALUES (?1, ?2, ?3, ?4) "
		   "ON CONFLICT (role, addr) DO UPDATE SET capacity = ?3, up = ?4",
		   role, addr, capacity, up) < 0
		       ? -1
		       : 0;
}

static int sq_save_vnode(struct manager *m, const char *name, const char *record)
{
	return run(m,
		   "INSERT INTO vnodes (name, data) VALUES (?1, ?2) "
		   "ON CONFLICT (name) DO UPDATE SET data = ?2",
		   name, record, 0, 0) < 0
		       ? -1
		       : 0;
}

static int sq_delete_vnode(struct manager *m, const char *name)
{
	return run(m, "DELETE FROM vnodes WHERE name = ?1", name, NULL, 0, 0) < 0 ? -1 : 0;
}

static int sq_token_add(struct manager *m, const struct join_token *t)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(DB(m),
				    "INSERT INTO join_tokens (id, hash, role, expires, used) "
				    "VALUES (?1, ?2, ?3, ?4, 0)",
				    -1, &st, NULL);

	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, t->id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, t->hash, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, t->role, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, t->expires);
		rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
		sqlite3_finalize(st);
	}
	if (rc != SQLITE_OK) {
		log_err("database: %s", sqlite3_errmsg(DB(m)));
		return -EIO;
	}
	return 0;
}

static int sq_token_get(struct manager *m, const char *id, const char *hash, struct join_token *t)
{
	sqlite3_stmt *st;
	int ret = -ENOENT;

	if (sqlite3_prepare_v2(
		    DB(m),
		    "SELECT role, expires, used FROM join_tokens WHERE id = ?1 AND hash = ?2", -1,
		    &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(t->id, sizeof(t->id), "%s", id);
		snprintf(t->hash, sizeof(t->hash), "%s", hash);
		snprintf(t->role, sizeof(t->role), "%s", sqlite3_column_text(st, 0));
		t->expires = sqlite3_column_int64(st, 1);
		t->used = sqlite3_column_int64(st, 2);
		ret = 0;
	}
	sqlite3_finalize(st);
	return ret;
}

/* Only a token not used yet is spent (the count of changed rows says so): two joins racing
 * with one token cannot both win. */
static int sq_token_spend(struct manager *m, const struct join_token *t, int64_t now)
{
	int n = run(m, "UPDATE join_tokens SET used = ?3 WHERE id = ?1 AND used = 0", t->id, NULL,
		    now, 0);

	return n < 0 ? -EIO : n == 1;
}

static int sq_load(struct manager *m, char *err, size_t errlen)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(DB(m), "SELECT role, addr, capacity, up FROM components", -1, &st,
			       NULL) != SQLITE_OK)
		goto fail;
	while (sqlite3_step(st) == SQLITE_ROW)
		store_load_comp(m, (const char *)sqlite3_column_text(st, 0),
				(const char *)sqlite3_column_text(st, 1),
				(uint64_t)sqlite3_column_int64(st, 2), sqlite3_column_int(st, 3));
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(DB(m), "SELECT name, data FROM vnodes", -1, &st, NULL) != SQLITE_OK)
		goto fail;
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (store_load_vnode(m, (const char *)sqlite3_column_text(st, 0),
				     (const char *)sqlite3_column_text(st, 1))) {
			snprintf(err, errlen, "vNode %s: its record in the database is damaged",
				 sqlite3_column_text(st, 0));
			sqlite3_finalize(st);
			return -1;
		}
	}
	sqlite3_finalize(st);
	return 0;
fail:
	snprintf(err, errlen, "database: %s", sqlite3_errmsg(DB(m)));
	return -1;
}

static void sq_batch(struct manager *m, bool begin)
{
	sqlite3_exec(DB(m), begin ? "BEGIN" : "COMMIT", NULL, NULL, NULL);
}

const struct store_ops store_sqlite = {
	.name = "sqlite",
	.close = sq_close,
	.load = sq_load,
	.save_comp = sq_save_comp,
	.save_vnode = sq_save_vnode,
	.delete_vnode = sq_delete_vnode,
	.token_add = sq_token_add,
	.token_get = sq_token_get,
	.token_spend = sq_token_spend,
	.batch = sq_batch,
};
