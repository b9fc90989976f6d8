/*
 * store.h - where the manager's state is kept: SQLite on one host (db.c,
 * the embedded default), or etcd when several managers share it
 * (store_etcd.c). Chosen at start by the form of --db: a file, or
 * etcd://HOST:PORT[,...].
 *
 * What is kept is the same in both: a record per component (role, address,
 * capacity, up), one per vNode (store.c turns a vNode into its JSON record
 * and back, one list of fields for both), and the join tokens (their hash,
 * never the secret). The model in memory is the truth while the manager
 * runs; every change is written through before the manager acts on it, and
 * the records are read back when a manager starts or becomes the leader.
 *
 * A store that other managers share fences writes: a write lands only
 * while this manager leads and nobody else wrote a vNode record since it
 * last looked (store_etcd.c says how); a manager that finds it cannot
 * write stops (leader.c), since the model it acts on is no longer the
 * cluster's.
 */
#ifndef LEGO_STORE_H
#define LEGO_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct manager;
struct comp;

struct join_token {
	char id[17], hash[65], role[16];
	int64_t expires, used;
	int64_t rev; /* the store's version of it (etcd) */
};

struct store_ops {
	const char *name; /* "sqlite", "etcd" */
	void (*close)(struct manager *m);
	/* every record into the model, through store_load_comp / store_load_vnode */
	int (*load)(struct manager *m, char *err, size_t errlen);
	int (*save_comp)(struct manager *m, const char *role, const char *addr, int64_t capacity,
			 bool up);
	int (*save_vnode)(struct manager *m, const char *name, const char *record);
	/* save_placement - a new vNode's placed record; may let the lock go while it
	 * commits with others (NULL: save_vnode) */
	int (*save_placement)(struct manager *m, const char *name, const char *record);
	int (*delete_vnode)(struct manager *m, const char *name);
	int (*token_add)(struct manager *m, const struct join_token *t);
	/* token_get - 0, -ENOENT, or -EIO */
	int (*token_get)(struct manager *m, const char *id, const char *hash, struct join_token *t);
	/* token_spend - mark @t used at @now if nobody did: 1 if this call did, 0, -EIO */
	int (*token_spend)(struct manager *m, const struct join_token *t, int64_t now);
	/* batch - writes from @begin until the end go in one transaction (may be NULL) */
	void (*batch)(struct manager *m, bool begin);
};

extern const struct store_ops store_sqlite, store_etcd;
int store_sqlite_open(struct manager *m, const char *path, char *err, size_t errlen);
int store_etcd_open(struct manager *m, const char *spec, char *err, size_t errlen);

/* store_open - the store named by @where (a file or etcd://...). 0 or -1 with @err. */
int store_open(struct manager *m, const char *where, char *err, size_t errlen);
void store_close(struct manager *m);
/* store_batch - many writes at once (loading a test's state): one transaction where the
 * store has them cheaply (SQLite), else nothing. */
void store_batch(struct manager *m, bool begin);
/* store_is_shared - other managers may write it (etcd): elections apply. */
bool store_is_shared(const struct manager *m);

/* For the backends' load: a record found. 0, or -1 (a damaged record). Lock held. */
int store_load_comp(struct manager *m, const char *role, const char *addr, uint64_t capacity,
		    bool up);
int store_load_vnode(struct manager *m, const char *name, const char *record);

#endif
