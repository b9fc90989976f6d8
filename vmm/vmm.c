/* vmm.c - the program's driver: options from every module, setup and teardown in order, the main loop. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cpuid.h"
#include "util.h"
#include "vmm.h"

static int module_index(const struct vmm *v, const struct vmm_module *m)
{
	for (int i = 0; i < v->nr_modules; i++)
		if (v->modules[i] == m)
			return i;
	return -1;
}

void *vmm_priv(struct vmm *v, const struct vmm_module *m)
{
	int i = module_index(v, m);

	return i < 0 ? NULL : v->priv[i];
}

void vmm_set_priv(struct vmm *v, const struct vmm_module *m, void *priv)
{
	int i = module_index(v, m);

	if (i >= 0)
		v->priv[i] = priv;
}

bool vmm_active(const struct vmm *v, const struct vmm_module *m)
{
	int i = module_index(v, m);

	return i >= 0 && v->active[i];
}

int vmm_watch(struct vmm *v, const struct vmm_watch *w)
{
	if (v->nr_watches == VMM_MAX_WATCHES)
		return -ENOSPC;
	v->watches[v->nr_watches++] = *w;
	return 0;
}

void vmm_init(struct vmm *v, const struct vmm_module *const *modules, int nr)
{
	memset(v, 0, sizeof(*v));
	v->modules = modules;
	v->nr_modules = nr < VMM_MAX_MODULES ? nr : VMM_MAX_MODULES;
	v->level = LOG_INFO;
	order_init(&v->order);
	for (int fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			v->inherited_fds[fd / 64] |= 1ULL << (fd % 64);
}

/* ---- the command line ---- */

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
		"  --order-fd N     the same, read from inherited descriptor N (then closed)\n");
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
		"  -v, --verbose    more messages; -q, --quiet fewer\n"
		"  -h, --help       this text; --version the version\n"
		"\n"
		"Exit status: the status the guest reports (0-255), %d for a wrong command line,\n"
		"%d when the host cannot run the VM, %d when the guest had to be stopped for a\n"
		"fault (the message and the guest's registers are on stderr). SIGTERM or SIGINT\n"
		"stops the guest and exits 0.\n",
		VM_EXIT_USAGE, VM_EXIT_VMM_ERROR, VM_EXIT_GUEST_FAULT);
}

/* The order read from @fd, onto what the options before it said. */
static int read_order(struct vmm *v, int fd)
{
	char err[512];

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
		bool secret = v->order.has_token || v->order.backup.has_token;

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

enum { OPT_ORDER = 1000, OPT_ORDER_FD, OPT_STATS, OPT_LEAKS, OPT_VERSION, OPT_MODULE = 2000 };

int vmm_parse_args(struct vmm *v, int argc, char **argv)
{
	static const struct option own[] = {
		{"order", required_argument, NULL, OPT_ORDER},
		{"order-fd", required_argument, NULL, OPT_ORDER_FD},
		{"stats", no_argument, NULL, OPT_STATS},
		{"check-leaks", no_argument, NULL, OPT_LEAKS},
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
		case OPT_STATS:
			v->stats = true;
			break;
		case OPT_LEAKS:
			v->check_leaks = true;
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
	return 0;
}

/* ---- running ---- */

json_t *vmm_status(struct vmm *v)
{
	static const char *const names[] = {"created", "running", "done", "stopped"};
	struct vm *vm = &v->vm;
	json_t *vcpus = json_array(), *j;
	bool stopping;
	int status;

	for (int i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *c = &vm->vcpus[i];
		int st = c->state;

		json_array_append_new(
			vcpus,
			json_pack("{s:i,s:s,s:I,s:I,s:I}", "index", i, "state",
				  st >= 0 && st < (int)ARRAY_SIZE(names) ? names[st] : "?", "exits",
				  (json_int_t)c->nr_exits, "pio_exits", (json_int_t)c->nr_pio,
				  "mmio_exits", (json_int_t)c->nr_mmio));
	}
	pthread_mutex_lock(&vm->lock);
	stopping = vm->stopping;
	status = vm->exit_status;
	pthread_mutex_unlock(&vm->lock);
	j = json_pack("{s:s,s:s,s:i,s:I,s:i,s:I,s:I,s:I,s:o,s:o}", "state",
		      stopping ? "stopping" : "running", "mode", v->mode ? v->mode : "?", "pid",
		      (int)getpid(), "memory_bytes", (json_int_t)vm->mem.size, "nr_vcpus",
		      vm->nr_vcpus, "tsc_khz", (json_int_t)vm->tsc_khz, "uptime_ms",
		      (json_int_t)((now_ns() - vm->created_ns) / 1000000), "first_guest_ns",
		      (json_int_t)vm->first_guest_ns, "exit_status",
		      stopping ? json_integer(status) : json_null(), "vcpus", vcpus);
	if (v->order.name)
		json_object_set_new(j, "name", json_string(v->order.name));
	for (int i = 0; i < v->nr_modules; i++)
		if (v->active[i] && v->modules[i]->status)
			v->modules[i]->status(v, j);
	return j;
}

static void teardown(struct vmm *v)
{
	for (int i = v->nr_modules - 1; i >= 0; i--) {
		if (!v->active[i])
			continue;
		v->active[i] = false;
		if (v->modules[i]->teardown)
			v->modules[i]->teardown(v);
	}
}

static int setup(struct vmm *v)
{
	for (int i = 0; i < v->nr_modules; i++) {
		const struct vmm_module *m = v->modules[i];
		int ret = m->setup ? m->setup(v) : 0;

		if (ret < 0) {
			log_debug("setting up %s failed: %s", m->name, strerror(-ret));
			return ret;
		}
		v->active[i] = ret != VMM_IDLE;
	}
	for (int i = 0; i < v->nr_modules; i++) {
		int ret = v->active[i] && v->modules[i]->start ? v->modules[i]->start(v) : 0;

		if (ret < 0) {
			log_debug("starting %s failed: %s", v->modules[i]->name, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

/* Run until the guest stops by itself, a watch says stop, or a signal comes. */
static void wait_for_stop(struct vmm *v, int sfd)
{
	for (;;) {
		struct pollfd pfd[2 + VMM_MAX_WATCHES] = {{.fd = v->vm.stop_fd, .events = POLLIN},
							  {.fd = sfd, .events = POLLIN}};
		int timeout = -1;

		for (int i = 0; i < v->nr_watches; i++) {
			struct vmm_watch *w = &v->watches[i];
			bool ready = !w->ready || w->ready(v, w->opaque);

			pfd[2 + i] = (struct pollfd){.fd = ready ? w->fd : -1, .events = POLLIN};
			if (!ready)
				timeout = 10; /* it will be ready soon: look again */
		}
		if (poll(pfd, 2 + v->nr_watches, timeout) < 0) {
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
		for (int i = v->nr_watches - 1; i >= 0; i--) {
			struct vmm_watch *w = &v->watches[i];

			if (pfd[2 + i].revents && !w->fn(v, w->opaque))
				v->watches[i] = v->watches[--v->nr_watches];
		}
	}
}

static void print_stats(struct vmm *v)
{
	json_t *s = vmm_status(v);
	char *text = json_dumps(s, JSON_COMPACT);

	fprintf(stderr, "STATS %s\n", text ? text : "{}");
	free(text);
	json_decref(s);
	for (int i = 0; i < v->nr_modules; i++) {
		const struct vmm_module *m = v->modules[i];

		if (!v->active[i] || !m->stats)
			continue;
		s = m->stats(v);
		text = json_dumps(s, JSON_COMPACT);
		fprintf(stderr, "%s %s\n", m->stats_tag ? m->stats_tag : m->name,
			text ? text : "{}");
		free(text);
		json_decref(s);
	}
}

/* Threads of this process but the calling one; the kernel's io_uring workers not counted. */
static int other_threads(void)
{
	char path[300], comm[32];
	struct dirent *d;
	int n = 0;
	DIR *dir = opendir("/proc/self/task");

	while (dir && (d = readdir(dir))) {
		FILE *f;

		if (d->d_name[0] == '.' || atoi(d->d_name) == gettid())
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", d->d_name);
		f = fopen(path, "r");
		comm[0] = '\0';
		if (f && !fgets(comm, sizeof(comm), f))
			comm[0] = '\0';
		if (f)
			fclose(f);
		n += strncmp(comm, "iou-", 4) != 0;
	}
	if (dir)
		closedir(dir);
	return n;
}

/*
 * After teardown nothing of the run should be left: no descriptor that was
 * not open at start, no thread but this one, the guest's RAM (at @ram, @ram_bytes)
 * unmapped. Reported as "LEAK ..." lines on stderr; the count is returned.
 */
static int check_leaks(struct vmm *v, uint64_t ram, uint64_t ram_bytes)
{
	char path[64], target[256], line[512];
	int leaks = 0, threads;
	struct dirent *d;
	DIR *dir;
	FILE *f;

	if ((dir = opendir("/proc/self/fd"))) {
		while ((d = readdir(dir))) {
			int fd = atoi(d->d_name);
			ssize_t n;

			if (d->d_name[0] == '.' || fd == dirfd(dir) ||
			    (fd < 1024 && (v->inherited_fds[fd / 64] & (1ULL << (fd % 64)))))
				continue;
			snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
			n = readlink(path, target, sizeof(target) - 1);
			target[n > 0 ? n : 0] = '\0';
			fprintf(stderr, "LEAK fd %d -> %s\n", fd, target);
			leaks++;
		}
		closedir(dir);
	}
	threads = other_threads();
	if (threads) {
		fprintf(stderr, "LEAK %d thread(s) besides the main one\n", threads);
		leaks++;
	}
	if (ram && (f = fopen("/proc/self/maps", "r"))) {
		while (fgets(line, sizeof(line), f)) {
			unsigned long long lo, hi;

			if (sscanf(line, "%llx-%llx", &lo, &hi) == 2 && lo <= ram &&
			    hi >= ram + ram_bytes) {
				fprintf(stderr, "LEAK guest RAM is still mapped: %s", line);
				leaks++;
			}
		}
		fclose(f);
	}
	return leaks;
}

int vmm_run(struct vmm *v)
{
	struct vm_config cfg = {.mem_size = v->order.memory, .nr_vcpus = v->order.cpus};
	uint64_t ram = 0;
	sigset_t sigs;
	int sfd, status = VM_EXIT_VMM_ERROR;

	log_init("lego-vmm", v->level);
	/* Blocked here so every thread inherits it: only the signalfd sees them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	signal(SIGPIPE, SIG_IGN);
	for (int i = 0; i < v->nr_modules; i++)
		if (v->modules[i]->configure)
			v->modules[i]->configure(v, &cfg);
	if (sfd < 0 || vm_create(&v->vm, &cfg))
		goto out;
	if (setup(v) == 0) {
		log_debug("running %s on %d vCPU(s) with %llu MiB",
			  v->order.kernel ? v->order.kernel : v->order.payload, v->order.cpus,
			  (unsigned long long)(v->order.memory / MiB));
		if (vm_start(&v->vm) == 0)
			wait_for_stop(v, sfd);
		for (int i = v->nr_modules - 1; i >= 0; i--)
			if (v->active[i] && v->modules[i]->stop)
				v->modules[i]->stop(v);
		status = vm_wait(&v->vm);
		if (status == VM_EXIT_GUEST_FAULT || status == VM_EXIT_VMM_ERROR)
			log_err("%s (exit status %d)", v->vm.stop_reason, status);
		else
			log_debug("%s (exit status %d)", v->vm.stop_reason, status);
		if (v->stats)
			print_stats(v);
	}
	teardown(v);
	ram = (uint64_t)(uintptr_t)v->vm.mem.base;
	vm_destroy(&v->vm);
out:
	if (sfd >= 0)
		close(sfd);
	if (v->check_leaks && check_leaks(v, ram, v->order.memory))
		status = VM_EXIT_VMM_ERROR;
	order_free(&v->order);
	return status;
}

/* ---- the machine itself: memory, vCPUs, CPUID ---- */

static int opt_memory(struct vmm *v, const char *arg, char *err, size_t errlen)
{
	uint64_t size;

	if (parse_size(arg, &size)) {
		snprintf(err, errlen, "--memory: '%s' is not a size (e.g. 512M, 2G)", arg);
		return -EINVAL;
	}
	if (size < ORDER_MIN_MEMORY || size % (4 * KiB)) {
		snprintf(err, errlen, "--memory: %s is not a multiple of 4 KiB of at least 4M",
			 arg);
		return -EINVAL;
	}
	v->order.memory = size;
	return 0;
}

static int opt_cpus(struct vmm *v, const char *arg, char *err, size_t errlen)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(arg, &end, 10);
	if (errno || *end || end == arg || n < 1 || n > VM_MAX_VCPUS) {
		snprintf(err, errlen, "--cpus: '%s' is not a vCPU count from 1 to 64", arg);
		return -EINVAL;
	}
	v->order.cpus = (int)n;
	return 0;
}

static int opt_cpuid(struct vmm *v, const char *arg, char *err, size_t errlen)
{
	if (cpuid_policy_parse(arg) < 0) {
		snprintf(err, errlen, "--cpuid: '%s' is not a policy (host or baseline)", arg);
		return -EINVAL;
	}
	return order_set(&v->order.cpuid, arg);
}

static void machine_configure(struct vmm *v, struct vm_config *cfg)
{
	cfg->cpuid_policy = v->order.cpuid ? cpuid_policy_parse(v->order.cpuid) : CPUID_HOST;
}

static const struct vmm_option machine_options[] = {
	{"memory", "SIZE", "guest RAM, e.g. 64M, 2G (default 256M)", opt_memory},
	{"cpus", "N", "number of vCPUs, one host thread each (default 1)", opt_cpus},
	{"cpuid", "POLICY",
	 "the vCPUs' CPUID: host (all KVM supports, the default) or\n"
	 "                   baseline (x86-64-v2: no AVX, AVX-512, ...; see vmm/cpuid.h)",
	 opt_cpuid},
	{NULL},
};

const struct vmm_module mod_machine = {
	.name = "machine",
	.options = machine_options,
	.configure = machine_configure,
};
