/* vnodes.c - legoctl's vNode commands: create, start/stop/destroy, resize, dumpxml (list and
 * nodes: show.c). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http.h"
#include "legoctl.h"
#include "storclient.h"
#include "util.h"
#include "xport.h"

/* ---- vNodes ---- */

static void create_help(void)
{
	printf("usage: legoctl create NAME [--cpus N] [--memory SIZE] [--max-memory SIZE]\n"
	       "                      [--excache SIZE] [--transport tcp|rdma|auto]\n"
	       "                      [--image FILE] [--disk SIZE]...\n"
	       "                      [--kernel FILE [--initrd FILE] [--append TEXT]]\n"
	       "                      [--payload NAME|FILE [--args TEXT]] [--net|--no-net]\n"
	       "       legoctl create --from DOMAIN.xml\n"
	       "\n"
	       "Create a vNode and start it: the manager places its memory (in slabs, a\n"
	       "primary and a secondary memory server each), its disk and its VMM.\n"
	       "\n"
	       "  --cpus N          vCPUs (default 1)\n"
	       "  --memory SIZE     guest RAM (default 256M)\n"
	       "  --max-memory SIZE what the memory may grow to while it runs (legoctl\n"
	       "                    resize --memory; default 4x --memory for a kernel,\n"
	       "                    none for a payload)\n"
	       "  --excache SIZE    of which at most SIZE is resident in the VMM (default a\n"
	       "                    quarter); the rest lives on the memory servers\n"
	       "  --transport T     how pages travel to the memory servers: auto (the\n"
	       "                    default: RDMA where the server and the VMM's host have\n"
	       "                    it, else TCP), rdma (placed on servers that serve RDMA\n"
	       "                    only), or tcp; legoctl list shows what is used\n"
	       "  --disk SIZE       a virtio disk: a new volume on a storage server; again for\n"
	       "                    more (vda, vdb, ...)\n"
	       "  --image FILE      a raw disk image imported into the first disk (made as\n"
	       "                    large as the image if --disk says less): the vNode starts\n"
	       "                    once it is in (the boot kit's rootfs.img is one)\n"
	       "  --kernel FILE     boot this bzImage (default: the boot kit's stock Debian\n"
	       "                    kernel and initrd); --initrd, --append as for lego-vmm\n"
	       "  --payload NAME    run a test payload instead (hello, touch, ...), with --args\n"
	       "  --net, --no-net   a network interface on the cluster's network, its address\n"
	       "                    given by the manager (default: --net for a Linux vNode,\n"
	       "                    --no-net for a payload)\n"
	       "  --from FILE       a libvirt domain XML file (lego settings in <metadata>)\n"
	       "  --wait            follow the boot until the guest says it is ready (the\n"
	       "                    boot kit's init prints 'lego-guest: ready'), with progress\n");
}

/* The last non-empty line of @text, at most @len - 1 bytes, without control characters. */
static void last_line(const char *text, char *out, size_t len)
{
	const char *end = text + strlen(text), *start;
	size_t n, k = 0;

	while (end > text && (end[-1] == '\n' || end[-1] == '\r'))
		end--;
	for (start = end; start > text && start[-1] != '\n'; start--)
		;
	n = (size_t)(end - start);
	for (size_t i = 0; i < n && k + 1 < len; i++)
		if ((unsigned char)start[i] >= 0x20)
			out[k++] = start[i];
	out[k] = '\0';
}

/* --wait: watch the console until "lego-guest: ready" or the vNode stops. */
int wait_ready(struct legoctl *lc, const char *name, const char *agent)
{
	return wait_console(lc, name, agent, "lego-guest: ready", "booting", "is ready");
}

int wait_console(struct legoctl *lc, const char *name, const char *agent, const char *marker,
		 const char *doing, const char *done)
{
	char line[100] = "";
	uint64_t t0 = now_ns(), last_report = 0;
	long long off = 0;
	char *seen = NULL;
	size_t seen_len = 0;

	for (;;) {
		size_t n = 0;
		char *data = console_fetch(agent, name, &off, &n);

		if (!data) {
			free(seen);
			return 1;
		}
		for (size_t i = 0; i < n; i++) /* searched as text: a NUL does not end it */
			if (!data[i])
				data[i] = ' ';
		char *grown = realloc(seen, seen_len + n + 1);

		if (!grown) {
			free(data);
			free(seen);
			return fail("out of memory");
		}
		seen = grown;
		memcpy(seen + seen_len, data, n + 1);
		seen_len += n;
		free(data);
		if (strstr(seen, marker)) {
			printf("%s %s after %.0f s\n", name, done, (now_ns() - t0) / 1e9);
			free(seen);
			return 0;
		}
		if (now_ns() - last_report > 10e9) {
			json_t *v = api(lc, "GET", "/v1/vnodes/%s", NULL, name);

			if (!v || strcmp(JS(v, "state"), "running")) {
				fail("%s stopped while %s (%s); its console: legoctl console %s "
				     "--once",
				     name, doing, v ? JS(v, "state") : "gone", name);
				json_decref(v);
				free(seen);
				return 1;
			}
			json_decref(v);
			last_line(seen, line, sizeof(line));
			printf("  %s %s: %3.0f s  %s\n", doing, name, (now_ns() - t0) / 1e9, line);
			fflush(stdout);
			last_report = now_ns();
		}
		usleep(500 * 1000);
	}
}

static void import_progress(void *arg, uint64_t done, uint64_t size)
{
	char a[32], b[32];

	(void)arg;
	printf("\r  importing: %3.0f%% (%s of %s)", size ? 100.0 * done / size : 100.0,
	       format_size(done, a, sizeof(a)), format_size(size, b, sizeof(b)));
	fflush(stdout);
}

/*
 * --image: the manager made the vNode's volumes and answered where the first
 * one is, with its token ("import"); copy the image there, then start it.
 */
static int import_image(struct legoctl *lc, json_t *out, const char *image, int fd)
{
	json_t *imp = json_object_get(out, "import"), *started;
	const char *url = JS(imp, "url"), *host = url + strlen("storsrv://"), *slash;
	char addr[256], err[256];
	uint8_t token[LMP_TOKEN_LEN];
	struct stat st;
	struct xport *x;
	int ret;

	slash = strchr(host, '/');
	if (strncmp(url, "storsrv://", 10) || !slash || lmp_token_parse(JS(imp, "token"), token))
		return fail("the manager did not say where to import %s", image);
	snprintf(addr, sizeof(addr), "%.*s", (int)(slash - host), host);
	if (fstat(fd, &st) || xport_connect(addr, 5000, 30000, &x, err, sizeof(err)))
		return fail("%s: %s (the vNode %s waits, stopped)", url, err, JS(out, "name"));
	if (!lc->json)
		printf("\n");
	ret = stor_import(x, slash + 1, token, fd, (uint64_t)st.st_size,
			  lc->json ? NULL : import_progress, NULL);
	xport_close(x);
	explicit_bzero(token, sizeof(token));
	if (ret)
		return fail("importing %s into %s: %s (the vNode %s waits, stopped)", image, url,
			    stor_strerror(ret), JS(out, "name"));
	if (!lc->json)
		printf("\n  starting it ... ");
	started = api(lc, "POST", "/v1/vnodes/%s/start", NULL, JS(out, "name"));
	if (!started)
		return 1;
	json_decref(started);
	json_object_del(out, "import"); /* its token is not for the screen */
	return 0;
}

int cmd_create(struct legoctl *lc, int argc, char **argv)
{
	static const struct option opts[] = {{"cpus", required_argument, NULL, 'c'},
					     {"memory", required_argument, NULL, 'm'},
					     {"max-memory", required_argument, NULL, 'M'},
					     {"excache", required_argument, NULL, 'x'},
					     {"transport", required_argument, NULL, 'T'},
					     {"disk", required_argument, NULL, 'd'},
					     {"kernel", required_argument, NULL, 'k'},
					     {"initrd", required_argument, NULL, 'i'},
					     {"append", required_argument, NULL, 'a'},
					     {"payload", required_argument, NULL, 'p'},
					     {"args", required_argument, NULL, 'A'},
					     {"from", required_argument, NULL, 'f'},
					     {"wait", no_argument, NULL, 'w'},
					     {"image", required_argument, NULL, 'I'},
					     {"net", no_argument, NULL, 'n'},
					     {"no-net", no_argument, NULL, 'N'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	json_t *spec = json_object(), *out = NULL;
	const char *from = NULL, *image = NULL;
	int image_fd = -1;
	bool wait = false;
	char *end;
	uint64_t sz;
	int o;

	opterr = 0;
	while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		const char *key = NULL;

		switch (o) {
		case 'h':
			create_help();
			return 0;
		case 'c': {
			long n = strtol(optarg, &end, 10);

			if (*end || n < 1 || n > 64)
				return usage_fail("create", "--cpus: '%s' is not 1-64", optarg);
			json_object_set_new(spec, "cpus", json_integer(n));
			break;
		}
		case 'm':
			key = "memory";
			break;
		case 'M':
			key = "max_memory";
			break;
		case 'x':
			key = "excache";
			break;
		case 'T':
			if (strcmp(optarg, "tcp") && strcmp(optarg, "rdma") &&
			    strcmp(optarg, "auto"))
				return usage_fail("create",
						  "--transport: '%s' is not tcp, rdma or auto",
						  optarg);
			json_object_set_new(spec, "transport", json_string(optarg));
			break;
		case 'd':
			if (parse_size(optarg, &sz) || sz % 512 || sz < 4096)
				return usage_fail("create",
						  "--disk: '%s' is not a size of 4K or more",
						  optarg);
			if (!json_object_get(spec, "disks"))
				json_object_set_new(spec, "disks", json_array());
			json_array_append_new(json_object_get(spec, "disks"),
					      json_integer((json_int_t)sz));
			break;
		case 'I':
			image = optarg;
			break;
		case 'k':
			json_object_set_new(spec, "kernel", json_string(optarg));
			break;
		case 'i':
			json_object_set_new(spec, "initrd", json_string(optarg));
			break;
		case 'a':
			json_object_set_new(spec, "cmdline", json_string(optarg));
			break;
		case 'p':
			json_object_set_new(spec, "payload", json_string(optarg));
			break;
		case 'A':
			json_object_set_new(spec, "args", json_string(optarg));
			break;
		case 'f':
			from = optarg;
			break;
		case 'w':
			wait = true;
			break;
		case 'n':
		case 'N':
			json_object_set_new(spec, "net", json_boolean(o == 'n'));
			break;
		case ':':
			return usage_fail("create", "%s needs a value", argv[optind - 1]);
		default:
			return usage_fail("create", "unknown option '%s'", argv[optind - 1]);
		}
		if (key) {
			if (parse_size(optarg, &sz))
				return usage_fail("create", "'%s' is not a size (e.g. 2G)", optarg);
			json_object_set_new(spec, key, json_integer((json_int_t)sz));
		}
	}
	if (!from && optind != argc - 1)
		return usage_fail("create", "%s", "give the vNode's NAME (or --from FILE.xml)");
	if (from && (optind < argc || json_object_size(spec)))
		return usage_fail("create", "%s", "--from takes everything from the XML file");
	/* Paths are the user's: make them absolute for the agent. */
	const char *files[] = {"kernel", "initrd", "payload"};
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		const char *f = JS(spec, files[i]);
		char real[PATH_MAX];

		if (!*f || (!strcmp(files[i], "payload") && !strchr(f, '/')))
			continue;
		if (!realpath(f, real))
			return fail("%s: %s", f, strerror(errno));
		json_object_set_new(spec, files[i], json_string(real));
	}
	if (image) {
		struct stat st;

		image_fd = open(image, O_RDONLY | O_CLOEXEC);
		if (image_fd < 0 || fstat(image_fd, &st))
			return fail("--image %s: %s", image, strerror(errno));
		json_object_set_new(spec, "image", json_integer((json_int_t)st.st_size));
	}
	if (find_manager(lc))
		return 1;
	if (!lc->json) {
		printf("creating %s: placing memory slabs, disks and VMM, %s ... ",
		       from ? from : argv[optind], image ? "making its volumes" : "starting it");
		fflush(stdout);
	}
	uint64_t t0 = now_ns();
	if (from) {
		char url[300], err[1024], *xml = NULL, *ans = NULL;
		const char *leader = api_leader(lc);
		size_t len = 0;
		FILE *f = leader ? fopen(from, "r") : NULL;
		int s;

		if (!leader)
			return 1;
		if (!f)
			return fail("%s: %s", from, strerror(errno));
		if (getdelim(&xml, &len, '\0', f) < 0) {
			fclose(f);
			return fail("%s: empty or unreadable", from);
		}
		fclose(f);
		snprintf(url, sizeof(url), "%s/v1/vnodes", leader);
		s = http_call_raw("POST", url, "application/xml", xml, &ans, LEGOCTL_TIMEOUT_MS,
				  err, sizeof(err));
		free(xml);
		if (s < 0 || s >= 400) {
			json_t *e = s > 0 ? json_loads(ans, 0, NULL) : NULL;

			if (!lc->json)
				printf("failed\n");
			fail("%s", e ? JS(e, "error") : err);
			json_decref(e);
			free(ans);
			return 1;
		}
		out = json_loads(ans, 0, NULL);
		free(ans);
	} else {
		json_object_set_new(spec, "name", json_string(argv[optind]));
		out = api(lc, "POST", "/v1/vnodes", spec);
		if (!out && !lc->json)
			fprintf(stderr, "(nothing was created)\n");
	}
	json_decref(spec);
	if (out && image_fd >= 0 && import_image(lc, out, image, image_fd)) {
		json_decref(out);
		out = NULL;
	}
	if (image_fd >= 0)
		close(image_fd);
	if (!out)
		return 1;
	if (lc->json) {
		print_json(out);
	} else {
		char a[32], b[32];

		printf("done in %.1f s\n", (now_ns() - t0) / 1e9);
		printf("  %s: %lld vCPU, %s memory (%s ExCache) on agent %s\n", JS(out, "name"),
		       JI(json_object_get(out, "spec"), "cpus"),
		       size_str(JI(out, "memory"), a, sizeof(a)),
		       size_str(JI(out, "excache"), b, sizeof(b)), JS(out, "agent"));
		size_t i;
		json_t *s;
		json_array_foreach(json_object_get(out, "slabs"), i, s)
			printf("  slab %zu: %s, primary %s, secondary %s\n", i,
			       size_str(JI(s, "size"), a, sizeof(a)), JS(s, "primary"),
			       JS(s, "secondary"));
		json_array_foreach(json_object_get(json_object_get(out, "spec"), "disks"), i, s)
		{
			printf("  disk vd%c: %s, volume %s", (char)('a' + i),
			       size_str(json_integer_value(s), a, sizeof(a)), JS(out, "name"));
			if (i)
				printf(".d%zu", i);
			printf(" on %s\n", JS(out, "storsrv"));
		}
		if (*JS(json_object_get(out, "net"), "ip"))
			printf("  network: %s (MAC %s)\n", JS(json_object_get(out, "net"), "ip"),
			       JS(json_object_get(out, "net"), "mac"));
		printf("its console: legoctl console %s\n", JS(out, "name"));
	}
	if (wait) {
		char name[128], agent[256];
		int ret;

		snprintf(name, sizeof(name), "%s", JS(out, "name"));
		snprintf(agent, sizeof(agent), "%s", JS(out, "agent"));
		json_decref(out);
		ret = wait_ready(lc, name, agent);
		return ret;
	}
	json_decref(out);
	return 0;
}

/* start, destroy: NAME, no options. */
int cmd_simple(struct legoctl *lc, int argc, char **argv)
{
	const char *cmd = argv[0];
	int ret = help_or_args(argc, argv, 1,
			       !strcmp(cmd, "start")
				       ? "usage: legoctl start NAME\n\nStart a stopped vNode "
					 "again (new --cpus and --memory take effect).%s\n"
				       : "usage: legoctl destroy NAME\n\nStop the vNode and free "
					 "all it holds: memory slabs, disk volume, state.%s\n",
			       "");
	json_t *out;

	if (ret >= 0)
		return ret;
	if (!strcmp(cmd, "destroy"))
		out = api(lc, "DELETE", "/v1/vnodes/%s", NULL, argv[1]);
	else
		out = api(lc, "POST", "/v1/vnodes/%s/%s", NULL, argv[1], cmd);
	if (!out)
		return 1;
	if (lc->json)
		print_json(out);
	else
		printf("%s: %s\n", argv[1], !strcmp(cmd, "start") ? "started" : "destroyed");
	json_decref(out);
	return 0;
}

/*
 * Follow a live memory resize until the guest has what was asked (or
 * @timeout_s): its memory as the VMM reports it, every second that it
 * moves. 0 when it got there.
 */
static int wait_memory(struct legoctl *lc, const char *name, int timeout_s)
{
	uint64_t t0 = now_ns();
	long long last = -1;

	for (;;) {
		json_t *v = api(lc, "GET", "/v1/vnodes/%s", NULL, name);
		long long now, want;
		char a[32], b[32];

		if (!v)
			return 1;
		now = JI(v, "memory");
		want = JI(v, "memory_requested");
		json_decref(v);
		if (now != last)
			printf("  %s: %s of %s in the guest\n", name, size_str(now, a, sizeof(a)),
			       size_str(want, b, sizeof(b)));
		last = now;
		if (now == want) {
			printf("%s has %s after %.1f s\n", name, size_str(now, a, sizeof(a)),
			       (now_ns() - t0) / 1e9);
			return 0;
		}
		if (now_ns() - t0 > (uint64_t)timeout_s * 1000000000ULL)
			return fail("%s has %s of the %s asked for after %d s: the guest has not "
				    "plugged or given back the rest (its virtio-mem driver?); "
				    "legoctl list shows where it is",
				    name, size_str(now, a, sizeof(a)), size_str(want, b, sizeof(b)),
				    timeout_s);
		usleep(500 * 1000);
	}
}

int cmd_resize(struct legoctl *lc, int argc, char **argv)
{
	static const struct option opts[] = {{"excache", required_argument, NULL, 'x'},
					     {"memory", required_argument, NULL, 'm'},
					     {"cpus", required_argument, NULL, 'c'},
					     {"wait", no_argument, NULL, 'w'},
					     {"timeout", required_argument, NULL, 't'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	json_t *req = json_object(), *out, *applied;
	bool wait = false;
	long timeout_s = 120;
	uint64_t sz;
	char *end;
	int o, ret = 0;

	opterr = 0;
	while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (o == 'h') {
			printf("usage: legoctl resize NAME [--memory SIZE] [--excache SIZE] [--cpus N]\n"
			       "                      [--wait [--timeout S]]\n\n"
			       "The ExCache changes at once on a running vNode. Its memory does too\n"
			       "when it has a maximum (create --max-memory; a kernel's default):\n"
			       "the manager places the slabs it needs, and the guest plugs them\n"
			       "(--wait follows it until the guest has it, at most S seconds,\n"
			       "default 120); or gives memory back, and its slabs are freed. vCPUs,\n"
			       "and the memory of a vNode without a maximum or not running, change\n"
			       "at the next start.\n");
			json_decref(req);
			return 0;
		}
		if (o == 'x' || o == 'm') {
			if (parse_size(optarg, &sz))
				return usage_fail("resize", "'%s' is not a size (e.g. 512M)",
						  optarg);
			json_object_set_new(req, o == 'x' ? "excache" : "memory",
					    json_integer((json_int_t)sz));
		} else if (o == 'c') {
			long n = strtol(optarg, &end, 10);

			if (*end || n < 1 || n > 64)
				return usage_fail("resize", "--cpus: '%s' is not 1-64", optarg);
			json_object_set_new(req, "cpus", json_integer(n));
		} else if (o == 'w') {
			wait = true;
		} else if (o == 't') {
			timeout_s = strtol(optarg, &end, 10);
			if (*end || end == optarg || timeout_s < 1 || timeout_s > 86400)
				return usage_fail("resize",
						  "--timeout: '%s' is not 1 to 86400 seconds",
						  optarg);
		} else {
			return usage_fail("resize", "unknown option or missing value: '%s'",
					  argv[optind - 1]);
		}
	}
	if (optind != argc - 1 || !json_object_size(req))
		return usage_fail("resize", "%s", "give NAME and --memory, --excache or --cpus");
	out = api(lc, "POST", "/v1/vnodes/%s/resize", req, argv[optind]);
	json_decref(req);
	if (!out)
		return 1;
	applied = json_object_get(out, "applied");
	if (lc->json) {
		print_json(out);
	} else {
		char a[32];

		if (*JS(applied, "memory"))
			printf("%s: memory %s, %s\n", argv[optind],
			       size_str(JI(out, "memory_requested")
						? JI(out, "memory_requested")
						: JI(json_object_get(out, "spec"), "memory"),
					a, sizeof(a)),
			       !strcmp(JS(applied, "memory"), "live")
				       ? "live: the guest plugs or gives back the difference"
				       : "at the next start");
		if (*JS(applied, "excache"))
			printf("%s: ExCache %s, %s\n", argv[optind],
			       size_str(JI(out, "excache"), a, sizeof(a)),
			       !strcmp(JS(applied, "excache"), "live") ? "live"
								       : "at the next start");
		if (*JS(applied, "cpus"))
			printf("%s: %lld vCPUs at the next start\n", argv[optind],
			       JI(json_object_get(out, "spec"), "cpus"));
	}
	if (wait && !strcmp(JS(applied, "memory"), "live"))
		ret = wait_memory(lc, argv[optind], (int)timeout_s);
	json_decref(out);
	return ret;
}

int cmd_dumpxml(struct legoctl *lc, int argc, char **argv)
{
	char url[512], err[1024], *xml = NULL;
	const char *leader;
	int s = help_or_args(argc, argv, 1,
			     "usage: legoctl dumpxml NAME\n\nThe vNode as a libvirt domain XML "
			     "document (lego's settings in <metadata>);\n'legoctl create --from "
			     "FILE' takes it back.%s\n",
			     "");

	if (s >= 0)
		return s;
	if (find_manager(lc) || !(leader = api_leader(lc)))
		return 1;
	snprintf(url, sizeof(url), "%s/v1/vnodes/%s/xml", leader, argv[1]);
	s = http_call_raw("GET", url, NULL, NULL, &xml, LEGOCTL_TIMEOUT_MS, err, sizeof(err));
	if (s != 200) {
		json_t *e = s > 0 ? json_loads(xml, 0, NULL) : NULL;

		fail("%s", e ? JS(e, "error") : s > 0 ? xml : err);
		json_decref(e);
		free(xml);
		return 1;
	}
	fputs(xml, stdout);
	free(xml);
	return 0;
}
