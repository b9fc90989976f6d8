/*
 * args.c - lego-vmm's command line: every module's options, the vNode order
 * from a file or a descriptor (--order, --order-fd), a snapshot to restore
 * (--restore), and the options that would put a secret on the command line,
 * refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"
#include "xport.h"
#include "sandbox.h"
#include "vmm.h"

static void usage(struct vmm *v, FILE *f)
{
	fprintf(f,
		"usage: lego-vmm --kernel BZIMAGE [--initrd FILE] [--append TEXT] [options]\n"
		"       lego-vmm --payload FILE [options]\n"
		"       lego-vmm --order FILE | --order-fd N [options]\n"
		"\n"
		"Run a vNode's processor component: a KVM guest with its RAM and vCPUs.\n"
		"\n"
		"  --order FILE     the vNode order as JSON (common/order.h), as the host agent\n"
		"                   writes it; it holds credentials, so a FILE others may read\n"
		"                   is refused. Options after it change it.\n"
		"  --order-fd N     the same, read from inherited descriptor N (then closed)\n"
		"  --restore FILE   bring back the vNode a snapshot holds (control command\n"
		"                   snapshot), its order included; options after it change it,\n"
		"                   an --order after it replaces it\n");
	for (int i = 0; i < v->nr_modules; i++) {
		for (const struct vmm_option *o = v->modules[i]->options; o && o->name; o++) {
			char head[64];

			snprintf(head, sizeof(head), "--%s%s%s", o->name, o->arg ? " " : "",
				 o->arg ? o->arg : "");
			if (strlen(head) < 17)
				fprintf(f, "  %-17s%s\n", head, o->help);
			else
				fprintf(f, "  %s  %s\n", head, o->help);
		}
	}
	fprintf(f,
		"  --stats          print run statistics as JSON lines on stderr at exit\n"
		"  --check-leaks    after tearing down, report any descriptor, thread or\n"
		"                   mapping still held (for tests)\n"
		"  --seccomp MODE   on (default): the vCPU, device and ExCache threads each run\n"
		"                   under a seccomp filter of the system calls they need, and\n"
		"                   one outside it stops the VMM, naming the call; log: such a\n"
		"                   call is logged by the kernel (dmesg, type=1326) and allowed;\n"
		"                   off. LEGO_SECCOMP in the environment overrides it.\n"
		"  -v, --verbose    more messages; -q, --quiet fewer\n"
		"  -h, --help       this text; --version the version\n"
		"\n"
		"Exit status: the status the guest reports (0-255), %d for a wrong command line,\n"
		"%d when the host cannot run the VM, %d when the guest had to be stopped for a\n"
		"fault (the message and the guest's registers are on stderr). SIGTERM or SIGINT\n"
		"stops the guest and exits 0.\n",
		VM_EXIT_USAGE, VM_EXIT_VMM_ERROR, VM_EXIT_GUEST_FAULT);
}

/* The order read from @fd, onto what the options before it said (after --restore: instead of
 * the snapshot's order, which was made for the host it was taken on). */
static int read_order(struct vmm *v, int fd)
{
	char err[512];

	if (v->restoring) {
		order_free(&v->order);
		order_init(&v->order);
	}

	return order_read_fd(&v->order, fd, err, sizeof(err)) ? usage_error("%s", err) : 0;
}

static int order_file(struct vmm *v, const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret;

	if (fd < 0 || fstat(fd, &st)) {
		fprintf(stderr, "lego-vmm: --order %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return VM_EXIT_USAGE;
	}
	ret = read_order(v, fd);
	close(fd);
	if (!ret && (st.st_mode & 077)) {
		bool secret = v->order.has_token || v->order.backup.has_token ||
			      v->order.has_migrate_token;

		for (int i = 0; i < v->order.nr_disks; i++)
			secret |= v->order.disks[i].has_token;
		if (secret) {
			fprintf(stderr,
				"lego-vmm: --order %s holds credentials and others may read it: "
				"chmod 600 %s\n",
				path, path);
			return VM_EXIT_USAGE;
		}
	}
	return ret;
}

/* --restore FILE: the snapshot, checked whole, and the order it holds. */
static int restore_file(struct vmm *v, const char *path)
{
	struct snap *sn = calloc(1, sizeof(*sn));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	const char *text;
	uint64_t len;
	char err[512];
	json_t *j;
	int ret;

	if (!sn || fd < 0) {
		fprintf(stderr, "lego-vmm: --restore %s: %s\n", path, strerror(errno));
		free(sn);
		if (fd >= 0)
			close(fd);
		return VM_EXIT_USAGE;
	}
	ret = snap_open(sn, fd, err, sizeof(err));
	close(fd);
	if (ret) {
		free(sn);
		fprintf(stderr, "lego-vmm: --restore %s: %s\n", path, err);
		return VM_EXIT_USAGE;
	}
	text = snap_get(sn, "order", &len);
	j = text ? json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
	if (!j || order_from_json(&v->order, j, err, sizeof(err))) {
		fprintf(stderr, "lego-vmm: --restore %s: %s\n", path,
			j ? err : "the snapshot holds no order");
		json_decref(j);
		snap_close(sn);
		free(sn);
		return VM_EXIT_USAGE;
	}
	json_decref(j);
	if (v->restoring) {
		snap_close(v->restoring);
		free(v->restoring);
	}
	v->restoring = sn;
	return 0;
}

enum {
	OPT_ORDER = 1000,
	OPT_ORDER_FD,
	OPT_RESTORE,
	OPT_STATS,
	OPT_LEAKS,
	OPT_SECCOMP,
	OPT_VERSION,
	OPT_MODULE = 2000
};

/*
 * Options that would put a secret in the command line, where every user of
 * the host reads it (ps, /proc/PID/cmdline): refused, with where it goes.
 */
static int secret_option(const char *arg)
{
	static const char *const secrets[][2] = {
		{"--token", "\"token\""},
		{"--disk-token", "the disk's \"token\" in \"disks\""},
		{"--migrate-token", "\"migrate_token\""},
		{"--memsrv-backup-token", "\"backup\": {\"url\": ..., \"token\": ...}"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(secrets); i++) {
		size_t len = strlen(secrets[i][0]);

		char why[400];

		if (strncmp(arg, secrets[i][0], len) || (arg[len] && arg[len] != '='))
			continue;
		snprintf(why, sizeof(why),
			 "%s: a secret on the command line is visible to every user of this host; "
			 "give it as %s in the order (--order FILE of mode 0600, or --order-fd)",
			 secrets[i][0], secrets[i][1]);
		return usage_error("%s", why);
	}
	return 0;
}

int vmm_parse_args(struct vmm *v, int argc, char **argv)
{
	static const struct option own[] = {
		{"order", required_argument, NULL, OPT_ORDER},
		{"order-fd", required_argument, NULL, OPT_ORDER_FD},
		{"restore", required_argument, NULL, OPT_RESTORE},
		{"stats", no_argument, NULL, OPT_STATS},
		{"check-leaks", no_argument, NULL, OPT_LEAKS},
		{"seccomp", required_argument, NULL, OPT_SECCOMP},
		{"verbose", no_argument, NULL, 'v'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, OPT_VERSION},
	};
	const struct vmm_option *opts[128];
	struct option longopts[ARRAY_SIZE(opts) + ARRAY_SIZE(own) + 1];
	int n = 0, c, ret;
	char err[512];

	for (int i = 0; i < v->nr_modules; i++)
		for (const struct vmm_option *o = v->modules[i]->options; o && o->name; o++) {
			if (n == (int)ARRAY_SIZE(opts))
				abort(); /* a build with too many options: make opts larger */
			longopts[n] =
				(struct option){o->name, o->arg ? required_argument : no_argument,
						NULL, OPT_MODULE + n};
			opts[n++] = o;
		}
	memcpy(longopts + n, own, sizeof(own));
	memset(&longopts[n + ARRAY_SIZE(own)], 0, sizeof(longopts[0]));
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if ((ret = secret_option(argv[i])))
			return ret;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":vqh", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_ORDER:
			if ((ret = order_file(v, optarg)))
				return ret;
			break;
		case OPT_ORDER_FD: {
			char *end;
			long fd = strtol(optarg, &end, 10);

			if (*end || end == optarg || fd < 0 || fd > 1 << 20)
				return usage_error("--order-fd: '%s' is not a descriptor", optarg);
			ret = read_order(v, (int)fd);
			close((int)fd);
			if (ret)
				return ret;
			break;
		}
		case OPT_RESTORE:
			if ((ret = restore_file(v, optarg)))
				return ret;
			break;
		case OPT_STATS:
			v->stats = true;
			break;
		case OPT_LEAKS:
			v->check_leaks = true;
			break;
		case OPT_SECCOMP:
			if ((ret = sandbox_mode_parse(optarg)) < 0)
				return usage_error("--seccomp: '%s': give on, log or off", optarg);
			v->seccomp = ret;
			break;
		case 'v':
			v->level = LOG_DEBUG;
			break;
		case 'q':
			v->level = LOG_ERR;
			break;
		case 'h':
			usage(v, stdout);
			return -1;
		case OPT_VERSION:
			printf("lego-vmm %s\n", LEGO_VERSION);
			return -1;
		case ':':
			return usage_error("%s needs a value", argv[optind - 1]);
		default:
			if (c < OPT_MODULE || c >= OPT_MODULE + n)
				return usage_error("unknown option '%s'", argv[optind - 1]);
			err[0] = '\0';
			if (opts[c - OPT_MODULE]->parse(v, optarg, err, sizeof(err)))
				return usage_error("%s", err);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (order_check(&v->order, err, sizeof(err)))
		return usage_error("%s", err);
	/* a cluster's servers speak TLS: this VMM checks they are the cluster's */
	if (v->order.tls_ca &&
	    xport_tls(v->order.tls_ca, v->order.tls_cert, v->order.tls_key, err, sizeof(err)))
		return usage_error("%s", err);
	return 0;
}
