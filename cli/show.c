/* show.c - legoctl's listings: list (the vNodes) and nodes (the components, the managers). */
#include <string.h>

#include "http.h"
#include "legoctl.h"
#include "util.h"

/* @arr's strings joined by commas into @buf. */
static char *join(json_t *arr, char *buf, size_t len)
{
	size_t i, n = 0;
	json_t *e;

	buf[0] = '\0';
	json_array_foreach(arr, i, e)
	{
		snprintf(buf + n, len - n, "%s%s", i ? "," : "", json_string_value(e));
		n = strlen(buf);
	}
	return buf;
}

/* How a running vNode's VMM reaches its memory servers (its route's report): "rdma", "tcp",
 * "rdma+tcp", or NULL when it has not said. */
static const char *transports(json_t *route)
{
	bool rdma = false, tcp = false;
	json_t *s;
	size_t i;

	json_array_foreach(json_object_get(route, "servers"), i, s)
	{
		const char *t = json_string_value(json_object_get(s, "transport"));

		if (t && !json_is_true(json_object_get(s, "lost"))) {
			rdma |= !strcmp(t, "rdma");
			tcp |= !strcmp(t, "tcp");
		}
	}
	return rdma && tcp ? "rdma+tcp" : rdma ? "rdma" : tcp ? "tcp" : NULL;
}

/*
 * What is under way or waits, after the values that run: memory the guest is
 * still plugging or giving back, and what changes at the next start.
 */
static const char *changes(json_t *v, char *buf, size_t len)
{
	json_t *next = json_object_get(v, "next_start");
	long long want = JI(v, "memory_requested"), now = JI(v, "memory");
	char a[32];
	size_t n = 0;

	buf[0] = '\0';
	if (want && want != now && !strcmp(JS(v, "state"), "running"))
		n += (size_t)snprintf(buf + n, len - n, "  (%s to %s)",
				      want > now ? "growing" : "shrinking",
				      size_str(want, a, sizeof(a)));
	if (json_object_size(next) && n < len) {
		n += (size_t)snprintf(buf + n, len - n, "  (next start:");
		if (json_object_get(next, "cpus") && n < len)
			n += (size_t)snprintf(buf + n, len - n, " %lld vCPUs", JI(next, "cpus"));
		if (json_object_get(next, "memory") && n < len)
			n += (size_t)snprintf(buf + n, len - n, " %s",
					      size_str(JI(next, "memory"), a, sizeof(a)));
		if (n < len)
			snprintf(buf + n, len - n, ")");
	}
	return buf;
}

int cmd_list(struct legoctl *lc, int argc, char **argv)
{
	int ret = help_or_args(argc, argv, 0,
			       "usage: legoctl list [--json]\n\nThe vNodes: state, host agent, "
			       "memory servers, ExCache use.%s\n",
			       "");
	json_t *out, *v;
	size_t i;

	if (ret >= 0)
		return ret;
	/* In pages, so that a large cluster is never one huge answer. */
	out = json_pack("{s:[]}", "vnodes");
	for (json_t *page = NULL, *next = NULL;; json_decref(page)) {
		char after[128] = "";

		if (next)
			snprintf(after, sizeof(after), "&after=%s", json_string_value(next));
		page = api(lc, "GET", "/v1/vnodes?limit=1000%s", NULL, after);
		if (!page) {
			json_decref(out);
			return 1;
		}
		json_array_extend(json_object_get(out, "vnodes"), json_object_get(page, "vnodes"));
		next = json_object_get(page, "next");
		if (!json_is_string(next)) {
			json_decref(page);
			break;
		}
	}
	if (lc->json) {
		print_json(out);
		json_decref(out);
		return 0;
	}
	printf("%-16s %-9s %-15s %4s %9s %9s %9s %8s %-16s %s\n", "NAME", "STATE", "ADDRESS",
	       "CPUS", "MEMORY", "EXCACHE", "RESIDENT", "MISSES", "AGENT",
	       "MEMORY SERVERS (primary)");
	json_array_foreach(json_object_get(out, "vnodes"), i, v)
	{
		json_t *xc = json_object_get(v, "excache_use");
		char a[32], b[32], c[32] = "-", mem[512], miss[32] = "-", note[128];

		if (xc) {
			size_str(JI(xc, "resident_pages") * 4096, c, sizeof(c));
			snprintf(miss, sizeof(miss), "%lld", JI(xc, "misses"));
		}
		join(json_object_get(v, "memsrvs"), mem, sizeof(mem));
		if (transports(json_object_get(xc, "route"))) { /* over what, as the VMM says */
			size_t n = strlen(mem);

			snprintf(mem + n, sizeof(mem) - n, " (%s)",
				 transports(json_object_get(xc, "route")));
		}
		{ /* redundancy: every slab with a secondary, or being refilled */
			json_t *route = json_object_get(xc, "route"), *s;
			long long done = JI(route, "fill_done"), total = JI(route, "fill_total");
			size_t k, n = strlen(mem);
			bool bare = false;

			json_array_foreach(json_object_get(v, "slabs"), k, s) bare |=
				!*JS(s, "secondary");
			if (total && done < total)
				snprintf(mem + n, sizeof(mem) - n, "  filling a copy %lld%%",
					 100 * done / total);
			else if (bare)
				snprintf(mem + n, sizeof(mem) - n, "  NO SECONDARY");
		}
		if (json_array_size(json_object_get(v, "down"))) {
			size_t n = strlen(mem);

			snprintf(mem + n, sizeof(mem) - n, "  DOWN: %s",
				 json_string_value(json_array_get(json_object_get(v, "down"), 0)));
		}
		printf("%-16s %-9s %-15s %4lld %9s %9s %9s %8s %-16s %s%s\n", JS(v, "name"),
		       JS(v, "state"),
		       *JS(json_object_get(v, "net"), "ip") ? JS(json_object_get(v, "net"), "ip")
							    : "-",
		       JI(v, "cpus"), size_str(JI(v, "memory"), a, sizeof(a)),
		       size_str(JI(v, "excache"), b, sizeof(b)), c, miss, JS(v, "agent"), mem,
		       changes(v, note, sizeof(note)));
	}
	/* What happened to their memory, in the VMM's own words: failovers, refills,
	 * restores and what a restore may have lost. */
	json_array_foreach(json_object_get(out, "vnodes"), i, v)
	{
		json_t *route = json_object_get(json_object_get(v, "excache_use"), "route");
		const char *ev = JS(route, "last_event"), *fill = JS(route, "fill_error");

		if (*ev)
			printf("  %s: %s\n", JS(v, "name"), ev);
		if (*fill && strcmp(fill, ev))
			printf("  %s: %s\n", JS(v, "name"), fill);
		if (*JS(v, "last_words")) /* why its VMM failed */
			printf("  %s: lego-vmm ended with status %lld: %s\n", JS(v, "name"),
			       JI(v, "exit_status"), JS(v, "last_words"));
	}
	json_decref(out);
	return 0;
}

int cmd_nodes(struct legoctl *lc, int argc, char **argv)
{
	int ret =
		help_or_args(argc, argv, 0,
			     "usage: legoctl nodes [--json]\n\nThe managers (which one leads) and "
			     "the components: role, address,\ncapacity, load, health, and the "
			     "vNodes that depend on each.%s\n",
			     "");
	json_t *out, *c, *st;
	size_t i;

	if (ret >= 0)
		return ret;
	out = api(lc, "GET", "/v1/components", NULL);
	if (!out)
		return 1;
	st = api(lc, "GET", "/v1/status", NULL);
	json_object_set(out, "managers", json_object_get(st, "managers"));
	json_object_set(out, "term", json_object_get(st, "term"));
	json_decref(st);
	if (lc->json) {
		print_json(out);
		json_decref(out);
		return 0;
	}
	printf("%-8s %-22s %-6s %10s %10s %10s %6s  %s\n", "ROLE", "ADDRESS", "HEALTH", "CAPACITY",
	       "RESERVED", "USED", "LOAD", "VNODES");
	json_array_foreach(json_object_get(out, "managers"), i, c)
	{
		const char *url = JS(c, "url");

		printf("%-8s %-22s %s\n", "manager", strncmp(url, "https://", 8) ? url : url + 8,
		       json_is_true(json_object_get(c, "leading")) ? "leads" : "standby");
	}
	json_array_foreach(json_object_get(out, "components"), i, c)
	{
		char a[32], b[32], u[32], deps[256];

		join(json_object_get(c, "vnodes"), deps, sizeof(deps));
		printf("%-8s %-22s %-6s %10s %10s %10s %5.0f%%  %s\n", JS(c, "role"), JS(c, "addr"),
		       JS(c, "health"), size_str(JI(c, "capacity"), a, sizeof(a)),
		       size_str(JI(c, "reserved"), b, sizeof(b)),
		       size_str(JI(c, "used"), u, sizeof(u)),
		       JI(c, "capacity") ? 100.0 * JI(c, "reserved") / JI(c, "capacity") : 0.0,
		       deps);
	}
	json_decref(out);
	return 0;
}
