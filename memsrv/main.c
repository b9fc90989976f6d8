/* main.c - lego-memsrv's command line. */
#include <getopt.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "member.h"
#include "memsrv.h"
#include "rdma.h"
#include "util.h"

static void usage(FILE *f)
{
	char why[512];

	fprintf(f,
		"usage: lego-memsrv [--listen HOST:PORT] [--capacity SIZE] [--rdma HOST:PORT|auto|off]\n"
		"                   [--manager URL --identity PREFIX [--join FILE]] [-v|-q]\n"
		"\n"
		"Serve vNodes' memory pages (the mComponent of lego).\n"
		"\n"
		"  --listen HOST:PORT  where to listen (default 127.0.0.1:7400)\n"
		"  --capacity SIZE     most page memory to hold, e.g. 8G (default 1G);\n"
		"                      a page takes memory only once it is first written\n"
		"  --rdma HOST:PORT    serve over RDMA too (rdma-core verbs), on that address;\n"
		"                      auto (the default): on --listen's host, its port + 1,\n"
		"                      where an RDMA device has that address (not loopback);\n"
		"                      off: TCP only.\n"
		"                      A client reaches it after authenticating over TCP\n"
		"  --manager URL       register with the lego-manager at URL (e.g.\n"
		"                      https://127.0.0.1:7300) and send it heartbeats\n" MEMBER_USAGE
			SRV_USAGE "  -v, --verbose       more messages; -q, --quiet fewer\n");
	if (rdma_why_off(why, sizeof(why)))
		fprintf(f, "\nRDMA is off on this host: %s.\n", why);
	else
		fprintf(f, "\nRDMA: this host has an RDMA device.\n");
}

/* --rdma: where to listen for RDMA ("" when off); -1 after saying why. */
static int rdma_start(struct memsrv *m, const char *opt, const char *listen_addr)
{
	char addr[300], why[512];
	const char *colon = strrchr(listen_addr, ':');
	int ret;

	if (strcmp(opt, "off") == 0)
		return 0;
	if (strcmp(opt, "auto") == 0) {
		if (!colon || rdma_why_off(why, sizeof(why))) {
			log_info("RDMA off: %s", colon ? why : "no port in --listen");
			return 0;
		}
		if (!strncmp(listen_addr, "127.", 4) || !strncmp(listen_addr, "[::1]", 5) ||
		    !strncmp(listen_addr, "localhost:", 10)) {
			log_info("RDMA off: --listen is a loopback address (--rdma HOST:PORT to "
				 "insist)");
			return 0;
		}
		snprintf(addr, sizeof(addr), "%.*s:%ld", (int)(colon - listen_addr), listen_addr,
			 strtol(colon + 1, NULL, 10) + 1);
	} else {
		snprintf(addr, sizeof(addr), "%s", opt);
	}
	ret = memsrv_rdma_listen(m, addr, why, sizeof(why));
	if (ret && strcmp(opt, "auto") == 0) {
		log_info("RDMA off: %s", why);
		return 0;
	}
	if (ret || memsrv_rdma_start(m)) {
		log_err("%s", ret ? why : "cannot start the RDMA thread");
		return -1;
	}
	log_info("serving pages over RDMA on %s", memsrv_rdma_addr(m));
	return 0;
}

/* What the manager hears every second: capacity and use. */
static json_t *memsrv_beat(void *opaque)
{
	struct memsrv *m = opaque;

	return json_pack(
		"{s:s,s:s,s:s?,s:I,s:I,s:I,s:I}", "role", "memsrv", "addr", m->listen_addr, "rdma",
		memsrv_rdma_addr(m), "capacity", (json_int_t)(m->store.capacity_pages * LMP_PAGE),
		"used",
		(json_int_t)(__atomic_load_n(&m->store.used_pages, __ATOMIC_RELAXED) * LMP_PAGE),
		"vnodes", (json_int_t)__atomic_load_n(&m->store.nr_vnodes, __ATOMIC_RELAXED),
		"shared", /* pages held by more than one vNode (copies) */
		(json_int_t)(__atomic_load_n(&m->store.nr_shared, __ATOMIC_RELAXED) * LMP_PAGE));
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"listen", required_argument, NULL, 'l'},
		{"capacity", required_argument, NULL, 'c'},
		{"rdma", required_argument, NULL, 'r'},
		{"manager", required_argument, NULL, 'm'},
		{"max-conns", required_argument, NULL, 'x'},
		{"verbose", no_argument, NULL, 'v'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		MEMBER_LONGOPTS,
		{NULL, 0, NULL, 0},
	};
	const char *listen_addr = "127.0.0.1:7400", *rdma_opt = "auto";
	static char advertise[256];
	struct member_opts mo = {0};
	struct pki_identity id;
	struct beat *beat = NULL;
	uint64_t capacity = GiB;
	enum log_level level = LOG_INFO;
	struct memsrv m = {0};
	int max_conns = 0;
	char cap[512];
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":vqh", longopts, NULL)) != -1) {
		switch (c) {
		case 'l':
			listen_addr = optarg;
			break;
		case 'c':
			if (parse_size(optarg, &capacity) || capacity < LMP_PAGE)
				return usage_error("--capacity: '%s' is not a size (e.g. 8G)",
						   optarg);
			break;
		case 'r':
			rdma_opt = optarg;
			break;
		case 'm':
			mo.manager = optarg;
			break;
		case 'x':
			if (srv_max_conns_arg(optarg, &max_conns))
				return 2;
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
	log_init("lego-memsrv", level);
	umask(077);
	if ((mo.manager || mo.identity) &&
	    (member_start(&mo, "memsrv", listen_addr, advertise, sizeof(advertise), &id, cap,
			  sizeof(cap)) ||
	     srv_tls(&m.srv, &id, cap, sizeof(cap)))) {
		log_err("%s", cap);
		return 1;
	}
	if (store_init(&m.store, capacity)) {
		log_err("cannot reserve %s of address space for pages",
			format_size(capacity, cap, sizeof(cap)));
		return 1;
	}
	pthread_mutex_init(&m.lock, NULL);
	m.srv.max_conns = max_conns;
	if (memsrv_listen(&m, listen_addr) || memsrv_backup_start(&m) ||
	    rdma_start(&m, rdma_opt, listen_addr))
		return 1;
	log_info("serving pages on %s%s, capacity %s", m.srv.tls ? "tls://" : "", listen_addr,
		 format_size(capacity, cap, sizeof(cap)));
	if (mo.manager) {
		m.listen_addr = advertise;
		beat = beat_start(mo.manager, 1000, memsrv_beat, &m);
	}
	c = memsrv_run(&m);
	beat_stop(beat);
	memsrv_rdma_stop(&m);
	memsrv_backup_stop(&m);
	log_info("served %llu requests on %llu connections; %llu pages held",
		 (unsigned long long)m.nr_requests, (unsigned long long)m.srv.nr_conns,
		 (unsigned long long)m.store.used_pages);
	store_exit(&m.store);
	return c ? 1 : 0;
}
