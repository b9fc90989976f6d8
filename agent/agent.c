/*
 * agent.c - lego-agent: the host agent. It runs vNodes' VMMs (one lego-vmm
 * process each) on this machine when the manager asks, tells the manager in
 * its heartbeats which of them run and what their ExCaches do, resizes an
 * ExCache live through the VMM's control socket, and relays the serial
 * console. Its API (JSON over HTTP), used by the manager and legoctl:
 *
 *   POST   /v1/vnodes                 run a VMM: the manager's order (below)
 *   GET    /v1/vnodes                 what runs here
 *   DELETE /v1/vnodes/NAME            stop it (SIGTERM, then SIGKILL after 5 s)
 *   POST   /v1/vnodes/NAME/resize     {"excache": bytes}
 *   POST   /v1/vnodes/NAME/secondary  {"addr": "HOST:PORT"}: fill a new secondary
 *   POST   /v1/vnodes/NAME/lost       {"addr": "HOST:PORT"}: fail over from it now
 *   POST   /v1/vnodes/NAME/restore    {"addr": "HOST:PORT"}: refill lost slabs from the backup
 *   GET    /v1/vnodes/NAME/console?from=N   the console's output from byte N
 *   POST   /v1/vnodes/NAME/console    bytes typed into the console
 *
 * An order: {name, vnode, token, cpus, memory, excache, slab_size,
 * memsrv: [primary of each slab], memsrv_secondary: [its secondary] (replicated,
 * with epoch), disks: [{url, token}], and payload + args,
 * or kernel + initrd + cmdline, or neither (the boot kit's stock kernel)}.
 * Each vNode has a directory DIR/NAME: control.sock, console.log (serial
 * output), console.in (a FIFO: serial input), vmm.log (lego-vmm's own log) and
 * vmm.pid.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl.h"
#include "http.h"
#include "log.h"
#include "proto.h"
#include "util.h"

#define MAX_VMS	  256
#define NAME_MAX_ 64

struct vm {
	char name[NAME_MAX_];
	pid_t pid;
	bool exited;
	int exit_status; /* as lego-vmm documents it; 128+N for signal N */
	int console_in;	 /* the FIFO, held open so the VMM never sees its end */
	uint64_t excache, memory;
	int cpus;
};

static struct agent {
	pthread_mutex_t lock;
	pthread_cond_t changed;
	struct vm vms[MAX_VMS];
	int nr;
	char dir[1024], vmm[PATH_MAX], kit[PATH_MAX], payloads[PATH_MAX];
	const char *addr;
	uint64_t capacity;
	int cpus;
} A = {.lock = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER};

static struct vm *vm_find(const char *name)
{
	for (int i = 0; i < A.nr; i++)
		if (!strcmp(A.vms[i].name, name))
			return &A.vms[i];
	return NULL;
}

static void vm_forget(struct vm *v)
{
	if (v->console_in >= 0)
		close(v->console_in);
	*v = A.vms[--A.nr];
}

static void vm_path(char *buf, size_t len, const char *name, const char *file)
{
	snprintf(buf, len, "%s/%s/%s", A.dir, name, file);
}

/* Reap VMMs as they exit. */
static void *reaper(void *arg)
{
	(void)arg;
	for (;;) {
		int st;
		pid_t pid = waitpid(-1, &st, 0);

		if (pid < 0) {
			usleep(100 * 1000);
			continue;
		}
		pthread_mutex_lock(&A.lock);
		for (int i = 0; i < A.nr; i++) {
			if (A.vms[i].pid == pid) {
				A.vms[i].exited = true;
				A.vms[i].exit_status =
					WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
				log_info("vNode %s: lego-vmm (pid %d) exited with status %d",
					 A.vms[i].name, pid, A.vms[i].exit_status);
			}
		}
		pthread_cond_broadcast(&A.changed);
		pthread_mutex_unlock(&A.lock);
	}
	return NULL;
}

/* ---- orders ---- */

#define STR(o, k) json_string_value(json_object_get(o, k))
#define INT(o, k) ((long long)json_integer_value(json_object_get(o, k)))

struct argv_buf {
	char *argv[64];
	char text[8192];
	size_t used;
	int n;
};

static void arg(struct argv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void arg(struct argv_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->n >= 62 || b->used >= sizeof(b->text))
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->text + b->used, sizeof(b->text) - b->used, fmt, ap);
	va_end(ap);
	if (n < 0 || b->used + n + 1 > sizeof(b->text))
		return;
	b->argv[b->n++] = b->text + b->used;
	b->argv[b->n] = NULL;
	b->used += n + 1;
}

/*
 * @list (a JSON array of addresses, one per slab) as lego-vmm takes it: the
 * one address if all are the same, else comma-separated; *@many says which.
 */
static int addr_list(json_t *list, char *out, size_t len, bool *many, char *err, size_t errlen)
{
	size_t i, n = 0;
	json_t *e;

	out[0] = '\0';
	json_array_foreach(list, i, e)
	{
		if (!json_is_string(e)) {
			snprintf(err, errlen, "memory server addresses must be strings");
			return -1;
		}
		*many |= strcmp(json_string_value(e), json_string_value(json_array_get(list, 0)));
		n += snprintf(out + n, len > n ? len - n : 0, "%s%s", i ? "," : "",
			      json_string_value(e));
		if (n >= len) {
			snprintf(err, errlen, "too many slabs");
			return -1;
		}
	}
	if (!*many && json_array_size(list))
		snprintf(out, len, "%s", json_string_value(json_array_get(list, 0)));
	return 0;
}

/* The lego-vmm command line for @o; 0, or -1 with a reason in @err. */
static int vmm_argv(json_t *o, struct argv_buf *b, char *err, size_t errlen)
{
	json_t *memsrv = json_object_get(o, "memsrv"), *disks = json_object_get(o, "disks"), *e;
	json_t *secondary = json_object_get(o, "memsrv_secondary");
	const char *name = STR(o, "name");
	static __thread char prim[4096], sec[4096];
	bool many = false;
	size_t i;

	arg(b, "%s", A.vmm);
	arg(b, "--memory");
	arg(b, "%lld", INT(o, "memory"));
	arg(b, "--cpus");
	arg(b, "%lld", INT(o, "cpus"));
	arg(b, "--control");
	arg(b, "%s/%s/control.sock", A.dir, name);
	if (json_array_size(memsrv)) {
		if (addr_list(memsrv, prim, sizeof(prim), &many, err, errlen) ||
		    addr_list(secondary, sec, sizeof(sec), &many, err, errlen))
			return -1;
		if (json_array_size(secondary) &&
		    json_array_size(secondary) != json_array_size(memsrv)) {
			snprintf(err, errlen, "one secondary per slab, or none");
			return -1;
		}
		arg(b, "--excache");
		arg(b, "%lld", INT(o, "excache"));
		arg(b, "--memsrv");
		arg(b, "%s", prim);
		if (json_array_size(secondary)) { /* replicated, with failover */
			json_t *bk = json_object_get(o, "backup");

			arg(b, "--memsrv-secondary");
			arg(b, "%s", sec);
			arg(b, "--epoch");
			arg(b, "%lld", INT(o, "epoch"));
			if (STR(bk, "url") && STR(bk, "token")) { /* and backed up */
				arg(b, "--memsrv-backup");
				arg(b, "%s", STR(bk, "url"));
				arg(b, "--memsrv-backup-token");
				arg(b, "%s", STR(bk, "token"));
				if (INT(bk, "interval_ms")) {
					arg(b, "--backup-interval");
					arg(b, "%lld", INT(bk, "interval_ms"));
				}
			}
		}
		if (many) { /* per slab */
			arg(b, "--slab-size");
			arg(b, "%lld", INT(o, "slab_size"));
		}
		arg(b, "--vnode");
		arg(b, "%lld", INT(o, "vnode"));
		arg(b, "--token");
		arg(b, "%s", STR(o, "token"));
	}
	json_array_foreach(disks, i, e)
	{
		arg(b, "--disk");
		arg(b, "%s", STR(e, "url"));
		arg(b, "--disk-token");
		arg(b, "%s", STR(e, "token"));
	}
	if (STR(o, "payload")) {
		const char *p = STR(o, "payload");

		arg(b, "--payload");
		if (strchr(p, '/'))
			arg(b, "%s", p);
		else
			arg(b, "%s/%s.bin", A.payloads, p);
		if (STR(o, "args")) {
			arg(b, "--args");
			arg(b, "%s", STR(o, "args"));
		}
	} else {
		arg(b, "--kernel");
		if (STR(o, "kernel"))
			arg(b, "%s", STR(o, "kernel"));
		else /* the boot kit: Debian's stock kernel and its initrd */
			arg(b, "%s/vmlinuz", A.kit);
		if (STR(o, "initrd")) {
			arg(b, "--initrd");
			arg(b, "%s", STR(o, "initrd"));
		} else if (!STR(o, "kernel")) {
			arg(b, "--initrd");
			arg(b, "%s/initrd.img", A.kit);
		}
		arg(b, "--append");
		arg(b, "%s", STR(o, "cmdline") ? STR(o, "cmdline") : "console=ttyS0");
	}
	if (b->n >= 62) {
		snprintf(err, errlen, "the order makes too long a command line");
		return -1;
	}
	return 0;
}

/* The last line of @path, for an error message. */
static void last_line(const char *path, char *out, size_t len)
{
	char buf[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	off_t size = fd >= 0 ? lseek(fd, 0, SEEK_END) : 0;
	ssize_t n = fd >= 0 ? pread(fd, buf, sizeof(buf) - 1, size > 4095 ? size - 4095 : 0) : 0;
	char *end, *start;

	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = '\0';
	end = buf + strlen(buf);
	while (end > buf && end[-1] == '\n')
		*--end = '\0';
	start = strrchr(buf, '\n');
	snprintf(out, len, "%s", start ? start + 1 : buf);
}

static void on_run(void *opaque, const struct http_req *req, struct http_resp *resp)
{
	json_t *o = http_parse_body(req, resp);
	struct argv_buf b = {0};
	char path[PATH_MAX + 64], err[512], log_path[PATH_MAX + 64];
	const char *name;
	struct vm *v;
	int in = -1, out = -1, logfd = -1;
	pid_t pid;

	(void)opaque;
	if (!o)
		return;
	name = STR(o, "name");
	if (!name || !lmp_vol_name_ok(name) || strlen(name) >= NAME_MAX_ ||
	    !json_is_integer(json_object_get(o, "memory")) ||
	    !json_is_integer(json_object_get(o, "cpus"))) {
		http_error(resp, 400, "an order needs name, memory and cpus");
		goto out;
	}
	if (vmm_argv(o, &b, err, sizeof(err))) {
		http_error(resp, 400, "%s", err);
		goto out;
	}
	pthread_mutex_lock(&A.lock);
	v = vm_find(name);
	if (v && !v->exited) {
		pthread_mutex_unlock(&A.lock);
		http_error(resp, 409, "vNode %s runs here already (pid %d)", name, v->pid);
		goto out;
	}
	if (v)
		vm_forget(v);
	if (A.nr == MAX_VMS) {
		pthread_mutex_unlock(&A.lock);
		http_error(resp, 507, "this agent runs %d VMMs, its most", MAX_VMS);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/%s", A.dir, name);
	mkdir(path, 0700);
	vm_path(path, sizeof(path), name, "console.in");
	unlink(path);
	if (mkfifo(path, 0600) == 0)
		in = open(path, O_RDWR | O_CLOEXEC);
	vm_path(path, sizeof(path), name, "console.log");
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	vm_path(log_path, sizeof(log_path), name, "vmm.log");
	logfd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (in < 0 || out < 0 || logfd < 0) {
		pthread_mutex_unlock(&A.lock);
		http_error(resp, 500, "cannot set up %s/%s: %s", A.dir, name, strerror(errno));
		goto close;
	}
	/* vmm.log starts with the command line: what ran is never a guess. */
	dprintf(logfd, "lego-agent: running");
	for (int i = 0; i < b.n; i++)
		dprintf(logfd, " '%s'", b.argv[i]);
	dprintf(logfd, "\n");
	vm_path(path, sizeof(path), name, "control.sock");
	unlink(path);
	pid = fork();
	if (pid == 0) {
		setsid(); /* a terminal's ^C or hang-up is not the VMM's business */
		dup2(in, 0);
		dup2(out, 1);
		dup2(logfd, 2);
		execv(b.argv[0], b.argv);
		fprintf(stderr, "lego-agent: cannot run %s: %s\n", b.argv[0], strerror(errno));
		_exit(125);
	}
	if (pid < 0) {
		pthread_mutex_unlock(&A.lock);
		http_error(resp, 500, "fork: %s", strerror(errno));
		goto close;
	}
	{
		char pidfile[PATH_MAX + 64];
		FILE *f;

		vm_path(pidfile, sizeof(pidfile), name, "vmm.pid");
		f = fopen(pidfile, "w");
		if (f) {
			fprintf(f, "%d\n", pid);
			fclose(f);
		}
	}
	v = &A.vms[A.nr++];
	*v = (struct vm){.pid = pid,
			 .console_in = in,
			 .excache = (uint64_t)INT(o, "excache"),
			 .memory = (uint64_t)INT(o, "memory"),
			 .cpus = (int)INT(o, "cpus")};
	snprintf(v->name, sizeof(v->name), "%s", name);
	in = -1;
	/* Up when its control socket answers; an order it cannot run fails here. */
	for (int ms = 0; ms < 10000; ms += 20) {
		struct stat st;

		if (v->exited || !stat(path, &st))
			break;
		pthread_mutex_unlock(&A.lock);
		usleep(20 * 1000);
		pthread_mutex_lock(&A.lock);
		v = vm_find(name);
	}
	if (v->exited) {
		int status = v->exit_status;

		vm_forget(v);
		pthread_mutex_unlock(&A.lock);
		last_line(log_path, err, sizeof(err));
		http_error(resp, 422, "lego-vmm for %s exited at once with status %d: %s", name,
			   status, err);
		goto close;
	}
	log_info("vNode %s: lego-vmm runs as pid %d", name, pid);
	http_json(resp, 201, json_pack("{s:s,s:i}", "name", name, "pid", pid));
	pthread_mutex_unlock(&A.lock);
close:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	if (logfd >= 0)
		close(logfd);
out:
	json_decref(o);
}

/* Stop @v's VMM: SIGTERM, then SIGKILL after 5 s. Lock held; it is dropped meanwhile. */
static void vm_stop(const char *name)
{
	struct vm *v = vm_find(name);
	struct timespec ts;

	if (!v || v->exited)
		return;
	kill(v->pid, SIGTERM);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	while ((v = vm_find(name)) && !v->exited)
		if (pthread_cond_timedwait(&A.changed, &A.lock, &ts) == ETIMEDOUT)
			break;
	if (v && !v->exited) {
		log_warn("vNode %s: lego-vmm did not stop in 5 s; killing it", name);
		kill(v->pid, SIGKILL);
		while ((v = vm_find(name)) && !v->exited)
			pthread_cond_wait(&A.changed, &A.lock);
	}
}

static json_t *vm_json(struct vm *v)
{
	json_t *j =
		json_pack("{s:s,s:i,s:{s:i,s:I}}", "state", v->exited ? "exited" : "running", "pid",
			  (int)v->pid, "running", "cpus", v->cpus, "memory", (json_int_t)v->memory);

	if (v->exited)
		json_object_set_new(j, "exit_status", json_integer(v->exit_status));
	return j;
}

/*
 * Send @req (stolen) to the control socket of @name's VMM: the answer, or NULL
 * with the reason in @err. Called without the agent's lock: a VMM may be slow.
 */
static json_t *vmm_ctl(const char *name, json_t *req, int timeout_ms, char *err, size_t errlen)
{
	char path[PATH_MAX + 64];
	json_t *ans;

	vm_path(path, sizeof(path), name, "control.sock");
	ans = req ? ctl_call(path, req, timeout_ms, err, errlen) : NULL;
	json_decref(req);
	if (ans && !json_is_true(json_object_get(ans, "ok"))) {
		snprintf(err, errlen, "%s",
			 json_string_value(json_object_get(ans, "error")) ?: "?");
		json_decref(ans);
		ans = NULL;
	}
	return ans;
}

static void on_list(void *opaque, const struct http_req *req, struct http_resp *resp)
{
	json_t *all = json_object();

	(void)opaque, (void)req;
	pthread_mutex_lock(&A.lock);
	for (int i = 0; i < A.nr; i++)
		json_object_set_new(all, A.vms[i].name, vm_json(&A.vms[i]));
	pthread_mutex_unlock(&A.lock);
	http_json(resp, 200, json_pack("{s:o}", "vnodes", all));
}

static void on_vnode(void *opaque, const struct http_req *req, struct http_resp *resp)
{
	char name[NAME_MAX_], path[PATH_MAX + 64], err[256];
	const char *slash = strchr(req->rest, '/'), *op = slash ? slash + 1 : "";
	size_t n = slash ? (size_t)(slash - req->rest) : strlen(req->rest);
	struct vm *v;

	(void)opaque;
	if (n >= sizeof(name)) {
		http_error(resp, 404, "no such vNode here");
		return;
	}
	memcpy(name, req->rest, n);
	name[n] = '\0';
	pthread_mutex_lock(&A.lock);
	v = vm_find(name);
	if (!v) {
		pthread_mutex_unlock(&A.lock);
		http_error(resp, 404, "no vNode %s on this agent", name);
		return;
	}
	if (!strcmp(req->method, "DELETE") && !*op) {
		vm_stop(name);
		if ((v = vm_find(name)))
			vm_forget(v);
		pthread_mutex_unlock(&A.lock);
		http_json(resp, 200, json_pack("{s:b}", "ok", 1));
		return;
	}
	if (!strcmp(op, "console") && !strcmp(req->method, "GET")) {
		const char *from = http_query(req, "from");
		long long off = from ? atoll(from) : 0;
		char *buf = malloc(65537);
		ssize_t got;
		int fd;

		pthread_mutex_unlock(&A.lock);
		vm_path(path, sizeof(path), name, "console.log");
		fd = open(path, O_RDONLY | O_CLOEXEC);
		got = fd >= 0 && buf ? pread(fd, buf, 65536, off < 0 ? 0 : off) : -1;
		if (fd >= 0)
			close(fd);
		if (got < 0) {
			free(buf);
			http_error(resp, 500, "cannot read the console of %s", name);
			return;
		}
		buf[got] = '\0';
		resp->status = 200;
		resp->body = buf; /* NUL bytes from the guest are cut here: a text console */
		resp->content_type = "application/octet-stream";
		return;
	}
	if (!strcmp(op, "console") && !strcmp(req->method, "POST")) {
		ssize_t w = v->exited ? -1 : write(v->console_in, req->body, req->body_len);

		pthread_mutex_unlock(&A.lock);
		if (w < 0)
			http_error(resp, 409, "vNode %s does not run", name);
		else
			http_json(resp, 200, json_pack("{s:i}", "written", (int)w));
		return;
	}
	/* The operations that the VMM's control socket carries out. */
	static const struct {
		const char *op, *cmd, *key; /* key: what the request passes on */
	} ctl_ops[] = {
		{"resize", "excache.resize", "excache"},
		{"secondary", "memsrv.secondary", "addr"},
		{"lost", "memsrv.lost", "addr"},
		{"restore", "memsrv.restore", "addr"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(ctl_ops) && !strcmp(req->method, "POST"); i++) {
		json_t *body, *ctl_req, *ans, *val;

		if (strcmp(op, ctl_ops[i].op))
			continue;
		pthread_mutex_unlock(&A.lock);
		if (!(body = http_parse_body(req, resp)))
			return;
		val = json_object_get(body, ctl_ops[i].key);
		if (!(json_is_string(val) || (json_is_integer(val) && !strcmp(op, "resize")))) {
			json_decref(body);
			http_error(resp, 400, "give \"%s\"", ctl_ops[i].key);
			return;
		}
		/* The VMM takes an ExCache size as text ("64M", or bytes). */
		ctl_req = !strcmp(op, "resize")
				  ? json_pack("{s:s,s:o}", "cmd", ctl_ops[i].cmd, "size",
					      json_sprintf("%lld",
							   (long long)json_integer_value(val)))
				  : json_pack("{s:s,s:O}", "cmd", ctl_ops[i].cmd, "addr", val);
		json_decref(body);
		ans = vmm_ctl(name, ctl_req, 5000, err, sizeof(err));
		if (!ans) {
			http_error(resp, 502, "the VMM of %s: %s", name, err);
			return;
		}
		if (!strcmp(ctl_ops[i].op, "resize")) {
			pthread_mutex_lock(&A.lock);
			if ((v = vm_find(name)))
				v->excache = (uint64_t)json_integer_value(
					json_object_get(ans, "size_bytes"));
			pthread_mutex_unlock(&A.lock);
		}
		http_json(resp, 200, ans);
		return;
	}
	pthread_mutex_unlock(&A.lock);
	http_error(resp, 404, "no such operation: %s %s", req->method, req->path);
}

static json_t *agent_beat(void *opaque)
{
	json_t *vnodes = json_object(), *v;
	uint64_t used = 0;
	const char *name;

	(void)opaque;
	pthread_mutex_lock(&A.lock);
	for (int i = 0; i < A.nr; i++) {
		json_object_set_new(vnodes, A.vms[i].name, vm_json(&A.vms[i]));
		if (!A.vms[i].exited)
			used += A.vms[i].excache;
	}
	pthread_mutex_unlock(&A.lock);
	/* Each running VMM's ExCache figures, asked without the lock. */
	json_object_foreach(vnodes, name, v)
	{
		char err[256];
		json_t *xc;

		if (strcmp(json_string_value(json_object_get(v, "state")), "running"))
			continue;
		/* Short: a busy VMM must not hold up the heartbeat that carries this. */
		xc = vmm_ctl(name, json_pack("{s:s}", "cmd", "excache"), 250, err, sizeof(err));
		if (xc) {
			json_object_del(xc, "ok");
			json_object_del(xc, "miss_latency_log2_us");
			json_object_set_new(v, "excache", xc);
		}
	}
	return json_pack("{s:s,s:s,s:I,s:I,s:i,s:o}", "role", "agent", "addr", A.addr, "capacity",
			 (json_int_t)A.capacity, "used", (json_int_t)used, "cpus", A.cpus, "vnodes",
			 vnodes);
}

static const struct http_route routes[] = {
	{"POST", "/v1/vnodes", on_run},	     {"GET", "/v1/vnodes", on_list},
	{"GET", "/v1/vnodes/", on_vnode},    {"POST", "/v1/vnodes/", on_vnode},
	{"DELETE", "/v1/vnodes/", on_vnode}, {NULL, NULL, NULL},
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: lego-agent --manager URL --dir DIR [--listen HOST:PORT] [options]\n"
		"\n"
		"The host agent: runs vNodes' VMMs (lego-vmm) here when the manager asks.\n"
		"\n"
		"  --manager URL      the lego-manager, e.g. http://127.0.0.1:7300\n"
		"  --dir DIR          per-vNode sockets, consoles and logs (created if missing)\n"
		"  --listen HOST:PORT the agent's API (default 127.0.0.1:7600)\n"
		"  --capacity SIZE    memory offered for ExCaches (default: half of this\n"
		"                     machine's RAM)\n"
		"  --vmm PATH         lego-vmm (default: next to lego-agent)\n"
		"  --kit DIR          the boot kit: vmlinuz, initrd.img (default: ../guest\n"
		"                     from lego-agent, as make builds it)\n"
		"  --payloads DIR     test payloads by name (default: KIT/payloads)\n"
		"  -v, --verbose      more messages; -q, --quiet fewer\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"manager", required_argument, NULL, 'm'},
		{"dir", required_argument, NULL, 'd'},
		{"listen", required_argument, NULL, 'l'},
		{"capacity", required_argument, NULL, 'c'},
		{"vmm", required_argument, NULL, 'x'},
		{"kit", required_argument, NULL, 'k'},
		{"payloads", required_argument, NULL, 'p'},
		{"verbose", no_argument, NULL, 'v'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *manager = NULL, *dir = NULL, *kit = NULL, *payloads = NULL, *vmm = NULL;
	enum log_level level = LOG_INFO;
	char self[1024], err[512], real[PATH_MAX];
	struct beat *beat;
	struct httpd *h;
	pthread_t reap;
	sigset_t set;
	int c, sig;

	A.addr = "127.0.0.1:7600";
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":vqh", longopts, NULL)) != -1) {
		switch (c) {
		case 'm':
			manager = optarg;
			break;
		case 'd':
			dir = optarg;
			break;
		case 'l':
			A.addr = optarg;
			break;
		case 'x':
			vmm = optarg;
			break;
		case 'k':
			kit = optarg;
			break;
		case 'p':
			payloads = optarg;
			break;
		case 'c':
			if (parse_size(optarg, &A.capacity) || !A.capacity)
				return usage_error("--capacity: '%s' is not a size (e.g. 8G)",
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
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (!manager || !dir)
		return usage_error("%s: give --manager URL and --dir DIR", "missing options");
	log_init("lego-agent", level);
	exe_dir(self, sizeof(self));
	snprintf(A.vmm, sizeof(A.vmm), "%s", vmm ? vmm : self);
	if (!vmm)
		strncat(A.vmm, "/lego-vmm", sizeof(A.vmm) - strlen(A.vmm) - 1);
	if (kit)
		snprintf(A.kit, sizeof(A.kit), "%s", kit);
	else
		snprintf(A.kit, sizeof(A.kit), "%s/../guest", self);
	if (realpath(A.kit, real)) /* a plain path in every command line */
		snprintf(A.kit, sizeof(A.kit), "%s", real);
	snprintf(A.payloads, sizeof(A.payloads), "%s", payloads ? payloads : A.kit);
	if (!payloads)
		strncat(A.payloads, "/payloads", sizeof(A.payloads) - strlen(A.payloads) - 1);
	mkdir(dir, 0700);
	if (!realpath(dir, real) || strlen(real) >= sizeof(A.dir) - NAME_MAX_) {
		log_err("--dir %s: %s", dir, errno ? strerror(errno) : "path too long");
		return 1;
	}
	snprintf(A.dir, sizeof(A.dir), "%s", real);
	if (!A.capacity)
		A.capacity =
			(uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE) / 2;
	A.cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	pthread_create(&reap, NULL, reaper, NULL);
	h = httpd_start(A.addr, routes, NULL, err, sizeof(err));
	if (!h) {
		log_err("%s", err);
		return 1;
	}
	beat = beat_start(manager, 1000, agent_beat, NULL);
	log_info("running VMMs for the manager %s; API on http://%s", manager, A.addr);
	sigwait(&set, &sig);
	log_info("stopping (%s): stopping every VMM here", strsignal(sig));
	beat_stop(beat);
	httpd_stop(h);
	pthread_mutex_lock(&A.lock);
	while (A.nr) {
		char name[NAME_MAX_];
		struct vm *v;

		snprintf(name, sizeof(name), "%s", A.vms[0].name);
		vm_stop(name);
		if ((v = vm_find(name)))
			vm_forget(v);
	}
	pthread_mutex_unlock(&A.lock);
	return 0;
}
