/*
 * cluster.h - a whole cluster on loopback for a test case, driven through
 * legoctl the way a person drives it (legoctl up ... down), in a LEGO_HOME
 * and a network namespace of the case's own.
 */
#ifndef LEGO_TESTS_CLUSTER_H
#define LEGO_TESTS_CLUSTER_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "pki.h"
#include "test.h"

#define JS(o, k) json_string_value(json_object_get(o, k))
#define JI(o, k) ((long long)json_integer_value(json_object_get(o, k)))

extern char home[512]; /* the case's LEGO_HOME */

/* legoctl - run legoctl ARGS... (NULL-ended) under the case's LEGO_HOME. */
void legoctl(struct proc_result *r, const char *a0, ...);

/* legoctl_json - legoctl --json ARGS, parsed; the case fails if the command does. */
#define legoctl_json(...) legoctl_json_(__LINE__, __VA_ARGS__, NULL)
json_t *legoctl_json_(int line, const char *cmd, const char *arg, ...);

/* cluster_home - the case's LEGO_HOME, and its own network namespace (as root). */
void cluster_home(void);

/* cluster_home_here - the case's LEGO_HOME, in the network namespace the case runs in. */
void cluster_home_here(void);

/* up - legoctl up with memory servers of @memsrv_capacity and a 2G agent. */
void up(const char *memsrv_capacity);

/* cluster_cfg - the string @key ("manager": its URL, "agent", "storsrv") of cluster.json. */
void cluster_cfg(const char *key, char *out, size_t len);

/* member_identity - the identity of the case's pki/@name ("admin", "memsrv-1", ...). */
struct pki_identity member_identity(const char *name);

/* vnode_field - @field of vNode @name's record in manager.db ("token", "id", "epoch"...). */
void vnode_field(const char *name, const char *field, char *out, size_t len);

/*
 * memsrv_join_argv - lego-memsrv (256M) joining the case's cluster with the
 * token in @tokfile, its identity under @prefix, on @listen, advertising
 * @advertise (NULL: @listen). The strings are kept in static buffers.
 */
void memsrv_join_argv(char *argv[16], const char *listen, const char *advertise, const char *prefix,
		      const char *tokfile);

/*
 * call_as - @method @base@path as @id (NULL: plain HTTP) with a JSON @body
 * (may be NULL), 30 s at most: its status (-1: no answer), and the answer
 * (or why there was none) in @out.
 */
int call_as(const struct pki_identity *id, const char *method, const char *base, const char *path,
	    const char *body, char *out, size_t len);

/* as_member - this test process's HTTP calls present the case's pki/@name (admin after up). */
void as_member(const char *name);

/* down_leaves_nothing - legoctl down; every daemon and the @extra VMMs are gone. */
void down_leaves_nothing(pid_t *extra, int nr_extra);

/* pid_of - the pid of a daemon of `legoctl up` ("manager", "memsrv-1", ...), 0 if none. */
pid_t pid_of(const char *daemon);

/* memsrv_addr - the address `legoctl up` gave memsrv-@nth (1 or 2). */
void memsrv_addr(int nth, char *out, size_t len);

/* component - the @nth component of @role in `legoctl --json nodes`, or NULL. */
json_t *component(json_t *nodes, const char *role, int nth);

/* total_reserved - the bytes reserved on all components together. */
long long total_reserved(void);

/* nr_vnodes - how many vNodes legoctl list shows. */
size_t nr_vnodes(void);

/* wait_health - until @addr of @role has @health: the ms it took, or -1 after @max_ms. */
int wait_health(const char *role, const char *addr, const char *health, int max_ms);

/* gone - the process no longer runs (gone, or a zombie). */
bool gone(pid_t pid);

/* kill_and_wait - SIGKILL @pid and wait until it is gone. */
void kill_and_wait(pid_t pid);

/* create_payload - legoctl create @name: the verifying payload, 64M, ExCache 16M. */
void create_payload(const char *name, const char *cpus, const char *extra);

/* vnode - @name's entry in a `legoctl --json list`, or NULL. */
json_t *vnode(json_t *list, const char *name);

/* wait_vnode - wait (15 s) for @name's @state (and ExCache @xc_size if not 0); its entry. */
json_t *wait_vnode(const char *name, const char *state, long long xc_size);

/* wait_vnode_for - the same, for at most @max_s seconds. */
json_t *wait_vnode_for(const char *name, const char *state, long long xc_size, int max_s);

/* no_mismatches - @name's console has the verifying payload's report of each of
 * @cpus vCPUs, and none found a mismatch. */
void no_mismatches(const char *name, int cpus);

/* join_token_file - a join token for @role (legoctl token create) written to @path (0600). */
void join_token_file(const char *role, const char *path);

/* console_of - what @name's console printed so far (legoctl console --once); free it. */
char *console_of(const char *name);

/* vnode_on_servers - wait (@max_ms) until every slab of @name has @primary and @secondary
 * ("" for none). */
bool vnode_on_servers(const char *name, const char *primary, const char *secondary, int max_ms);

#endif
