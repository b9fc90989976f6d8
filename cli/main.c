/* main.c - legoctl: its global options and the commands (legoctl.h). */
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "http.h"
#include "legoctl.h"
#include "util.h"

static void help(struct legoctl *lc, FILE *f)
{
	fprintf(f,
		"usage: legoctl [--json] [--manager URL] [--as NAME] COMMAND [ARGS]\n"
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
		"  resize NAME ...    --memory, --excache live; --cpus at the next start\n"
		"  stop NAME          shut a vNode down (power button; --force cuts the power);\n"
		"                     start NAME runs it again\n"
		"  reboot NAME        the guest reboots (--force: a reset)\n"
		"  pause NAME         stop its vCPUs; resume NAME lets them run on\n"
		"  migrate NAME       move its VMM to another host agent while it runs (--to)\n"
		"  snapshot NAME SNAP save it and stop it; restore NAME brings it back\n"
		"                     (restore NAME --name COPY: a copy runs, NAME stays saved)\n"
		"  destroy NAME       stop it and free everything it holds\n"
		"  dumpxml NAME       a vNode as libvirt domain XML\n"
		"  demo failover      kill a vNode's primary memory server under a verifying\n"
		"                     workload, live (--guest payload|linux)\n"
		"  token create       a join token: how a new host's component joins the cluster\n"
		"\n"
		"  --json             machine-readable output\n"
		"  --manager URL      a manager elsewhere (default: the cluster under $LEGO_HOME)\n"
		"  --as NAME          whose certificate to present: $LEGO_HOME/pki/NAME (default\n"
		"                     admin; reader may only read), or a PREFIX with a '/'\n"
		"\n"
		"$LEGO_HOME: %s\n"
		"'legoctl COMMAND --help' tells more.\n",
		lc->home);
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(struct legoctl *lc, int, char **);
	} cmds[] = {
		{"up", cmd_up},		  {"down", cmd_down},	      {"create", cmd_create},
		{"list", cmd_list},	  {"nodes", cmd_nodes},	      {"console", cmd_console},
		{"resize", cmd_resize},	  {"stop", cmd_power},	      {"reboot", cmd_power},
		{"start", cmd_simple},	  {"destroy", cmd_simple},    {"dumpxml", cmd_dumpxml},
		{"demo", cmd_demo},	  {"pause", cmd_pause},	      {"resume", cmd_pause},
		{"migrate", cmd_migrate}, {"snapshot", cmd_snapshot}, {"restore", cmd_restore},
		{"token", cmd_token},
	};
	struct legoctl ctx = {0}, *lc = &ctx;
	char self[PATH_MAX];
	int i = 1;

	signal(SIGPIPE, SIG_IGN);
	umask(077); /* what legoctl writes under $LEGO_HOME is its owner's */
	if (getenv("LEGO_HOME") && *getenv("LEGO_HOME"))
		snprintf(lc->home, sizeof(lc->home), "%s", getenv("LEGO_HOME"));
	else
		snprintf(lc->home, sizeof(lc->home), "%s/.local/share/lego",
			 getenv("HOME") ? getenv("HOME") : "/root");
	snprintf(lc->bindir, sizeof(lc->bindir), "%s", exe_dir(self, sizeof(self)));
	/* Global options come before the command; --json may also come after it. */
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--json")) {
			lc->json = true;
		} else if (!strcmp(argv[i], "--manager") && i + 1 < argc) {
			snprintf(lc->manager, sizeof(lc->manager), "%s", argv[++i]);
		} else if (!strcmp(argv[i], "--as") && i + 1 < argc) {
			snprintf(lc->as, sizeof(lc->as), "%s", argv[++i]);
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			help(lc, stdout);
			return 0;
		} else {
			fprintf(stderr, "%s: unknown option '%s'\n(try '%s --help')\n", "legoctl",
				argv[i], "legoctl");
			return 2;
		}
	}
	if (i == argc) {
		help(lc, stderr);
		return 2;
	}
	for (int k = i + 1; k < argc; k++) {
		if (!strcmp(argv[k], "--json")) {
			lc->json = true;
			memmove(&argv[k], &argv[k + 1], (argc - k) * sizeof(*argv));
			argc--, k--;
		}
	}
	for (size_t c = 0; c < ARRAY_SIZE(cmds); c++) {
		if (!strcmp(argv[i], cmds[c].name)) {
			optind = 1;
			return cmds[c].fn(lc, argc - i, argv + i);
		}
	}
	fprintf(stderr, "%s: unknown command '%s'\n(try '%s --help')\n", "legoctl", argv[i],
		"legoctl");
	return 2;
}
