/*
 * etcd.h - a client of etcd v3 through its JSON gateway (POST /v3/...),
 * over HTTPS with libcurl: what the manager keeps its state in when there
 * is more than one manager (store_etcd.c) and how they elect a leader
 * (leader.c).
 *
 * The gateway speaks etcd's protobuf messages as JSON: keys and values are
 * base64, 64-bit numbers are strings. This file hides both: callers build
 * requests with etcd_b64/etcd_key and read numbers with etcd_num.
 *
 * Several endpoints (the members of one etcd cluster) may be given; a call
 * goes to the last one that answered and moves on to the next when one
 * cannot be reached, so a dead member costs one timeout, once.
 *
 * Security: etcd is reached with its own certificate authority (the
 * cluster's PKI directory, subdirectory etcd/: ca.pem, and manager.pem/.key
 * signed by it), not the members' one: a memory server or an agent holds a
 * certificate of the cluster's CA and so cannot talk to etcd at all.
 */
#ifndef LEGO_ETCD_H
#define LEGO_ETCD_H

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>

#include "pki.h"

#define ETCD_MAX_ENDPOINTS 8

struct etcd {
	char endpoints[ETCD_MAX_ENDPOINTS][128]; /* "https://HOST:PORT" */
	int nr_endpoints;
	int current; /* the endpoint that answered last */
	struct pki_identity id;
	char prefix[64];      /* every key starts with it: "/lego/" */
	pthread_key_t handle; /* each thread's curl handle (connections kept open) */
	int timeout_ms;
};

/*
 * etcd_open - @spec "etcd://HOST:PORT[,HOST:PORT...]", reached as @id (the
 * etcd CA and a certificate it signed). 0, or -EINVAL with a sentence in @err.
 */
int etcd_open(struct etcd *e, const char *spec, const struct pki_identity *id, char *err,
	      size_t errlen);
void etcd_close(struct etcd *e);

/*
 * etcd_call - POST @req (not stolen) to /v3/@path ("kv/range", "kv/txn",
 * "lease/grant", ...); the answer in *@resp. 0; -EHOSTUNREACH when no
 * endpoint answered; -EREMOTEIO when etcd refused (its message in @err).
 */
int etcd_call(struct etcd *e, const char *path, json_t *req, json_t **resp, char *err,
	      size_t errlen);

/* etcd_b64 - @len bytes of @data as a base64 JSON string. */
json_t *etcd_b64(const void *data, size_t len);
/* etcd_key - the key @prefix + @name, as a base64 JSON string. */
json_t *etcd_key(const struct etcd *e, const char *name);
/* etcd_key_end - the end of the range of keys that start with prefix + @name. */
json_t *etcd_key_end(const struct etcd *e, const char *name);
/* etcd_unb64 - a base64 JSON string decoded (malloc'd, NUL-terminated; its length in
 * *@len if not NULL), or NULL. */
char *etcd_unb64(const json_t *s, size_t *len);
/* etcd_num - a number of an answer ("123" or 123; absent: 0). */
int64_t etcd_num(const json_t *obj, const char *key);
/* etcd_name - a kv's key with the prefix and @sub ("vnodes/") cut off (malloc'd), or NULL. */
char *etcd_name(const struct etcd *e, const json_t *kv, const char *sub);

#endif
