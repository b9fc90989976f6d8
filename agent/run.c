/*
 * run.c - from a vNode order to a running lego-vmm: the order completed for
 * this host, its directory and console set up, and the order handed over in
 * a sealed memfd on descriptor 3 (lego-vmm --order-fd 3), so that no
 * credential is ever in a command line or a file.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "jail.h"
#include "log.h"
#include "netdev.h"
#include "util.h"

#define ORDER_FD 3

/* What the manager leaves to the host: kit and payload paths, the control socket. */
static int complete(struct agent *a, struct vnode_order *o, char *err, size_t errlen)
{
	char path[PATH_MAX + 64];
	int ret = 0;

	if (!o->name || !lmp_vol_name_ok(o->name) || strlen(o->name) >= AGENT_NAME_MAX) {
		snprintf(err, errlen,
			 "an order needs a name of letters, digits, '_', '.' or '-' (at most %d)",
			 AGENT_NAME_MAX - 1);
		return -EINVAL;
	}
	if (o->payload && !strchr(o->payload, '/')) { /* a payload of the kit's, by name */
		snprintf(path, sizeof(path), "%s/%s.bin", a->payloads, o->payload);
		ret = order_set(&o->payload, path);
	} else if (!o->payload && !o->kernel) { /* the boot kit: Debian's stock kernel */
		snprintf(path, sizeof(path), "%s/vmlinuz", a->kit);
		ret = order_set(&o->kernel, path);
		snprintf(path, sizeof(path), "%s/initrd.img", a->kit);
		if (!ret && !o->initrd)
			ret = order_set(&o->initrd, path);
	}
	proc_path(a, path, sizeof(path), o->name, "control.sock");
	if (!ret)
		ret = order_set(&o->control, path);
	/* the cluster's servers speak TLS: the VMM checks them against its CA */
	if (!ret && a->tls_ca && !o->tls_ca)
		ret = order_set(&o->tls_ca, a->tls_ca);
	/* a TAP on this host's bridge for each interface, named here */
	for (int i = 0; !ret && i < o->nr_nics; i++) {
		char tap[16];

		if (!a->bridge[0]) {
			snprintf(err, errlen, "this host has no network for vNodes (%s)",
				 a->net_error[0] ? a->net_error
						 : "its agent runs without --bridge");
			return -ENETDOWN;
		}
		/* agents sharing a bridge start their counts at random: names differ */
		snprintf(tap, sizeof(tap), "%.9s-%04x", a->bridge, a->next_tap++ & 0xffff);
		ret = order_set(&o->nics[i].tap, tap);
	}
	if (ret) {
		snprintf(err, errlen, "out of memory");
		return ret;
	}
	return order_check(o, err, errlen);
}

/* The TAPs of @o's interfaces on the bridge, for @p; -errno with @err, none left made. */
static int make_taps(struct agent *a, const struct vnode_order *o, struct vmm_proc *p, char *err,
		     size_t errlen)
{
	for (int i = 0; i < o->nr_nics; i++) {
		int ret = netdev_tap(o->nics[i].tap, a->bridge);

		if (ret) {
			snprintf(err, errlen, "cannot make the TAP %s on %s: %s", o->nics[i].tap,
				 a->bridge, strerror(-ret));
			while (p->nr_taps)
				netdev_delete(p->taps[--p->nr_taps]);
			return ret;
		}
		snprintf(p->taps[p->nr_taps++], sizeof(p->taps[0]), "%s", o->nics[i].tap);
	}
	return 0;
}

/* vmm.log starts with what ran, credentials left out: what ran is never a guess. */
static void log_order(int logfd, const char *vmm, const struct vnode_order *o)
{
	json_t *pub = order_public_json(o);
	char *text = json_dumps(pub, JSON_COMPACT);

	dprintf(logfd, "lego-agent: running '%s' --order-fd %d with the order %s\n", vmm, ORDER_FD,
		text ? text : "?");
	free(text);
	json_decref(pub);
}

/*
 * The VMM's process: its own session, console and log as stdio, the order on
 * descriptor 3; restored from the snapshot at @restore (NULL: it boots).
 */
static pid_t spawn(struct agent *a, const struct jail *j, int in, int out, int logfd, int order_fd,
		   const char *restore)
{
	char fdtext[16], err[PATH_MAX + 128];
	pid_t pid;

	snprintf(fdtext, sizeof(fdtext), "%d", ORDER_FD);
	pid = fork();
	if (pid == 0) {
		char *vmm = j ? (char *)j->vmm : a->vmm;
		char *boot[] = {vmm, "--order-fd", fdtext, NULL};
		char *again[] = {vmm, "--restore", (char *)restore, "--order-fd", fdtext, NULL};
		char **argv = restore ? again : boot;

		setsid(); /* a terminal's ^C or hang-up is not the VMM's business */
		/* dup2 leaves the copies open across exec; one already in place is not
		 * copied, so its close-on-exec flag is cleared by hand */
		if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(logfd, 2) < 0 ||
		    (order_fd == ORDER_FD ? fcntl(ORDER_FD, F_SETFD, 0)
					  : dup2(order_fd, ORDER_FD)) < 0)
			_exit(125);
		if (j && jail_enter(j, err, sizeof(err))) {
			fprintf(stderr, "lego-agent: cannot jail lego-vmm: %s\n", err);
			_exit(125);
		}
		execv(argv[0], argv);
		fprintf(stderr, "lego-agent: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(125);
	}
	return pid;
}

/*
 * An incoming VMM's address with port 0: a port free now, chosen here, so
 * that the manager can tell the source where to send the vNode.
 */
static int pick_port(struct vnode_order *o, char *err, size_t errlen)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	char host[64], addr[96];
	const char *colon = strrchr(o->incoming, ':');
	int fd, ret = 0;

	if (!colon || strcmp(colon, ":0"))
		return 0;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - o->incoming), o->incoming);
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		snprintf(err, errlen, "incoming: '%s' is not an IPv4 address", host);
		return -EINVAL;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    getsockname(fd, (struct sockaddr *)&sa, &len)) {
		ret = -errno;
		snprintf(err, errlen, "incoming: no port on %s: %s", host, strerror(errno));
	} else {
		snprintf(addr, sizeof(addr), "%s:%u", host, ntohs(sa.sin_port));
		ret = order_set(&o->incoming, addr);
	}
	if (fd >= 0)
		close(fd);
	return ret;
}

/* Whether something listens on @addr (the incoming VMM, which ignores such probes). */
static bool listening(const char *addr)
{
	char err[128];
	int fd = tcp_connect(addr, 200, err, sizeof(err));

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

int agent_run(struct agent *a, struct vnode_order *o, const char *restore, const char *of,
	      pid_t *pid_out, char *err, size_t errlen)
{
	char snap[PATH_MAX + 64];
	char path[PATH_MAX + 64], log_path[PATH_MAX + 64];
	int in = -1, out = -1, logfd = -1, order_fd = -1, ret;
	struct vmm_proc *p, fresh = {.console_in = -1};
	struct jail *jail = NULL;
	pid_t pid;

	ret = complete(a, o, err, errlen);
	if (!ret && o->incoming)
		ret = pick_port(o, err, errlen);
	if (ret)
		return ret;
	if (restore) { /* a snapshot this agent took: by name, in the vNode's directory (or in
			* that of the vNode @of, which this one is a copy of) */
		char file[LMP_VOL_NAME_LEN + 8];
		struct stat st;

		if (!of)
			of = o->name;
		if (!lmp_vol_name_ok(restore) || strlen(restore) >= LMP_VOL_NAME_LEN ||
		    !lmp_vol_name_ok(of)) {
			snprintf(err, errlen, "restore: '%s' of '%s' is not a snapshot's name",
				 restore, of);
			return -EINVAL;
		}
		snprintf(file, sizeof(file), "%s.snap", restore);
		proc_path(a, snap, sizeof(snap), of, file);
		if (stat(snap, &st)) {
			snprintf(err, errlen, "this agent holds no snapshot %s of %s", restore, of);
			return -ENOENT;
		}
	}
	if (a->jail_root[0]) { /* the order's files at their real paths, as the jail binds them */
		char home[PATH_MAX + 64];

		jail = malloc(sizeof(*jail));
		if (!jail) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		snprintf(home, sizeof(home), "%s/%s", a->dir, o->name);
		ret = jail_plan(jail, a->jail_root, home, a->vmm, o, restore ? snap : NULL, err,
				errlen);
		if (ret) {
			free(jail);
			return ret;
		}
	}
	order_fd = order_memfd(o, err, errlen);
	if (order_fd < 0) {
		free(jail);
		return order_fd;
	}
	pthread_mutex_lock(&a->lock);
	p = proc_find(a, o->name);
	if (p && !p->exited) {
		snprintf(err, errlen, "vNode %s runs here already (pid %d)", o->name, p->pid);
		ret = -EEXIST;
		goto unlock;
	}
	if (p)
		proc_forget(a, p);
	if (a->nr == AGENT_MAX_VMMS) {
		snprintf(err, errlen, "this agent runs %d VMMs, its most", AGENT_MAX_VMMS);
		ret = -ENOSPC;
		goto unlock;
	}
	snprintf(path, sizeof(path), "%s/%s", a->dir, o->name);
	mkdir(path, 0700);
	proc_path(a, path, sizeof(path), o->name, "console.in");
	unlink(path);
	if (mkfifo(path, 0600) == 0)
		in = open(path, O_RDWR | O_CLOEXEC);
	proc_path(a, path, sizeof(path), o->name, "console.log");
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	proc_path(a, log_path, sizeof(log_path), o->name, "vmm.log");
	logfd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (in < 0 || out < 0 || logfd < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot set up %s/%s: %s", a->dir, o->name, strerror(errno));
		goto unlock;
	}
	ret = make_taps(a, o, &fresh, err, errlen);
	if (ret)
		goto unlock;
	log_order(logfd, a->vmm, o);
	unlink(o->control);
	pid = spawn(a, jail, in, out, logfd, order_fd, restore ? snap : NULL);
	if (pid < 0) {
		ret = -errno;
		snprintf(err, errlen, "fork: %s", strerror(errno));
		while (fresh.nr_taps)
			netdev_delete(fresh.taps[--fresh.nr_taps]);
		goto unlock;
	}
	proc_path(a, path, sizeof(path), o->name, "vmm.pid");
	{
		FILE *f = fopen(path, "w");

		if (f) {
			fprintf(f, "%d\n", pid);
			fclose(f);
		}
	}
	p = &a->procs[a->nr++];
	*p = fresh;
	p->pid = pid;
	p->console_in = in;
	p->excache = o->excache;
	p->memory = o->memory;
	p->hotplug = o->max_memory != 0;
	p->cpus = o->cpus;
	snprintf(p->name, sizeof(p->name), "%s", o->name);
	in = -1;
	/* Up when its control socket is there (lego-vmm makes it last), or, for a
	 * migration's target, when it listens for the vNode; an order it cannot run
	 * fails here. */
	for (int ms = 0; ms < 10000; ms += 20) {
		struct stat st;

		if (p->exited || (o->incoming ? listening(o->incoming) : !stat(o->control, &st)))
			break;
		pthread_mutex_unlock(&a->lock);
		usleep(20 * 1000);
		pthread_mutex_lock(&a->lock);
		p = proc_find(a, o->name);
		if (!p || p->pid != pid) { /* stopped and forgotten meanwhile (a delete) */
			snprintf(err, errlen, "vNode %s was stopped while its lego-vmm started",
				 o->name);
			ret = -ECANCELED;
			goto unlock;
		}
	}
	if (p->exited && p->exit_status == 0 && !o->incoming && !restore) {
		/* It ran, and finished before its control socket was looked for (a short
		 * payload): a vNode that ran, which the heartbeat reports as exited. */
		log_info("vNode %s: lego-vmm (pid %d) ran and finished at once", o->name, pid);
	} else if (p->exited) {
		int status = p->exit_status;
		char why[400];

		proc_forget(a, p);
		proc_last_line(log_path, why, sizeof(why));
		snprintf(err, errlen, "lego-vmm for %s exited at once with status %d: %s", o->name,
			 status, why);
		ret = -ECHILD;
		goto unlock;
	}
	log_info("vNode %s: lego-vmm runs as pid %d%s", o->name, pid,
		 restore ? ", restored from its snapshot" : "");
	/* its memory moves on from the snapshot: restored once, and gone (a copy runs on memory
	 * of its own, and leaves the snapshot to the vNode it was taken of) */
	if (restore && !strcmp(of, o->name))
		unlink(snap);
	*pid_out = pid;
	ret = 0;
unlock:
	pthread_mutex_unlock(&a->lock);
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	if (logfd >= 0)
		close(logfd);
	close(order_fd);
	free(jail);
	return ret;
}
