/*
 * manager.h - lego-manager: the cluster's registry, placement and failure
 * detection, with its state in SQLite and a JSON API over HTTP.
 *
 * Everything lives in memory under one lock and is written through to the
 * database, which is read back at start: a restarted manager knows every
 * component and vNode it knew, and learns the live state again from the
 * components' heartbeats (the vNodes themselves never stop for it).
 *
 * The files: model.c (components, vNodes, what they hold), monitor.c
 * (heartbeats, failure detection, the refill and restore orders),
 * remote.c (calls to storage servers and agents, the vNode order),
 * flows.c (create, start, stop, resize, destroy), lifecycle.c (pause,
 * migrate, snapshot, restore), copy.c (a saved vNode copied), place.c (placement
 * decisions), db.c (SQLite), api.c (the HTTP API), xml.c (libvirt XML).
 */
#ifndef LEGO_MANAGER_H
#define LEGO_MANAGER_H

#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "http.h"
#include "ipam.h"
#include "pki.h"
#include "place.h"
#include "proto.h"
#include "store.h"

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

/* A vNode's state, as the manager sees it. */
enum vnode_state {
	VNODE_CREATING, /* being placed and started, or changed: hands off */
	VNODE_RUNNING,
	VNODE_STOPPED, /* stopped by a person; starts again on request */
	VNODE_EXITED,  /* its guest ended (status 0) */
	VNODE_FAILED,  /* ... with an error, or a create that never finished */
	VNODE_LOST,    /* its agent does not know it (the agent restarted) */
	VNODE_PAUSED,  /* its vCPUs stopped by a person; resumes on request */
	VNODE_SAVED,   /* saved into a snapshot on its agent, memory kept on the servers */
	NR_VNODE_STATES
};

/* vnode_state_name / vnode_state_parse - "running", ...; parse answers -1 for an unknown name. */
const char *vnode_state_name(enum vnode_state s);
int vnode_state_parse(const char *name);

struct slab_ref {
	uint64_t size;
	char primary[ADDR_LEN], secondary[ADDR_LEN];
};

struct vnode {
	char name[NAME_LEN];
	uint64_t id; /* its number on the memory servers */
	char token[2 * LMP_TOKEN_LEN + 1];
	json_t *spec; /* what the user asked for (see flows.c) */
	enum vnode_state state;
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
	uint64_t trim_ordered_ms;    /* slabs of unplugged memory last given back */
	uint64_t fill_failures_seen; /* the VMM's count of failed fills at the last order */
	char ip[16], mac[18];	     /* its network interface ("": none) */
	char snapshot[NAME_LEN];     /* VNODE_SAVED: the snapshot its agent holds */
};

struct manager {
	pthread_mutex_t lock;
	const struct store_ops *store; /* store.h: SQLite, or etcd shared with other managers */
	void *store_data;	       /* the backend's */
	struct comp_set roles[NR_ROLES];
	struct vnode **vnodes;
	int nr_vnodes, cap_vnodes;
	uint64_t slab_size;
	int down_after_ms;
	struct ipam ipam; /* the vNodes' subnet (ipam.used NULL: no network) */
	uint64_t nr_requests, nr_heartbeats, nr_placements, nr_refusals;
	pthread_t monitor;
	bool stop;
	/* members.c: the cluster's identity */
	char pki[PATH_MAX - 64]; /* its directory: ca.pem, manager.pem/.key, ca.key */
	struct pki_identity id;	 /* the manager's own */
	char ca_fpr[65];	 /* the CA's SHA-256, in hex */
	bool can_sign;		 /* ca.key is here: join tokens can be used */
	/* leader.c: whether this manager acts (always, with SQLite) */
	bool leading;
	uint64_t term;			/* its leadership's number (etcd); 0 with SQLite */
	uint64_t leader_term;		/* the leader's, as last seen (a standby's view) */
	uint64_t store_rev;		/* the store's revision the model reflects (etcd) */
	uint64_t view_rev;		/* ... and that of the last change of a vNode record */
	uint64_t lease_deadline_ms;	/* mono_ms() until which its lease surely holds */
	char self_url[ADDR_LEN + 16];	/* its API, https://HOST:PORT */
	char leader_url[ADDR_LEN + 16]; /* the leader's ("": none known) */
	struct election *election;
};

const char *role_name(enum role r);
int role_parse(const char *name);

/* memresize.c - a running vNode's memory grown and shrunk live */
/* vnode_max_memory - what @v's memory may grow to live (0: it cannot). */
uint64_t vnode_max_memory(const struct vnode *v);
/* vnode_memory_now - the memory @v has (boot memory and what is hotplugged). */
uint64_t vnode_memory_now(const struct vnode *v);
/* vnode_memory_running - the memory @v runs with (not one for the next start). */
uint64_t vnode_memory_running(const struct vnode *v);
/* vnode_place_target - the bytes of memory @v's placement covers. */
uint64_t vnode_place_target(const struct vnode *v, uint64_t slab_size);
/* spec.c - spec_check: check and complete a spec in place; 0 or -EINVAL with a reason. A
 * spec is at most SPEC_MAX bytes of JSON. */
#define SPEC_MAX (64 << 10)
int spec_check(json_t *spec, char *err, size_t errlen);

/* memresize_spec_check - check and complete a spec's max_memory. 0 or -EINVAL. */
int memresize_spec_check(json_t *spec, char *err, size_t errlen);
/* vnode_memory_live - resize running @name to @total bytes now; the vNode's JSON in *@out. */
int vnode_memory_live(struct manager *m, const char *name, uint64_t total, json_t **out, char *err,
		      size_t errlen);
/* memresize_plan_trim - whether @v gave memory back whose slabs may go. Lock held. */
bool memresize_plan_trim(struct manager *m, struct vnode *v, uint64_t *size, int *slabs);
/* memresize_trim - tell @name's VMM to keep @slabs slabs, and free the rest. Lock not held. */
int memresize_trim(struct manager *m, const char *agent, const char *name, uint64_t size, int slabs,
		   char *err, size_t errlen);

/* members.c - join tokens and the certificates signed for them */
/* members_init - the manager's identity, in @pki_dir. 0 or -1 with @err. */
int members_init(struct manager *m, const char *pki_dir, char *err, size_t errlen);
/* members_token_create - a join token for @role, valid @ttl_s (0: 15 min), into @token. */
int members_token_create(struct manager *m, unsigned role, long ttl_s, char *token, size_t len,
			 time_t *expires, char *err, size_t errlen);
/* members_vmm_credential - the certificate and key of the VMM @order runs, added to it. */
int members_vmm_credential(struct manager *m, json_t *order, char *err, size_t errlen);
/* members_join - a certificate for the join request @req (malloc'd PEM), or -errno with @err. */
int members_join(struct manager *m, json_t *req, char **cert, char *err, size_t errlen);

/*
 * leader.c - with a shared store, one manager leads: it alone places,
 * detects failures and orders; the others are standbys that answer reads
 * and send writes to it. With SQLite this manager simply leads.
 */
/* leader_start - lead now (SQLite, or @ttl_ms 0: no election), or campaign for it (etcd;
 * lease of @ttl_ms). */
int leader_start(struct manager *m, int ttl_ms, char *err, size_t errlen);
void leader_stop(struct manager *m);
/* leader_refresh - a standby's model read again if the store changed since. No lock held. */
void leader_refresh(struct manager *m);
/* leader_members - the managers alive now: [{"url", "leading"}]. No lock held. */
json_t *leader_members(struct manager *m);
/* leader_lost - this manager may no longer act: said, and the process ends (status 75). */
_Noreturn void leader_lost(struct manager *m, const char *why);
/* leader_may_wait - whether this manager's lease still holds (a write may be retried). */
bool leader_may_wait(struct manager *m);

/* manager_reload - the model read again from the store (a standby's, or a new leader's). Lock held. */
int manager_reload(struct manager *m, char *err, size_t errlen);

/* store.c - the state written through to the store (store.h) and read back */
int db_load(struct manager *m, char *err, size_t errlen);
int db_save_comp(struct manager *m, const struct comp *c);
int db_save_vnode(struct manager *m, const struct vnode *v);
/*
 * db_save_placement - the record of @v just placed ("creating": hands off),
 * committed with other placements made meanwhile where the store batches
 * them (etcd): the lock is let go while it waits, so the caller must hold
 * nothing it reads after it, but @v.
 */
int db_save_placement(struct manager *m, const struct vnode *v);
int db_delete_vnode(struct manager *m, const char *name);

/* model.c - the model; every function expects m->lock held unless noted */
int manager_init(struct manager *m, const char *db_path, char *err, size_t errlen);
void manager_exit(struct manager *m);
struct comp *comp_add(struct manager *m, enum role r, const char *addr, uint64_t capacity);
/* comp_find - the component of role @r at @addr (its position in *@index), or NULL. */
struct comp *comp_find(struct manager *m, enum role r, const char *addr, int *index);
/* ps_of - the placement view of that component, or NULL. */
struct place_server *ps_of(struct manager *m, enum role r, const char *addr);
/* adjust - count (@sign +1) or uncount (-1) @bytes on @ps (NULL: nothing). */
void adjust(struct place_server *ps, uint64_t bytes, bool primary, int sign);
struct vnode *vnode_find(struct manager *m, const char *name);
struct vnode *vnode_add(struct manager *m, const char *name);
/* vnode_remove - forget @v and free it (its reservations are the caller's). */
void vnode_remove(struct manager *m, struct vnode *v);
/* vnode_reserve - count @v's placement in its components' reservations (@sign -1: uncount). */
void vnode_reserve(struct manager *m, struct vnode *v, int sign);
/* vnode_set_state - change @v's state, logged and saved. */
void vnode_set_state(struct manager *m, struct vnode *v, enum vnode_state state);
/* vnode_uses - does @v depend on @c: its memory, its disk or memory backup, its VMM? */
bool vnode_uses(const struct vnode *v, const struct comp *c);
json_t *comp_json(struct manager *m, enum role r, int i);
json_t *vnode_json(struct manager *m, struct vnode *v);
/* What a vNode holds follows from its spec and placement, not kept twice. */
uint64_t spec_u64(const json_t *spec, const char *key);
const char *spec_str(const json_t *spec, const char *key);

/*
 * vnode_place_slabs - place_memory (place.h) of @size for @v over the memory
 * servers it may use: with "transport": "rdma", those that serve RDMA (their
 * heartbeat names an RDMA address). Lock held.
 */
struct place_slab;
int vnode_place_slabs(struct manager *m, const struct vnode *v, uint64_t size, uint64_t slab_size,
		      struct place_slab *out, int max, char *err, size_t errlen);
uint64_t vnode_excache(const struct vnode *v);
/* vnode_disk - all its disks' bytes; vnode_nr_disks, vnode_disk_size - each one's. */
uint64_t vnode_disk(const struct vnode *v);
int vnode_nr_disks(const struct vnode *v);
uint64_t vnode_disk_size(const struct vnode *v, int i);
/* vnode_volume - the name of disk @i's volume: NAME for the first, NAME.dI after. */
void vnode_volume(const struct vnode *v, int i, char *name, size_t len);
/* backup_bytes - the memory's backup volume: every page, and a header page after them. */
uint64_t backup_bytes(uint64_t memory);

/* monitor.c */
/* manager_heartbeat - register or refresh a component. 0 or -EINVAL/-ENOMEM with @err. No lock needed. */
int manager_heartbeat(struct manager *m, json_t *beat, char *err, size_t errlen);
int manager_start_monitor(struct manager *m);

/* remote.c - calls to other components, made without the lock */
/* volume_op - @type (LMP_VOL_*) on volume @name of the storage server @addr. 0 or -errno, @err. */
int volume_op(const char *addr, uint16_t type, const char *name, const char *token_hex,
	      uint64_t size, char *err, size_t errlen);
/*
 * agent_call - @method @path on the agent at @agent with @body (not stolen).
 * 0 (its answer in *@out if @out), or -errno with @err: -EHOSTUNREACH when
 * it cannot be reached, else what its status means (-ENOENT for 404, -EEXIST
 * for 409, -ECHILD for 422: the VMM exited at once, -EREMOTEIO otherwise).
 */
int agent_call_ms(const char *agent, const char *method, const char *path, json_t *body,
		  json_t **out, int timeout_ms, char *err, size_t errlen);
int agent_call(const char *agent, const char *method, const char *path, json_t *body, json_t **out,
	       char *err, size_t errlen);
/*
 * volume_clone_op - the storage server @addr copies volume @src (token hex
 * @src_token) as @dst with @dst_token (struct lmp_vol_clone).
 */
int volume_clone_op(const char *addr, const char *src, const char *src_token, const char *dst,
		    const char *dst_token, char *err, size_t errlen);
/*
 * memsrv_clone_op - the memory server @addr shares the pages it holds of @src
 * with the new vNode @dst (its id, token and epoch), or with LMP_CLONE_DROP
 * (and @src NULL) forgets @dst, which no VMM may hold. @pages: how many it
 * shared. 0 or -errno, with the reason in @err.
 */
int memsrv_clone_op(const char *addr, const struct vnode *src, const struct vnode *dst,
		    uint32_t flags, uint64_t *pages, char *err, size_t errlen);
/* vnode_order - the order that runs @v's VMM (order.h), as JSON for the agent; @ipam
 * the cluster's subnet, for its address. Lock held. */
json_t *vnode_order(struct vnode *v, const struct ipam *ipam);
/* agent_run_order - @agent runs the VMM of @order, with its credential (members.c) added. */
int agent_run_order(struct manager *m, const char *agent, json_t *order, json_t **out, char *err,
		    size_t errlen);

/* flows.c - they take the lock themselves; 0 or -errno with a sentence in @err
 * (api.c says which HTTP status each means) */
int vnode_create(struct manager *m, json_t *spec, json_t **out, char *err, size_t errlen);
int vnode_start(struct manager *m, const char *name, char *err, size_t errlen);
/* How vnode_stop stops a running vNode: the power button, and the guest's
 * @timeout_s to shut down; or at once (@force). NULL: at once. */
struct stop_opts {
	bool force;
	int timeout_s;
};
int vnode_stop(struct manager *m, const char *name, const struct stop_opts *how, json_t **out,
	       char *err, size_t errlen);
/* vnode_reboot - the running guest reboots: through its power button, or a reset (@force). */
int vnode_reboot(struct manager *m, const char *name, bool force, json_t **out, char *err,
		 size_t errlen);
int vnode_destroy(struct manager *m, const char *name, char *err, size_t errlen);
/*
 * lifecycle.c: pause and resume; migrate its VMM to another agent (@to, or
 * the one with the most room), the memory staying where it is; snapshot
 * (saved on its agent and stopped, VNODE_SAVED) and restore from it.
 */
int vnode_pause(struct manager *m, const char *name, bool pause, char *err, size_t errlen);
int vnode_migrate(struct manager *m, const char *name, const char *to, json_t **out, char *err,
		  size_t errlen);
int vnode_snapshot(struct manager *m, const char *name, const char *snap, json_t **out, char *err,
		   size_t errlen);
/* vnode_restore - @name runs again from its snapshot; with @as (not NULL, not @name), a copy
 * of it named @as runs from it instead (copy.c), and @name stays saved. */
int vnode_restore(struct manager *m, const char *name, const char *as, json_t **out, char *err,
		  size_t errlen);
/* vnode_copy - see vnode_restore. */
int vnode_copy(struct manager *m, const char *name, const char *as, json_t **out, char *err,
	       size_t errlen);
/*
 * vnode_new - a vNode record @name of @spec (a reference taken), "creating"
 * at epoch 1, with a fresh number and token, and a token for volumes if
 * @volumes; NULL with why in @err (no randomness, no memory). Lock held.
 */
struct vnode *vnode_new(struct manager *m, const char *name, json_t *spec, bool volumes, char *err,
			size_t errlen);
/* vnode_place_backup - a storage server with room for @v's memory backup, if any (without
 * one, said in the log, it runs unbacked). Lock held. */
void vnode_place_backup(struct manager *m, struct vnode *v);
/* vnode_backup_volume - create @v's memory backup volume where it was placed (without one,
 * said in the log, it runs unbacked). Lock not held; @v is "creating". */
void vnode_backup_volume(struct manager *m, struct vnode *v);
/* vnode_drop_memory - the memory servers of @v forget its pages (no VMM runs it: a copy
 * that never ran, a saved vNode whose snapshot is dropped). Lock not held. */
void vnode_drop_memory(struct vnode *v);
/* vnode_delete_volumes - delete @v's first @n disk volumes (what is gone is no error). */
void vnode_delete_volumes(struct vnode *v, int n);
/* vnode_drop_volumes - delete @v's disk volumes and memory backup (what is gone is no error). */
void vnode_drop_volumes(struct vnode *v);
/* vnode_forget - undo what placement reserved and recorded for @v, and forget it. Lock held. */
void vnode_forget(struct manager *m, struct vnode *v);
/* vnode_lookup - @name if it is not being changed: -ENOENT / -EBUSY in *@status. Lock held. */
struct vnode *vnode_lookup(struct manager *m, const char *name, int *status, char *err,
			   size_t errlen);
int vnode_resize(struct manager *m, const char *name, json_t *req, json_t **out, char *err,
		 size_t errlen);

/* xml.c - libvirt domain XML in and out */
json_t *xml_to_spec(const char *xml, char *err, size_t errlen);
char *spec_to_xml(const json_t *spec, char *err, size_t errlen);

/* api.c - api_start serves api_routes (with a struct manager as their opaque) over HTTPS */
extern const struct http_route api_routes[];
struct httpd *api_start(struct manager *m, const char *addr, char *err, size_t errlen);

#endif
