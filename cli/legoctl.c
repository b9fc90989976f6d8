/*
 * legoctl - what a person types to drive a lego cluster. Every command but
 * `up` and `down` is a client of lego-manager's HTTP API; `up` starts a whole
 * cluster on this machine and `down` stops it. The local cluster lives under
 * $LEGO_HOME (default ~/.local/share/lego): cluster.json (its addresses),
 * manager.db, logs/, run/ (pid files), volumes/, vnodes/ (consoles).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <glob.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "legoctl.h"
#include "util.h"

#define TIMEOUT_MS 120000

static const char *prog = "legoctl";
bool json_out, up_quietly;
char home[PATH_MAX - 64], manager[256];
static char bindir[PATH_MAX - 64];

int fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

int usage_fail(const char *cmd, const char *fmt, const char *arg)
{
	fprintf(stderr, "%s %s: ", prog, cmd);
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n(try '%s %s --help')\n", prog, cmd);
	return 2;
}

static void path(char *buf, size_t len, const char *rel)
{
	snprintf(buf, len, "%s/%s", home, rel);
}

/* The manager's URL: --manager, $LEGO_MANAGER, or the local cluster's. */
int find_manager(void)
{
	char p[PATH_MAX];
	json_t *c;

	if (manager[0])
		return 0;
	if (getenv("LEGO_MANAGER")) {
		snprintf(manager, sizeof(manager), "%s", getenv("LEGO_MANAGER"));
		return 0;
	}
	path(p, sizeof(p), "cluster.json");
	c = json_load_file(p, 0, NULL);
	if (!c || !json_string_value(json_object_get(c, "manager"))) {
		json_decref(c);
		return fail("no cluster under %s (LEGO_HOME): start one with 'legoctl up'", home);
	}
	snprintf(manager, sizeof(manager), "%s", json_string_value(json_object_get(c, "manager")));
	json_decref(c);
	return 0;
}

/* Call the manager; on failure print why and return NULL. */
json_t *api(const char *method, const char *fmt, json_t *body, ...)
{
	char url[512], err[1024], rel[256];
	json_t *out = NULL;
	va_list ap;
	int status;

	va_start(ap, body);
	vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	if (find_manager())
		return NULL;
	snprintf(url, sizeof(url), "%s%s", manager, rel);
	status = http_call(method, url, body, &out, TIMEOUT_MS, err, sizeof(err));
	if (status < 0) {
		fail("cannot reach the manager at %s: %s\n  is the cluster up? ('legoctl up')",
		     manager, err);
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

/*
 * A command's --help, or a wrong number of arguments: returns the exit status
 * to end with, or -1 to go on. @nargs is how many arguments it takes.
 */
static int help_or_args(int argc, char **argv, int nargs, const char *fmt, const char *arg)
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

/*
 * The console output of vNode @name on @agent from byte *@off on, as a
 * malloc'd string (*@off advances past it); NULL with a reason printed.
 */
char *console_fetch(const char *agent, const char *name, long long *off)
{
	char url[600], err[512], *data = NULL;
	int s;

	snprintf(url, sizeof(url), "http://%s/v1/vnodes/%s/console?from=%lld", agent, name, *off);
	s = http_call_raw("GET", url, NULL, NULL, &data, 10000, err, sizeof(err));
	if (s != 200) {
		free(data);
		if (s < 0)
			fail("the agent %s: %s", agent, err);
		else
			fail("vNode %s has no console on agent %s", name, agent);
		return NULL;
	}
	*off += (long long)strlen(data);
	return data;
}

/* ---- up / down ---- */

struct daemon {
	const char *name; /* also its log and pid file's name */
	char *argv[24];
};

/* Is @pid a live process? A daemon is not our child: a dead one may linger as a zombie. */
bool alive(pid_t pid)
{
	char p[64], buf[512], *rp;
	FILE *f;
	bool live = false;

	if (kill(pid, 0) < 0)
		return false;
	snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
	f = fopen(p, "r");
	if (f && fgets(buf, sizeof(buf), f) && (rp = strrchr(buf, ')')))
		live = rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
	if (f)
		fclose(f);
	return live;
}

pid_t read_pid(const char *name)
{
	char p[PATH_MAX];
	FILE *f;
	int pid = 0;

	snprintf(p, sizeof(p), "%s/run/%s.pid", home, name);
	f = fopen(p, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%d", &pid) != 1)
		pid = 0;
	fclose(f);
	return pid > 0 && alive(pid) ? pid : 0;
}

static int spawn_daemon(struct daemon *d)
{
	char p[PATH_MAX];
	pid_t pid;
	FILE *f;
	int fd;

	snprintf(p, sizeof(p), "%s/logs/%s.log", home, d->name);
	fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail("%s: %s", p, strerror(errno));
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		setsid();
		dup2(null, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		execv(d->argv[0], d->argv);
		fprintf(stderr, "cannot run %s: %s\n", d->argv[0], strerror(errno));
		_exit(127);
	}
	close(fd);
	if (pid < 0)
		return fail("fork: %s", strerror(errno));
	snprintf(p, sizeof(p), "%s/run/%s.pid", home, d->name);
	f = fopen(p, "w");
	if (f) {
		fprintf(f, "%d\n", pid);
		fclose(f);
	}
	return 0;
}

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;

	if (fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof(a)) &&
	    !getsockname(fd, (struct sockaddr *)&a, &len))
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static void up_help(void)
{
	printf("usage: legoctl up [--memsrv-capacity SIZE] [--agent-capacity SIZE]\n"
	       "\n"
	       "Start a whole cluster on this machine, under $LEGO_HOME (%s):\n"
	       "a manager, two memory servers, a storage server and a host agent. Parts that\n"
	       "run already are left alone, so 'up' also restarts what has stopped.\n"
	       "\n"
	       "  --memsrv-capacity SIZE  each memory server's capacity (default 4G)\n"
	       "  --agent-capacity SIZE   memory the agent offers for ExCaches (default: half\n"
	       "                          of this machine's RAM)\n",
	       home);
}

int cmd_up(int argc, char **argv)
{
	static const struct option opts[] = {{"memsrv-capacity", required_argument, NULL, 'm'},
					     {"agent-capacity", required_argument, NULL, 'a'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	const char *mcap = "4G", *acap = NULL;
	char p[PATH_MAX], cfg[PATH_MAX], db[PATH_MAX], vols[PATH_MAX], vdir[PATH_MAX];
	char bin[6][PATH_MAX], addr[5][256];
	json_t *c;
	uint64_t sz;
	int o;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (o == 'h')
			return up_help(), 0;
		if (o == 'm')
			mcap = optarg;
		else if (o == 'a')
			acap = optarg;
		else
			return usage_fail("up", "%s", "unknown option");
	}
	if (parse_size(mcap, &sz) || (acap && parse_size(acap, &sz)))
		return usage_fail("up", "'%s' is not a size (e.g. 4G)", acap ? acap : mcap);
	for (const char *d = "", *const *l = (const char *[]){"", "logs", "run", "volumes",
							      "vnodes", NULL};
	     (d = *l); l++) {
		path(p, sizeof(p), d);
		if (mkdir(p, 0700) && errno != EEXIST) {
			/* mkdir -p for $LEGO_HOME itself */
			char cmd[PATH_MAX + 16];

			snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", p);
			if (system(cmd))
				return fail("cannot create %s: %s", p, strerror(errno));
		}
	}
	/* The addresses are chosen once and kept: a restarted part comes back where it was. */
	path(cfg, sizeof(cfg), "cluster.json");
	c = json_load_file(cfg, 0, NULL);
	if (!c) {
		c = json_pack("{s:o,s:[o,o],s:o,s:o}", "manager",
			      json_sprintf("http://127.0.0.1:%d", free_port()), "memsrv",
			      json_sprintf("127.0.0.1:%d", free_port()),
			      json_sprintf("127.0.0.1:%d", free_port()), "storsrv",
			      json_sprintf("127.0.0.1:%d", free_port()), "agent",
			      json_sprintf("127.0.0.1:%d", free_port()));
		if (json_dump_file(c, cfg, JSON_INDENT(2)))
			return fail("cannot write %s", cfg);
	}
	snprintf(manager, sizeof(manager), "%s", JS(c, "manager"));
	snprintf(addr[0], 256, "%s", manager + strlen("http://"));
	snprintf(addr[1], 256, "%s",
		 json_string_value(json_array_get(json_object_get(c, "memsrv"), 0)));
	snprintf(addr[2], 256, "%s",
		 json_string_value(json_array_get(json_object_get(c, "memsrv"), 1)));
	snprintf(addr[3], 256, "%s", JS(c, "storsrv"));
	snprintf(addr[4], 256, "%s", JS(c, "agent"));
	json_decref(c);
	const char *names[] = {"lego-manager", "lego-memsrv", "lego-storsrv", "lego-agent"};
	for (int i = 0; i < 4; i++) {
		snprintf(bin[i], sizeof(bin[i]), "%s/%s", bindir, names[i]);
		if (access(bin[i], X_OK))
			return fail("%s is missing: build it with 'make'", bin[i]);
	}
	path(db, sizeof(db), "manager.db");
	path(vols, sizeof(vols), "volumes");
	path(vdir, sizeof(vdir), "vnodes");
	char agent_cap[32];
	snprintf(agent_cap, sizeof(agent_cap), "%s", acap ? acap : "");
	struct daemon ds[] = {
		{"manager", {bin[0], "--db", db, "--listen", addr[0], NULL}},
		{"memsrv-1",
		 {bin[1], "--listen", addr[1], "--capacity", (char *)mcap, "--manager", manager,
		  NULL}},
		{"memsrv-2",
		 {bin[1], "--listen", addr[2], "--capacity", (char *)mcap, "--manager", manager,
		  NULL}},
		{"storsrv",
		 {bin[2], "--listen", addr[3], "--data", vols, "--manager", manager, NULL}},
		{"agent",
		 {bin[3], "--listen", addr[4], "--dir", vdir, "--manager", manager,
		  acap ? "--capacity" : NULL, agent_cap, NULL}},
	};
	int started = 0;
	for (size_t i = 0; i < ARRAY_SIZE(ds); i++) {
		pid_t pid = read_pid(ds[i].name);

		if (pid) {
			if (!json_out && !up_quietly)
				printf("  %-9s runs already (pid %d)\n", ds[i].name, pid);
			continue;
		}
		if (spawn_daemon(&ds[i]))
			return 1;
		started++;
		if (!json_out)
			printf("%s%-9s started on %s\n", up_quietly ? "          " : "  ",
			       ds[i].name, i ? ds[i].argv[2] : manager);
	}
	if (up_quietly && !started)
		return 0;
	/* Ready when the manager knows all four components. */
	if (!json_out && !up_quietly) {
		printf("waiting for the components to register with the manager ");
		fflush(stdout);
	}
	for (int ms = 0;; ms += 200) {
		char url[300], err[512];
		json_t *st = NULL;
		int s;

		snprintf(url, sizeof(url), "%s/v1/components", manager);
		s = http_call("GET", url, NULL, &st, 2000, err, sizeof(err));
		if (s == 200) {
			int up = 0;
			size_t i;
			json_t *e;

			json_array_foreach(json_object_get(st, "components"), i, e)
			{
				for (int k = 1; k < 5; k++)
					up += !strcmp(JS(e, "addr"), addr[k]) &&
					      !strcmp(JS(e, "health"), "up");
			}
			json_decref(st);
			if (up == 4)
				break;
		}
		if (ms > 30000) {
			if (!json_out)
				printf("\n");
			return fail("the cluster did not come up in 30 s; see the logs in %s/logs",
				    home);
		}
		if (!json_out && !up_quietly && ms % 1000 == 0) {
			printf(".");
			fflush(stdout);
		}
		usleep(200 * 1000);
	}
	if (json_out) {
		json_t *j = json_pack("{s:s,s:s,s:i}", "home", home, "manager", manager, "started",
				      started);
		print_json(j);
		json_decref(j);
	} else if (!up_quietly) {
		printf(" up\n\ncluster up under %s; manager API at %s\n"
		       "next: legoctl create NAME   (legoctl create --help), legoctl nodes\n",
		       home, manager);
	}
	return 0;
}

/*
 * The VMMs an agent left behind (it was killed, say): every vnodes/NAME/vmm.pid
 * whose process still runs lego-vmm. Stopped like the agent would: SIGTERM,
 * then SIGKILL after 5 s. Returns how many there were.
 */
static int stop_orphan_vmms(void)
{
	char p[PATH_MAX], exe[PATH_MAX];
	glob_t g;
	int n = 0;

	snprintf(p, sizeof(p), "%s/vnodes/*/vmm.pid", home);
	if (glob(p, 0, NULL, &g))
		return 0;
	for (size_t i = 0; i < g.gl_pathc; i++) {
		FILE *f = fopen(g.gl_pathv[i], "r"), *c;
		size_t len = 0;
		int pid = 0;

		if (f) {
			if (fscanf(f, "%d", &pid) != 1)
				pid = 0;
			fclose(f);
		}
		if (pid <= 0 || !alive(pid))
			continue;
		/* Only a lego-vmm: the pid may have been reused since. */
		snprintf(p, sizeof(p), "/proc/%d/cmdline", pid);
		c = fopen(p, "r");
		if (c) {
			len = fread(exe, 1, sizeof(exe) - 1, c);
			fclose(c);
		}
		exe[len] = '\0';
		if (!len || strcmp(basename(exe), "lego-vmm"))
			continue;
		kill(pid, SIGTERM);
		for (int ms = 0; alive(pid) && ms < 5000; ms += 50)
			usleep(50 * 1000);
		if (alive(pid))
			kill(pid, SIGKILL);
		if (!json_out)
			printf("  %-9s stopped a VMM its agent had left (pid %d, %s)\n", "", pid,
			       g.gl_pathv[i]);
		n++;
	}
	globfree(&g);
	return n;
}

static int cmd_down(int argc, char **argv)
{
	/* The agent first: it stops the VMMs it runs. */
	const char *order[] = {"agent", "manager", "storsrv", "memsrv-1", "memsrv-2"};
	int stopped = 0;

	int ret =
		help_or_args(argc, argv, 0,
			     "usage: legoctl down\n\nStop the local cluster under $LEGO_HOME (%s): "
			     "its vNodes, agent, manager\nand servers. State, volumes and logs "
			     "stay; 'legoctl up' starts it again.\n",
			     home);

	if (ret >= 0)
		return ret;
	for (size_t i = 0; i < ARRAY_SIZE(order); i++) {
		pid_t pid = read_pid(order[i]);
		char p[PATH_MAX];

		if (pid) {
			kill(pid, SIGTERM);
			for (int ms = 0; alive(pid) && ms < 15000; ms += 50)
				usleep(50 * 1000);
			if (alive(pid)) {
				fprintf(stderr, "%s: %s did not stop in 15 s: killing it\n", prog,
					order[i]);
				kill(pid, SIGKILL);
			}
			stopped++;
			if (!json_out)
				printf("  %-9s stopped\n", order[i]);
		}
		snprintf(p, sizeof(p), "%s/run/%s.pid", home, order[i]);
		unlink(p);
		if (i == 0) /* after the agent: whatever VMMs it did not stop */
			stopped += stop_orphan_vmms();
	}
	if (json_out)
		printf("{\"stopped\": %d}\n", stopped);
	else if (!stopped)
		printf("no cluster runs under %s\n", home);
	return 0;
}

/* ---- vNodes ---- */

static void create_help(void)
{
	printf("usage: legoctl create NAME [--cpus N] [--memory SIZE] [--excache SIZE] [--disk SIZE]\n"
	       "                      [--kernel FILE [--initrd FILE] [--append TEXT]]\n"
	       "                      [--payload NAME|FILE [--args TEXT]]\n"
	       "       legoctl create --from DOMAIN.xml\n"
	       "\n"
	       "Create a vNode and start it: the manager places its memory (in slabs, a\n"
	       "primary and a secondary memory server each), its disk and its VMM.\n"
	       "\n"
	       "  --cpus N          vCPUs (default 1)\n"
	       "  --memory SIZE     guest RAM (default 256M)\n"
	       "  --excache SIZE    of which at most SIZE is resident in the VMM (default a\n"
	       "                    quarter); the rest lives on the memory servers\n"
	       "  --disk SIZE       a virtio disk: a new volume on a storage server\n"
	       "  --kernel FILE     boot this bzImage (default: the boot kit's stock Debian\n"
	       "                    kernel and initrd); --initrd, --append as for lego-vmm\n"
	       "  --payload NAME    run a test payload instead (hello, touch, ...), with --args\n"
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
int wait_ready(const char *name, const char *agent)
{
	return wait_console(name, agent, "lego-guest: ready", "booting", "is ready");
}

int wait_console(const char *name, const char *agent, const char *marker, const char *doing,
		 const char *done)
{
	char line[100] = "";
	uint64_t t0 = now_ns(), last_report = 0;
	long long off = 0;
	char *seen = NULL;
	size_t seen_len = 0;

	for (;;) {
		char *data = console_fetch(agent, name, &off);

		if (!data) {
			free(seen);
			return 1;
		}
		size_t n = strlen(data);
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
			json_t *v = api("GET", "/v1/vnodes/%s", NULL, name);

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

static int cmd_create(int argc, char **argv)
{
	static const struct option opts[] = {{"cpus", required_argument, NULL, 'c'},
					     {"memory", required_argument, NULL, 'm'},
					     {"excache", required_argument, NULL, 'x'},
					     {"disk", required_argument, NULL, 'd'},
					     {"kernel", required_argument, NULL, 'k'},
					     {"initrd", required_argument, NULL, 'i'},
					     {"append", required_argument, NULL, 'a'},
					     {"payload", required_argument, NULL, 'p'},
					     {"args", required_argument, NULL, 'A'},
					     {"from", required_argument, NULL, 'f'},
					     {"wait", no_argument, NULL, 'w'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	json_t *spec = json_object(), *out = NULL;
	const char *from = NULL;
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
		case 'x':
			key = "excache";
			break;
		case 'd':
			key = "disk";
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
	if (find_manager())
		return 1;
	if (!json_out) {
		printf("creating %s: placing memory slabs, disk and VMM, starting it ... ",
		       from ? from : argv[optind]);
		fflush(stdout);
	}
	uint64_t t0 = now_ns();
	if (from) {
		char url[300], err[1024], *xml = NULL, *ans = NULL;
		size_t len = 0;
		FILE *f = fopen(from, "r");
		int s;

		if (!f)
			return fail("%s: %s", from, strerror(errno));
		if (getdelim(&xml, &len, '\0', f) < 0) {
			fclose(f);
			return fail("%s: empty or unreadable", from);
		}
		fclose(f);
		snprintf(url, sizeof(url), "%s/v1/vnodes", manager);
		s = http_call_raw("POST", url, "application/xml", xml, &ans, TIMEOUT_MS, err,
				  sizeof(err));
		free(xml);
		if (s < 0 || s >= 400) {
			json_t *e = s > 0 ? json_loads(ans, 0, NULL) : NULL;

			if (!json_out)
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
		out = api("POST", "/v1/vnodes", spec);
		if (!out && !json_out)
			fprintf(stderr, "(nothing was created)\n");
	}
	json_decref(spec);
	if (!out)
		return 1;
	if (json_out) {
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
		if (*JS(out, "storsrv"))
			printf("  disk: volume %s on %s\n", JS(out, "name"), JS(out, "storsrv"));
		printf("its console: legoctl console %s\n", JS(out, "name"));
	}
	if (wait) {
		char name[128], agent[256];
		int ret;

		snprintf(name, sizeof(name), "%s", JS(out, "name"));
		snprintf(agent, sizeof(agent), "%s", JS(out, "agent"));
		json_decref(out);
		ret = wait_ready(name, agent);
		return ret;
	}
	json_decref(out);
	return 0;
}

static int cmd_list(int argc, char **argv)
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
		page = api("GET", "/v1/vnodes?limit=1000%s", NULL, after);
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
	if (json_out) {
		print_json(out);
		json_decref(out);
		return 0;
	}
	printf("%-16s %-9s %4s %9s %9s %9s %8s %-16s %s\n", "NAME", "STATE", "CPUS", "MEMORY",
	       "EXCACHE", "RESIDENT", "MISSES", "AGENT", "MEMORY SERVERS (primary)");
	json_array_foreach(json_object_get(out, "vnodes"), i, v)
	{
		json_t *xc = json_object_get(v, "excache_use"), *spec = json_object_get(v, "spec");
		char a[32], b[32], c[32] = "-", mem[512], miss[32] = "-";

		if (xc) {
			size_str(JI(xc, "resident_pages") * 4096, c, sizeof(c));
			snprintf(miss, sizeof(miss), "%lld", JI(xc, "misses"));
		}
		join(json_object_get(v, "memsrvs"), mem, sizeof(mem));
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
		printf("%-16s %-9s %4lld %9s %9s %9s %8s %-16s %s%s\n", JS(v, "name"),
		       JS(v, "state"), JI(spec, "cpus"), size_str(JI(v, "memory"), a, sizeof(a)),
		       size_str(JI(v, "excache"), b, sizeof(b)), c, miss, JS(v, "agent"), mem,
		       json_is_true(json_object_get(v, "pending")) ? "  (changes at next start)"
								   : "");
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
	}
	json_decref(out);
	return 0;
}

static int cmd_nodes(int argc, char **argv)
{
	int ret = help_or_args(argc, argv, 0,
			       "usage: legoctl nodes [--json]\n\nThe components: role, address, "
			       "capacity, load, health, and the vNodes\nthat depend on each.%s\n",
			       "");
	json_t *out, *c;
	size_t i;

	if (ret >= 0)
		return ret;
	out = api("GET", "/v1/components", NULL);
	if (!out)
		return 1;
	if (json_out) {
		print_json(out);
		json_decref(out);
		return 0;
	}
	printf("%-8s %-22s %-6s %10s %10s %10s %6s  %s\n", "ROLE", "ADDRESS", "HEALTH", "CAPACITY",
	       "RESERVED", "USED", "LOAD", "VNODES");
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

/* stop, start, destroy: NAME, no options. */
static int cmd_simple(int argc, char **argv)
{
	const char *cmd = argv[0];
	int ret = help_or_args(
		argc, argv, 1,
		!strcmp(cmd, "stop")	? "usage: legoctl stop NAME\n\nStop the vNode's VMM; its "
					  "placement and disk stay.%s\n"
		: !strcmp(cmd, "start") ? "usage: legoctl start NAME\n\nStart a stopped vNode "
					  "again (new --cpus and --memory take effect).%s\n"
					: "usage: legoctl destroy NAME\n\nStop the vNode and free "
					  "all it holds: memory slabs, disk volume, state.%s\n",
		"");
	json_t *out;

	if (ret >= 0)
		return ret;
	if (!strcmp(cmd, "destroy"))
		out = api("DELETE", "/v1/vnodes/%s", NULL, argv[1]);
	else
		out = api("POST", "/v1/vnodes/%s/%s", NULL, argv[1], cmd);
	if (!out)
		return 1;
	if (json_out)
		print_json(out);
	else
		printf("%s: %s\n", argv[1],
		       !strcmp(cmd, "stop")    ? "stopped"
		       : !strcmp(cmd, "start") ? "started"
					       : "destroyed");
	json_decref(out);
	return 0;
}

static int cmd_resize(int argc, char **argv)
{
	static const struct option opts[] = {{"excache", required_argument, NULL, 'x'},
					     {"memory", required_argument, NULL, 'm'},
					     {"cpus", required_argument, NULL, 'c'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	json_t *req = json_object(), *out;
	uint64_t sz;
	char *end;
	int o;

	opterr = 0;
	while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (o == 'h') {
			printf("usage: legoctl resize NAME [--excache SIZE] [--memory SIZE] [--cpus "
			       "N]\n\nThe ExCache changes at once, on the running vNode; memory and "
			       "vCPUs at its\nnext start (legoctl stop NAME; legoctl start NAME).\n");
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
		} else {
			return usage_fail("resize", "unknown option or missing value: '%s'",
					  argv[optind - 1]);
		}
	}
	if (optind != argc - 1 || !json_object_size(req))
		return usage_fail("resize", "%s", "give NAME and --excache, --memory or --cpus");
	out = api("POST", "/v1/vnodes/%s/resize", req, argv[optind]);
	json_decref(req);
	if (!out)
		return 1;
	if (json_out) {
		print_json(out);
	} else {
		char a[32];

		printf("%s: ExCache %s%s\n", argv[optind],
		       size_str(JI(out, "excache"), a, sizeof(a)),
		       json_is_true(json_object_get(out, "pending"))
			       ? "; memory and vCPUs change at the next start"
			       : "");
	}
	json_decref(out);
	return 0;
}

static int cmd_dumpxml(int argc, char **argv)
{
	char url[512], err[1024], *xml = NULL;
	int s = help_or_args(argc, argv, 1,
			     "usage: legoctl dumpxml NAME\n\nThe vNode as a libvirt domain XML "
			     "document (lego's settings in <metadata>);\n'legoctl create --from "
			     "FILE' takes it back.%s\n",
			     "");

	if (s >= 0)
		return s;
	if (find_manager())
		return 1;
	snprintf(url, sizeof(url), "%s/v1/vnodes/%s/xml", manager, argv[1]);
	s = http_call_raw("GET", url, NULL, NULL, &xml, TIMEOUT_MS, err, sizeof(err));
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

static struct termios saved_tty;
static bool tty_raw;

static void tty_restore(void)
{
	if (tty_raw)
		tcsetattr(0, TCSANOW, &saved_tty);
}

static int cmd_console(int argc, char **argv)
{
	bool once = false;
	const char *name = NULL;
	char agent[256], url[600], err[512];
	long long off = 0;
	json_t *v;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: legoctl console NAME [--once]\n\nThe vNode's serial console: "
			       "its output, and what you type goes to it.\nCtrl-] leaves. --once "
			       "prints the output so far and returns.\n");
			return 0;
		}
		if (!strcmp(argv[i], "--once"))
			once = true;
		else if (!name && argv[i][0] != '-')
			name = argv[i];
		else
			return usage_fail("console", "unexpected argument '%s'", argv[i]);
	}
	if (!name)
		return usage_fail("console", "%s", "give one vNode NAME");
	v = api("GET", "/v1/vnodes/%s", NULL, name);
	if (!v)
		return 1;
	snprintf(agent, sizeof(agent), "%s", JS(v, "agent"));
	json_decref(v);
	if (!once && isatty(0) && !tcgetattr(0, &saved_tty)) {
		struct termios t = saved_tty;

		cfmakeraw(&t);
		t.c_oflag |= OPOST | ONLCR;
		tty_raw = !tcsetattr(0, TCSANOW, &t);
		atexit(tty_restore);
		fprintf(stderr, "[console of %s; Ctrl-] leaves]\r\n", name);
	}
	bool input = !once;
	for (int idle = 0;;) {
		char *data = console_fetch(agent, name, &off);

		if (!data) {
			tty_restore();
			return 1;
		}
		size_t n = strlen(data);
		fwrite(data, 1, n, stdout);
		fflush(stdout);
		free(data);
		if (once)
			return 0;
		if (n)
			idle = 0;
		struct pollfd p = {.fd = 0, .events = POLLIN};
		if (input && poll(&p, 1, n ? 0 : 100) > 0) {
			char buf[1024];
			ssize_t r = read(0, buf, sizeof(buf));

			if (r <= 0) {
				input = false;
			} else {
				if (memchr(buf, 0x1d, (size_t)r)) /* Ctrl-] */
					break;
				snprintf(url, sizeof(url), "http://%s/v1/vnodes/%s/console", agent,
					 name);
				buf[r] = '\0';
				http_call_raw("POST", url, "application/octet-stream", buf, NULL,
					      5000, err, sizeof(err));
			}
		} else if (!input) {
			usleep(100 * 1000);
		}
		/* Every few seconds of silence, check that the vNode still runs. */
		if (!n && ++idle % 30 == 0) {
			v = api("GET", "/v1/vnodes/%s", NULL, name);
			if (!v || strcmp(JS(v, "state"), "running")) {
				tty_restore();
				fprintf(stderr, "\r\n[%s is %s]\r\n", name,
					v ? JS(v, "state") : "gone");
				json_decref(v);
				return 0;
			}
			json_decref(v);
		}
	}
	tty_restore();
	fprintf(stderr, "\r\n[left the console of %s]\n", name);
	return 0;
}

static void help(FILE *f)
{
	fprintf(f,
		"usage: legoctl [--json] [--manager URL] COMMAND [ARGS]\n"
		"\n"
		"Drive a lego cluster: vNodes whose memory lives on memory servers and whose\n"
		"disks live on a storage server.\n"
		"\n"
		"  up                 start a whole cluster on this machine\n"
		"  down               stop it (vNodes, agent, manager, servers)\n"
		"  create NAME ...    create and start a vNode (--from FILE.xml: libvirt XML)\n"
		"  list               the vNodes\n"
		"  nodes              the components\n"
		"  console NAME       a vNode's serial console\n"
		"  resize NAME ...    --excache now; --memory, --cpus at the next start\n"
		"  stop NAME          stop a vNode; start NAME runs it again\n"
		"  destroy NAME       stop it and free everything it holds\n"
		"  dumpxml NAME       a vNode as libvirt domain XML\n"
		"  demo failover      kill a vNode's primary memory server under a verifying\n"
		"                     workload, live (--guest payload|linux)\n"
		"\n"
		"  --json             machine-readable output\n"
		"  --manager URL      a manager elsewhere (default: the cluster under $LEGO_HOME)\n"
		"\n"
		"$LEGO_HOME: %s\n"
		"'legoctl COMMAND --help' tells more.\n",
		home);
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{"up", cmd_up},		 {"down", cmd_down},	   {"create", cmd_create},
		{"list", cmd_list},	 {"nodes", cmd_nodes},	   {"console", cmd_console},
		{"resize", cmd_resize},	 {"stop", cmd_simple},	   {"start", cmd_simple},
		{"destroy", cmd_simple}, {"dumpxml", cmd_dumpxml}, {"demo", cmd_demo},
	};
	char self[PATH_MAX];
	int i = 1;

	signal(SIGPIPE, SIG_IGN);
	if (getenv("LEGO_HOME") && *getenv("LEGO_HOME"))
		snprintf(home, sizeof(home), "%s", getenv("LEGO_HOME"));
	else
		snprintf(home, sizeof(home), "%s/.local/share/lego",
			 getenv("HOME") ? getenv("HOME") : "/root");
	snprintf(bindir, sizeof(bindir), "%s", exe_dir(self, sizeof(self)));
	/* Global options come before the command; --json may also come after it. */
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--json")) {
			json_out = true;
		} else if (!strcmp(argv[i], "--manager") && i + 1 < argc) {
			snprintf(manager, sizeof(manager), "%s", argv[++i]);
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			help(stdout);
			return 0;
		} else {
			fprintf(stderr, "%s: unknown option '%s'\n(try '%s --help')\n", prog,
				argv[i], prog);
			return 2;
		}
	}
	if (i == argc) {
		help(stderr);
		return 2;
	}
	for (int k = i + 1; k < argc; k++) {
		if (!strcmp(argv[k], "--json")) {
			json_out = true;
			memmove(&argv[k], &argv[k + 1], (argc - k) * sizeof(*argv));
			argc--, k--;
		}
	}
	for (size_t c = 0; c < ARRAY_SIZE(cmds); c++) {
		if (!strcmp(argv[i], cmds[c].name)) {
			optind = 1;
			return cmds[c].fn(argc - i, argv + i);
		}
	}
	fprintf(stderr, "%s: unknown command '%s'\n(try '%s --help')\n", prog, argv[i], prog);
	return 2;
}
