/* main.c - lego-manager's command line. */
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "manager.h"
#include "util.h"
#include "xport.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: lego-manager --db FILE|--store etcd://HOST:PORT[,...] --pki DIR\n"
		"                    [--listen HOST:PORT] [options]\n"
		"       lego-manager init --pki DIR [--cluster NAME] [--host HOST]...\n"
		"       lego-manager etcd-init --pki DIR [--host HOST]...\n"
		"\n"
		"The cluster's manager: registry, placement and failure detection, with its\n"
		"state in SQLite (one manager) or etcd (several: one leads, the others stand\n"
		"by), and a JSON API over HTTPS (what legoctl uses; curl works too, with a\n"
		"member's certificate).\n"
		"\n"
		"'init' creates a cluster's identity in DIR (made 0700): its CA (ca.key, ca.pem)\n"
		"and the certificates of the manager (for each --host it is reached at;\n"
		"default 127.0.0.1 and localhost), of an administrator (admin: what legoctl\n"
		"uses) and of a monitor (reader: reads only). Keys are files of mode 0600.\n"
		"\n"
		"'etcd-init' creates, in DIR/etcd, a CA for etcd alone (ca.pem), the etcd\n"
		"members' certificate (etcd.pem, for each --host) and the managers' (manager.pem):\n"
		"etcd trusts only that CA, so no other member of the cluster can reach it.\n"
		"\n"
		"  --db FILE           the SQLite database (created if missing); a restarted\n"
		"                      manager carries on from it\n"
		"  --store etcd://HOST:PORT[,HOST:PORT...]\n"
		"                      the state in etcd, shared with other managers: they\n"
		"                      elect one leader, the others answer reads and send\n"
		"                      writes to it. etcd is reached with DIR/etcd/ca.pem\n"
		"                      and DIR/etcd/manager.pem (legoctl up --managers N)\n"
		"  --advertise HOST:PORT  where the other managers and the members reach\n"
		"                      this one's API (default: --listen)\n"
		"  --lease MS          a leader that dies is replaced within MS (default 3000)\n"
		"  --no-election       (tests) act without being elected: only the store's\n"
		"                      checks stand between two managers that both place\n"
		"  --pki DIR           the cluster's identity (made by 'init'): the manager's\n"
		"                      certificate, and the CA key that admits new members\n"
		"  --listen HOST:PORT  the HTTPS API (default 127.0.0.1:7300)\n"
		"  --slab-size SIZE    memory is placed in slabs of SIZE (default 256M)\n"
		"  --down-after MS     a component silent this long is down (default 3000)\n"
		"  --subnet A.B.C.D/N  the vNodes' network: their addresses, the first one\n"
		"                      the gateway (the agents' bridges); none: no network\n"
		"  -v, --verbose       more messages; -q, --quiet fewer\n"
		"  -h, --help          this text; --version the version\n");
}

/*
 * The options of init and etcd-init: --pki DIR, --host HOST (at most 16),
 * and --cluster NAME where @cluster is not NULL. -1 if they are good, else
 * the status to exit with (said why, or --help printed).
 */
static int init_options(int argc, char **argv, const char *cmd, const char **dir,
			const char **cluster, const char *hosts[17])
{
	static const struct option longopts[] = {
		{"pki", required_argument, NULL, 'p'},
		{"cluster", required_argument, NULL, 'c'},
		{"host", required_argument, NULL, 'H'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c, nr_hosts = 0;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (c == 'p')
			*dir = optarg;
		else if (c == 'c' && cluster)
			*cluster = optarg;
		else if (c == 'H' && nr_hosts < 16)
			hosts[nr_hosts++] = optarg;
		else if (c == 'H')
			return usage_error("--host: at most 16 (%s is one too many)", optarg);
		else if (c == 'h')
			return usage(stdout), 0;
		else if (c == ':')
			return usage_error("%s needs a value", argv[optind - 1]);
		else
			return usage_error("unknown option '%s'", argv[optind - 1]);
	}
	if (!*dir)
		return usage_error("%s needs --pki DIR", cmd);
	return -1;
}

/* lego-manager init: a new cluster's identity. */
static int cmd_init(int argc, char **argv)
{
	const char *dir = NULL, *cluster = NULL, *hosts[17] = {NULL};
	char err[512], name[64];
	int ret = init_options(argc, argv, "init", &dir, &cluster, hosts);

	if (ret >= 0)
		return ret;
	if (!cluster) {
		uint8_t r[4];

		if (getrandom(r, sizeof(r), 0) != sizeof(r))
			return usage_error("%s: no randomness", "init");
		snprintf(name, sizeof(name), "lego-%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
		cluster = name;
	}
	if (pki_init_cluster(dir, cluster, hosts[0] ? hosts : NULL, err, sizeof(err))) {
		fprintf(stderr, "lego-manager: %s\n", err);
		return 1;
	}
	printf("cluster '%s' created in %s: ca.pem, manager.pem, admin.pem, reader.pem\n", cluster,
	       dir);
	return 0;
}

/* lego-manager etcd-init: the identity etcd and the managers share (etcd.h). */
static int cmd_etcd_init(int argc, char **argv)
{
	const char *dir = NULL, *hosts[17] = {NULL};
	char err[512];
	int ret = init_options(argc, argv, "etcd-init", &dir, NULL, hosts);

	if (ret >= 0)
		return ret;
	snprintf(err, sizeof(err), "%s/ca.pem", dir);
	if (access(err, R_OK)) {
		fprintf(stderr,
			"lego-manager: %s: no cluster here (lego-manager init --pki %s first)\n",
			dir, dir);
		return 1;
	}
	if (pki_init_etcd(dir, hosts[0] ? hosts : NULL, err, sizeof(err))) {
		fprintf(stderr, "lego-manager: %s\n", err);
		return 1;
	}
	printf("etcd's identity created in %s/etcd: ca.pem, etcd.pem (its members), manager.pem\n",
	       dir);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"db", required_argument, NULL, 'd'},
		{"store", required_argument, NULL, 'S'},
		{"advertise", required_argument, NULL, 'a'},
		{"lease", required_argument, NULL, 'L'},
		{"no-election", no_argument, NULL, 'N'},
		{"listen", required_argument, NULL, 'l'},
		{"slab-size", required_argument, NULL, 's'},
		{"down-after", required_argument, NULL, 'D'},
		{"subnet", required_argument, NULL, 'n'},
		{"pki", required_argument, NULL, 'p'},
		{"verbose", no_argument, NULL, 'v'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *db = NULL, *listen_addr = "127.0.0.1:7300", *pki = NULL, *advertise = NULL;
	int lease_ms = 3000;
	enum log_level level = LOG_INFO;
	static struct manager m;
	struct httpd *h;
	char err[512], *end;
	sigset_t set;
	int c, sig;

	umask(077); /* the database holds the vNodes' credentials */
	if (argc > 1 && !strcmp(argv[1], "init"))
		return cmd_init(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "etcd-init"))
		return cmd_etcd_init(argc - 1, argv + 1);
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":vqh", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			pki = optarg;
			break;
		case 'd':
		case 'S':
			if (db)
				return usage_error("%s: give --db FILE or --store etcd://..., once",
						   "two stores");
			if ((c == 'S') != !strncmp(optarg, "etcd://", 7))
				return usage_error(
					"'%s': --db is a file, --store is etcd://HOST:PORT",
					optarg);
			db = optarg;
			break;
		case 'a':
			advertise = optarg;
			break;
		case 'N':
			lease_ms = 0;
			break;
		case 'L':
			lease_ms = (int)strtol(optarg, &end, 10);
			if (*end || lease_ms < 1000 || lease_ms > 60000)
				return usage_error("--lease: '%s' is not a number of milliseconds "
						   "from 1000 to 60000",
						   optarg);
			break;
		case 'l':
			listen_addr = optarg;
			break;
		case 's':
			if (parse_size(optarg, &m.slab_size) || m.slab_size < MiB ||
			    m.slab_size % (2 * MiB))
				return usage_error("--slab-size: '%s' is not a multiple of 2M",
						   optarg);
			break;
		case 'n':
			if (ipam_init(&m.ipam, optarg))
				return usage_error("--subnet: '%s' is not A.B.C.D/N with N from 16 "
						   "to 30",
						   optarg);
			break;
		case 'D':
			m.down_after_ms = (int)strtol(optarg, &end, 10);
			if (*end || m.down_after_ms < 100)
				return usage_error("--down-after: '%s' is not a number of "
						   "milliseconds (at least 100)",
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
		case 'V':
			printf("lego-manager %s\n", LEGO_VERSION);
			return 0;
		case ':':
			return usage_error("%s needs a value", argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (!db)
		return usage_error(
			"%s: give the state database with --db FILE (or --store etcd://...)",
			"missing --db");
	if (!pki)
		return usage_error("%s: give the cluster's identity with --pki DIR (lego-manager "
				   "init makes one)",
				   "missing --pki");
	log_init("lego-manager", level);
	/* Large answers (a list of 10,000 vNodes is ~15 MB of JSON) would otherwise
	 * be mapped and faulted in afresh for every request. */
	mallopt(M_MMAP_THRESHOLD, 256 << 20);
	mallopt(M_TRIM_THRESHOLD, 512 << 20);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (members_init(&m, pki, err, sizeof(err))) {
		log_err("%s", err);
		return 1;
	}
	http_identity(&m.id);				/* the manager calls agents as itself, */
	if (xport_tls_files(&m.id, err, sizeof(err))) { /* and storage servers (volumes) */
		log_err("%s", err);
		return 1;
	}
	snprintf(m.self_url, sizeof(m.self_url), "https://%s", advertise ? advertise : listen_addr);
	if (manager_init(&m, db, err, sizeof(err))) {
		log_err("%s", err);
		return 1;
	}
	h = api_start(&m, listen_addr, err, sizeof(err));
	if (!h) {
		log_err("%s", err);
		manager_exit(&m);
		return 1;
	}
	if (leader_start(&m, lease_ms, err, sizeof(err))) {
		log_err("%s", err);
		httpd_stop(h);
		manager_exit(&m);
		return 1;
	}
	log_info("serving the API on https://%s (state in %s, identity in %s)", listen_addr, db,
		 pki);
	sigwait(&set, &sig);
	log_info("stopping (%s)", strsignal(sig));
	httpd_stop(h);
	leader_stop(&m);
	manager_exit(&m);
	return 0;
}
