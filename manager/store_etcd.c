/*
 * store_etcd.c - the manager's state in etcd (store.h), shared by several
 * managers of which one leads (leader.c). Keys under /lego/:
 *
 *   comps/ROLE/ADDR   {"capacity": N, "up": bool}
 *   vnodes/NAME       the vNode's record (store.c)
 *   vnodes-rev        rewritten with every vNode record: its revision is the
 *                     last change of any
 *   tokens/ID         {"hash", "role", "expires", "used"}
 *   leader            the leading manager's API URL, on its lease (leader.c)
 *
 * Every write is one transaction that holds only if
 *   - the leader key is still the one this manager created (its term): a
 *     deposed manager's writes never land, however late they come;
 *   - for a vNode's record: no record under vnodes/ changed since the
 *     revision this manager's model reflects. A placement is such a write,
 *     so it commits only against the capacity it was decided on: two
 *     managers can never hand out the same memory twice, whatever the
 *     timing (the one whose view is stale fails, and stops). Every write of
 *     a vNode record also writes the key vnodes-rev, so that this check is
 *     one compare of that key's revision, whatever the number of vNodes
 *     (a compare over the range of records costs a scan of all of them).
 * A transaction that fails one of those means this manager's model is not
 * the cluster's any more: it stops (leader_lost). One that cannot reach
 * etcd is retried until this manager's lease would have run out, then the
 * same.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "etcd.h"
#include "log.h"
#include "manager.h"
#include "store.h"
#include "util.h"

/*
 * Placements commit in groups: while one transaction of them is under way,
 * the placements made meanwhile wait together for the next (each create's
 * thread lets the manager's lock go while it waits). The client is the
 * store's first member, so that E(m) is it.
 */
struct et_store {
	struct etcd e;
	pthread_cond_t done;
	json_t *pending;		/* the next group's operations */
	uint64_t next_group, last_done; /* numbers of the group being filled, and of the last
					 * committed */
	bool busy;			/* a group is being committed */
};

#define E(m)  ((struct etcd *)(m)->store_data)
#define ST(m) ((struct et_store *)(m)->store_data)

int store_etcd_open(struct manager *m, const char *spec, char *err, size_t errlen)
{
	struct pki_identity id;
	char prefix[PATH_MAX];
	struct et_store *st;
	struct etcd *e;
	json_t *r;
	int ret;

	/* etcd's own CA and this manager's certificate from it (etcd.h) */
	snprintf(prefix, sizeof(prefix), "%s/etcd/manager", m->pki);
	if (pki_identity(prefix, &id, err, errlen))
		return -1;
	st = calloc(1, sizeof(*st));
	e = &st->e;
	if (!st || etcd_open(e, spec, &id, err, errlen)) {
		free(st);
		return -1;
	}
	pthread_cond_init(&st->done, NULL);
	st->pending = json_array();
	st->next_group = 1;
	/* one call now, so that a wrong certificate is said at start; etcd itself may be
	 * starting with this manager (legoctl up): it is given 30 s */
	json_t *req = json_pack("{s:o,s:b}", "key", etcd_key(e, "leader"), "count_only", 1);
	for (uint64_t end = mono_ms() + 30000;;) {
		ret = etcd_call(e, "kv/range", req, &r, err, errlen);
		json_decref(r);
		if (ret != -EHOSTUNREACH || mono_ms() > end)
			break;
		usleep(250 * 1000);
	}
	json_decref(req);
	if (ret) {
		etcd_close(e);
		json_decref(st->pending);
		free(st);
		return -1;
	}
	m->store_data = st;
	return 0;
}

static void et_close(struct manager *m)
{
	etcd_close(E(m));
	json_decref(ST(m)->pending);
	free(ST(m));
	m->store_data = NULL;
}

/*
 * The compares of a write: the leader key's create revision is this
 * manager's term (unless it runs without an election: --no-election), and
 * @a and @b (stolen; either may be NULL).
 */
static json_t *fenced(struct manager *m, json_t *a, json_t *b)
{
	json_t *c = json_array();

	if (m->election)
		json_array_append_new(c, json_pack("{s:o,s:s,s:s,s:I}", "key",
						   etcd_key(E(m), "leader"), "target", "CREATE",
						   "result", "EQUAL", "create_revision",
						   (json_int_t)m->term));
	if (a)
		json_array_append_new(c, a);
	if (b)
		json_array_append_new(c, b);
	return c;
}

/* A compare: no vNode record changed after the one the model reflects. */
static json_t *cmp_view(struct manager *m)
{
	return json_pack("{s:o,s:s,s:s,s:I}", "key", etcd_key(E(m), "vnodes-rev"), "target", "MOD",
			 "result", "EQUAL", "mod_revision", (json_int_t)m->view_rev);
}

/* @op (stolen) and the write of vnodes-rev, as a transaction's success. */
static json_t *with_view(struct manager *m, json_t *op)
{
	return json_pack("[o,{s:{s:o,s:s}}]", op, "request_put", "key",
			 etcd_key(E(m), "vnodes-rev"), "value", "");
}

static json_t *op_put(struct manager *m, const char *name, const char *value)
{
	return json_pack("{s:{s:o,s:o}}", "request_put", "key", etcd_key(E(m), name), "value",
			 etcd_b64(value, strlen(value)));
}

/*
 * Run the transaction @compares → @success (both stolen). 1 if it held, 0 if
 * a compare failed (*@why says which kind), or -EIO; the revision it made in
 * *@rev. Unreachable etcd is retried as long as this manager's lease may
 * still hold. No lock needed.
 */
static int run_txn(struct manager *m, json_t *compares, json_t *success, const char **why,
		   uint64_t *rev)
{
	json_t *req = json_pack("{s:o,s:o,s:[{s:{s:o}}]}", "compare", compares, "success", success,
				"failure", "request_range", "key", etcd_key(E(m), "leader"));
	char err[512];
	int ret;

	for (;;) {
		json_t *r = NULL;

		ret = etcd_call(E(m), "kv/txn", req, &r, err, sizeof(err));
		if (!ret) {
			bool ok = json_is_true(json_object_get(r, "succeeded"));
			json_t *kvs = json_object_get(
				json_object_get(json_array_get(json_object_get(r, "responses"), 0),
						"response_range"),
				"kvs");

			*rev = (uint64_t)etcd_num(json_object_get(r, "header"), "revision");
			if (!ok && m->term &&
			    (uint64_t)etcd_num(json_array_get(kvs, 0), "create_revision") !=
				    m->term)
				*why = "another manager leads now";
			else if (!ok)
				*why = "another manager changed the state";
			json_decref(r);
			json_decref(req);
			return ok;
		}
		if (ret != -EHOSTUNREACH || !leader_may_wait(m)) {
			log_err("%s", err);
			json_decref(req);
			return -EIO;
		}
		usleep(100 * 1000);
	}
}

/* run_txn with the lock not held: the model's revision follows. */
static int txn_unlocked(struct manager *m, json_t *compares, json_t *success, const char **why)
{
	uint64_t rev = 0;
	int r = run_txn(m, compares, success, why, &rev);

	pthread_mutex_lock(&m->lock);
	if (r == 1 && rev > m->store_rev)
		m->store_rev = rev;
	pthread_mutex_unlock(&m->lock);
	return r;
}

/*
 * run_txn with the lock held, and kept while etcd cannot be reached: a write
 * of another thread meanwhile would move the revision the transaction checks.
 * @view: it writes vnodes-rev (with_view), whose revision the model then has.
 */
static int txn(struct manager *m, json_t *compares, json_t *success, bool view, const char **why)
{
	uint64_t rev = 0;
	int r = run_txn(m, compares, success, why, &rev);

	if (r == 1) {
		if (rev > m->store_rev)
			m->store_rev = rev;
		if (view)
			m->view_rev = rev;
	}
	return r;
}

/* A write that must land: if it cannot, this manager stops. */
static int must(struct manager *m, json_t *compares, json_t *success, bool view, const char *what)
{
	const char *why = "etcd cannot be reached";
	int r = txn(m, compares, success, view, &why);
	char msg[256];

	if (r == 1)
		return 0;
	snprintf(msg, sizeof(msg), "%s not written: %s", what, why);
	leader_lost(m, msg);
}

static int et_save_comp(struct manager *m, const char *role, const char *addr, int64_t capacity,
			bool up)
{
	char name[256], *text;
	json_t *rec = json_pack("{s:I,s:b}", "capacity", (json_int_t)capacity, "up", up);
	int ret;

	snprintf(name, sizeof(name), "comps/%s/%s", role, addr);
	text = json_dumps(rec, JSON_COMPACT);
	json_decref(rec);
	ret = must(m, fenced(m, NULL, NULL), json_pack("[o]", op_put(m, name, text)), false,
		   "a component's record");
	free(text);
	return ret;
}

static int et_save_vnode(struct manager *m, const char *vname, const char *record)
{
	char name[128];

	snprintf(name, sizeof(name), "vnodes/%s", vname);
	return must(m, fenced(m, cmp_view(m), NULL), with_view(m, op_put(m, name, record)), true,
		    "a vNode's record");
}

/*
 * A placement's record: with elections, in a group with the placements made
 * while the previous group commits (the term's compare is their check: only
 * this term's leader writes, so the capacity it decided on is the cluster's);
 * without, one at a time with the view's compare. Lock held; let go meanwhile.
 */
static int et_save_placement(struct manager *m, const char *vname, const char *record)
{
	struct et_store *st = ST(m);
	const char *why = "etcd cannot be reached";
	uint64_t mine, group;
	char name[128], msg[256];
	json_t *ops;
	int r;

	if (!m->election)
		return et_save_vnode(m, vname, record);
	snprintf(name, sizeof(name), "vnodes/%s", vname);
	json_array_append_new(st->pending, op_put(m, name, record));
	mine = st->next_group;
	while (st->busy && st->last_done < mine)
		pthread_cond_wait(&st->done, &m->lock);
	if (st->last_done >= mine)
		return 0; /* committed in another's group (a failed one ends the process) */
	/* this thread commits the group, its own placement and those that joined */
	st->busy = true;
	ops = st->pending;
	st->pending = json_array();
	group = st->next_group++;
	pthread_mutex_unlock(&m->lock);
	r = txn_unlocked(m, fenced(m, NULL, NULL), ops, &why);
	pthread_mutex_lock(&m->lock);
	st->busy = false;
	st->last_done = group;
	pthread_cond_broadcast(&st->done);
	if (r == 1)
		return 0;
	snprintf(msg, sizeof(msg), "placements not written: %s", why);
	leader_lost(m, msg);
}

static int et_delete_vnode(struct manager *m, const char *vname)
{
	char name[128];

	snprintf(name, sizeof(name), "vnodes/%s", vname);
	return must(m, fenced(m, cmp_view(m), NULL),
		    with_view(m, json_pack("{s:{s:o}}", "request_delete_range", "key",
					   etcd_key(E(m), name))),
		    true, "a vNode's deletion");
}

static char *token_text(const struct join_token *t, int64_t used)
{
	json_t *j = json_pack("{s:s,s:s,s:I,s:I}", "hash", t->hash, "role", t->role, "expires",
			      (json_int_t)t->expires, "used", (json_int_t)used);
	char *text = json_dumps(j, JSON_COMPACT);

	json_decref(j);
	return text;
}

static int et_token_add(struct manager *m, const struct join_token *t)
{
	char name[64], *text = token_text(t, 0);
	int ret;

	snprintf(name, sizeof(name), "tokens/%s", t->id);
	ret = must(m, fenced(m, NULL, NULL), json_pack("[o]", op_put(m, name, text)), false,
		   "a join token");
	free(text);
	return ret;
}

static int et_token_get(struct manager *m, const char *id, const char *hash, struct join_token *t)
{
	char name[64], err[512], *text;
	json_t *req, *r, *kv, *j;
	int ret;

	snprintf(name, sizeof(name), "tokens/%s", id);
	req = json_pack("{s:o}", "key", etcd_key(E(m), name));
	ret = etcd_call(E(m), "kv/range", req, &r, err, sizeof(err));
	json_decref(req);
	if (ret) {
		log_err("%s", err);
		return -EIO;
	}
	kv = json_array_get(json_object_get(r, "kvs"), 0);
	text = kv ? etcd_unb64(json_object_get(kv, "value"), NULL) : NULL;
	j = text ? json_loads(text, 0, NULL) : NULL;
	free(text);
	ret = -ENOENT;
	if (j && !strcmp(spec_str(j, "hash") ?: "", hash)) {
		snprintf(t->id, sizeof(t->id), "%s", id);
		snprintf(t->hash, sizeof(t->hash), "%s", hash);
		snprintf(t->role, sizeof(t->role), "%s", spec_str(j, "role") ?: "");
		t->expires = etcd_num(j, "expires");
		t->used = etcd_num(j, "used");
		t->rev = etcd_num(kv, "mod_revision");
		ret = 0;
	}
	json_decref(j);
	json_decref(r);
	return ret;
}

static int et_token_spend(struct manager *m, const struct join_token *t, int64_t now)
{
	char name[64], *text = token_text(t, now);
	const char *why = "etcd cannot be reached";
	json_t *cmp;
	int r;

	snprintf(name, sizeof(name), "tokens/%s", t->id);
	cmp = json_pack("{s:o,s:s,s:s,s:I}", "key", etcd_key(E(m), name), "target", "MOD", "result",
			"EQUAL", "mod_revision", (json_int_t)t->rev);
	r = txn(m, fenced(m, cmp, NULL), json_pack("[o]", op_put(m, name, text)), false, &why);
	free(text);
	if (r < 0)
		return -EIO;
	if (!r && !strcmp(why, "another manager leads now"))
		leader_lost(m, "a join token not spent: another manager leads now");
	return r; /* 0: spent by another join meanwhile */
}

/* Every key under @sub, in pages; @fn on each. 0 or -1 with @err. */
static int each(struct manager *m, const char *sub, int64_t rev,
		int (*fn)(struct manager *, json_t *kv), char *err, size_t errlen)
{
	json_t *from = etcd_key(E(m), sub), *end = etcd_key_end(E(m), sub);
	int ret = 0;

	for (;;) {
		json_t *req = json_pack("{s:O,s:O,s:i,s:I}", "key", from, "range_end", end, "limit",
					500, "revision", (json_int_t)rev);
		json_t *r, *kvs, *kv;
		size_t i;

		ret = etcd_call(E(m), "kv/range", req, &r, err, errlen);
		json_decref(req);
		if (ret)
			break;
		kvs = json_object_get(r, "kvs");
		json_array_foreach(kvs, i, kv)
		{
			if (fn(m, kv)) {
				char *k = etcd_unb64(json_object_get(kv, "key"), NULL);

				snprintf(err, errlen, "%s: its record in etcd is damaged", k);
				free(k);
				ret = -1;
				break;
			}
		}
		bool more =
			!ret && json_is_true(json_object_get(r, "more")) && json_array_size(kvs);
		if (more) { /* the next page starts just after the last key */
			size_t n;
			char *last =
				etcd_unb64(json_object_get(json_array_get(kvs, i - 1), "key"), &n);
			char *next = last ? realloc(last, n + 1) : NULL;

			if (!next) {
				free(last);
				snprintf(err, errlen, "out of memory");
				ret = -1;
			} else {
				next[n] = '\0';
				json_decref(from);
				from = etcd_b64(next, n + 1);
				free(next);
			}
		}
		json_decref(r);
		if (!more || ret)
			break;
	}
	json_decref(from);
	json_decref(end);
	return ret ? -1 : 0;
}

static int load_comp(struct manager *m, json_t *kv)
{
	char *name = etcd_name(E(m), kv, "comps/"), *text, *slash;
	json_t *j;
	int ret = -1;

	if (!name || !(slash = strchr(name, '/'))) {
		free(name);
		return -1;
	}
	*slash = '\0';
	text = etcd_unb64(json_object_get(kv, "value"), NULL);
	j = text ? json_loads(text, 0, NULL) : NULL;
	if (j)
		ret = store_load_comp(m, name, slash + 1, (uint64_t)etcd_num(j, "capacity"),
				      json_is_true(json_object_get(j, "up")));
	json_decref(j);
	free(text);
	free(name);
	return ret;
}

static int load_vnode(struct manager *m, json_t *kv)
{
	char *name = etcd_name(E(m), kv, "vnodes/");
	char *text = etcd_unb64(json_object_get(kv, "value"), NULL);
	int ret = name && text ? store_load_vnode(m, name, text) : -1;

	free(name);
	free(text);
	return ret;
}

/* Everything at one revision: the last change of a vNode record's, and the records then. */
static int et_load(struct manager *m, char *err, size_t errlen)
{
	json_t *req = json_pack("{s:o}", "key", etcd_key(E(m), "vnodes-rev")), *r;
	int64_t rev;

	if (etcd_call(E(m), "kv/range", req, &r, err, errlen)) {
		json_decref(req);
		return -1;
	}
	json_decref(req);
	rev = etcd_num(json_object_get(r, "header"), "revision");
	m->view_rev =
		(uint64_t)etcd_num(json_array_get(json_object_get(r, "kvs"), 0), "mod_revision");
	json_decref(r);
	if (each(m, "comps/", rev, load_comp, err, errlen) ||
	    each(m, "vnodes/", rev, load_vnode, err, errlen))
		return -1;
	m->store_rev = (uint64_t)rev;
	return 0;
}

const struct store_ops store_etcd = {
	.name = "etcd",
	.close = et_close,
	.load = et_load,
	.save_comp = et_save_comp,
	.save_vnode = et_save_vnode,
	.save_placement = et_save_placement,
	.delete_vnode = et_delete_vnode,
	.token_add = et_token_add,
	.token_get = et_token_get,
	.token_spend = et_token_spend,
};
