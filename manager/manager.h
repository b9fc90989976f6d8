/*
 * manager.h - lego-manager: the cluster's registry, placement and failure
 * detection, with its state in SQLite and a JSON API over HTTP.
 *
 * Everything lives in memory under one lock and is written through to the
 * database, which is read back at start: a restarted manager knows every
 * component and vNode it knew, and learns the live state again from the
 * components' heartbeats (the vNodes themselves never stop for it).
 */
#ifndef LEGO_MANAGER_H
#define LEGO_MANAGER_H

#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "place.h"
#include "proto.h"

enum role { ROLE_MEMSRV, ROLE_STORSRV, ROLE_AGENT, NR_ROLES };

#define ADDR_LEN  128
#define NAME_LEN  64
#define MAX_SLABS 1024

/* A memory server, storage server or host agent, known by role and address. */
struct comp {
	enum role role;
	char addr[ADDR_LEN]; /* data path (memsrv, storsrv) or HTTP API (agent) */
	uint32_t cpus;	     /* agents */
	uint64_t used;	     /* as the component last reported it */
	uint64_t last_seen_ms, down_since_ms;
	json_t *report; /* its last heartbeat */
};

/* The components of one role, with their placement view at the same index. */
struct comp_set {
	struct comp *c;
	struct place_server *ps;
	int n, cap;
	int *index; /* open-addressing hash of addr -> position + 1 (0: empty) */
	int index_cap;
};

struct slab_ref {
	uint64_t size;
	char primary[ADDR_LEN], secondary[ADDR_LEN];
};

struct vnode {
	char name[NAME_LEN];
	uint64_t id; /* its number on the memory servers */
	char token[2 * LMP_TOKEN_LEN + 1];
	json_t *spec;	/* what the user asked for (see cluster.c) */
	char state[16]; /* creating, running, stopped, exited, failed, unknown */
	uint64_t created_s;
	/* placement */
	uint64_t placed_memory, slab_size;
	int nr_slabs;
	struct slab_ref *slabs;
	char agent[ADDR_LEN], storsrv[ADDR_LEN];
	char vol_token[2 * LMP_TOKEN_LEN + 1];
	json_t *report; /* the agent's last word on it */
	uint64_t epoch; /* of its memory's placement; the VMM moves it on at failovers */
	/* the memory's backup: volume NAME.mem on a storage server ("": none) */
	char backup_storsrv[ADDR_LEN];
	char backup_token[2 * LMP_TOKEN_LEN + 1];
	uint64_t refill_ordered_ms;
	uint64_t fill_failures_seen; /* the VMM's count of failed fills at the last order */
};

struct manager {
	pthread_mutex_t lock;
	sqlite3 *db;
	struct comp_set roles[NR_ROLES];
	struct vnode **vnodes;
	int nr_vnodes, cap_vnodes;
	uint64_t slab_size;
	int down_after_ms;
	uint64_t nr_requests, nr_heartbeats, nr_placements, nr_refusals;
	pthread_t monitor;
	bool stop;
};

const char *role_name(enum role r);
int role_parse(const char *name);

/* db.c */
int db_open(struct manager *m, const char *path, char *err, size_t errlen);
void db_close(struct manager *m);
int db_load(struct manager *m, char *err, size_t errlen);
int db_save_comp(struct manager *m, const struct comp *c);
int db_save_vnode(struct manager *m, const struct vnode *v);
int db_delete_vnode(struct manager *m, const char *name);

/* cluster.c - the model; every function expects m->lock held unless noted */
int manager_init(struct manager *m, const char *db_path, char *err, size_t errlen);
void manager_exit(struct manager *m);
struct comp *comp_add(struct manager *m, enum role r, const char *addr, uint64_t capacity);
struct vnode *vnode_find(struct manager *m, const char *name);
struct vnode *vnode_add(struct manager *m, const char *name);
/* vnode_reserve/vnode_unreserve - count @v's placement in the candidates' reservations. */
void vnode_reserve(struct manager *m, struct vnode *v, int sign);
json_t *comp_json(struct manager *m, enum role r, int i);
json_t *vnode_json(struct manager *m, struct vnode *v);
/* heartbeat: register or refresh a component. No lock needed. */
int manager_heartbeat(struct manager *m, json_t *beat, char *err, size_t errlen);
/* The flows; they take the lock themselves. 0 or an HTTP status with @err. */
int vnode_create(struct manager *m, json_t *spec, json_t **out, char *err, size_t errlen);
int vnode_start(struct manager *m, const char *name, char *err, size_t errlen);
int vnode_stop(struct manager *m, const char *name, char *err, size_t errlen);
int vnode_destroy(struct manager *m, const char *name, char *err, size_t errlen);
int vnode_resize(struct manager *m, const char *name, json_t *req, json_t **out, char *err,
		 size_t errlen);
int manager_start_monitor(struct manager *m);

/* xml.c - libvirt domain XML in and out */
json_t *xml_to_spec(const char *xml, char *err, size_t errlen);
char *spec_to_xml(const json_t *spec, char *err, size_t errlen);

/* api.c */
struct httpd;
struct httpd *api_start(struct manager *m, const char *addr, char *err, size_t errlen);

#endif
