/* lifecycle.c - legoctl stop, reboot, pause, resume, migrate, snapshot, restore: a vNode at rest or on the move. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "legoctl.h"

/* stop NAME [--force] [--timeout S], reboot NAME [--force] */
int cmd_power(struct legoctl *lc, int argc, char **argv)
{
	bool stop = !strcmp(argv[0], "stop"), force = false;
	const char *name = NULL;
	long timeout_s = 60;
	json_t *body, *out;

	for (int i = 1; i < argc; i++) {
		char *end;

		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			if (stop)
				printf("usage: legoctl stop NAME [--force] [--timeout S]\n\n"
				       "Press the vNode's power button: its guest shuts down and "
				       "powers off.\nAfter S seconds (default 60) the power is cut; "
				       "with --force at once.\nA guest without a power button (a "
				       "payload) is stopped at once. Its\nplacement and disks stay; "
				       "legoctl start NAME boots it again.\n");
			else
				printf("usage: legoctl reboot NAME [--force]\n\n"
				       "The guest shuts down through its power button and boots "
				       "again, on the same\nmemory servers and disks; with --force "
				       "it is reset at once, as by a\nreset button.\n");
			return 0;
		} else if (!strcmp(argv[i], "--force")) {
			force = true;
		} else if (stop && !strcmp(argv[i], "--timeout") && i + 1 < argc) {
			timeout_s = strtol(argv[++i], &end, 10);
			if (*end || end == argv[i] || timeout_s < 1 || timeout_s > 86400)
				return usage_fail(argv[0],
						  "--timeout: '%s' is not 1 to 86400 seconds",
						  argv[i]);
		} else if (argv[i][0] == '-') {
			return usage_fail(argv[0], "unknown option '%s'", argv[i]);
		} else if (name) {
			return usage_fail(argv[0], "unexpected argument '%s'", argv[i]);
		} else {
			name = argv[i];
		}
	}
	if (!name)
		return usage_fail(argv[0], "%s", "give one vNode NAME");
	body = json_pack("{s:b,s:i}", "force", force, "timeout_s", (int)timeout_s);
	out = api(lc, "POST", "/v1/vnodes/%s/%s", body, name, argv[0]);
	json_decref(body);
	if (!out)
		return 1;
	if (lc->json)
		print_json(out);
	else if (!stop)
		printf("%s: %s\n", name,
		       force ? "reset: booting again" : "power button pressed: rebooting");
	else if (json_is_true(json_object_get(out, "graceful")))
		printf("%s: shut down and powered off\n", name);
	else if (json_object_get(out, "why"))
		printf("%s: stopped (%s)\n", name, json_string_value(json_object_get(out, "why")));
	else
		printf("%s: stopped\n", name);
	json_decref(out);
	return 0;
}

/* pause NAME, resume NAME */
int cmd_pause(struct legoctl *lc, int argc, char **argv)
{
	bool pause = !strcmp(argv[0], "pause");
	int ret = help_or_args(argc, argv, 1,
			       pause ? "usage: legoctl pause NAME\n\nStop the vNode's vCPUs and "
				       "quiet its devices; it holds its memory and\nplace until "
				       "legoctl resume NAME.%s\n"
				     : "usage: legoctl resume NAME\n\nLet a paused vNode run "
				       "on.%s\n",
			       "");
	json_t *out;

	if (ret >= 0)
		return ret;
	out = api(lc, "POST", "/v1/vnodes/%s/%s", json_object(), argv[1], argv[0]);
	if (!out)
		return 1;
	if (lc->json)
		print_json(out);
	else
		printf("%s: %s\n", argv[1], pause ? "paused" : "running");
	json_decref(out);
	return 0;
}

/* migrate NAME [--to AGENT] */
int cmd_migrate(struct legoctl *lc, int argc, char **argv)
{
	const char *name = NULL, *to = NULL;
	json_t *body, *out;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: legoctl migrate NAME [--to AGENT]\n\n"
			       "Move the running vNode's VMM to another host agent (HOST:PORT, as\n"
			       "legoctl nodes lists it; default: the one with the most room). Its\n"
			       "memory stays on the memory servers and its disks on the storage\n"
			       "server: only the vCPUs, the devices and the ExCache's dirty pages\n"
			       "move, and the guest sees one short pause.\n");
			return 0;
		} else if (!strcmp(argv[i], "--to") && i + 1 < argc) {
			to = argv[++i];
		} else if (argv[i][0] == '-') {
			return usage_fail("migrate", "unknown option '%s'", argv[i]);
		} else if (name) {
			return usage_fail("migrate", "unexpected argument '%s'", argv[i]);
		} else {
			name = argv[i];
		}
	}
	if (!name)
		return usage_fail("migrate", "%s", "give one vNode NAME");
	body = to ? json_pack("{s:s}", "to", to) : json_object();
	out = api(lc, "POST", "/v1/vnodes/%s/migrate", body, name);
	json_decref(body);
	if (!out)
		return 1;
	if (lc->json)
		print_json(out);
	else
		printf("%s: migrated from %s to %s; the guest was paused %.1f ms (%.0f ms in all)\n",
		       name, json_string_value(json_object_get(out, "from")),
		       json_string_value(json_object_get(out, "to")),
		       json_number_value(json_object_get(out, "pause_ms")),
		       json_number_value(json_object_get(out, "ms")));
	json_decref(out);
	return 0;
}

/* snapshot NAME SNAPSHOT */
int cmd_snapshot(struct legoctl *lc, int argc, char **argv)
{
	json_t *body, *out;

	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: legoctl snapshot NAME SNAPSHOT\n\n"
		       "Save the running (or paused) vNode and stop it: its vCPUs and devices go\n"
		       "into SNAPSHOT on its host agent, its ExCache's dirty pages to the memory\n"
		       "servers, which keep its memory. legoctl restore NAME brings it back\n"
		       "where it was, once (its memory moves on from there).\n");
		return 0;
	}
	if (argc != 3)
		return usage_fail("snapshot", "%s", "give a vNode NAME and a SNAPSHOT name");
	body = json_pack("{s:s}", "snapshot", argv[2]);
	out = api(lc, "POST", "/v1/vnodes/%s/snapshot", body, argv[1]);
	json_decref(body);
	if (!out)
		return 1;
	if (lc->json)
		print_json(out);
	else
		printf("%s: saved as %s on %s in %.0f ms (%lld bytes; the memory stays on the "
		       "memory servers)\n",
		       argv[1], argv[2], json_string_value(json_object_get(out, "agent")),
		       json_number_value(json_object_get(out, "ms")),
		       (long long)json_integer_value(json_object_get(out, "bytes")));
	json_decref(out);
	return 0;
}

/* restore NAME [--name COPY] */
int cmd_restore(struct legoctl *lc, int argc, char **argv)
{
	const char *name = NULL, *as = NULL;
	json_t *body, *out;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: legoctl restore NAME [--name COPY]\n\n"
			       "Bring a saved vNode (legoctl snapshot) back from its snapshot: it\n"
			       "runs on from where it was saved, once.\n\n"
			       "  --name COPY  run a copy of it instead, a new vNode named COPY, and\n"
			       "               leave NAME saved (to be restored or copied again).\n"
			       "               The copy's memory is shared with NAME's on the same\n"
			       "               memory servers until either writes a page, and its\n"
			       "               disks are copied on their storage server. A vNode\n"
			       "               with a network interface is not copied: its guest\n"
			       "               keeps the address it booted with.\n");
			return 0;
		} else if (!strcmp(argv[i], "--name") && i + 1 < argc) {
			as = argv[++i];
		} else if (argv[i][0] == '-') {
			return usage_fail("restore", "unknown option '%s'", argv[i]);
		} else if (name) {
			return usage_fail("restore", "unexpected argument '%s'", argv[i]);
		} else {
			name = argv[i];
		}
	}
	if (!name)
		return usage_fail("restore", "%s", "give one saved vNode's NAME");
	body = as ? json_pack("{s:s}", "name", as) : json_object();
	out = api(lc, "POST", "/v1/vnodes/%s/restore", body, name);
	json_decref(body);
	if (!out)
		return 1;
	if (lc->json)
		print_json(out);
	else if (as && strcmp(as, name))
		printf("%s: a copy of %s, running on %s (%lld pages shared with %s) in %.0f ms\n",
		       as, name, json_string_value(json_object_get(out, "agent")),
		       (long long)json_integer_value(json_object_get(out, "pages_shared")), name,
		       json_number_value(json_object_get(out, "ms")));
	else
		printf("%s: restored, running\n", name);
	json_decref(out);
	return 0;
}
