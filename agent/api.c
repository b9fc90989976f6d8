/* api.c - the agent's HTTP API (see agent.h) and its heartbeat to the manager. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "http.h"
#include "log.h"
#include "util.h"

/* POST /v1/vnodes: a vNode order. */
void agent_term_init(struct agent *a)
{
	char path[sizeof(a->dir) + 8];
	FILE *f;

	snprintf(path, sizeof(path), "%s/term", a->dir);
	f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%" SCNu64, &a->term) != 1)
			a->term = 0;
		fclose(f);
	}
}

void agent_term_seen(struct agent *a, uint64_t term)
{
	char path[sizeof(a->dir) + 8], text[32];

	pthread_mutex_lock(&a->lock);
	if (term > a->term) {
		a->term = term;
		snprintf(path, sizeof(path), "%s/term", a->dir);
		snprintf(text, sizeof(text), "%" PRIu64 "\n", term);
		if (pki_write(path, text, strlen(text), 0600))
			log_warn("%s: %s (the term is kept in memory only)", path, strerror(errno));
	}
	pthread_mutex_unlock(&a->lock);
}

/*
 * A manager's order carries its term (Lego-Term; none: 0, a manager with
 * SQLite). One of a lower term than a manager that led since is refused:
 * it comes from a deposed leader that has not noticed yet.
 */
static bool term_refused(struct agent *a, const struct http_req *req, struct http_resp *resp)
{
	const char *h = http_req_header(req, "Lego-Term");
	uint64_t term = h ? strtoull(h, NULL, 10) : 0, now;

	if (!req->peer || req->peer->role != PKI_MANAGER)
		return false;
	pthread_mutex_lock(&a->lock);
	now = a->term;
	pthread_mutex_unlock(&a->lock);
	if (term < now) {
		log_warn("refused an order of term %" PRIu64 " (%s %s): a manager of term %" PRIu64
			 " leads",
			 term, req->method, req->path, now);
		http_error(resp, 409,
			   "an order of term %" PRIu64 ", but a manager of term %" PRIu64
			   " leads since: refused",
			   term, now);
		return true;
	}
	agent_term_seen(a, term);
	return false;
}

static void on_run(void *opaque, const struct http_req *req, struct http_resp *resp)
{
	static const int status_of[] = {
		[EINVAL] = 400,	  [EEXIST] = 409, [ENOSPC] = 507,   [ECHILD] = 422,
		[ENETDOWN] = 503, [ENOENT] = 404, [ECANCELED] = 409};
	struct agent *a = opaque;
	json_t *j;
	struct vnode_order o;
	char err[512], *restore = NULL, *of = NULL;
	pid_t pid;
	int ret;

	if (term_refused(a, req, resp) || !(j = http_parse_body(req, resp)))
		return;
	order_init(&o);
	if (json_is_string(json_object_get(j, "restore"))) { /* not the order's: the agent's */
		restore = strdup(json_string_value(json_object_get(j, "restore")));
		json_object_del(j, "restore");
	}
	if (json_is_string(json_object_get(j, "restore_of"))) { /* a copy: another's snapshot */
		of = strdup(json_string_value(json_object_get(j, "restore_of")));
		json_object_del(j, "restore_of");
	}
	if (!json_is_string(json_object_get(j, "name")) ||
	    !json_is_integer(json_object_get(j, "memory")) ||
	    !json_is_integer(json_object_get(j, "cpus"))) {
		snprintf(err, sizeof(err), "an order needs name, memory and cpus");
		ret = -EINVAL;
	} else {
		ret = order_from_json(&o, j, err, sizeof(err));
	}
	json_decref(j);
	if (!ret)
		ret = agent_run(a, &o, restore, of, &pid, err, sizeof(err));
	free(restore);
	free(of);
	if (ret)
		http_error(resp,
			   -ret < (int)ARRAY_SIZE(status_of) && status_of[-ret] ? status_of[-ret]
										: 500,
			   "%s", err);
	else
		http_json(resp, 201,
			  o.incoming ? json_pack("{s:s,s:i,s:s}", "name", o.name, "pid", pid,
						 "incoming", o.incoming)
				     : json_pack("{s:s,s:i}", "name", o.name, "pid", pid));
	order_free(&o);
}

static void on_list(void *opaque, const struct http_req *req, struct http_resp *resp)
{
	struct agent *a = opaque;
	json_t *all;

	if (term_refused(a, req, resp))
		return;
	all = json_object();
	pthread_mutex_lock(&a->lock);
	for (int i = 0; i < a->nr; i++)
		json_object_set_new(all, a->procs[i].name, proc_json(&a->procs[i]));
	pthread_mutex_unlock(&a->lock);
	http_json(resp, 200, json_pack("{s:o}", "vnodes", all));
}

/* GET .../console?from=N: what the guest printed from byte N on (64 KiB at most). */
static void console_get(struct agent *a, const char *name, const struct http_req *req,
			struct http_resp *resp)
{
	const char *from = http_query(req, "from");
	long long off = from ? atoll(from) : 0;
	char path[PATH_MAX + 64], *buf = malloc(65537);
	ssize_t got;
	int fd;

	proc_path(a, path, sizeof(path), name, "console.log");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	got = fd >= 0 && buf ? pread(fd, buf, 65536, off < 0 ? 0 : off) : -1;
	if (fd >= 0)
		close(fd);
	if (got < 0) {
		free(buf);
		http_error(resp, 500, "cannot read the console of %s", name);
		return;
	}
	buf[got] = '\0';
	resp->status = 200;
	resp->body = buf;
	resp->body_len = (size_t)got; /* every byte the guest wrote, NULs too */
	resp->content_type = "application/octet-stream";
}

/* POST .../VERB {ARG: value}: a verb of order.h, carried out by the VMM's control socket. */
static void verb(struct agent *a, const char *name, int v, const struct http_req *req,
		 struct http_resp *resp)
{
	const struct vnode_verb_def *d = &vnode_verbs[v];
	json_t *body = d->arg ? http_parse_body(req, resp) : NULL, *val = NULL, *ans, *cmd;
	char err[256];

	if (d->arg && !body)
		return;
	if (d->arg) {
		val = json_object_get(body, d->arg);
		if (!json_is_string(val) &&
		    !((v == VERB_EXCACHE_RESIZE || v == VERB_MEMORY_RESIZE) &&
		      json_is_integer(val))) {
			json_decref(body);
			http_error(resp, 400, "give \"%s\"", d->arg);
			return;
		}
	}
	cmd = json_pack("{s:s}", "cmd", d->cmd);
	if (val)
		json_object_set(cmd, d->arg, val);
	for (int i = 0; body && i < 4 && d->extra[i]; i++)
		if (json_object_get(body, d->extra[i]))
			json_object_set(cmd, d->extra[i], json_object_get(body, d->extra[i]));
	ans = proc_ctl(a, name, cmd, 5000, err, sizeof(err));
	json_decref(body);
	if (!ans) {
		http_error(resp, 502, "the VMM of %s: %s", name, err);
		return;
	}
	if (v == VERB_EXCACHE_RESIZE) {
		struct vmm_proc *p;

		pthread_mutex_lock(&a->lock);
		if ((p = proc_find(a, name)))
			p->excache =
				(uint64_t)json_integer_value(json_object_get(ans, "size_bytes"));
		pthread_mutex_unlock(&a->lock);
	}
	http_json(resp, 200, ans);
}

/*
 * POST .../migrate {"to": HOST:PORT, "token": HEX}: the VMM moves the vNode
 * to the target VMM another agent started with "incoming" (minutes at most:
 * the handshake's steps each have their own deadline).
 */
static void migrate(struct agent *a, const char *name, const struct http_req *req,
		    struct http_resp *resp)
{
	json_t *body = http_parse_body(req, resp), *ans;
	const char *to, *token;
	char err[256];

	if (!body)
		return;
	to = json_string_value(json_object_get(body, "to"));
	token = json_string_value(json_object_get(body, "token"));
	if (!to || !token) {
		json_decref(body);
		http_error(resp, 400, "give \"to\" (HOST:PORT) and \"token\"");
		return;
	}
	ans = proc_ctl(a, name,
		       json_pack("{s:s,s:s,s:s}", "cmd", "migrate", "to", to, "token", token),
		       120000, err, sizeof(err));
	json_decref(body);
	if (!ans)
		http_error(resp, 502, "the VMM of %s: %s", name, err);
	else
		http_json(resp, 200, ans);
}

/*
 * POST .../snapshot {"snapshot": NAME}: the vNode saved into DIR/NAME/<snapshot>.snap
 * (a name, never a path: the agent chooses where), then stopped; its memory
 * stays on the memory servers for the restore (POST /v1/vnodes with "restore").
 */
static void snapshot(struct agent *a, const char *name, const struct http_req *req,
		     struct http_resp *resp)
{
	json_t *body = http_parse_body(req, resp), *ans;
	const char *snap;
	char err[256], path[PATH_MAX + 64], file[LMP_VOL_NAME_LEN + 8];

	if (!body)
		return;
	snap = json_string_value(json_object_get(body, "snapshot"));
	if (!snap || !lmp_vol_name_ok(snap) || strlen(snap) >= LMP_VOL_NAME_LEN) {
		json_decref(body);
		http_error(resp, 400,
			   "give \"snapshot\": a name of letters, digits, '_', '.' or '-'");
		return;
	}
	snprintf(file, sizeof(file), "%s.snap", snap);
	proc_path(a, path, sizeof(path), name, file);
	json_decref(body);
	ans = proc_ctl(a, name,
		       json_pack("{s:s,s:s,s:s}", "cmd", "snapshot", "path", path, "then", "stop"),
		       120000, err, sizeof(err));
	if (!ans)
		http_error(resp, 502, "the VMM of %s: %s", name, err);
	else
		http_json(resp, 200, ans);
}

/* The optional body of shutdown and reboot: {"timeout_s": N, "force": bool}. NULL after a 400. */
static json_t *power_body(const struct http_req *req, struct http_resp *resp, int *timeout_s,
			  bool *force)
{
	json_t *body = req->body_len ? http_parse_body(req, resp) : json_object(), *t, *f;

	if (!body)
		return NULL;
	t = json_object_get(body, "timeout_s");
	f = json_object_get(body, "force");
	*timeout_s = t ? (int)json_integer_value(t) : 60;
	*force = json_is_true(f);
	if ((t &&
	     (!json_is_integer(t) || json_integer_value(t) < 1 || json_integer_value(t) > 86400)) ||
	    (f && !json_is_boolean(f))) {
		json_decref(body);
		http_error(resp, 400,
			   "give \"timeout_s\" (1 to 86400 s) and \"force\" (true or false)");
		return NULL;
	}
	return body;
}

/*
 * POST .../shutdown {"timeout_s": N}: the power button; the guest shuts down
 * and its VMM exits, or is stopped after N s (default 60). A VMM whose guest
 * has no power button (a payload) is stopped at once, and the answer says so.
 * Either way the vNode is forgotten here, as after DELETE.
 */
static void shutdown_vnode(struct agent *a, const char *name, const struct http_req *req,
			   struct http_resp *resp)
{
	int timeout_s;
	bool force, graceful = false;
	char err[256] = "";
	json_t *body = power_body(req, resp, &timeout_s, &force), *ans = NULL;
	struct vmm_proc *p;
	struct timespec ts;
	int status = -1;

	if (!body)
		return;
	json_decref(body);
	if (!force)
		ans = proc_ctl(
			a, name,
			json_pack("{s:s,s:i}", "cmd", "shutdown", "timeout_ms", timeout_s * 1000),
			5000, err, sizeof(err));
	if (!ans && !force) {
		char why[sizeof(err)];

		snprintf(why, sizeof(why), "no graceful shutdown: %s; stopped at once", err);
		snprintf(err, sizeof(err), "%s", why);
	}
	pthread_mutex_lock(&a->lock);
	if (ans) { /* the VMM stops by itself: when the guest is down, or at its deadline */
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += timeout_s + 10;
		while ((p = proc_find(a, name)) && !p->exited)
			if (pthread_cond_timedwait(&a->changed, &a->lock, &ts) == ETIMEDOUT)
				break;
		graceful = p && p->exited;
		if (!graceful)
			snprintf(err, sizeof(err), "lego-vmm did not stop after %d s",
				 timeout_s + 10);
	} else if (force) {
		snprintf(err, sizeof(err), "stopped by force");
	}
	if (!graceful)
		log_info("vNode %s: stopping its VMM (%s)", name, err);
	proc_stop(a, name);
	if ((p = proc_find(a, name))) {
		status = p->exit_status;
		proc_forget(a, p);
	}
	pthread_mutex_unlock(&a->lock);
	json_decref(ans);
	ans = json_pack("{s:b,s:b,s:i}", "ok", 1, "graceful", graceful, "exit_status", status);
	if (!graceful)
		json_object_set_new(ans, "why", json_string(err));
	http_json(resp, 200, ans);
}

/* POST .../reboot {"force": bool, "timeout_s": N}: the guest reboots (see lego-vmm's reboot). */
static void reboot_vnode(struct agent *a, const char *name, const struct http_req *req,
			 struct http_resp *resp)
{
	int timeout_s;
	bool force;
	char err[256];
	json_t *body = power_body(req, resp, &timeout_s, &force), *ans;

	if (!body)
		return;
	json_decref(body);
	ans = proc_ctl(a, name,
		       json_pack("{s:s,s:b,s:i}", "cmd", "reboot", "force", force, "timeout_ms",
				 timeout_s * 1000),
		       5000, err, sizeof(err));
	if (!ans)
		http_error(resp, 409, "vNode %s cannot reboot: %s", name, err);
	else
		http_json(resp, 200, ans);
}

static void on_vnode(void *opaque, const struct http_req *req, struct http_resp *resp)
{
	struct agent *a = opaque;
	const char *slash = strchr(req->rest, '/'), *op = slash ? slash + 1 : "";
	size_t n = slash ? (size_t)(slash - req->rest) : strlen(req->rest);
	char name[AGENT_NAME_MAX];
	struct vmm_proc *p;
	int v;

	if (term_refused(a, req, resp))
		return;
	if (n >= sizeof(name)) {
		http_error(resp, 404, "no such vNode here");
		return;
	}
	memcpy(name, req->rest, n);
	name[n] = '\0';
	pthread_mutex_lock(&a->lock);
	p = proc_find(a, name);
	if (!p) {
		pthread_mutex_unlock(&a->lock);
		http_error(resp, 404, "no vNode %s on this agent", name);
		return;
	}
	if (!strcmp(req->method, "DELETE") && !*op) {
		proc_stop(a, name);
		if ((p = proc_find(a, name)))
			proc_forget(a, p);
		pthread_mutex_unlock(&a->lock);
		http_json(resp, 200, json_pack("{s:b}", "ok", 1));
		return;
	}
	if (!strcmp(op, "console") && !strcmp(req->method, "POST")) {
		ssize_t w = p->exited ? -1 : write(p->console_in, req->body, req->body_len);

		pthread_mutex_unlock(&a->lock);
		if (w < 0)
			http_error(resp, 409, "vNode %s does not run", name);
		else
			http_json(resp, 200, json_pack("{s:i}", "written", (int)w));
		return;
	}
	pthread_mutex_unlock(&a->lock);
	if (!strcmp(op, "console") && !strcmp(req->method, "GET"))
		console_get(a, name, req, resp);
	else if (!strcmp(req->method, "POST") && !strcmp(op, "migrate"))
		migrate(a, name, req, resp);
	else if (!strcmp(req->method, "POST") && !strcmp(op, "snapshot"))
		snapshot(a, name, req, resp);
	else if (!strcmp(req->method, "POST") && !strcmp(op, "shutdown"))
		shutdown_vnode(a, name, req, resp);
	else if (!strcmp(req->method, "POST") && !strcmp(op, "reboot"))
		reboot_vnode(a, name, req, resp);
	else if (!strcmp(req->method, "POST") && (v = vnode_verb_by_op(op)) >= 0)
		verb(a, name, v, req, resp);
	else
		http_error(resp, 404, "no such operation: %s %s", req->method, req->path);
}

void agent_beat_answer(void *opaque, json_t *answer)
{
	uint64_t term = (uint64_t)json_integer_value(json_object_get(answer, "term"));

	if (term)
		agent_term_seen(opaque, term);
}

json_t *agent_beat(void *opaque)
{
	struct agent *a = opaque;
	json_t *vnodes = json_object(), *v;
	uint64_t used = 0;
	const char *name;

	pthread_mutex_lock(&a->lock);
	for (int i = 0; i < a->nr; i++) {
		json_object_set_new(vnodes, a->procs[i].name, proc_json(&a->procs[i]));
		if (!a->procs[i].exited)
			used += a->procs[i].excache;
		if (a->procs[i].hotplug) /* marks it for the question below */
			json_object_set_new(json_object_get(vnodes, a->procs[i].name), "hotplug",
					    json_true());
	}
	pthread_mutex_unlock(&a->lock);
	/* Each running VMM's ExCache figures, asked without the lock. */
	json_object_foreach(vnodes, name, v)
	{
		char err[256];
		json_t *xc;

		if (strcmp(json_string_value(json_object_get(v, "state")), "running"))
			continue;
		/* Short: a busy VMM must not hold up the heartbeat that carries this. */
		xc = proc_ctl(a, name, json_pack("{s:s}", "cmd", "excache"), 250, err, sizeof(err));
		if (xc) {
			json_object_del(xc, "ok");
			json_object_del(xc, "miss_latency_log2_us");
			json_object_set_new(v, "excache", xc);
		}
		/* ... and, if its memory can be resized live, how much it has now */
		if (json_is_true(json_object_get(v, "hotplug")) &&
		    (xc = proc_ctl(a, name, json_pack("{s:s}", "cmd", "memory"), 250, err,
				   sizeof(err)))) {
			json_object_del(xc, "ok");
			json_object_set(json_object_get(v, "running"), "memory",
					json_object_get(xc, "memory_bytes"));
			json_object_set_new(v, "hotplug", xc);
		}
	}
	return json_pack(
		"{s:s,s:s,s:I,s:I,s:i,s:o,s:o}", "role", "agent", "addr", a->advertise, "capacity",
		(json_int_t)a->capacity, "used", (json_int_t)used, "cpus", a->cpus, "vnodes",
		vnodes, "network",
		a->bridge[0] ? json_pack("{s:s,s:s}", "bridge", a->bridge, "gateway", a->gateway)
			     : json_pack("{s:s}", "error", a->net_error));
}

static const struct http_route routes[] = {
	/* the manager gives orders; legoctl reads and types at consoles */
	{"POST", "/v1/vnodes", on_run, PKI_MANAGER},
	{"GET", "/v1/vnodes", on_list, PKI_MANAGER | PKI_ADMIN | PKI_READER},
	{"GET", "/v1/vnodes/", on_vnode, PKI_MANAGER | PKI_ADMIN},
	{"POST", "/v1/vnodes/", on_vnode, PKI_MANAGER | PKI_ADMIN},
	{"DELETE", "/v1/vnodes/", on_vnode, PKI_MANAGER},
	{NULL, NULL, NULL, 0},
};

struct httpd *agent_api_start(struct agent *a, char *err, size_t errlen)
{
	return httpd_start(a->addr, routes, a, &a->id, err, errlen);
}
