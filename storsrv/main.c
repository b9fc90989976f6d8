/* main.c - lego-storsrv's command line. */
#include <dirent.h>
#include <getopt.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "log.h"
#include "member.h"
#include "storsrv.h"
#include "util.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: lego-storsrv [--listen HOST:PORT] [--data DIR]\n"
		"                    [--manager URL --identity PREFIX [--join FILE]] [-v|-q]\n"
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
		"  --manager URL       register with the lego-manager at URL (e.g.\n"
		"                      https://127.0.0.1:7300) and send it heartbeats\n" MEMBER_USAGE
			SRV_USAGE
		"  --capacity SIZE     what to offer the manager for volumes (default: the\n"
		"                      size of the data directory's file system)\n"
		"  -v, --verbose       more messages; -q, --quiet fewer\n");
}

static struct {
	const char *addr, *dir;
	uint64_t capacity;
} beat_info;

/* What the manager hears every second: capacity and the volumes' sizes. */
static json_t *storsrv_beat(void *opaque)
{
	uint64_t used = 0, capacity = beat_info.capacity;
	DIR *d = opendir(beat_info.dir);
	struct statvfs vfs;
	struct dirent *e;
	struct stat st;

	(void)opaque;
	while (d && (e = readdir(d))) {
		size_t n = strlen(e->d_name);

		if (n > 4 && !strcmp(e->d_name + n - 4, ".vol") &&
		    !fstatat(dirfd(d), e->d_name, &st, 0))
			used += (uint64_t)st.st_size;
	}
	if (d)
		closedir(d);
	if (!capacity && !statvfs(beat_info.dir, &vfs))
		capacity = (uint64_t)vfs.f_blocks * vfs.f_frsize;
	return json_pack("{s:s,s:s,s:I,s:I}", "role", "storsrv", "addr", beat_info.addr, "capacity",
			 (json_int_t)capacity, "used", (json_int_t)used);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"listen", required_argument, NULL, 'l'},
		{"data", required_argument, NULL, 'd'},
		{"manager", required_argument, NULL, 'm'},
		{"max-conns", required_argument, NULL, 'x'},
		{"capacity", required_argument, NULL, 'c'},
		{"verbose", no_argument, NULL, 'v'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		MEMBER_LONGOPTS,
		{NULL, 0, NULL, 0},
	};
	const char *listen_addr = "127.0.0.1:7500", *dir = "/var/lib/lego/volumes";
	static char advertise[256];
	struct member_opts mo = {0};
	struct pki_identity id;
	struct beat *beat = NULL;
	char err[512];
	enum log_level level = LOG_INFO;
	struct storsrv s;
	int c, max_conns = 0;

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
		case 'm':
			mo.manager = optarg;
			break;
		case 'x':
			if (srv_max_conns_arg(optarg, &max_conns))
				return 2;
			break;
		case 'c':
			if (parse_size(optarg, &beat_info.capacity))
				return usage_error("--capacity: '%s' is not a size (e.g. 100G)",
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
	log_init("lego-storsrv", level);
	umask(077); /* volumes are their vNodes' own */
	if ((mo.manager || mo.identity) && member_start(&mo, "storsrv", listen_addr, advertise,
							sizeof(advertise), &id, err, sizeof(err))) {
		log_err("%s", err);
		return 1;
	}
	if (storsrv_open(&s, dir))
		return 1;
	if (mo.identity && srv_tls(&s.srv, &id, err, sizeof(err))) {
		log_err("%s", err);
		return 1;
	}
	if (mo.manager) {
		beat_info.addr = advertise;
		beat_info.dir = dir;
		beat = beat_start(mo.manager, 1000, storsrv_beat, &beat_info);
	}
	s.srv.max_conns = max_conns;
	c = storsrv_run(&s, listen_addr);
	beat_stop(beat);
	log_info("served %llu requests (%llu refused); %llu bytes read, %llu written",
		 (unsigned long long)s.nr_requests, (unsigned long long)s.nr_errors,
		 (unsigned long long)s.bytes_read, (unsigned long long)s.bytes_written);
	storsrv_close(&s);
	return c ? 1 : 0;
}
