/* main.c - lego-manager's command line. */
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "manager.h"
#include "util.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: lego-manager --db FILE [--listen HOST:PORT] [options]\n"
		   "\n"
		   "The cluster's manager: registry, placement and failure detection, with its\n"
		   "state in SQLite and a JSON API over HTTP (what legoctl uses; curl works too).\n"
		   "\n"
		   "  --db FILE           the SQLite database (created if missing); a restarted\n"
		   "                      manager carries on from it\n"
		   "  --listen HOST:PORT  the HTTP API (default 127.0.0.1:7300)\n"
		   "  --slab-size SIZE    memory is placed in slabs of SIZE (default 256M)\n"
		   "  --down-after MS     a component silent this long is down (default 3000)\n"
		   "  --subnet A.B.C.D/N  the vNodes' network: their addresses, the first one\n"
		   "                      the gateway (the agents' bridges); none: no network\n"
		   "  -v, --verbose       more messages; -q, --quiet fewer\n"
		   "  -h, --help          this text; --version the version\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"db", required_argument, NULL, 'd'},
		{"listen", required_argument, NULL, 'l'},
		{"slab-size", required_argument, NULL, 's'},
		{"down-after", required_argument, NULL, 'D'},
		{"subnet", required_argument, NULL, 'n'},
		{"verbose", no_argument, NULL, 'v'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *db = NULL, *listen_addr = "127.0.0.1:7300";
	enum log_level level = LOG_INFO;
	static struct manager m;
	struct httpd *h;
	char err[512], *end;
	sigset_t set;
	int c, sig;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":vqh", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			db = optarg;
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
		return usage_error("%s: give the state database with --db FILE", "missing --db");
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
	manager_start_monitor(&m);
	log_info("serving the API on http://%s (state in %s)", listen_addr, db);
	sigwait(&set, &sig);
	log_info("stopping (%s)", strsignal(sig));
	httpd_stop(h);
	manager_exit(&m);
	return 0;
}
