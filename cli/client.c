/* client.c - legoctl as a client of the manager's API: finding it, calling it, printing. */
#include <string.h>

#include "http.h"
#include "legoctl.h"
#include "util.h"
#include "xport.h"

int fail(const char *fmt, ...)
{
	va_list ap;

	fputs("legoctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

int usage_fail(const char *cmd, const char *fmt, const char *arg)
{
	fprintf(stderr, "legoctl %s: ", cmd);
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n(try 'legoctl %s --help')\n", cmd);
	return 2;
}

void home_path(const struct legoctl *lc, char *buf, size_t len, const char *rel)
{
	snprintf(buf, len, "%s/%s", lc->home, rel);
}

/* The manager's URL: --manager, $LEGO_MANAGER, or the local cluster's. */
int load_identity(struct legoctl *lc)
{
	struct pki_identity id;
	char prefix[2 * PATH_MAX], err[2 * PATH_MAX + 512];

	if (lc->id_loaded)
		return 0;
	if (!lc->as[0] || !strchr(lc->as, '/'))
		snprintf(prefix, sizeof(prefix), "%s/pki/%s", lc->home,
			 lc->as[0] ? lc->as : "admin");
	else
		snprintf(prefix, sizeof(prefix), "%s", lc->as);
	if (pki_identity(prefix, &id, err, sizeof(err)))
		return fail("who are you to this cluster? %s", err);
	http_identity(&id);
	if (xport_tls_files(&id, err, sizeof(err))) /* an image goes to a storage server */
		return fail("%s", err);
	lc->id_loaded = true;
	return 0;
}

void managers_of(json_t *cfg, char *out, size_t len)
{
	json_t *ms = json_object_get(cfg, "managers"), *u;
	size_t i, n = 0;

	snprintf(out, len, "%s", json_string_value(json_object_get(cfg, "manager")) ?: "");
	if (!json_is_array(ms))
		return;
	json_array_foreach(ms, i, u)
	{
		n += (size_t)snprintf(out + n, len - n, "%s%s", i ? "," : "",
				      json_string_value(u) ?: "");
		if (n >= len)
			break;
	}
}

int find_manager(struct legoctl *lc)
{
	char p[PATH_MAX];
	json_t *c;

	if (load_identity(lc))
		return 1;
	if (lc->manager[0])
		return 0;
	if (getenv("LEGO_MANAGER")) {
		snprintf(lc->manager, sizeof(lc->manager), "%s", getenv("LEGO_MANAGER"));
		return 0;
	}
	home_path(lc, p, sizeof(p), "cluster.json");
	c = json_load_file(p, 0, NULL);
	if (!c || !json_string_value(json_object_get(c, "manager"))) {
		json_decref(c);
		return fail("no cluster under %s (LEGO_HOME): start one with 'legoctl up'",
			    lc->home);
	}
	managers_of(c, lc->manager, sizeof(lc->manager));
	json_decref(c);
	return 0;
}

int api_call(struct legoctl *lc, const char *method, const char *path, json_t *body, json_t **out,
	     int timeout_ms, char *err, size_t errlen)
{
	if (out)
		*out = NULL;
	if (!lc->ms.n && http_managers_parse(&lc->ms, lc->manager, err, errlen))
		return -1;
	/* Several managers: the leader, once known, answers legoctl's reads too - a
	 * standby's are as fresh, but lack what only the leader hears (the VMMs'
	 * live ExCache figures). */
	if (lc->ms.n > 1 && !lc->ms.leader[0] && strcmp(path, "/v1/status")) {
		json_t *st = NULL;

		if (http_managers_call(&lc->ms, "GET", "/v1/status", NULL, &st, 10000, err,
				       errlen) == 200 &&
		    !json_is_true(json_object_get(st, "leading")) &&
		    json_string_value(json_object_get(st, "leader")))
			snprintf(lc->ms.leader, sizeof(lc->ms.leader), "%s",
				 json_string_value(json_object_get(st, "leader")));
		json_decref(st);
	}
	return http_managers_call(&lc->ms, method, path, body, out, timeout_ms, err, errlen);
}

const char *api_leader(struct legoctl *lc)
{
	char err[512];
	json_t *st;
	const char *leader;

	if (api_call(lc, "GET", "/v1/status", NULL, &st, 10000, err, sizeof(err)) != 200) {
		fail("cannot reach the manager at %s: %s", lc->manager, err);
		json_decref(st);
		return NULL;
	}
	leader = json_string_value(json_object_get(st, "leader"));
	if (!json_is_true(json_object_get(st, "leading")) && leader)
		snprintf(lc->ms.leader, sizeof(lc->ms.leader), "%s", leader);
	json_decref(st);
	return http_managers_now(&lc->ms);
}

/* Call the (leading) manager; on failure print why and return NULL. */
json_t *api(struct legoctl *lc, const char *method, const char *fmt, json_t *body, ...)
{
	char err[1024], rel[256];
	json_t *out = NULL;
	va_list ap;
	int status;

	va_start(ap, body);
	vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	if (find_manager(lc))
		return NULL;
	status = api_call(lc, method, rel, body, &out, LEGOCTL_TIMEOUT_MS, err, sizeof(err));
	if (status < 0 && !http_call_unsent()) { /* it went away during the request */
		fail("%s", err);
		json_decref(out);
		return NULL;
	}
	if (status < 0) {
		fail("cannot reach the manager at %s: %s\n  is the cluster up? ('legoctl up')",
		     lc->manager, err);
		json_decref(out);
		return NULL;
	}
	if (status >= 400) {
		fail("%s", err);
		json_decref(out);
		return NULL;
	}
	return out ? out : json_object();
}

void print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	printf("%s\n", s);
	free(s);
}

const char *size_str(json_int_t bytes, char *buf, size_t len)
{
	return format_size((uint64_t)bytes, buf, len);
}

int help_or_args(int argc, char **argv, int nargs, const char *fmt, const char *arg)
{
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf(fmt, arg);
		return 0;
	}
	if (argc - 1 != nargs)
		return nargs ? usage_fail(argv[0], "%s", "give one vNode NAME")
			     : usage_fail(argv[0], "unexpected argument '%s'", argv[1]);
	return -1;
}

/*
 * The console output of vNode @name on @agent from byte *@off on, as a
 * malloc'd string (*@off advances past it); NULL with a reason printed.
 */
char *console_fetch(const char *agent, const char *name, long long *off, size_t *len)
{
	char url[600], err[512], *data = NULL;
	size_t n = 0;
	int s;

	snprintf(url, sizeof(url), "%s://%s/v1/vnodes/%s/console?from=%lld", http_scheme(), agent,
		 name, *off);
	s = http_call_bytes(http_client_identity(), "GET", url, NULL, NULL, 0, &data, &n, 10000,
			    err, sizeof(err));
	if (s != 200) {
		free(data);
		if (s < 0)
			fail("the agent %s: %s", agent, err);
		else
			fail("vNode %s has no console on agent %s", name, agent);
		return NULL;
	}
	*off += (long long)n; /* every byte, NULs too: the console goes on past them */
	if (len)
		*len = n;
	return data;
}
