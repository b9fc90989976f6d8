/* main.c - lego-vmm's command line: build the VM, run it, report how it ended. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include "cpuid.h"
#include "ctl.h"
#include "i8042.h"
#include "rtc.h"
#include "excache.h"
#include "linux.h"
#include "serial.h"
#include "virtio_blk.h"
#include "log.h"
#include "payload.h"
#include "pvm_compat.h"
#include "util.h"
#include "vm.h"

struct vmm_options {
	const char *payload;
	const char *args;
	const char *control;
	uint64_t mem_size;
	int nr_vcpus;
	bool stats;
	bool no_pvm_compat;
	int cpuid_policy;
	uint8_t disk_token[LMP_TOKEN_LEN];
	bool has_disk_token;
	int disk_deadline_s;
	uint64_t excache_size;
	const char *memsrv;
	uint64_t slab_size;
	const char *memsrv_secondary;
	const char *backup, *backup_token;
	uint32_t backup_interval_ms;
	uint64_t epoch;
	const char *token;
	uint64_t vnode;
	enum excache_poll poll;
	unsigned prefetch;
	unsigned spin_us;
	const char *disk;
	const char *kernel, *initrd, *append;
	enum log_level level;
};

struct vmm {
	struct vm vm;
	struct payload_dev payload;
	struct excache xc;
	bool has_excache;
	struct pci pci;
	struct virtio_blk *disk;
	struct serial serial;
	struct rtc rtc;
	struct ctl *ctl;
	const struct vmm_options *opt;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: lego-vmm --kernel BZIMAGE [--initrd FILE] [--append TEXT] [options]\n"
		"       lego-vmm --payload FILE [options]\n"
		"\n"
		"Run a vNode's processor component: a KVM guest with its RAM and vCPUs.\n"
		"\n"
		"  --kernel BZIMAGE boot a stock Linux kernel (decompressed here, entered in 64-bit\n"
		"                   mode); its console is the serial port, on this terminal\n"
		"  --initrd FILE    its initramfs; --append TEXT its command line\n"
		"  --payload FILE   run a freestanding test payload (guest/payloads/, built by\n"
		"                   make into build/guest/payloads/) in 64-bit ring 3 on every "
		"vCPU\n"
		"  --args TEXT      argument text handed to the payload, e.g. \"mode=seq "
		"pages=1024\"\n"
		"  --memory SIZE    guest RAM, e.g. 64M, 2G (default 256M)\n"
		"  --cpus N         number of vCPUs, one host thread each (default 1)\n"
		"  --control PATH   serve the JSON control socket at PATH (try {\"cmd\":\"help\"})\n"
		"  --disk IMAGE     a virtio-blk disk (PCI, virtio 1.x) backed by the raw file IMAGE,\n"
		"                   or by a volume of lego-storsrv: storsrv://HOST:PORT/VOLUME\n"
		"  --disk-token HEX that volume's token (64 hex digits)\n"
		"  --disk-deadline S  fail a disk request to the guest only after S seconds\n"
		"                   without the storage server (default 30; it is retried meanwhile)\n"
		"  --stats          print run statistics as one JSON line on stderr at exit\n"
		"  --excache SIZE   keep at most SIZE of guest RAM resident here (the ExCache)...\n"
		"  --memsrv ADDR    ...and the rest on the memory server at HOST:PORT, or\n"
		"                   ADDR,ADDR,... one per slab of --slab-size SIZE, in order\n"
		"  --memsrv-secondary ADDR[,ADDR...]  replicate: every write-back also goes to\n"
		"                   the slab's secondary; if a server is lost, its slabs fail\n"
		"                   over to their secondaries while the guest runs\n"
		"  --epoch N        the placement's epoch (from the manager; default 0)\n"
		"  --memsrv-backup storsrv://HOST:PORT/VOLUME  the secondaries back the memory\n"
		"                   up there every --backup-interval MS (default 1000); if every\n"
		"                   copy of a slab is lost, its accesses wait (2 min at most)\n"
		"                   for a restore from it (control command memsrv.restore)\n"
		"  --memsrv-backup-token HEX  that volume's token\n"
		"  --vnode ID       the vNode's number on the memory server (default: random)\n"
		"  --token HEX      its secret, 64 hex digits (default: random)\n"
		"  --excache-poll block|spin  how fault threads wait (default block)\n"
		"  --prefetch N     pages fetched at once on sequential misses (default 16, 1 = "
		"off)\n"
		"  --spin-us N      fault threads poll for the next fault N us before sleeping\n"
		"                   (default 0: sleep at once; spinning helps only with spare "
		"cores)\n"
		"  --cpuid POLICY   the vCPUs' CPUID: host (all KVM supports, the default) or\n"
		"                   baseline (x86-64-v2: no AVX, AVX-512, ...; see vmm/cpuid.h)\n"
		"  --no-pvm-compat  on a kvm_pvm host (no hardware virtualisation), do not apply\n"
		"                   the workarounds of vmm/pvm_compat.c (on by default there)\n"
		"  -v, --verbose    more messages; -q, --quiet fewer\n"
		"  -h, --help       this text; --version the version\n"
		"\n"
		"Exit status: the status the guest reports (0-255), %d for a wrong command line,\n"
		"%d when the host cannot run the VM, %d when the guest had to be stopped for a\n"
		"fault (the message and the guest's registers are on stderr). SIGTERM or SIGINT\n"
		"stops the guest and exits 0.\n",
		VM_EXIT_USAGE, VM_EXIT_VMM_ERROR, VM_EXIT_GUEST_FAULT);
}

static int parse_options(int argc, char **argv, struct vmm_options *opt)
{
	enum {
		OPT_PAYLOAD = 256,
		OPT_ARGS,
		OPT_MEMORY,
		OPT_CPUS,
		OPT_CONTROL,
		OPT_STATS,
		OPT_VERSION,
		OPT_NO_PVM_COMPAT,
		OPT_CPUID,
		OPT_EXCACHE,
		OPT_MEMSRV,
		OPT_SLAB_SIZE,
		OPT_MEMSRV_SECONDARY,
		OPT_EPOCH,
		OPT_BACKUP,
		OPT_BACKUP_TOKEN,
		OPT_BACKUP_INTERVAL,
		OPT_VNODE,
		OPT_TOKEN,
		OPT_POLL,
		OPT_PREFETCH,
		OPT_SPIN,
		OPT_DISK,
		OPT_DISK_TOKEN,
		OPT_DISK_DEADLINE,
		OPT_KERNEL,
		OPT_INITRD,
		OPT_APPEND
	};
	static const struct option longopts[] = {
		{"payload", required_argument, NULL, OPT_PAYLOAD},
		{"args", required_argument, NULL, OPT_ARGS},
		{"memory", required_argument, NULL, OPT_MEMORY},
		{"cpus", required_argument, NULL, OPT_CPUS},
		{"control", required_argument, NULL, OPT_CONTROL},
		{"stats", no_argument, NULL, OPT_STATS},
		{"no-pvm-compat", no_argument, NULL, OPT_NO_PVM_COMPAT},
		{"cpuid", required_argument, NULL, OPT_CPUID},
		{"excache", required_argument, NULL, OPT_EXCACHE},
		{"memsrv", required_argument, NULL, OPT_MEMSRV},
		{"slab-size", required_argument, NULL, OPT_SLAB_SIZE},
		{"memsrv-secondary", required_argument, NULL, OPT_MEMSRV_SECONDARY},
		{"epoch", required_argument, NULL, OPT_EPOCH},
		{"memsrv-backup", required_argument, NULL, OPT_BACKUP},
		{"memsrv-backup-token", required_argument, NULL, OPT_BACKUP_TOKEN},
		{"backup-interval", required_argument, NULL, OPT_BACKUP_INTERVAL},
		{"vnode", required_argument, NULL, OPT_VNODE},
		{"token", required_argument, NULL, OPT_TOKEN},
		{"excache-poll", required_argument, NULL, OPT_POLL},
		{"prefetch", required_argument, NULL, OPT_PREFETCH},
		{"spin-us", required_argument, NULL, OPT_SPIN},
		{"disk", required_argument, NULL, OPT_DISK},
		{"disk-token", required_argument, NULL, OPT_DISK_TOKEN},
		{"disk-deadline", required_argument, NULL, OPT_DISK_DEADLINE},
		{"kernel", required_argument, NULL, OPT_KERNEL},
		{"initrd", required_argument, NULL, OPT_INITRD},
		{"append", required_argument, NULL, OPT_APPEND},
		{"verbose", no_argument, NULL, 'v'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, OPT_VERSION},
		{NULL, 0, NULL, 0},
	};
	int c;

	*opt = (struct vmm_options){.mem_size = 256 * MiB,
				    .nr_vcpus = 1,
				    .level = LOG_INFO,
				    .prefetch = 16,
				    .disk_deadline_s = 30};
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":vqh", longopts, NULL)) != -1) {
		char *end;
		long n;

		switch (c) {
		case OPT_PAYLOAD:
			opt->payload = optarg;
			break;
		case OPT_ARGS:
			opt->args = optarg;
			break;
		case OPT_MEMORY:
			if (parse_size(optarg, &opt->mem_size))
				return usage_error("--memory: '%s' is not a size (e.g. 512M, 2G)",
						   optarg);
			if (opt->mem_size < 4 * MiB || opt->mem_size % (4 * KiB))
				return usage_error("--memory: %s is not a multiple of 4 KiB of at "
						   "least 4M",
						   optarg);
			break;
		case OPT_CPUS:
			errno = 0;
			n = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || n < 1 || n > VM_MAX_VCPUS)
				return usage_error("--cpus: '%s' is not a vCPU count from 1 to 64",
						   optarg);
			opt->nr_vcpus = (int)n;
			break;
		case OPT_CONTROL:
			opt->control = optarg;
			break;
		case OPT_STATS:
			opt->stats = true;
			break;
		case OPT_EXCACHE:
			if (parse_size(optarg, &opt->excache_size) || opt->excache_size < 256 * KiB)
				return usage_error("--excache: '%s' is not a size of at least 256K",
						   optarg);
			break;
		case OPT_MEMSRV:
			opt->memsrv = optarg;
			break;
		case OPT_SLAB_SIZE:
			if (parse_size(optarg, &opt->slab_size) || !opt->slab_size ||
			    opt->slab_size % 4096)
				return usage_error(
					"--slab-size: '%s' is not a whole number of pages", optarg);
			break;
		case OPT_MEMSRV_SECONDARY:
			opt->memsrv_secondary = optarg;
			break;
		case OPT_BACKUP:
			opt->backup = optarg;
			break;
		case OPT_BACKUP_TOKEN:
			opt->backup_token = optarg;
			break;
		case OPT_BACKUP_INTERVAL: {
			unsigned long ms = strtoul(optarg, &end, 10);

			if (*end || ms < 100 || ms > 3600000)
				return usage_error(
					"--backup-interval: '%s' is not 100 to 3600000 ms", optarg);
			opt->backup_interval_ms = (uint32_t)ms;
			break;
		}
		case OPT_EPOCH:
			errno = 0;
			opt->epoch = strtoull(optarg, &end, 10);
			if (errno || *end || end == optarg)
				return usage_error("--epoch: '%s' is not a number", optarg);
			break;
		case OPT_VNODE:
			errno = 0;
			opt->vnode = strtoull(optarg, &end, 10);
			if (errno || *end || end == optarg)
				return usage_error("--vnode: '%s' is not a vNode number", optarg);
			break;
		case OPT_TOKEN: {
			uint8_t tok[LMP_TOKEN_LEN];

			if (lmp_token_parse(optarg, tok))
				return usage_error("--token: '%s' is not 64 hex digits", optarg);
			opt->token = optarg;
			break;
		}
		case OPT_POLL:
			if (!strcmp(optarg, "block"))
				opt->poll = EXCACHE_POLL_BLOCK;
			else if (!strcmp(optarg, "spin"))
				opt->poll = EXCACHE_POLL_SPIN;
			else
				return usage_error("--excache-poll: '%s' is neither block nor spin",
						   optarg);
			break;
		case OPT_PREFETCH:
			n = strtol(optarg, &end, 10);
			if (*end || end == optarg || n < 1 || n > LMP_MAX_PAGES)
				return usage_error("--prefetch: '%s' is not a page count from 1 "
						   "to 64",
						   optarg);
			opt->prefetch = (unsigned)n;
			break;
		case OPT_KERNEL:
			opt->kernel = optarg;
			break;
		case OPT_INITRD:
			opt->initrd = optarg;
			break;
		case OPT_APPEND:
			opt->append = optarg;
			break;
		case OPT_DISK:
			if (opt->disk)
				return usage_error("%s: one --disk for now", optarg);
			opt->disk = optarg;
			break;
		case OPT_DISK_TOKEN:
			if (lmp_token_parse(optarg, opt->disk_token))
				return usage_error("--disk-token: '%s' is not 64 hex digits",
						   optarg);
			opt->has_disk_token = true;
			break;
		case OPT_DISK_DEADLINE:
			n = strtol(optarg, &end, 10);
			if (*end || end == optarg || n < 1 || n > 86400)
				return usage_error(
					"--disk-deadline: '%s' is not a number of seconds", optarg);
			opt->disk_deadline_s = (int)n;
			break;
		case OPT_SPIN:
			n = strtol(optarg, &end, 10);
			if (*end || end == optarg || n < 0 || n > 100000)
				return usage_error(
					"--spin-us: '%s' is not a number of microseconds", optarg);
			opt->spin_us = (unsigned)n;
			break;
		case OPT_NO_PVM_COMPAT:
			opt->no_pvm_compat = true;
			break;
		case OPT_CPUID:
			opt->cpuid_policy = cpuid_policy_parse(optarg);
			if (opt->cpuid_policy < 0)
				return usage_error(
					"--cpuid: '%s' is not a policy (host or baseline)", optarg);
			break;
		case 'v':
			opt->level = LOG_DEBUG;
			break;
		case 'q':
			opt->level = LOG_ERR;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case OPT_VERSION:
			printf("lego-vmm %s\n", LEGO_VERSION);
			exit(0);
		case ':':
			return usage_error("%s needs a value", argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (!opt->payload == !opt->kernel)
		return usage_error(
			"%snothing to run: give --kernel BZIMAGE or --payload FILE (one of them)",
			"");
	if ((opt->initrd || opt->append) && !opt->kernel)
		return usage_error("%s--initrd and --append go with --kernel", "");
	if (opt->has_disk_token &&
	    (!opt->disk || strncmp(opt->disk, BLK_NET_SCHEME, strlen(BLK_NET_SCHEME))))
		return usage_error(
			"%s--disk-token goes with --disk " BLK_NET_SCHEME "HOST:PORT/VOLUME", "");
	if (!opt->excache_size != !opt->memsrv)
		return usage_error("%s--excache and --memsrv go together: the ExCache holds what "
				   "is resident, the memory server the rest",
				   "");
	if (opt->backup &&
	    (!opt->memsrv_secondary || !opt->backup_token ||
	     strncmp(opt->backup, "storsrv://", 10) || !strchr(opt->backup + 10, '/')))
		return usage_error("%s--memsrv-backup storsrv://HOST:PORT/VOLUME goes with "
				   "--memsrv-backup-token and --memsrv-secondary",
				   "");
	if (opt->memsrv_secondary && !opt->memsrv)
		return usage_error("%s--memsrv-secondary needs --memsrv", "");
	if (((opt->memsrv && strchr(opt->memsrv, ',')) ||
	     (opt->memsrv_secondary && strchr(opt->memsrv_secondary, ','))) &&
	    !opt->slab_size)
		return usage_error("%s--memsrv lists several servers: give --slab-size too", "");
	if (opt->excache_size > opt->mem_size)
		opt->excache_size = opt->mem_size;
	return 0;
}

static const char *vcpu_state_name(int state)
{
	static const char *const names[] = {"created", "running", "done", "stopped"};

	return state >= 0 && state < (int)ARRAY_SIZE(names) ? names[state] : "?";
}

static json_t *vmm_stats(struct vmm *v)
{
	struct vm *vm = &v->vm;
	json_t *vcpus = json_array();
	uint64_t first = vm->first_guest_ns;
	bool stopping;
	int status;

	for (int i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *c = &vm->vcpus[i];

		json_array_append_new(vcpus, json_pack("{s:i,s:s,s:I,s:I,s:I}", "index", i, "state",
						       vcpu_state_name(c->state), "exits",
						       (json_int_t)c->nr_exits, "pio_exits",
						       (json_int_t)c->nr_pio, "mmio_exits",
						       (json_int_t)c->nr_mmio));
	}
	pthread_mutex_lock(&vm->lock);
	stopping = vm->stopping;
	status = vm->exit_status;
	pthread_mutex_unlock(&vm->lock);
	return json_pack("{s:s,s:s,s:i,s:I,s:i,s:I,s:I,s:I,s:I,s:o,s:o}", "state",
			 stopping ? "stopping" : "running", "mode", "payload", "pid", (int)getpid(),
			 "memory_bytes", (json_int_t)vm->mem.size, "nr_vcpus", vm->nr_vcpus,
			 "tsc_khz", (json_int_t)vm->tsc_khz, "uptime_ms",
			 (json_int_t)((now_ns() - vm->created_ns) / 1000000), "first_guest_ns",
			 (json_int_t)first, "reports", (json_int_t)v->payload.nr_reports,
			 "exit_status", stopping ? json_integer(status) : json_null(), "vcpus",
			 vcpus);
}

static json_t *vmm_excache_stats(struct vmm *v)
{
	struct excache *xc = &v->xc;
	struct excache_stats *s = &xc->stats;
	json_t *hist = json_array(), *j;

	for (int i = 0; i < XC_HIST_BUCKETS; i++)
		json_array_append_new(hist, json_integer((json_int_t)s->lat_hist[i]));
	j = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
		      "s:I,s:o,s:s}",
		      "size_bytes", (json_int_t)(xc->limit * 4096), "resident_pages",
		      (json_int_t)xc->resident, "ram_hva", (json_int_t)(uintptr_t)xc->base,
		      "misses", (json_int_t)s->misses, "zero_fills", (json_int_t)s->zero_fills,
		      "fetches", (json_int_t)s->fetches, "prefetched", (json_int_t)s->prefetched,
		      "wp_faults", (json_int_t)s->wp_faults, "evictions", (json_int_t)s->evictions,
		      "clean_drops", (json_int_t)s->clean_drops, "dirty_writebacks",
		      (json_int_t)s->dirty_writebacks, "writebacks_aborted",
		      (json_int_t)s->wb_aborted, "bytes_in", (json_int_t)s->bytes_in, "bytes_out",
		      (json_int_t)s->bytes_out, "miss_p50_ns",
		      (json_int_t)excache_percentile(xc, 50), "miss_p99_ns",
		      (json_int_t)excache_percentile(xc, 99), "miss_samples",
		      (json_int_t)s->lat_next, "ram_bytes", (json_int_t)v->vm.mem.size,
		      "miss_latency_log2_us", hist, "memsrv", xc->cfg.memsrv);
	json_object_set_new(j, "route", memroute_status(&xc->route));
	return j;
}

static json_t *vmm_ctl_excache(void *opaque, json_t *req, char *err, size_t errlen)
{
	struct vmm *v = opaque;

	(void)req, (void)err, (void)errlen;
	return vmm_excache_stats(v);
}

static json_t *vmm_ctl_resize(void *opaque, json_t *req, char *err, size_t errlen)
{
	struct vmm *v = opaque;
	const char *text = json_string_value(json_object_get(req, "size"));
	uint64_t size;

	if (!text || parse_size(text, &size) || size < 256 * KiB) {
		snprintf(err, errlen, "give \"size\" as a string such as \"64M\" (at least 256K)");
		return NULL;
	}
	if (size > v->vm.mem.size)
		size = v->vm.mem.size;
	excache_resize(&v->xc, size);
	return json_pack("{s:I}", "size_bytes", (json_int_t)size);
}

struct refill_job {
	struct excache *xc;
	char addr[128];
	bool restore; /* from the backup, rather than a copy of the primary */
};

static atomic_bool refilling;
static pthread_t refill_thread;
static bool refill_started; /* joined at exit: it uses the route */

static void *refill_main(void *arg)
{
	struct refill_job *job = arg;
	struct memroute_client rc;
	char err[256];

	if (memroute_open(&rc, &job->xc->route, err, sizeof(err)) == 0) {
		if ((job->restore ? memroute_restore : memroute_add_secondary)(&rc, job->addr, err,
									       sizeof(err)))
			log_err("%s", err);
		memroute_close(&rc);
	} else {
		log_err("refill of %s: %s", job->addr, err);
	}
	free(job);
	atomic_store(&refilling, false);
	return NULL;
}

/*
 * {"cmd":"memsrv.secondary" or "memsrv.restore","addr":"HOST:PORT"}: fill a
 * new secondary for the slabs that lack one, or the slabs that lost every
 * copy from the backup (memroute.h), on a thread of its own.
 */
static json_t *vmm_ctl_fill(void *opaque, json_t *req, char *err, size_t errlen)
{
	struct vmm *v = opaque;
	const char *addr = json_string_value(json_object_get(req, "addr"));
	struct refill_job *job;
	bool restore =
		!strcmp(json_string_value(json_object_get(req, "cmd")) ?: "", "memsrv.restore");
	pthread_t t;

	if (!addr || !strchr(addr, ':') || strlen(addr) >= sizeof(job->addr)) {
		snprintf(err, errlen, "give \"addr\": the new secondary's \"HOST:PORT\"");
		return NULL;
	}
	if (atomic_exchange(&refilling, true)) {
		snprintf(err, errlen, "a refill or a restore is under way already");
		return NULL;
	}
	job = calloc(1, sizeof(*job));
	if (!job) {
		atomic_store(&refilling, false);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	job->xc = &v->xc;
	job->restore = restore;
	snprintf(job->addr, sizeof(job->addr), "%s", addr);
	if (pthread_create(&t, NULL, refill_main, job)) {
		free(job);
		atomic_store(&refilling, false);
		snprintf(err, errlen, "cannot start the refill");
		return NULL;
	}
	if (refill_started)
		pthread_join(refill_thread, NULL); /* done: refilling was false */
	refill_thread = t;
	refill_started = true;
	return json_pack("{s:s}", restore ? "restoring" : "refilling", addr);
}

/* {"cmd":"memsrv.lost","addr":"HOST:PORT"}: the manager declared it down: fail over now. */
static json_t *vmm_ctl_lost(void *opaque, json_t *req, char *err, size_t errlen)
{
	struct vmm *v = opaque;
	const char *addr = json_string_value(json_object_get(req, "addr"));
	int ret;

	if (!addr) {
		snprintf(err, errlen, "give \"addr\": the lost server's \"HOST:PORT\"");
		return NULL;
	}
	ret = memroute_lose(&v->xc.route, addr);
	if (ret == -EHOSTDOWN) {
		snprintf(err, errlen, "%s holds the only copy of a slab: not failing over", addr);
		return NULL;
	}
	return json_pack("{s:b}", "failed_over", ret == 0);
}

static json_t *vmm_ctl_status(void *opaque, json_t *req, char *err, size_t errlen)
{
	(void)req, (void)err, (void)errlen;
	return vmm_stats(opaque);
}

static int vmm_start_excache(struct vmm *v)
{
	const struct vmm_options *opt = v->opt;
	struct excache_config cfg = {
		.size = opt->excache_size,
		.memsrv = opt->memsrv,
		.slab_size = opt->slab_size,
		.memsrv_secondary = opt->memsrv_secondary,
		.nr_fault_threads = opt->nr_vcpus,
		.poll = opt->poll,
		.prefetch_max = opt->prefetch,
		.spin_us = opt->spin_us,
	};

	cfg.cred.nr_pages = v->vm.mem.size / 4096;
	cfg.cred.vnode = opt->vnode;
	cfg.cred.epoch = opt->epoch;
	if (opt->backup) { /* storsrv://HOST:PORT/VOLUME */
		static char host[128], vol[LMP_VOL_NAME_LEN];
		const char *slash = strchr(opt->backup + 10, '/');

		snprintf(host, sizeof(host), "%.*s", (int)(slash - opt->backup - 10),
			 opt->backup + 10);
		snprintf(vol, sizeof(vol), "%s", slash + 1);
		if (lmp_token_parse(opt->backup_token, cfg.backup_token)) {
			log_err("--memsrv-backup-token: not 64 hex digits");
			return -EINVAL;
		}
		cfg.backup_storsrv = host;
		cfg.backup_volume = vol;
		cfg.backup_interval_ms = opt->backup_interval_ms ? opt->backup_interval_ms : 1000;
	}
	if (opt->token)
		lmp_token_parse(opt->token, cfg.cred.token);
	/* Without a manager to hand them out, a fresh random identity: nobody else
	 * knows the token, so nobody else reaches the pages. */
	if ((!opt->vnode && getrandom(&cfg.cred.vnode, sizeof(cfg.cred.vnode), 0) < 0) ||
	    (!opt->token && getrandom(cfg.cred.token, LMP_TOKEN_LEN, 0) < 0))
		return -errno;
	if (excache_init(&v->xc, &v->vm, &cfg)) {
		excache_exit(&v->xc);
		return -1;
	}
	v->has_excache = true;
	return 0;
}

static int vmm_load_linux(struct vmm *v)
{
	const struct vmm_options *opt = v->opt;
	struct linux_boot lb;
	char *cmdline;
	int ret;

	char compat[1024] = "";

	if (v->vm.pvm_compat) {
		pvm_compat_cmdline(compat, sizeof(compat), v->vm.tsc_khz);
		if (pvm_compat_linux_init(&v->vm))
			return -ENOMEM;
	}
	/* the workarounds first, so that the user's options override them and a
	 * user's "--" (what follows goes to init) stays last */
	if (asprintf(&cmdline, "%s%s%s", compat, compat[0] ? " " : "",
		     opt->append ? opt->append : "console=ttyS0") < 0)
		return -ENOMEM;
	ret = linux_load(&v->vm, opt->kernel, opt->initrd, cmdline, &lb);
	if (!ret)
		log_info(
			"Linux: boot protocol %x.%02x, %s payload decompressed in %.1f ms (%.1f MiB), "
			"entry %#llx",
			lb.protocol >> 8, lb.protocol & 0xff, lb.compression, lb.decompress_ms,
			lb.decompressed_bytes / 1048576.0, (unsigned long long)lb.entry);
	log_debug("kernel command line: %s", cmdline);
	free(cmdline);
	return ret;
}

static int vmm_add_disk(struct vmm *v)
{
	struct blk_backend *be;

	if (!strncmp(v->opt->disk, BLK_NET_SCHEME, strlen(BLK_NET_SCHEME))) {
		if (!v->opt->has_disk_token) {
			log_err("--disk %s: a volume on a storage server needs its --disk-token",
				v->opt->disk);
			return -1;
		}
		if (blk_net_open(v->opt->disk, v->opt->disk_token, v->opt->disk_deadline_s * 1000,
				 &be))
			return -1;
	} else if (blk_raw_open(v->opt->disk, false, &be)) {
		return -1;
	}
	v->disk = virtio_blk_create(&v->vm, &v->pci, be);
	if (!v->disk) {
		be->ops->close(be);
		return -1;
	}
	return 0;
}

/*
 * The console: what is typed on stdin goes to the guest's serial port. On a
 * terminal, the terminal is put in raw mode (restored at exit) and Ctrl-A x
 * quits, Ctrl-A Ctrl-A sends one Ctrl-A. From a pipe, bytes are passed on as
 * they are, and end of input only stops the forwarding.
 */
#define CONSOLE_ESCAPE 0x01 /* Ctrl-A */

static struct termios console_saved;
static bool console_raw;

static void console_restore(void)
{
	if (console_raw)
		tcsetattr(STDIN_FILENO, TCSANOW, &console_saved);
	console_raw = false;
}

static void console_setup(void)
{
	struct termios t;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &console_saved))
		return;
	t = console_saved;
	cfmakeraw(&t);
	t.c_oflag |= OPOST | ONLCR; /* the VMM's own messages still start on a fresh line */
	if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0) {
		console_raw = true;
		atexit(console_restore);
		log_info("console: Ctrl-A x quits");
	}
}

/* Pass @n bytes of input on; returns false when the user asked to quit. */
static bool console_input(struct vmm *v, const uint8_t *buf, size_t n, bool *escape)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t c = buf[i];

		if (console_raw && *escape) {
			*escape = false;
			if (c == 'x' || c == 'X')
				return false;
			if (c != CONSOLE_ESCAPE)
				continue; /* an unknown escape: dropped */
		} else if (console_raw && c == CONSOLE_ESCAPE) {
			*escape = true;
			continue;
		}
		serial_input(&v->serial, &c, 1);
	}
	return true;
}

/* Wait for the guest to stop by itself or for SIGTERM/SIGINT/SIGHUP to stop it. */
static void vmm_wait_for_stop(struct vmm *v, int sfd)
{
	bool input = v->opt->kernel != NULL, escape = false;

	for (;;) {
		struct pollfd pfd[3] = {{.fd = v->vm.stop_fd, .events = POLLIN},
					{.fd = sfd, .events = POLLIN},
					{.fd = STDIN_FILENO, .events = POLLIN}};
		/* input only while the guest's receive buffer has room for what is read */
		bool room = input && serial_rx_room(&v->serial) >= 256;

		if (poll(pfd, room ? 3 : 2, input && !room ? 10 : -1) < 0) {
			if (errno == EINTR)
				continue;
			vm_stop(&v->vm, VM_EXIT_VMM_ERROR, "poll: %s", strerror(errno));
			return;
		}
		if (pfd[0].revents)
			return;
		if (pfd[1].revents) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				log_info("%s: stopping the guest", strsignal(si.ssi_signo));
				vm_stop(&v->vm, 0, "stopped by %s", strsignal(si.ssi_signo));
				return;
			}
		}
		if (room && pfd[2].revents) {
			uint8_t buf[256];
			ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

			if (n <= 0) {
				input = false; /* end of input: the guest keeps running */
			} else if (!console_input(v, buf, (size_t)n, &escape)) {
				log_info("console: Ctrl-A x: stopping the guest");
				vm_stop(&v->vm, 0, "stopped from the console");
				return;
			}
		}
	}
}

int main(int argc, char **argv)
{
	struct vmm_options opt;
	struct vmm v = {.opt = &opt};
	struct vm_config cfg;
	sigset_t sigs;
	int sfd, ret, status;

	ret = parse_options(argc, argv, &opt);
	if (ret)
		return ret;
	log_init("lego-vmm", opt.level);

	/* Blocked here so every thread inherits it: only the signalfd sees them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	signal(SIGPIPE, SIG_IGN);

	cfg = (struct vm_config){.mem_size = opt.mem_size,
				 .nr_vcpus = opt.nr_vcpus,
				 .strict_io = !opt.kernel, /* a real OS probes for absent devices */
				 .irqchip = !!opt.kernel,
				 .shutdown_is_poweroff = !!opt.kernel,
				 .cpuid_policy = opt.cpuid_policy};
	if (pvm_compat_host()) {
		cfg.pvm_compat = !opt.no_pvm_compat;
		log_info("kvm_pvm host (no hardware virtualisation): pvm_compat workarounds %s",
			 cfg.pvm_compat ? "on (--no-pvm-compat turns them off)" : "off");
	}
	if (vm_create(&v.vm, &cfg))
		return VM_EXIT_VMM_ERROR;
	status = VM_EXIT_VMM_ERROR;
	if (payload_dev_init(&v.payload, &v.vm, stdout, NULL, NULL))
		goto out_vm;
	if (opt.kernel && (serial_init(&v.serial, &v.vm, STDOUT_FILENO, SERIAL_IRQ) ||
			   i8042_init(&v.vm) || rtc_init(&v.rtc, &v.vm)))
		goto out_payload;
	if (opt.excache_size && vmm_start_excache(&v))
		goto out_payload;
	if ((opt.kernel || opt.disk) && pci_init(&v.pci, &v.vm))
		goto out_excache;
	if (opt.disk && vmm_add_disk(&v))
		goto out_excache;
	if (opt.kernel ? vmm_load_linux(&v) : payload_load(&v.vm, opt.payload, opt.args))
		goto out_excache;
	if (opt.control) {
		v.ctl = ctl_create(opt.control);
		if (!v.ctl)
			goto out_payload;
		ctl_register(v.ctl, "status", vmm_ctl_status, &v,
			     "state, memory, vCPUs and their exit counters");
		if (v.has_excache) {
			ctl_register(v.ctl, "excache", vmm_ctl_excache, &v,
				     "ExCache statistics: misses, evictions, write-backs, latency");
			ctl_register(
				v.ctl, "excache.resize", vmm_ctl_resize, &v,
				"change the ExCache size while the guest runs: {\"size\":\"64M\"}");
			ctl_register(v.ctl, "memsrv.lost", vmm_ctl_lost, &v,
				     "fail over from a server the manager declared down: "
				     "{\"addr\":\"HOST:PORT\"}");
			ctl_register(v.ctl, "memsrv.restore", vmm_ctl_fill, &v,
				     "refill the slabs that lost every copy from the backup, on "
				     "{\"addr\":\"HOST:PORT\"}");
			ctl_register(v.ctl, "memsrv.secondary", vmm_ctl_fill, &v,
				     "fill a new secondary for the slabs that lack one: "
				     "{\"addr\":\"HOST:PORT\"}");
		}
		if (ctl_start(v.ctl))
			goto out_ctl;
	}
	log_debug("running %s on %d vCPU(s) with %llu MiB", opt.kernel ? opt.kernel : opt.payload,
		  opt.nr_vcpus, (unsigned long long)(opt.mem_size / MiB));
	if (opt.kernel)
		console_setup();
	if (vm_start(&v.vm) == 0)
		vmm_wait_for_stop(&v, sfd);
	console_restore();
	if (v.has_excache)
		excache_stop(&v.xc); /* before joining vCPUs: may release a waiting access */
	status = vm_wait(&v.vm);
	if (status == VM_EXIT_GUEST_FAULT || status == VM_EXIT_VMM_ERROR)
		log_err("%s (exit status %d)", v.vm.stop_reason, status);
	else if (opt.kernel) /* how an OS ended is worth a line: it powered off, or was stopped */
		log_info("%s (exit status %d)", v.vm.stop_reason, status);
	else
		log_debug("%s (exit status %d)", v.vm.stop_reason, status);
	if (opt.stats) {
		json_t *s = vmm_stats(&v);
		char *text = json_dumps(s, JSON_COMPACT);

		fprintf(stderr, "STATS %s\n", text ? text : "{}");
		free(text);
		json_decref(s);
	}
	if (opt.stats && v.has_excache) {
		json_t *s = vmm_excache_stats(&v);
		char *text = json_dumps(s, JSON_COMPACT);

		fprintf(stderr, "EXCACHE %s\n", text ? text : "{}");
		free(text);
		json_decref(s);
	}
out_ctl:
	ctl_destroy(v.ctl);
out_excache:
	virtio_blk_destroy(v.disk);
	if (refill_started) { /* a refill or restore under way ends first */
		memroute_close_all(&v.xc.route);
		pthread_join(refill_thread, NULL);
	}
	if (v.has_excache)
		excache_exit(&v.xc);
out_payload:
	payload_dev_exit(&v.payload);
out_vm:
	if (v.vm.pvm_linux) {
		uint64_t syscalls, faults;

		pvm_compat_linux_stats(&v.vm, &syscalls, &faults);
		log_debug(
			"pvm_compat: %llu guest system calls completed, %llu user faults passed on",
			(unsigned long long)syscalls, (unsigned long long)faults);
	}
	if (opt.kernel) {
		log_debug("serial: %llu bytes out, %llu in, %llu interrupts",
			  (unsigned long long)v.serial.tx_bytes,
			  (unsigned long long)v.serial.rx_bytes, (unsigned long long)v.serial.irqs);
	}
	vm_destroy(&v.vm);
	pvm_compat_linux_exit(&v.vm);
	if (sfd >= 0)
		close(sfd);
	return status;
}
