/* main.c - lego-agent's command line (see agent.h for what it does). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <unistd.h>

#include "agent.h"
#include "http.h"
#include "log.h"
#include "member.h"
#include "netdev.h"
#include "util.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: lego-agent --manager URL --identity PREFIX --dir DIR [--listen HOST:PORT]\n"
		"                  [options]\n"
		"\n"
		"The host agent: runs vNodes' VMMs (lego-vmm) here when the manager asks.\n"
		"\n"
		"  --manager URL      the lego-manager, e.g. https://127.0.0.1:7300\n" MEMBER_USAGE
		"  --dir DIR          per-vNode sockets, consoles and logs (created if missing)\n"
		"  --listen HOST:PORT the agent's API (default 127.0.0.1:7600)\n"
		"  --capacity SIZE    memory offered for ExCaches (default: half of this\n"
		"                     machine's RAM)\n"
		"  --vmm PATH         lego-vmm (default: next to lego-agent)\n"
		"  --kit DIR          the boot kit: vmlinuz, initrd.img (default: ../guest\n"
		"                     from lego-agent, as make builds it)\n"
		"  --payloads DIR     test payloads by name (default: KIT/payloads)\n"
		"  --bridge NAME      the vNodes' network: this bridge, made at start and\n"
		"                     removed at exit, a TAP per interface on it\n"
		"  --gateway A.B.C.D/N  the bridge's address: the vNodes' gateway\n"
		"  --jail on|off      run each lego-vmm jailed (default on, as root): a user\n"
		"                     of its own, no capabilities, a mount namespace with\n"
		"                     only its files (agent/jail.h)\n"
		"  -v, --verbose      more messages; -q, --quiet fewer\n");
}

/* Where lego-vmm, the kit and the payloads are, from the options or next to this program. */
static int find_paths(struct agent *a, const char *vmm, const char *kit, const char *payloads,
		      const char *dir)
{
	char self[1024], real[PATH_MAX];

	exe_dir(self, sizeof(self));
	if (vmm)
		snprintf(a->vmm, sizeof(a->vmm), "%s", vmm);
	else
		snprintf(a->vmm, sizeof(a->vmm), "%s/lego-vmm", self);
	if (kit)
		snprintf(a->kit, sizeof(a->kit), "%s", kit);
	else
		snprintf(a->kit, sizeof(a->kit), "%s/../guest", self);
	if (realpath(a->kit, real)) /* a plain path in every order */
		snprintf(a->kit, sizeof(a->kit), "%s", real);
	if (payloads)
		snprintf(a->payloads, sizeof(a->payloads), "%s", payloads);
	else if ((size_t)snprintf(a->payloads, sizeof(a->payloads), "%.*s/payloads",
				  (int)(sizeof(a->payloads) - 10), a->kit) >= sizeof(a->payloads))
		return -1;
	mkdir(dir, 0700);
	if (!realpath(dir, real) || strlen(real) >= sizeof(a->dir) - AGENT_NAME_MAX) {
		log_err("--dir %s: %s", dir, errno ? strerror(errno) : "path too long");
		return -1;
	}
	snprintf(a->dir, sizeof(a->dir), "%s", real);
	return 0;
}

/*
 * The vNodes' network: the bridge and its address. Without it the agent
 * still runs VMMs, and refuses the ones that ask for a network with why.
 */
static void network_up(struct agent *a)
{
	int ret;
	bool made;

	if (!a->bridge[0])
		return;

	ret = netdev_bridge(a->bridge, &made);
	/* its owner removes it at exit: the agent that made it or gives its gateway
	 * (a restarted one); an agent that only joins it leaves it to that one */
	a->own_bridge = made || a->gateway[0];
	if (!ret && a->gateway[0])
		ret = netdev_addr(a->bridge, a->gateway);
	if (!ret) {
		log_info("vNodes' network: bridge %s, gateway %s", a->bridge,
			 a->gateway[0] ? a->gateway : "(none)");
		return;
	}
	snprintf(a->net_error, sizeof(a->net_error), "the bridge %s could not be made: %s",
		 a->bridge, strerror(-ret));
	log_warn("no network for vNodes here: %s", a->net_error);
	a->bridge[0] = '\0'; /* not removed: it may be another's */
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"manager", required_argument, NULL, 'm'},
		{"dir", required_argument, NULL, 'd'},
		{"listen", required_argument, NULL, 'l'},
		{"capacity", required_argument, NULL, 'c'},
		{"vmm", required_argument, NULL, 'x'},
		{"kit", required_argument, NULL, 'k'},
		{"payloads", required_argument, NULL, 'p'},
		{"bridge", required_argument, NULL, 'b'},
		{"gateway", required_argument, NULL, 'g'},
		{"jail", required_argument, NULL, 'j'},
		{"verbose", no_argument, NULL, 'v'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		MEMBER_LONGOPTS,
		{NULL, 0, NULL, 0},
	};
	const char *dir = NULL, *kit = NULL, *payloads = NULL, *vmm = NULL, *jail = "on";
	struct member_opts mo = {0};
	struct agent a = {.lock = PTHREAD_MUTEX_INITIALIZER,
			  .changed = PTHREAD_COND_INITIALIZER,
			  .addr = "127.0.0.1:7600"};
	enum log_level level = LOG_INFO;
	struct beat *beat;
	struct httpd *h;
	char err[512];
	sigset_t set;
	int c, sig;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":vqh", longopts, NULL)) != -1) {
		switch (c) {
		case 'm':
			mo.manager = optarg;
			break;
		case 'd':
			dir = optarg;
			break;
		case 'l':
			a.addr = optarg;
			break;
		case 'x':
			vmm = optarg;
			break;
		case 'k':
			kit = optarg;
			break;
		case 'p':
			payloads = optarg;
			break;
		case 'b':
			if (!optarg[0] || strlen(optarg) >= sizeof(a.bridge))
				return usage_error("--bridge: '%s' is not a network interface name",
						   optarg);
			snprintf(a.bridge, sizeof(a.bridge), "%s", optarg);
			break;
		case 'g':
			snprintf(a.gateway, sizeof(a.gateway), "%s", optarg);
			break;
		case 'j':
			if (strcmp(optarg, "on") && strcmp(optarg, "off"))
				return usage_error("--jail: give on or off, not '%s'", optarg);
			jail = optarg;
			break;
		case 'c':
			if (parse_size(optarg, &a.capacity) || !a.capacity)
				return usage_error("--capacity: '%s' is not a size (e.g. 8G)",
						   optarg);
			break;
		case 'v':
			level = LOG_DEBUG;
			break;
		case 'q':
			level = LOG_ERR;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case ':':
			return usage_error("%s needs a value", argv[optind - 1]);
		default:
			if (member_opt(&mo, c, optarg))
				break;
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (!mo.manager || !dir)
		return usage_error("%s: give --manager URL and --dir DIR", "missing options");
	log_init("lego-agent", level);
	umask(077); /* consoles, orders and logs are the vNodes' owner's */
	if (member_start(&mo, "agent", a.addr, a.advertise, sizeof(a.advertise), &a.id, err,
			 sizeof(err))) {
		log_err("%s", err);
		return 1;
	}
	a.tls_ca = pki_read(a.id.ca);
	if (!a.tls_ca) {
		log_err("%s: %s", a.id.ca, strerror(errno));
		return 1;
	}
	if (find_paths(&a, vmm, kit, payloads, dir))
		return 1;
	if (!strcmp(jail, "on") && geteuid()) {
		log_warn("not root: VMMs run as this user, not jailed (--jail needs root)");
	} else if (!strcmp(jail, "on")) {
		snprintf(a.jail_root, sizeof(a.jail_root), "%s/.jail", a.dir);
		if (mkdir(a.jail_root, 0700) && errno != EEXIST) {
			log_err("%s: %s", a.jail_root, strerror(errno));
			return 1;
		}
	}
	if (!a.capacity)
		a.capacity =
			(uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE) / 2;
	a.cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (getrandom(&a.next_tap, sizeof(a.next_tap), 0) < 0) /* see complete() in run.c */
		a.next_tap = (unsigned)getpid();
	network_up(&a);
	if ((c = proc_adopt(&a)))
		log_info("took back %d running VMM(s)", c);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (proc_start_reaper(&a)) {
		log_err("cannot start the reaper thread");
		return 1;
	}
	h = agent_api_start(&a, err, sizeof(err));
	if (!h) {
		log_err("%s", err);
		return 1;
	}
	agent_term_init(&a);
	beat = beat_start(mo.manager, 1000, agent_beat, &a);
	beat_answers(beat, agent_beat_answer);
	log_info("running VMMs for the manager %s; API on https://%s", mo.manager, a.addr);
	sigwait(&set, &sig);
	log_info("stopping (%s): stopping every VMM here", strsignal(sig));
	beat_stop(beat);
	httpd_stop(h);
	pthread_mutex_lock(&a.lock);
	while (a.nr) {
		char name[AGENT_NAME_MAX];
		struct vmm_proc *p;

		snprintf(name, sizeof(name), "%s", a.procs[0].name);
		proc_stop(&a, name);
		if ((p = proc_find(&a, name)))
			proc_forget(&a, p);
	}
	pthread_mutex_unlock(&a.lock);
	if (a.bridge[0] && a.own_bridge && (c = netdev_delete(a.bridge)))
		log_warn("cannot remove the bridge %s: %s", a.bridge, strerror(-c));
	return 0;
}
