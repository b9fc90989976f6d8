/* main.c - lego-storsrv's command line. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "storsrv.h"
#include "util.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: lego-storsrv [--listen HOST:PORT] [--data DIR] [-v|-q]\n"
		"       lego-storsrv volume create ADDR NAME SIZE|--from FILE   (prints its token)\n"
		"       lego-storsrv volume list ADDR\n"
		"       lego-storsrv volume resize ADDR NAME SIZE TOKEN\n"
		"       lego-storsrv volume delete ADDR NAME TOKEN\n"
		"\n"
		"Serve volumes: vNodes' disks (the sComponent of lego). Stateless: every\n"
		"request names its volume and carries its token, so the server can be\n"
		"restarted at any time.\n"
		"\n"
		"  --listen HOST:PORT  where to listen (default 127.0.0.1:7500)\n"
		"  --data DIR          the volumes' directory, created if missing\n"
		"                      (default /var/lib/lego/volumes)\n"
		"  -v, --verbose       more messages; -q, --quiet fewer\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"listen", required_argument, NULL, 'l'}, {"data", required_argument, NULL, 'd'},
		{"verbose", no_argument, NULL, 'v'},	  {"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},	  {NULL, 0, NULL, 0},
	};
	const char *listen_addr = "127.0.0.1:7500", *dir = "/var/lib/lego/volumes";
	enum log_level level = LOG_INFO;
	struct storsrv s;
	int c;

	if (argc > 1 && !strcmp(argv[1], "volume"))
		return volctl_main(argc - 2, argv + 2);
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":vqh", longopts, NULL)) != -1) {
		switch (c) {
		case 'l':
			listen_addr = optarg;
			break;
		case 'd':
			dir = optarg;
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
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	log_init("lego-storsrv", level);
	if (storsrv_open(&s, dir))
		return 1;
	c = storsrv_run(&s, listen_addr);
	log_info("served %llu requests (%llu refused); %llu bytes read, %llu written",
		 (unsigned long long)s.nr_requests, (unsigned long long)s.nr_errors,
		 (unsigned long long)s.bytes_read, (unsigned long long)s.bytes_written);
	storsrv_close(&s);
	return c ? 1 : 0;
}
