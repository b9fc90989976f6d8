/* local.c - legoctl up and down: a whole cluster on this machine, under $LEGO_HOME. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <glob.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "http.h"
#include "legoctl.h"
#include "pki.h"
#include "util.h"

/* ---- up / down ---- */

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

pid_t read_pid(struct legoctl *lc, const char *name)
{
	char p[PATH_MAX];
	FILE *f;
	int pid = 0;

	snprintf(p, sizeof(p), "%s/run/%s.pid", lc->home, name);
	f = fopen(p, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%d", &pid) != 1)
		pid = 0;
	fclose(f);
	return pid > 0 && alive(pid) ? pid : 0;
}

static int spawn_daemon(struct legoctl *lc, struct daemon *d)
{
	char p[PATH_MAX];
	pid_t pid;
	FILE *f;
	int fd;

	snprintf(p, sizeof(p), "%s/logs/%s.log", lc->home, d->name);
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
	snprintf(p, sizeof(p), "%s/run/%s.pid", lc->home, d->name);
	f = fopen(p, "w");
	if (f) {
		fprintf(f, "%d\n", pid);
		fclose(f);
	}
	return 0;
}

int free_port(void)
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

/*
 * The local cluster's network: a bridge and a /24 of 10.77.0.0/16, both
 * named from $LEGO_HOME, so that two clusters on one host do not meet; a
 * subnet that an interface here already has an address in is passed over.
 */
static json_t *choose_network(const char *home)
{
	uint32_t h = 2166136261u; /* FNV-1a of the path */
	struct ifaddrs *ifs = NULL;
	unsigned n;

	for (const char *p = home; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	getifaddrs(&ifs);
	for (n = h % 250;; n = (n + 1) % 250) {
		bool taken = false;

		for (struct ifaddrs *i = ifs; i && !taken; i = i->ifa_next) {
			const struct sockaddr_in *a = (const struct sockaddr_in *)i->ifa_addr;
			uint32_t ip = a && a->sin_family == AF_INET ? ntohl(a->sin_addr.s_addr) : 0;

			taken = (ip >> 8) == ((10u << 16 | 77u << 8 | n));
		}
		if (!taken || n == (h + 249) % 250)
			break;
	}
	freeifaddrs(ifs);
	return json_pack("{s:o,s:o,s:o}", "bridge", json_sprintf("lgb%04x", h & 0xffff), "subnet",
			 json_sprintf("10.77.%u.0/24", n), "gateway",
			 json_sprintf("10.77.%u.1/24", n));
}

/*
 * The local cluster's identity under $LEGO_HOME/pki: made on the first up
 * (its CA, the manager's, admin's and reader's certificates), then a
 * certificate for each local component that has none. Their prefixes
 * (manager, memsrv-1, memsrv-2, storsrv, agent, agent-N) into @id.
 */
static int local_identities(struct legoctl *lc, int nr_agents, char *pki, char (*id)[PATH_MAX + 16],
			    size_t idlen)
{
	static const char *const local[] = {"127.0.0.1", "localhost", NULL};
	const char *names[4 + MAX_AGENTS] = {"manager", "memsrv-1", "memsrv-2", "storsrv",
					     "agent",	"agent-2",  "agent-3",	"agent-4"};
	const unsigned roles[4 + MAX_AGENTS] = {PKI_MANAGER, PKI_MEMSRV, PKI_MEMSRV, PKI_STORSRV,
						PKI_AGENT,   PKI_AGENT,	 PKI_AGENT,  PKI_AGENT};
	char p[PATH_MAX + 32], err[1024];

	home_path(lc, pki, PATH_MAX, "pki");
	snprintf(p, sizeof(p), "%s/ca.key", pki);
	if (access(p, F_OK)) {
		uint8_t r[4];
		char cluster[32];

		if (getrandom(r, sizeof(r), 0) != sizeof(r))
			return fail("no randomness for the cluster's name");
		snprintf(cluster, sizeof(cluster), "lego-%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
		if (pki_init_cluster(pki, cluster, NULL, err, sizeof(err)))
			return fail("cannot make the cluster's identity: %s", err);
		if (!lc->json && !lc->up_quietly)
			printf("  %-9s made: cluster '%s', its CA and certificates in %s\n",
			       "identity", cluster, pki);
	}
	for (int i = 0; i < 4 + nr_agents; i++) {
		if ((size_t)snprintf(id[i], idlen, "%.*s/%s", PATH_MAX, pki, names[i]) >= idlen)
			return fail("%s: path too long", pki);
		snprintf(p, sizeof(p), "%.*s.pem", PATH_MAX, id[i]);
		if (!access(p, F_OK))
			continue;
		struct pki_cert_req req = {.name = names[i], .role = roles[i], .hosts = local};
		if (pki_issue(pki, &req, err, sizeof(err)))
			return fail("cannot make %s's certificate: %s", names[i], err);
	}
	return load_identity(lc);
}

static void up_help(struct legoctl *lc)
{
	printf("usage: legoctl up [--memsrv-capacity SIZE] [--agent-capacity SIZE] [--agents N]\n"
	       "                 [--jail on|off] [--managers N [--etcd-members 1|3]]\n"
	       "\n"
	       "Start a whole cluster on this machine, under $LEGO_HOME (%s):\n"
	       "a manager, two memory servers, a storage server and a host agent. Parts that\n"
	       "run already are left alone, so 'up' also restarts what has stopped.\n"
	       "\n"
	       "  --memsrv-capacity SIZE  each memory server's capacity (default 4G)\n"
	       "  --agent-capacity SIZE   memory the agent offers for ExCaches (default: half\n"
	       "                          of this machine's RAM)\n"
	       "  --agents N              N host agents (1 to %d, default 1; kept for later\n"
	       "                          ups): vNodes migrate between them (legoctl migrate)\n"
	       "  --jail on|off           the agents jail each lego-vmm (default on, as root:\n"
	       "                          its own user, no capabilities, only its files);\n"
	       "                          off runs them as the agent's user, e.g. to debug one\n"
	       "  --managers N            N managers (1 to %d, default 1; kept for later ups)\n"
	       "                          sharing their state in a local etcd: one leads, the\n"
	       "                          others stand by and take over within seconds if it\n"
	       "                          dies (a deposed one stops: 'legoctl up' restarts it)\n"
	       "  --etcd-members 1|3      etcd's members with several managers (default 3)\n",
	       lc->home, MAX_AGENTS, MAX_MANAGERS);
}

int cmd_up(struct legoctl *lc, int argc, char **argv)
{
	static const struct option opts[] = {{"memsrv-capacity", required_argument, NULL, 'm'},
					     {"agent-capacity", required_argument, NULL, 'a'},
					     {"agents", required_argument, NULL, 'n'},
					     {"jail", required_argument, NULL, 'j'},
					     {"managers", required_argument, NULL, 'M'},
					     {"etcd-members", required_argument, NULL, 'E'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	const char *mcap = "4G", *acap = NULL, *jail = "on";
	char p[PATH_MAX], cfg[PATH_MAX], db[PATH_MAX], vols[PATH_MAX], vdir[PATH_MAX];
	char bin[6][PATH_MAX], addr[4 + MAX_AGENTS][256], bridge[32], subnet[32], gateway[32];
	char vdirs[MAX_AGENTS][PATH_MAX + 16], anames[MAX_AGENTS][24];
	char pki[PATH_MAX], id[4 + MAX_AGENTS][PATH_MAX + 16];
	json_t *c, *more;
	uint64_t sz;
	int o, nr_agents = 0, nr_managers = 0, nr_etcd = 0;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (o == 'h')
			return up_help(lc), 0;
		if (o == 'm')
			mcap = optarg;
		else if (o == 'a')
			acap = optarg;
		else if (o == 'n' && (nr_agents = atoi(optarg)) >= 1 && nr_agents <= MAX_AGENTS)
			;
		else if (o == 'n')
			return usage_fail("up", "--agents: '%s' is not from 1 to 4", optarg);
		else if (o == 'j' && (!strcmp(optarg, "on") || !strcmp(optarg, "off")))
			jail = optarg;
		else if (o == 'j')
			return usage_fail("up", "--jail: give on or off, not '%s'", optarg);
		else if (o == 'M' && (nr_managers = atoi(optarg)) >= 1 &&
			 nr_managers <= MAX_MANAGERS)
			;
		else if (o == 'M')
			return usage_fail("up", "--managers: '%s' is not from 1 to 3", optarg);
		else if (o == 'E' && (!strcmp(optarg, "1") || !strcmp(optarg, "3")))
			nr_etcd = atoi(optarg);
		else if (o == 'E')
			return usage_fail("up", "--etcd-members: give 1 or 3, not '%s'", optarg);
		else
			return usage_fail("up", "%s", "unknown option");
	}
	if (parse_size(mcap, &sz) || (acap && parse_size(acap, &sz)))
		return usage_fail("up", "'%s' is not a size (e.g. 4G)", acap ? acap : mcap);
	for (const char *d = "", *const *l = (const char *[]){"", "logs", "run", "volumes",
							      "vnodes", "pki", NULL};
	     (d = *l); l++) {
		home_path(lc, p, sizeof(p), d);
		if (mkdir(p, 0700) && errno != EEXIST) {
			/* mkdir -p for $LEGO_HOME itself */
			char cmd[PATH_MAX + 16];

			snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", p);
			if (system(cmd))
				return fail("cannot create %s: %s", p, strerror(errno));
		}
	}
	/* The addresses are chosen once and kept: a restarted part comes back where it was. */
	home_path(lc, cfg, sizeof(cfg), "cluster.json");
	c = json_load_file(cfg, 0, NULL);
	if (!c)
		c = json_pack("{s:o,s:[o,o],s:o,s:o}", "manager",
			      json_sprintf("https://127.0.0.1:%d", free_port()), "memsrv",
			      json_sprintf("127.0.0.1:%d", free_port()),
			      json_sprintf("127.0.0.1:%d", free_port()), "storsrv",
			      json_sprintf("127.0.0.1:%d", free_port()), "agent",
			      json_sprintf("127.0.0.1:%d", free_port()));
	const char *old = json_string_value(json_object_get(c, "manager"));
	if (old && !strncmp(old, "http://", 7)) /* made before the cluster had TLS */
		json_object_set_new(c, "manager", json_sprintf("https://%s", old + 7));
	if (!json_object_get(c, "network")) /* its bridge and subnet, chosen once as well */
		json_object_set_new(c, "network", choose_network(lc->home));
	/* agents beyond the first, on the same bridge: "more_agents" */
	if (!json_is_array(json_object_get(c, "more_agents")))
		json_object_set_new(c, "more_agents", json_array());
	more = json_object_get(c, "more_agents");
	while (nr_agents && (int)json_array_size(more) < nr_agents - 1)
		json_array_append_new(more, json_sprintf("127.0.0.1:%d", free_port()));
	nr_agents = 1 + (int)json_array_size(more);
	if (managers_config(lc, c, nr_managers, nr_etcd))
		return fail("--managers: a cluster's managers cannot go from several back to one "
			    "(its state is in etcd)");
	if (json_dump_file(c, cfg, JSON_INDENT(2)))
		return fail("cannot write %s", cfg);
	snprintf(bridge, sizeof(bridge), "%s", JS(json_object_get(c, "network"), "bridge"));
	snprintf(subnet, sizeof(subnet), "%s", JS(json_object_get(c, "network"), "subnet"));
	snprintf(gateway, sizeof(gateway), "%s", JS(json_object_get(c, "network"), "gateway"));
	const char *murl = json_string_value(json_object_get(c, "manager"));
	snprintf(addr[0], 256, "%s", murl && strlen(murl) > 8 ? murl + 8 : "");
	managers_of(c, lc->manager, sizeof(lc->manager));
	memset(&lc->ms, 0, sizeof(lc->ms));
	snprintf(addr[1], 256, "%s",
		 json_string_value(json_array_get(json_object_get(c, "memsrv"), 0)));
	snprintf(addr[2], 256, "%s",
		 json_string_value(json_array_get(json_object_get(c, "memsrv"), 1)));
	snprintf(addr[3], 256, "%s", JS(c, "storsrv"));
	snprintf(addr[4], 256, "%s", JS(c, "agent"));
	for (int k = 1; k < nr_agents; k++)
		snprintf(addr[4 + k], 256, "%s", json_string_value(json_array_get(more, k - 1)));
	struct ha ha;
	if (ha_daemons(lc, c, subnet, &ha))
		return 1;
	json_decref(c);
	const char *names[] = {"lego-manager", "lego-memsrv", "lego-storsrv", "lego-agent"};
	for (int i = 0; i < 4; i++) {
		snprintf(bin[i], sizeof(bin[i]), "%s/%s", lc->bindir, names[i]);
		if (access(bin[i], X_OK))
			return fail("%s is missing: build it with 'make'", bin[i]);
	}
	if (local_identities(lc, nr_agents, pki, id, sizeof(id[0])) ||
	    (ha.nr_etcd && etcd_identity(lc, pki)))
		return 1;
	home_path(lc, db, sizeof(db), "manager.db");
	home_path(lc, vols, sizeof(vols), "volumes");
	home_path(lc, vdir, sizeof(vdir), "vnodes");
	char agent_cap[32];
	snprintf(agent_cap, sizeof(agent_cap), "%s", acap ? acap : "");
	for (int k = 1; k < nr_agents; k++) {
		snprintf(anames[k], sizeof(anames[k]), "agent-%d", k + 1);
		snprintf(vdirs[k], sizeof(vdirs[k]), "%s-%d", vdir, k + 1);
		if (mkdir(vdirs[k], 0700) && errno != EEXIST)
			return fail("cannot create %s: %s", vdirs[k], strerror(errno));
	}
	struct daemon ds[] = {
		{"manager",
		 {bin[0], ha.nr_etcd ? "--store" : "--db", ha.nr_etcd ? ha.store : db, "--pki", pki,
		  "--listen", addr[0], "--subnet", subnet, NULL}},
		{"memsrv-1",
		 {bin[1], "--listen", addr[1], "--capacity", (char *)mcap, "--manager", lc->manager,
		  "--identity", id[1], NULL}},
		{"memsrv-2",
		 {bin[1], "--listen", addr[2], "--capacity", (char *)mcap, "--manager", lc->manager,
		  "--identity", id[2], NULL}},
		{"storsrv",
		 {bin[2], "--listen", addr[3], "--data", vols, "--manager", lc->manager,
		  "--identity", id[3], NULL}},
		{"agent",
		 {bin[3], "--listen", addr[4], "--dir", vdir, "--manager", lc->manager,
		  "--identity", id[4], "--bridge", bridge, "--gateway", gateway, "--jail",
		  (char *)jail, acap ? "--capacity" : NULL, agent_cap, NULL}},
		/* the others join the first's bridge (it owns it), each with a directory */
		{anames[1],
		 {bin[3], "--listen", addr[5], "--dir", vdirs[1], "--manager", lc->manager,
		  "--identity", id[5], "--bridge", bridge, "--jail", (char *)jail,
		  acap ? "--capacity" : NULL, agent_cap, NULL}},
		{anames[2],
		 {bin[3], "--listen", addr[6], "--dir", vdirs[2], "--manager", lc->manager,
		  "--identity", id[6], "--bridge", bridge, "--jail", (char *)jail,
		  acap ? "--capacity" : NULL, agent_cap, NULL}},
		{anames[3],
		 {bin[3], "--listen", addr[7], "--dir", vdirs[3], "--manager", lc->manager,
		  "--identity", id[7], "--bridge", bridge, "--jail", (char *)jail,
		  acap ? "--capacity" : NULL, agent_cap, NULL}},
	};
	int started = 0;
	bool fresh[ARRAY_SIZE(ds)] = {false}; /* started now: ready once it answers */
	/* etcd and the standby managers first: the first manager's store must be there */
	for (int i = 0; i < ha.nr; i++) {
		if (read_pid(lc, ha.d[i].name)) {
			if (!lc->json && !lc->up_quietly)
				printf("  %-9s runs already (pid %d)\n", ha.d[i].name,
				       read_pid(lc, ha.d[i].name));
			continue;
		}
		if (spawn_daemon(lc, &ha.d[i]))
			return 1;
		started++;
		if (!lc->json)
			printf("%s%-9s started on %s\n", lc->up_quietly ? "          " : "  ",
			       ha.d[i].name, ha.addr[i]);
	}
	for (size_t i = 0; i < ARRAY_SIZE(ds) - (MAX_AGENTS - nr_agents); i++) {
		pid_t pid = read_pid(lc, ds[i].name);

		if (pid) {
			if (!lc->json && !lc->up_quietly)
				printf("  %-9s runs already (pid %d)\n", ds[i].name, pid);
			continue;
		}
		if (spawn_daemon(lc, &ds[i]))
			return 1;
		fresh[i] = true;
		started++;
		if (!lc->json)
			printf("%s%-9s started on %s\n", lc->up_quietly ? "          " : "  ",
			       ds[i].name, i ? ds[i].argv[2] : addr[0]);
	}
	if (lc->up_quietly && !started)
		return 0;
	/* Ready when the manager knows all four components. */
	if (!lc->json && !lc->up_quietly) {
		printf("waiting for the components to register with the manager ");
		fflush(stdout);
	}
	for (int ms = 0;; ms += 200) {
		char err[512];
		json_t *st = NULL;
		int s;

		s = api_call(lc, "GET", "/v1/components", NULL, &st, 2000, err, sizeof(err));
		if (s == 200) {
			int up = 0;
			size_t i;
			json_t *e;

			json_array_foreach(json_object_get(st, "components"), i, e)
			{
				for (int k = 1; k < 4 + nr_agents; k++)
					up += !strcmp(JS(e, "addr"), addr[k]) &&
					      !strcmp(JS(e, "health"), "up");
			}
			json_decref(st);
			/* a component just restarted may still be "up" from before its death:
			 * it is ready when it accepts connections again */
			for (size_t k = 1; up == 3 + nr_agents && k < ARRAY_SIZE(ds); k++) {
				int fd;

				if (!fresh[k])
					continue;
				fd = tcp_connect(addr[k], 200, err, sizeof(err));
				if (fd < 0)
					up = -1;
				else
					close(fd);
			}
			if (up == 3 + nr_agents)
				break;
		}
		if (ms > 30000) {
			if (!lc->json)
				printf("\n");
			return fail("the cluster did not come up in 30 s; see the logs in %s/logs",
				    lc->home);
		}
		if (!lc->json && !lc->up_quietly && ms % 1000 == 0) {
			printf(".");
			fflush(stdout);
		}
		usleep(200 * 1000);
	}
	if (lc->json) {
		json_t *j = json_pack("{s:s,s:s,s:i}", "home", lc->home, "manager", lc->manager,
				      "started", started);
		print_json(j);
		json_decref(j);
	} else if (!lc->up_quietly) {
		printf(" up\n\ncluster up under %s; manager API at %s\n"
		       "next: legoctl create NAME   (legoctl create --help), legoctl nodes\n",
		       lc->home, lc->manager);
	}
	return 0;
}

/*
 * The VMMs an agent left behind (it was killed, say): every vnodes/NAME/vmm.pid
 * whose process still runs lego-vmm. Stopped like the agent would: SIGTERM,
 * then SIGKILL after 5 s. Returns how many there were.
 */
static int stop_orphan_vmms(struct legoctl *lc)
{
	char p[PATH_MAX], exe[PATH_MAX];
	glob_t g;
	int n = 0;

	snprintf(p, sizeof(p), "%s/vnodes*/*/vmm.pid", lc->home);
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
		if (!lc->json)
			printf("  %-9s stopped a VMM its agent had left (pid %d, %s)\n", "", pid,
			       g.gl_pathv[i]);
		n++;
	}
	globfree(&g);
	return n;
}

int cmd_down(struct legoctl *lc, int argc, char **argv)
{
	/* The agents first: they stop the VMMs they run. */
	const char *order[] = {"agent",	    "agent-2",	 "agent-3", "agent-4",	"manager",
			       "manager-2", "manager-3", "storsrv", "memsrv-1", "memsrv-2",
			       "etcd-1",    "etcd-2",	 "etcd-3"};
	int stopped = 0;

	int ret =
		help_or_args(argc, argv, 0,
			     "usage: legoctl down\n\nStop the local cluster under $LEGO_HOME (%s): "
			     "its vNodes, agent, manager\nand servers. State, volumes and logs "
			     "stay; 'legoctl up' starts it again.\n",
			     lc->home);

	if (ret >= 0)
		return ret;
	for (size_t i = 0; i < ARRAY_SIZE(order); i++) {
		pid_t pid = read_pid(lc, order[i]);
		char p[PATH_MAX];

		if (pid) {
			kill(pid, SIGTERM);
			for (int ms = 0; alive(pid) && ms < 15000; ms += 50)
				usleep(50 * 1000);
			if (alive(pid)) {
				fprintf(stderr, "%s: %s did not stop in 15 s: killing it\n",
					"legoctl", order[i]);
				kill(pid, SIGKILL);
			}
			stopped++;
			if (!lc->json)
				printf("  %-9s stopped\n", order[i]);
		}
		snprintf(p, sizeof(p), "%s/run/%s.pid", lc->home, order[i]);
		unlink(p);
		if (i == MAX_AGENTS - 1) /* after the agents: whatever VMMs they did not stop */
			stopped += stop_orphan_vmms(lc);
	}
	if (lc->json)
		printf("{\"stopped\": %d}\n", stopped);
	else if (!stopped)
		printf("no cluster runs under %s\n", lc->home);
	return 0;
}
