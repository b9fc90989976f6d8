/*
 * mod_machine.c - the machine itself as a module: memory, vCPUs and CPUID
 * (options), its memory and vCPUs in a snapshot, and the control commands
 * that act on the whole vNode (pause, resume, snapshot, shutdown, reboot).
 * vmm.c drives the modules; this is one of them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cpuid.h"
#include "excache.h"
#include "util.h"
#include "vm_state.h"
#include "vmm.h"

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

/* Per vCPU: whether it had finished (a payload's vCPU that exited). */
struct vcpus_blob {
	uint32_t nr;
	uint8_t finished[VM_MAX_VCPUS];
};

static int machine_save(struct vmm *v, struct snap_writer *w)
{
	struct vm *vm = &v->vm;
	struct vcpus_blob vb = {.nr = (uint32_t)vm->nr_vcpus};
	uint8_t vmb[VM_STATE_VM_MAX];
	size_t len, max = vm_state_vcpu_size();
	void *buf = malloc(max);
	int ret;

	if (!buf)
		return -ENOMEM;
	ret = vm_state_save_vm(vm, vmb, &len);
	if (!ret)
		snap_put(w, "machine.vm", vmb, len);
	for (int i = 0; !ret && i < vm->nr_vcpus; i++) {
		char name[SNAP_NAME];

		vb.finished[i] = vm->vcpus[i].finished;
		ret = vm_state_save_vcpu(&vm->vcpus[i], buf, &len);
		snprintf(name, sizeof(name), "machine.vcpu.%d", i);
		if (!ret)
			snap_put(w, name, buf, len);
	}
	free(buf);
	if (ret)
		return ret;
	snap_put(w, "machine.vcpus", &vb, sizeof(vb));
	if (vm->quirks && vm->quirks->save) {
		uint8_t qb[512];
		ssize_t n = vm->quirks->save(vm, qb, sizeof(qb));

		if (n < 0)
			return (int)n;
		if (n > 0)
			snap_put(w, "machine.quirks", qb, (uint64_t)n);
	}
	if (!v->xc &&
	    (ret = vmm_save_pages(w, "memory", v->vm.mem.base, v->vm.mem.size / 4096, NULL, NULL)))
		return ret;
	return w->err;
}

static int machine_restore(struct vmm *v, const struct snap *s)
{
	struct vm *vm = &v->vm;
	const struct vcpus_blob *vb;
	const void *b;
	uint64_t len;
	int ret;

	vb = snap_get(s, "machine.vcpus", &len);
	if (!vb || len != sizeof(*vb) || vb->nr != (uint32_t)vm->nr_vcpus) {
		log_err("the snapshot is of a vNode with other vCPUs than %d", vm->nr_vcpus);
		return -EINVAL;
	}
	b = snap_get(s, "machine.vm", &len);
	if (!b || (ret = vm_state_load_vm(vm, b, len))) {
		log_err("the snapshot's interrupt controllers cannot be loaded");
		return b ? ret : -EINVAL;
	}
	for (int i = 0; i < vm->nr_vcpus; i++) {
		char name[SNAP_NAME];

		snprintf(name, sizeof(name), "machine.vcpu.%d", i);
		b = snap_get(s, name, &len);
		if (!b || (ret = vm_state_load_vcpu(&vm->vcpus[i], b, len))) {
			log_err("vCPU %d's state cannot be loaded from the snapshot: %s", i,
				b ? strerror(-ret) : "missing");
			return b ? ret : -EINVAL;
		}
		vm->vcpus[i].finished = vb->finished[i];
	}
	b = snap_get(s, "machine.quirks", &len);
	if (b && vm->quirks && vm->quirks->load && (ret = vm->quirks->load(vm, b, len))) {
		log_err("the snapshot's %s state cannot be loaded", vm->quirks->name);
		return ret;
	}
	return v->xc ? 0 : vmm_restore_pages(s, "memory", v->vm.mem.base, v->vm.mem.size / 4096);
}

/* {"cmd":"pause"} */
static json_t *cmd_pause(struct vmm *v, json_t *req, char *err, size_t errlen)
{
	int ret;

	(void)req;
	pthread_mutex_lock(&v->life_lock);
	ret = vmm_pause(v);
	pthread_mutex_unlock(&v->life_lock);
	if (ret) {
		snprintf(err, errlen, "the guest is stopping: it cannot be paused");
		return NULL;
	}
	return json_pack("{s:b}", "paused", 1);
}

/* {"cmd":"resume"} */
static json_t *cmd_resume(struct vmm *v, json_t *req, char *err, size_t errlen)
{
	(void)req, (void)err, (void)errlen;
	pthread_mutex_lock(&v->life_lock);
	vmm_resume(v);
	pthread_mutex_unlock(&v->life_lock);
	return json_pack("{s:b}", "paused", 0);
}

/*
 * {"cmd":"snapshot","path":FILE,"then":"resume"|"pause"|"stop"}: the vNode
 * paused, saved into FILE (mode 0600: it holds the order's credentials),
 * then running again (the default), left paused, or stopped for good. With
 * an ExCache the memory servers hold its memory, which must not change after
 * the snapshot: only "stop" is allowed then, and the memory stays there for
 * the restore (keep_memory).
 */
static json_t *cmd_snapshot(struct vmm *v, json_t *req, char *err, size_t errlen)
{
	const char *path = json_string_value(json_object_get(req, "path"));
	const char *then = json_string_value(json_object_get(req, "then"));
	uint64_t t0 = now_ns(), pause_start, paused_ns;
	bool was_paused;
	struct stat st;
	int fd, ret;

	if (!then)
		then = v->xc ? "stop" : "resume";
	if (!path || !*path) {
		snprintf(err, errlen, "give \"path\": the file to write the snapshot to");
		return NULL;
	}
	if (strcmp(then, "resume") && strcmp(then, "pause") && strcmp(then, "stop")) {
		snprintf(err, errlen, "\"then\": '%s' is none of resume, pause, stop", then);
		return NULL;
	}
	if (v->xc && strcmp(then, "stop")) {
		snprintf(err, errlen,
			 "this vNode's memory is on memory servers, where it would go on "
			 "changing after the snapshot: take it with \"then\":\"stop\"");
		return NULL;
	}
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "cannot write %s: %s", path,
			 fd < 0 ? strerror(errno) : "not a regular file");
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	pthread_mutex_lock(&v->life_lock);
	was_paused = v->paused;
	/* the ExCache's dirty pages go back while the guest still runs (a pre-copy):
	 * paused, it writes back only what was dirtied since */
	if (v->xc && !was_paused && excache_flush(v->xc))
		log_warn("snapshot: the pre-copy of dirty pages failed; the pause writes them all");
	pause_start = now_ns();
	ret = vmm_pause(v);
	paused_ns = now_ns();
	if (ret)
		snprintf(err, errlen, "the guest is stopping: no snapshot");
	else if ((ret = vmm_save(v, fd, err, errlen)) == 0 && !strcmp(then, "stop")) {
		v->keep_memory = true;
		vm_stop(&v->vm, 0, "stopped after its snapshot to %s", path);
	} else if (!strcmp(then, "resume") && !was_paused) {
		vmm_resume(v);
	}
	pthread_mutex_unlock(&v->life_lock);
	if (!ret && fstat(fd, &st))
		st.st_size = 0;
	close(fd);
	if (ret) {
		unlink(path);
		return NULL;
	}
	log_info("snapshot to %s in %.1f ms; the vNode is %s", path, (now_ns() - t0) / 1e6,
		 !strcmp(then, "stop")			? "stopping"
		 : !strcmp(then, "pause") || was_paused ? "paused"
							: "running again");
	/* pause_ms: to have the vCPUs stopped; stopped_ms: the guest not running for it */
	return json_pack("{s:s,s:I,s:f,s:f,s:f}", "path", path, "bytes", (json_int_t)st.st_size,
			 "pause_ms", (paused_ns - pause_start) / 1e6, "stopped_ms",
			 (now_ns() - pause_start) / 1e6, "ms", (now_ns() - t0) / 1e6);
}

static void machine_status(struct vmm *v, json_t *status)
{
	json_object_set_new(status, "paused", json_boolean(v->paused));
	if (v->run_ns) /* from lego-vmm's start to its vCPUs': a boot's set-up, or a restore */
		json_object_set_new(status, "start_ms", json_real((v->run_ns - v->init_ns) / 1e6));
	if (v->restored)
		json_object_set_new(status, "restored", json_true());
	json_object_set_new(status, "resets", json_integer((json_int_t)v->resets));
}

/* "timeout_ms" of @req: milliseconds, 1 to a day (default 60 s); -1 after a sentence in @err. */
static int timeout_arg(json_t *req, char *err, size_t errlen)
{
	json_t *t = json_object_get(req, "timeout_ms");

	if (!t)
		return 60000;
	if (!json_is_integer(t) || json_integer_value(t) < 1 ||
	    json_integer_value(t) > 24 * 3600 * 1000) {
		snprintf(err, errlen, "\"timeout_ms\" is a number of milliseconds, 1 to 86400000");
		return -1;
	}
	return (int)json_integer_value(t);
}

/*
 * The power button. A paused guest cannot answer it: it is resumed once the
 * button is pressed (the press waits for it as an interrupt would), so that
 * a graceful stop of a paused vNode is a graceful stop.
 */
static json_t *press(struct vmm *v, bool reboot, int timeout_ms, char *err, size_t errlen)
{
	bool resumed = false;

	if (timeout_ms < 0)
		return NULL;
	if (legacy_press(v, reboot, timeout_ms)) {
		snprintf(err, errlen, "this machine has no power button (a payload): %s",
			 reboot ? "force resets it" : "only a forced stop ends it");
		return NULL;
	}
	pthread_mutex_lock(&v->life_lock);
	if (v->paused) {
		vmm_resume(v);
		resumed = true;
	}
	pthread_mutex_unlock(&v->life_lock);
	if (resumed)
		log_info("the vNode was paused: resumed to answer its power button");
	return json_pack("{s:b,s:i,s:b}", "pressed", 1, "timeout_ms", timeout_ms, "resumed",
			 resumed);
}

/*
 * {"cmd":"shutdown","timeout_ms":N}: press the power button; the guest shuts
 * down and powers off (ACPI S5), or is stopped after N ms (default 60 s).
 */
static json_t *cmd_shutdown(struct vmm *v, json_t *req, char *err, size_t errlen)
{
	return press(v, false, timeout_arg(req, err, errlen), err, errlen);
}

/*
 * {"cmd":"reboot","force":false,"timeout_ms":N}: the power button, and the
 * guest's power-off resets the machine instead (a reset after N ms at the
 * latest); with "force", a reset at once, as a reset button would.
 */
static json_t *cmd_reboot(struct vmm *v, json_t *req, char *err, size_t errlen)
{
	json_t *force = json_object_get(req, "force");

	if (force && !json_is_boolean(force)) {
		snprintf(err, errlen, "\"force\" is true or false");
		return NULL;
	}
	if (!json_is_true(force))
		return press(v, true, timeout_arg(req, err, errlen), err, errlen);
	pthread_mutex_lock(&v->life_lock); /* not in the middle of a snapshot */
	vm_reset(&v->vm, "reset by request: booting again");
	pthread_mutex_unlock(&v->life_lock);
	return json_pack("{s:b}", "reset", 1);
}

static const struct vmm_cmd machine_cmds[] = {
	{NULL, NULL, VERB_PAUSE, cmd_pause},
	{NULL, NULL, VERB_RESUME, cmd_resume},
	{"snapshot",
	 "save the vNode into {\"path\":FILE}, then \"resume\" (default), \"pause\" or "
	 "\"stop\" (the only one with an ExCache)",
	 0, cmd_snapshot},
	{"shutdown",
	 "press the power button: the guest shuts down; stopped after {\"timeout_ms\":N} "
	 "(default 60000)",
	 0, cmd_shutdown},
	{"reboot",
	 "press the power button and boot again once the guest is down; {\"force\":true} "
	 "resets at once",
	 0, cmd_reboot},
	{NULL},
};

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
	.status = machine_status,
	.cmds = machine_cmds,
	.save = machine_save,
	.restore = machine_restore,
};
