/*
 * api.c - lego-manager's HTTP API (JSON), what legoctl and curl use:
 *
 *   POST   /v1/heartbeat                 components register and stay alive
 *   GET    /v1/components                memory servers, storage servers, agents
 *   GET    /v1/vnodes[?limit=N&after=NAME]  the vNodes, by name (pages with a limit)
 *   POST   /v1/vnodes                    create one: a JSON spec, or libvirt domain XML
 *   GET    /v1/vnodes/NAME               one vNode
 *   GET    /v1/vnodes/NAME/xml           it as libvirt domain XML
 *   POST   /v1/vnodes/NAME/start|stop    run it again / stop it: {"force": bool,
 *                                        "timeout_s": N}, the power button first
 *   POST   /v1/vnodes/NAME/reboot        {"force": bool}: the guest reboots
 *   POST   /v1/vnodes/NAME/resize        {"excache": bytes} live; {"memory": bytes} live
 *                                        with a max_memory (memresize.c); cpus next start
 *   DELETE /v1/vnodes/NAME               destroy it: VMM, placement, volume
 *   GET    /v1/status                    the manager itself
 *   GET    /metrics                      Prometheus text format
 *   POST   /v1/tokens, GET /v1/ca, POST /v1/join   members (members.c)
 *
 * Over HTTPS only, both ends members of the cluster: reads are for the admin
 * and reader roles, changes for the admin, heartbeats for components (each
 * in its own role); joining needs a join token instead of a certificate.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "log.h"
#include "manager.h"
#include "util.h"

/* What the flows' -errno means to an HTTP client. */
static int http_status(int err)
{
	switch (-err) {
	case EINVAL:
		return 400; /* a wrong request */
	case ENOENT:
		return 404; /* no such vNode */
	case EEXIST:
	case EBUSY:
		return 409; /* exists already, runs already, or is being changed */
	case ECHILD:
		return 422; /* its VMM could not run the order */
	case EREMOTEIO:
		return 502; /* a component refused or failed */
	case EHOSTUNREACH:
		return 503; /* a component cannot be reached */
	case ENOSPC:
		return 507; /* no room in the cluster */
	default:
		return 500;
	}
}

static void status_answer(struct http_resp *resp, int status, const char *err, json_t *ok)
{
	if (status) {
		json_decref(ok);
		http_error(resp, http_status(status), "%s", err);
	} else {
		http_json(resp, 200, ok ? ok : json_pack("{s:b}", "ok", 1));
	}
}

/*
 * A standby answers reads; a write (and a heartbeat, which only the leader
 * acts on) is sent to the leader: 307 with its URL in "leader", which
 * legoctl and the components follow (http.h's struct http_managers), or 503
 * while none leads (between a leader's death and its lease's end).
 */
static bool sent_to_leader(struct manager *m, const struct http_req *req, struct http_resp *resp)
{
	char leader[sizeof(m->leader_url)];

	pthread_mutex_lock(&m->lock);
	bool leading = m->leading;
	snprintf(leader, sizeof(leader), "%s", m->leader_url);
	pthread_mutex_unlock(&m->lock);
	if (leading)
		return false;
	if (!leader[0])
		http_json(resp, 503,
			  json_pack("{s:s,s:n}", "error",
				    "no manager leads at the moment (one is being elected): try "
				    "again in a few seconds",
				    "leader"));
	else
		http_json(resp, 307,
			  json_pack("{s:s,s:s}", "error",
				    "this manager is a standby: ask the leader", "leader", leader));
	(void)req;
	return true;
}

static void on_heartbeat(void *opaque, const struct http_req *req, struct http_resp *resp)
{
	struct manager *m = opaque;
	json_t *beat;
	char err[256];
	int status;

	if (sent_to_leader(m, req, resp) || !(beat = http_parse_body(req, resp)))
		return;
	/* a member beats in the role its certificate gives it, never another */
	if (req->peer && strcmp(spec_str(beat, "role") ?: "", pki_role_name(req->peer->role))) {
		log_warn("refused a heartbeat of '%s', a %s, claiming to be a %s", req->peer->name,
			 pki_role_name(req->peer->role), spec_str(beat, "role") ?: "nothing");
		http_error(resp, 403, "'%s' is a %s and cannot register in the role %s",
			   req->peer->name, pki_role_name(req->peer->role),
			   spec_str(beat, "role") ?: "nothing");
		json_decref(beat);
		return;
	}
	status = manager_heartbeat(m, beat, err, sizeof(err));
	json_decref(beat);
	/* the term: an agent refuses orders of an older one (a deposed manager's) */
	status_answer(resp, status, err,
		      json_pack("{s:i,s:I}", "down_after_ms", m->down_after_ms, "term",
				(json_int_t)m->term));
}

static void on_components(void *opaque, const struct http_req *req, struct http_resp *resp)
{
	struct manager *m = opaque;
	json_t *list = json_array();

	(void)req;
	leader_refresh(m);
	pthread_mutex_lock(&m->lock);
	for (int r = 0; r < NR_ROLES; r++)
		for (int i = 0; i < m->roles[r].n; i++)
			json_array_append_new(list, comp_json(m, r, i));
	pthread_mutex_unlock(&m->lock);
	http_json(resp, 200, json_pack("{s:o}", "components", list));
}

static int by_name(const void *a, const void *b)
{
	return strcmp((*(struct vnode *const *)a)->name, (*(struct vnode *const *)b)->name);
}

/*
 * GET /v1/vnodes[?limit=N&after=NAME]: the vNodes in name order; with a
 * limit, at most N after NAME, and "next" names where the following page
 * starts (null on the last).
 */
static void on_vnodes(void *opaque, const struct http_req *req, struct http_resp *resp)
{
	struct manager *m = opaque;
	const char *lim = http_query(req, "limit"), *after = http_query(req, "after");

	leader_refresh(m);
	long limit = lim ? strtol(lim, NULL, 10) : -1;
	json_t *list = json_array(), *next = json_null();
	struct vnode **sorted;
	int n = 0;

	if (lim && limit <= 0) {
		json_decref(list);
		http_error(resp, 400, "limit must be a positive number");
		return;
	}
	pthread_mutex_lock(&m->lock);
	m->nr_requests++;
	sorted = malloc((m->nr_vnodes + 1) * sizeof(*sorted));
	if (!sorted) {
		pthread_mutex_unlock(&m->lock);
		json_decref(list);
		http_error(resp, 500, "out of memory");
		return;
	}
	if (m->nr_vnodes) { /* none yet: m->vnodes is NULL, which memcpy may not be given */
		memcpy(sorted, m->vnodes, m->nr_vnodes * sizeof(*sorted));
		qsort(sorted, m->nr_vnodes, sizeof(*sorted), by_name);
	}
	for (int i = 0; i < m->nr_vnodes; i++) {
		if (after && strcmp(sorted[i]->name, after) <= 0)
			continue;
		if (limit >= 0 && n == limit) {
			json_decref(next);
			next = json_string(sorted[i - 1]->name);
			break;
		}
		json_array_append_new(list, vnode_json(m, sorted[i]));
		n++;
	}
	pthread_mutex_unlock(&m->lock);
	free(sorted);
	http_json(resp, 200, json_pack("{s:o,s:o}", "vnodes", list, "next", next));
}

static void on_create(void *opaque, const struct http_req *req, struct http_resp *resp)
{
	struct manager *m = opaque;
	json_t *spec, *out = NULL;
	char err[1024];
	int status;

	if (sent_to_leader(m, req, resp))
		return;
	if (strstr(req->content_type, "xml") || (req->body_len && req->body[0] == '<')) {
		spec = xml_to_spec(req->body, err, sizeof(err));
		if (!spec) {
			http_error(resp, 400, "%s", err);
			return;
		}
	} else if (!(spec = http_parse_body(req, resp))) {
		return;
	}
	status = vnode_create(m, spec, &out, err, sizeof(err));
	json_decref(spec);
	if (status)
		http_error(resp, http_status(status), "%s", err);
	else
		http_json(resp, 201, out);
}

static void on_vnode(void *opaque, const struct http_req *req, struct http_resp *resp)
{
	struct manager *m = opaque;
	char name[NAME_LEN], err[1024];
	const char *slash = strchr(req->rest, '/'), *op = slash ? slash + 1 : "";
	size_t n = slash ? (size_t)(slash - req->rest) : strlen(req->rest);
	json_t *out = NULL, *body;
	struct vnode *v;
	int status;

	if (n >= sizeof(name)) {
		http_error(resp, 404, "no such vNode");
		return;
	}
	memcpy(name, req->rest, n);
	name[n] = '\0';
	if (strcmp(req->method, "GET") ? sent_to_leader(m, req, resp) : (leader_refresh(m), false))
		return;
	if (!strcmp(req->method, "GET") && (!*op || !strcmp(op, "xml"))) {
		json_t *spec = NULL;

		pthread_mutex_lock(&m->lock);
		v = vnode_find(m, name);
		if (v && !*op)
			out = vnode_json(m, v);
		else if (v)
			spec = json_deep_copy(v->spec);
		if (spec && v->mac[0]) /* for dumpxml's <interface> */
			json_object_set_new(spec, "mac", json_string(v->mac));
		pthread_mutex_unlock(&m->lock);
		if (!v) {
			http_error(resp, 404, "no vNode named %s (legoctl list)", name);
		} else if (out) {
			http_json(resp, 200, out);
		} else {
			char *xml = spec_to_xml(spec, err, sizeof(err));

			json_decref(spec);
			if (xml) {
				http_text(resp, 200, "application/xml", xml);
				free(xml);
			} else {
				http_error(resp, 500, "%s", err);
			}
		}
		return;
	}
	if (!strcmp(req->method, "DELETE") && !*op) {
		status = vnode_destroy(m, name, err, sizeof(err));
		status_answer(resp, status, err, NULL);
		return;
	}
	if (strcmp(req->method, "POST")) {
		http_error(resp, 405, "%s is not allowed on %s", req->method, req->path);
		return;
	}
	if (!strcmp(op, "start")) {
		status = vnode_start(m, name, err, sizeof(err));
	} else if (!strcmp(op, "stop") || !strcmp(op, "reboot")) {
		struct stop_opts how = {.timeout_s = 60};
		json_t *t, *f;

		body = req->body_len ? http_parse_body(req, resp) : json_object();
		if (!body)
			return;
		t = json_object_get(body, "timeout_s");
		f = json_object_get(body, "force");
		if ((t && (!json_is_integer(t) || json_integer_value(t) < 1 ||
			   json_integer_value(t) > 86400)) ||
		    (f && !json_is_boolean(f))) {
			json_decref(body);
			http_error(
				resp, 400,
				"give \"timeout_s\" (1 to 86400 s) and \"force\" (true or false)");
			return;
		}
		how.force = json_is_true(f);
		if (t)
			how.timeout_s = (int)json_integer_value(t);
		json_decref(body);
		status = !strcmp(op, "stop")
				 ? vnode_stop(m, name, &how, &out, err, sizeof(err))
				 : vnode_reboot(m, name, how.force, &out, err, sizeof(err));
	} else if (!strcmp(op, "resize")) {
		if (!(body = http_parse_body(req, resp)))
			return;
		status = vnode_resize(m, name, body, &out, err, sizeof(err));
		json_decref(body);
	} else if (!strcmp(op, "pause") || !strcmp(op, "resume")) {
		status = vnode_pause(m, name, !strcmp(op, "pause"), err, sizeof(err));
	} else if (!strcmp(op, "migrate")) {
		if (!(body = http_parse_body(req, resp)))
			return;
		status = vnode_migrate(m, name, json_string_value(json_object_get(body, "to")),
				       &out, err, sizeof(err));
		json_decref(body);
	} else if (!strcmp(op, "snapshot")) {
		if (!(body = http_parse_body(req, resp)))
			return;
		status = vnode_snapshot(m, name,
					json_string_value(json_object_get(body, "snapshot")), &out,
					err, sizeof(err));
		json_decref(body);
	} else if (!strcmp(op, "restore")) { /* {"name": COPY}: as a new vNode */
		if (!(body = req->body_len ? http_parse_body(req, resp) : json_object()))
			return;
		status = vnode_restore(m, name, json_string_value(json_object_get(body, "name")),
				       &out, err, sizeof(err));
		json_decref(body);
	} else {
		http_error(
			resp, 404,
			"no such operation on a vNode: '%s' (start, stop, reboot, resize, pause, "
			"resume, migrate, snapshot, restore)",
			op);
		return;
	}
	status_answer(resp, status, err, out);
}

static void on_status(void *opaque, const struct http_req *req, struct http_resp *resp)
{
	struct manager *m = opaque;

	(void)req;
	leader_refresh(m);
	pthread_mutex_lock(&m->lock);
	json_t *st = json_pack("{s:s,s:i,s:i,s:i,s:i,s:I,s:I,s:I,s:i}", "version", LEGO_VERSION,
			       "memsrvs", m->roles[ROLE_MEMSRV].n, "storsrvs",
			       m->roles[ROLE_STORSRV].n, "agents", m->roles[ROLE_AGENT].n, "vnodes",
			       m->nr_vnodes, "slab_size", (json_int_t)m->slab_size, "placements",
			       (json_int_t)m->nr_placements, "refusals", (json_int_t)m->nr_refusals,
			       "down_after_ms", m->down_after_ms);
	/* who answers, and who leads */
	json_object_set_new(st, "store", json_string(m->store->name));
	json_object_set_new(st, "manager", json_string(m->self_url));
	json_object_set_new(st, "leading", json_boolean(m->leading));
	json_object_set_new(st, "leader",
			    m->leader_url[0] ? json_string(m->leader_url) : json_null());
	json_object_set_new(st, "term", json_integer((json_int_t)m->leader_term));
	pthread_mutex_unlock(&m->lock);
	json_object_set_new(st, "managers", leader_members(m));
	http_json(resp, 200, st);
}

static char *metrics_text(struct manager *m);

static void on_metrics(void *opaque, const struct http_req *req, struct http_resp *resp)
{
	char *text;

	leader_refresh(opaque);
	text = metrics_text(opaque);

	(void)req;
	resp->status = 200;
	resp->body = text;
	resp->content_type = "text/plain; version=0.0.4";
}

static void on_token(void *opaque, const struct http_req *req, struct http_resp *resp)
{
	struct manager *m = opaque;
	json_t *body;
	char token[128], err[256];
	time_t expires;
	int r;

	if (sent_to_leader(m, req, resp) || !(body = http_parse_body(req, resp)))
		return;
	r = members_token_create(m, pki_role_parse(spec_str(body, "role")),
				 (long)json_integer_value(json_object_get(body, "ttl_s")), token,
				 sizeof(token), &expires, err, sizeof(err));
	json_decref(body);
	status_answer(resp, r, err,
		      r ? NULL
			: json_pack("{s:s,s:I}", "token", token, "expires", (json_int_t)expires));
	explicit_bzero(token, sizeof(token));
}

static void on_ca(void *opaque, const struct http_req *req, struct http_resp *resp)
{
	struct manager *m = opaque;
	char *ca = pki_read(m->id.ca);

	(void)req;
	if (!ca) {
		http_error(resp, 500, "%s: %s", m->id.ca, strerror(errno));
		return;
	}
	http_text(resp, 200, "application/x-pem-file", ca);
	free(ca);
}

static void on_join(void *opaque, const struct http_req *req, struct http_resp *resp)
{
	struct manager *m = opaque;
	json_t *body;
	char err[512], *cert = NULL, *ca;
	int r;

	if (sent_to_leader(m, req, resp) || !(body = http_parse_body(req, resp)))
		return;
	r = members_join(m, body, &cert, err, sizeof(err));
	json_decref(body);
	if (r) {
		http_error(resp, r == -EACCES ? 403 : 400, "%s", err);
		return;
	}
	ca = pki_read(m->id.ca);
	http_json(resp, 200, json_pack("{s:s,s:s}", "cert", cert, "ca", ca ? ca : ""));
	free(ca);
	free(cert);
}

#define READ (PKI_ADMIN | PKI_READER)
const struct http_route api_routes[] = {
	{"POST", "/v1/heartbeat", on_heartbeat, PKI_COMPONENT},
	{"GET", "/v1/components", on_components, READ},
	{"GET", "/v1/vnodes", on_vnodes, READ},
	{"POST", "/v1/vnodes", on_create, PKI_ADMIN},
	{"GET", "/v1/vnodes/", on_vnode, READ},
	{"POST", "/v1/vnodes/", on_vnode, PKI_ADMIN},
	{"DELETE", "/v1/vnodes/", on_vnode, PKI_ADMIN},
	{"GET", "/v1/status", on_status, READ},
	{"GET", "/metrics", on_metrics, READ},
	{"POST", "/v1/tokens", on_token, PKI_ADMIN},
	{"GET", "/v1/ca", on_ca, HTTP_PUBLIC},
	{"POST", "/v1/join", on_join, HTTP_PUBLIC},
	{NULL, NULL, NULL, 0},
};

struct httpd *api_start(struct manager *m, const char *addr, char *err, size_t errlen)
{
	return httpd_start(addr, api_routes, m, &m->id, err, errlen);
}

/* ---- /metrics ---- */

static void metric_head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label's value as the exposition format wants it: \\, \" and \n escaped. */
static const char *label(const char *v, char *buf, size_t len)
{
	size_t n = 0;

	for (; v && *v && n + 3 < len; v++) {
		if (*v == '\\' || *v == '"' || *v == '\n')
			buf[n++] = '\\';
		buf[n++] = *v == '\n' ? 'n' : *v;
	}
	buf[n] = '\0';
	return buf;
}

static char *metrics_text(struct manager *m)
{
	static const struct {
		const char *name, *type, *help, *key; /* key: in the component's report */
	} cm[] = {
		{"lego_component_up", "gauge", "1 if the component sends heartbeats", NULL},
		{"lego_component_capacity_bytes", "gauge", "capacity it announced", NULL},
		{"lego_component_reserved_bytes", "gauge", "reserved by placements", NULL},
		{"lego_component_used_bytes", "gauge", "in use, as it reported", NULL},
		{"lego_component_placements", "gauge", "slabs, volumes or VMMs placed on it", NULL},
	};
	static const struct {
		const char *name, *type, *help, *key; /* key: in the ExCache report */
	} vm[] = {
		{"lego_vnode_excache_size_bytes", "gauge", "ExCache size", "size_bytes"},
		{"lego_vnode_excache_resident_pages", "gauge", "pages resident in the ExCache",
		 "resident_pages"},
		{"lego_vnode_excache_misses_total", "counter", "ExCache misses", "misses"},
		{"lego_vnode_excache_evictions_total", "counter", "pages evicted", "evictions"},
		{"lego_vnode_excache_writebacks_total", "counter", "dirty pages written back",
		 "dirty_writebacks"},
		{"lego_vnode_excache_miss_p50_seconds", "gauge", "median miss latency",
		 "miss_p50_ns"},
		{"lego_vnode_excache_miss_p99_seconds", "gauge", "99th percentile miss latency",
		 "miss_p99_ns"},
	};
	char *buf = NULL, l1[2 * ADDR_LEN], l2[2 * ADDR_LEN];
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return strdup("");
	pthread_mutex_lock(&m->lock);
	for (size_t k = 0; k < ARRAY_SIZE(cm); k++) {
		metric_head(f, cm[k].name, cm[k].type, cm[k].help);
		for (int r = 0; r < NR_ROLES; r++) {
			for (int i = 0; i < m->roles[r].n; i++) {
				struct place_server *ps = &m->roles[r].ps[i];
				uint64_t val[] = {ps->up, ps->capacity, ps->reserved,
						  m->roles[r].c[i].used, ps->count};

				fprintf(f, "%s{role=\"%s\",addr=\"%s\"} %llu\n", cm[k].name,
					role_name(r), label(m->roles[r].c[i].addr, l1, sizeof(l1)),
					(unsigned long long)val[k]);
			}
		}
	}
	metric_head(f, "lego_vnode_running", "gauge", "1 if the vNode's VMM runs");
	for (int i = 0; i < m->nr_vnodes; i++)
		fprintf(f, "lego_vnode_running{vnode=\"%s\",agent=\"%s\"} %d\n",
			label(m->vnodes[i]->name, l1, sizeof(l1)),
			label(m->vnodes[i]->agent, l2, sizeof(l2)),
			m->vnodes[i]->state == VNODE_RUNNING);
	metric_head(f, "lego_vnode_memory_bytes", "gauge", "the vNode's memory");
	for (int i = 0; i < m->nr_vnodes; i++)
		fprintf(f, "lego_vnode_memory_bytes{vnode=\"%s\"} %llu\n",
			label(m->vnodes[i]->name, l1, sizeof(l1)),
			(unsigned long long)m->vnodes[i]->placed_memory);
	for (size_t k = 0; k < ARRAY_SIZE(vm); k++) {
		bool ns = strstr(vm[k].key, "_ns") != NULL;

		metric_head(f, vm[k].name, vm[k].type, vm[k].help);
		for (int i = 0; i < m->nr_vnodes; i++) {
			json_t *xc = json_object_get(m->vnodes[i]->report, "excache");
			json_t *val = json_object_get(xc, vm[k].key);

			if (!json_is_integer(val))
				continue;
			label(m->vnodes[i]->name, l1, sizeof(l1));
			if (ns)
				fprintf(f, "%s{vnode=\"%s\"} %.9f\n", vm[k].name, l1,
					json_integer_value(val) / 1e9);
			else
				fprintf(f, "%s{vnode=\"%s\"} %lld\n", vm[k].name, l1,
					(long long)json_integer_value(val));
		}
	}
	metric_head(f, "lego_manager_placements_total", "counter", "vNodes placed");
	fprintf(f, "lego_manager_placements_total %llu\n", (unsigned long long)m->nr_placements);
	metric_head(f, "lego_manager_refusals_total", "counter", "creates refused for capacity");
	fprintf(f, "lego_manager_refusals_total %llu\n", (unsigned long long)m->nr_refusals);
	pthread_mutex_unlock(&m->lock);
	fclose(f);
	return buf;
}
