/*
 * leader.c - which manager acts (manager.h).
 *
 * With etcd, managers campaign for the key /lego/leader, put on a lease of
 * their own: the one whose transaction creates it leads, and the key's
 * create revision is its term (etcd's revisions only grow, so a later
 * leader always has a higher term). The leader keeps its lease alive; if it
 * dies, the key goes with the lease within one TTL and a standby's next
 * attempt wins. Every write the leader makes is fenced by its term
 * (store_etcd.c), and every order it sends carries it (the Lego-Term
 * header), so a deposed leader that wakes up cannot act: its writes fail,
 * and agents that have seen a newer term refuse its orders.
 *
 * A leader that cannot keep its lease alive stops acting when the lease may
 * have run out (lease_deadline_ms, counted from when it sent the keepalive
 * that etcd last granted) - before any standby can have taken over - and
 * then stops: the model it would act on is no longer known to be the
 * cluster's, as kube-scheduler does on a lost lease. It is restarted as a
 * standby (legoctl up does that; a supervisor elsewhere).
 *
 * A standby reads the state again when etcd's revision moved: before it
 * answers a read (one small call to etcd), so that a read after a write sees
 * it, whichever manager answers; and once a second besides. Agents' live
 * reports (a VMM's ExCache figures) reach only the leader.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "etcd.h"
#include "http.h"
#include "log.h"
#include "manager.h"
#include "util.h"

struct election {
	pthread_t campaign, watch;
	int ttl_ms;
	int64_t lease;
	bool stop;
};

#define E(m) ((struct etcd *)(m)->store_data)

_Noreturn void leader_lost(struct manager *m, const char *why)
{
	log_err("this manager stops acting (term %llu): %s; a standby takes over",
		(unsigned long long)m->term, why);
	fflush(NULL);
	_exit(75);
}

bool leader_may_wait(struct manager *m)
{
	return m->leading && m->term &&
	       mono_ms() < __atomic_load_n(&m->lease_deadline_ms, __ATOMIC_ACQUIRE);
}

static int64_t lease_grant(struct manager *m, int ttl_ms)
{
	json_t *req = json_pack("{s:i}", "TTL", (ttl_ms + 999) / 1000), *r;
	char err[512];
	int64_t id = 0;

	if (!etcd_call(E(m), "lease/grant", req, &r, err, sizeof(err)))
		id = etcd_num(r, "ID");
	else
		log_warn("no lease from etcd: %s", err);
	json_decref(req);
	json_decref(r);
	return id;
}

/* Keep the lease alive: its TTL, 0 if it is gone, -1 if etcd did not answer. */
static int64_t lease_keep(struct manager *m, int64_t lease)
{
	json_t *req = json_pack("{s:I}", "ID", (json_int_t)lease), *r;
	char err[512];
	int64_t ttl = -1;

	if (!etcd_call(E(m), "lease/keepalive", req, &r, err, sizeof(err)))
		ttl = etcd_num(json_object_get(r, "result"), "TTL");
	json_decref(req);
	json_decref(r);
	return ttl;
}

/*
 * One attempt: create the leader key on @lease if there is none. 1 and the
 * term in m->term if this manager leads now; 0 (the leader's URL noted), or
 * -1 (etcd failed).
 */
static int campaign(struct manager *m, int64_t lease)
{
	char err[512], *url = NULL;
	json_t *req = json_pack(
		"{s:[{s:o,s:s,s:s,s:i}],s:[{s:{s:o,s:o,s:I}}],s:[{s:{s:o}}]}", "compare", "key",
		etcd_key(E(m), "leader"), "target", "CREATE", "result", "EQUAL", "create_revision",
		0, "success", "request_put", "key", etcd_key(E(m), "leader"), "value",
		etcd_b64(m->self_url, strlen(m->self_url)), "lease", (json_int_t)lease, "failure",
		"request_range", "key", etcd_key(E(m), "leader"));
	json_t *r;
	int won;

	if (etcd_call(E(m), "kv/txn", req, &r, err, sizeof(err))) {
		json_decref(req);
		return -1;
	}
	json_decref(req);
	won = json_is_true(json_object_get(r, "succeeded"));
	pthread_mutex_lock(&m->lock);
	if (won) {
		m->term = (uint64_t)etcd_num(json_object_get(r, "header"), "revision");
		m->leader_term = m->term;
		snprintf(m->leader_url, sizeof(m->leader_url), "%s", m->self_url);
	} else {
		json_t *kv = json_array_get(
			json_object_get(
				json_object_get(json_array_get(json_object_get(r, "responses"), 0),
						"response_range"),
				"kvs"),
			0);

		url = kv ? etcd_unb64(json_object_get(kv, "value"), NULL) : NULL;
		m->leader_term = (uint64_t)etcd_num(kv, "create_revision");
		snprintf(m->leader_url, sizeof(m->leader_url), "%s", url ? url : "");
		free(url);
	}
	pthread_mutex_unlock(&m->lock);
	json_decref(r);
	return won;
}

/* etcd's revision now, or 0. */
static uint64_t store_revision(struct manager *m)
{
	json_t *req = json_pack("{s:o,s:b}", "key", etcd_key(E(m), "leader"), "count_only", 1), *r;
	char err[512];
	uint64_t rev = 0;

	if (!etcd_call(E(m), "kv/range", req, &r, err, sizeof(err)))
		rev = (uint64_t)etcd_num(json_object_get(r, "header"), "revision");
	json_decref(req);
	json_decref(r);
	return rev;
}

void leader_refresh(struct manager *m)
{
	uint64_t rev;
	char err[512];

	if (!store_is_shared(m) || m->leading || !(rev = store_revision(m)))
		return;
	pthread_mutex_lock(&m->lock);
	if (!m->leading && rev > m->store_rev && manager_reload(m, err, sizeof(err)))
		log_warn("the state in etcd cannot be read: %s", err);
	pthread_mutex_unlock(&m->lock);
}

/* The lease's deadline passed: nothing may act on it any more. */
static void *watch_main(void *arg)
{
	struct manager *m = arg;

	while (!m->election->stop) {
		if (m->leading &&
		    mono_ms() >= __atomic_load_n(&m->lease_deadline_ms, __ATOMIC_ACQUIRE))
			leader_lost(m, "its lease in etcd could not be renewed in time");
		usleep(20 * 1000);
	}
	return NULL;
}

static void become_leader(struct manager *m)
{
	char err[512], term[64];

	pthread_mutex_lock(&m->lock);
	if (manager_reload(m, err, sizeof(err))) {
		pthread_mutex_unlock(&m->lock);
		leader_lost(m, err);
	}
	m->leading = true;
	pthread_mutex_unlock(&m->lock);
	snprintf(term, sizeof(term), "Lego-Term: %llu", (unsigned long long)m->term);
	http_header(term);
	manager_start_monitor(m);
	log_info("this manager leads the cluster now (term %llu; %d vNodes)",
		 (unsigned long long)m->term, m->nr_vnodes);
}

static void *campaign_main(void *arg)
{
	struct manager *m = arg;
	struct election *el = m->election;
	uint64_t next_keep = 0, next_read = 0;
	int64_t lease = 0;

	while (!el->stop) {
		uint64_t now = mono_ms();

		if (!lease && !(lease = lease_grant(m, el->ttl_ms))) {
			usleep(200 * 1000);
			continue;
		}
		if (el->lease != lease) { /* this manager is one of them, while its lease lives */
			char name[sizeof(m->self_url) + 16], err[512];
			json_t *req, *r;

			snprintf(name, sizeof(name), "managers/%s", m->self_url);
			req = json_pack("{s:o,s:o,s:I}", "key", etcd_key(E(m), name), "value",
					etcd_b64(m->self_url, strlen(m->self_url)), "lease",
					(json_int_t)lease);
			if (etcd_call(E(m), "kv/put", req, &r, err, sizeof(err)))
				log_warn("not listed among the managers: %s", err);
			json_decref(req);
			json_decref(r);
		}
		el->lease = lease;
		if (now >= next_keep) {
			int64_t ttl = lease_keep(m, lease);

			if (ttl > 0) {
				uint64_t deadline = now + (uint64_t)ttl * 1000;

				if (deadline > m->lease_deadline_ms)
					__atomic_store_n(&m->lease_deadline_ms, deadline,
							 __ATOMIC_RELEASE);
			} else if (ttl == 0) {
				if (m->leading)
					leader_lost(m, "its lease in etcd ran out");
				lease = 0;
				continue;
			}
			next_keep = now + (uint64_t)el->ttl_ms / 3;
		}
		if (!m->leading) {
			int won = m->lease_deadline_ms > now ? campaign(m, lease) : -1;

			if (won == 1) {
				become_leader(m);
				continue;
			}
			if (now >= next_read) { /* a standby's model follows the store */
				leader_refresh(m);
				next_read = now + 1000;
			}
		}
		usleep(m->leading ? 50 * 1000 : 200 * 1000);
	}
	return NULL;
}

json_t *leader_members(struct manager *m)
{
	json_t *list = json_array(), *req, *r, *kv;
	char err[512], leader[sizeof(m->leader_url)];
	size_t i;

	pthread_mutex_lock(&m->lock);
	snprintf(leader, sizeof(leader), "%s", m->leader_url);
	pthread_mutex_unlock(&m->lock);
	if (!store_is_shared(m)) {
		json_array_append_new(list,
				      json_pack("{s:s,s:b}", "url", m->self_url, "leading", 1));
		return list;
	}
	req = json_pack("{s:o,s:o}", "key", etcd_key(E(m), "managers/"), "range_end",
			etcd_key_end(E(m), "managers/"));
	if (!etcd_call(E(m), "kv/range", req, &r, err, sizeof(err))) {
		json_array_foreach(json_object_get(r, "kvs"), i, kv)
		{
			char *url = etcd_unb64(json_object_get(kv, "value"), NULL);

			if (url)
				json_array_append_new(list,
						      json_pack("{s:s,s:b}", "url", url, "leading",
								!strcmp(url, leader)));
			free(url);
		}
		json_decref(r);
	}
	json_decref(req);
	return list;
}

int leader_start(struct manager *m, int ttl_ms, char *err, size_t errlen)
{
	struct election *el;

	if (!store_is_shared(m) || !ttl_ms) { /* SQLite; or --no-election (term 0) */
		if (ttl_ms == 0)
			log_warn("acting without an election (--no-election): only the store's "
				 "checks keep another manager from placing at the same time");
		m->leading = true;
		snprintf(m->leader_url, sizeof(m->leader_url), "%s", m->self_url);
		return manager_start_monitor(m);
	}
	el = calloc(1, sizeof(*el));
	if (!el) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	el->ttl_ms = ttl_ms;
	m->election = el;
	if (pthread_create(&el->campaign, NULL, campaign_main, m) ||
	    pthread_create(&el->watch, NULL, watch_main, m)) {
		snprintf(err, errlen, "cannot start the election's threads");
		return -EAGAIN;
	}
	log_info("standing for leader (lease %d ms)", ttl_ms);
	return 0;
}

void leader_stop(struct manager *m)
{
	struct election *el = m->election;

	if (!el)
		return;
	el->stop = true;
	pthread_join(el->campaign, NULL);
	pthread_join(el->watch, NULL);
	if (el->lease && m->leading) { /* step down at once: a standby need not wait a TTL */
		json_t *req = json_pack("{s:I}", "ID", (json_int_t)el->lease), *r;
		char err[512];

		etcd_call(E(m), "lease/revoke", req, &r, err, sizeof(err));
		json_decref(req);
		json_decref(r);
	}
	free(el);
	m->election = NULL;
}
