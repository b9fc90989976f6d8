/* vmm.c - the program's driver: setup and teardown of every module in order, the main loop,
 * pause and snapshot. (Its command line is args.c.) */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "util.h"
#include "virtio_pci.h"
#include "vmm.h"
#include "sandbox.h"

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
	pthread_mutex_init(&v->life_lock, NULL);
	v->migrate_sock = -1;
	v->init_ns = now_ns();
	order_init(&v->order);
	for (int fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			v->inherited_fds[fd / 64] |= 1ULL << (fd % 64);
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
		      (int)getpid(), "memory_bytes", (json_int_t)gmem_ram_bytes(&vm->mem),
		      "nr_vcpus", vm->nr_vcpus, "tsc_khz", (json_int_t)vm->tsc_khz, "uptime_ms",
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
	if (v->incoming) {
		int ret = migrate_incoming(v);

		if (ret)
			return ret;
	}
	for (int i = 0; v->restoring && i < v->nr_modules; i++) {
		const struct vmm_module *m = v->modules[i];
		int ret = v->active[i] && m->restore ? m->restore(v, v->restoring) : 0;

		if (ret < 0) {
			log_err("restoring %s from the snapshot failed: %s", m->name,
				strerror(-ret));
			return ret;
		}
	}
	if (v->incoming) {
		int ret = migrate_commit(v);

		if (ret)
			return ret;
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

/*
 * One life of the machine: create the VM, set every module up, run the guest
 * until it stops, tear down. *@reset says whether the guest asked to boot
 * again (a reboot), and *@ram and *@ram_len where its RAM was mapped (for
 * --check-leaks).
 */
static int run_machine(struct vmm *v, int sfd, bool *reset, uint64_t *ram, uint64_t *ram_len)
{
	struct vm_config cfg = {.mem_size = v->order.memory, .nr_vcpus = v->order.cpus};
	int ret, status = VM_EXIT_VMM_ERROR;

	*reset = false;
	for (int i = 0; i < v->nr_modules; i++)
		if (v->modules[i]->configure)
			v->modules[i]->configure(v, &cfg);
	if (vm_create(&v->vm, &cfg))
		return status;
	ret = setup(v);
	if (v->restoring) { /* all of it is in the VM now */
		snap_close(v->restoring);
		free(v->restoring);
		v->restoring = NULL;
		v->restored = true;
	}
	if (ret == 0) {
		log_debug("running %s on %d vCPU(s) with %llu MiB",
			  v->order.kernel ? v->order.kernel : v->order.payload, v->order.cpus,
			  (unsigned long long)(v->order.memory / MiB));
		if (vm_start(&v->vm) == 0) {
			v->run_ns = now_ns();
			log_debug("the vCPUs run %.1f ms after lego-vmm started%s",
				  (v->run_ns - v->init_ns) / 1e6, v->restored ? " (restored)" : "");
			wait_for_stop(v, sfd);
		}
		for (int i = v->nr_modules - 1; i >= 0; i--)
			if (v->active[i] && v->modules[i]->stop)
				v->modules[i]->stop(v);
		status = vm_wait(&v->vm);
		*reset = v->vm.reset && status == 0;
		if (status == VM_EXIT_GUEST_FAULT || status == VM_EXIT_VMM_ERROR)
			log_err("%s (exit status %d)", v->vm.stop_reason, status);
		else if (*reset)
			log_info("%s", v->vm.stop_reason);
		else
			log_debug("%s (exit status %d)", v->vm.stop_reason, status);
		if (v->stats && !*reset)
			print_stats(v);
	}
	/* A reset keeps the vNode's memory on its servers: the same placement boots again. */
	if (*reset)
		v->keep_memory = true;
	teardown(v);
	*ram = (uint64_t)(uintptr_t)v->vm.mem.base;
	*ram_len = v->vm.mem.map_size;
	vm_destroy(&v->vm);
	return status;
}

int vmm_run(struct vmm *v)
{
	uint64_t ram = 0, ram_len = 0;
	sigset_t sigs;
	int sfd, status = VM_EXIT_VMM_ERROR;
	bool reset = false;

	log_init("lego-vmm", v->level);
	if (sandbox_init((enum sandbox_mode)v->seccomp))
		return VM_EXIT_VMM_ERROR;
	/* Blocked here so every thread inherits it: only the signalfd sees them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	signal(SIGPIPE, SIG_IGN);
	if (sfd >= 0) {
		do {
			status = run_machine(v, sfd, &reset, &ram, &ram_len);
			/* the next boot is a first boot: nothing to restore or receive */
			v->incoming = false;
			v->restored = false;
			v->keep_memory = false;
			v->paused = false;
			v->resets += reset;
		} while (reset);
	}
	if (sfd >= 0)
		close(sfd);
	if (v->restoring) {
		snap_close(v->restoring);
		free(v->restoring);
		v->restoring = NULL;
	}
	if (v->check_leaks && check_leaks(v, ram, ram_len))
		status = VM_EXIT_VMM_ERROR;
	order_free(&v->order);
	return status;
}

/* ---- the vNode at rest: pause, snapshot, restore ---- */

int vmm_pause(struct vmm *v)
{
	int ret;

	if (v->paused)
		return 0;
	ret = vm_pause(&v->vm);
	if (ret) {
		vm_resume(&v->vm);
		return ret;
	}
	for (int i = v->nr_modules - 1; i >= 0; i--)
		if (v->active[i] && v->modules[i]->quiesce)
			v->modules[i]->quiesce(v);
	v->paused = true;
	return 0;
}

void vmm_resume(struct vmm *v)
{
	if (!v->paused)
		return;
	for (int i = 0; i < v->nr_modules; i++)
		if (v->active[i] && v->modules[i]->unquiesce)
			v->modules[i]->unquiesce(v);
	vm_resume(&v->vm);
	v->paused = false;
}

int vmm_save(struct vmm *v, int fd, char *err, size_t errlen)
{
	struct snap_writer w;
	json_t *order = order_to_json(&v->order);
	char *text = order ? json_dumps(order, JSON_COMPACT) : NULL;
	int ret = 0;

	json_decref(order);
	if (!text) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snap_begin(&w, fd);
	snap_put(&w, "order", text, strlen(text));
	explicit_bzero(text, strlen(text)); /* it holds the credentials */
	free(text);
	for (int i = 0; !ret && i < v->nr_modules; i++) {
		const struct vmm_module *m = v->modules[i];

		if (v->active[i] && m->save && (ret = m->save(v, &w)))
			snprintf(err, errlen, "saving %s: %s", m->name, strerror(-ret));
	}
	if (!ret && (ret = snap_end(&w)))
		snprintf(err, errlen, "writing the snapshot: %s", strerror(-ret));
	return ret;
}

void vmm_devices_quiesce(struct virtio_dev *const *devs, int n, bool quiesce)
{
	for (int i = 0; i < n; i++)
		(quiesce ? virtio_pci_quiesce : virtio_pci_unquiesce)(devs[i]);
}

int vmm_save_pages(struct snap_writer *w, const char *name, const uint8_t *base, uint64_t pages,
		   bool (*skip)(void *opaque, uint64_t page), void *opaque)
{
	static const uint8_t zero[4096];
	uint8_t *map = calloc((pages + 7) / 8, 1);
	char section[SNAP_NAME];

	if (!map)
		return -ENOMEM;
	for (uint64_t p = 0; p < pages; p++)
		if ((!skip || !skip(opaque, p)) && memcmp(base + p * 4096, zero, 4096))
			map[p / 8] |= (uint8_t)(1u << (p % 8));
	snprintf(section, sizeof(section), "%s.map", name);
	snap_put(w, section, map, (pages + 7) / 8);
	snap_open_section(w, name);
	for (uint64_t p = 0; p < pages; p++)
		if (map[p / 8] & (1u << (p % 8)))
			snap_write(w, base + p * 4096, 4096);
	snap_close_section(w);
	free(map);
	return w->err;
}

int vmm_restore_pages(const struct snap *s, const char *name, uint8_t *base, uint64_t pages)
{
	char section[SNAP_NAME];
	uint64_t map_len, len, n = 0;
	const uint8_t *map, *data = snap_get(s, name, &len);

	snprintf(section, sizeof(section), "%s.map", name);
	map = snap_get(s, section, &map_len);
	if (!map || !data || map_len != (pages + 7) / 8) {
		log_err("the snapshot holds no %s for %llu pages (its vNode had an ExCache?)", name,
			(unsigned long long)pages);
		return -EINVAL;
	}
	for (uint64_t p = 0; p < pages; p++) {
		if (!(map[p / 8] & (1u << (p % 8))))
			continue;
		if ((n + 1) * 4096 > len)
			return -EINVAL;
		memcpy(base + p * 4096, data + n++ * 4096, 4096);
	}
	return n * 4096 == len ? 0 : -EINVAL;
}

int vmm_devices_save(struct snap_writer *w, const char *prefix, struct virtio_dev *const *devs,
		     int n)
{
	uint8_t buf[VIRTIO_PCI_STATE_MAX];

	for (int i = 0; i < n; i++) {
		char name[SNAP_NAME];

		snprintf(name, sizeof(name), "%s.%d", prefix, i);
		snap_put(w, name, buf, virtio_pci_save(devs[i], buf));
	}
	return w->err;
}

int vmm_devices_restore(const struct snap *s, const char *prefix, struct virtio_dev *const *devs,
			int n)
{
	for (int i = 0; i < n; i++) {
		char name[SNAP_NAME];
		uint64_t len;
		const void *b;

		snprintf(name, sizeof(name), "%s.%d", prefix, i);
		b = snap_get(s, name, &len);
		if (!b) {
			log_err("the snapshot has no %s: its vNode had other devices", name);
			return -EINVAL;
		}
		if (virtio_pci_restore(devs[i], b, len))
			return -EINVAL;
	}
	return 0;
}
