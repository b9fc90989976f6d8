/* procs.c - the agent's table of the VMMs it runs: reaping, stopping, asking them. */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "ctl.h"
#include "log.h"
#include "netdev.h"

struct vmm_proc *proc_find(struct agent *a, const char *name)
{
	for (int i = 0; i < a->nr; i++)
		if (!strcmp(a->procs[i].name, name))
			return &a->procs[i];
	return NULL;
}

void proc_forget(struct agent *a, struct vmm_proc *p)
{
	if (p->console_in >= 0)
		close(p->console_in);
	for (int i = 0; i < p->nr_taps; i++) {
		int ret = netdev_delete(p->taps[i]);

		if (ret)
			log_warn("vNode %s: cannot remove its TAP %s: %s", p->name, p->taps[i],
				 strerror(-ret));
	}
	*p = a->procs[--a->nr];
}

void proc_path(const struct agent *a, char *buf, size_t len, const char *name, const char *file)
{
	snprintf(buf, len, "%s/%s/%s", a->dir, name, file);
}

/*
 * Exited VMMs: children are reaped; VMMs adopted from a previous run of the
 * agent are not its children and are looked at (their exit status is lost).
 */
static void *reaper(void *arg)
{
	struct agent *a = arg;

	for (;;) {
		int st;
		pid_t pid = waitpid(-1, &st, WNOHANG);

		if (pid <= 0) {
			pthread_mutex_lock(&a->lock);
			for (int i = 0; i < a->nr; i++) {
				struct vmm_proc *p = &a->procs[i];

				if (!p->adopted || p->exited || kill(p->pid, 0) == 0 ||
				    errno != ESRCH)
					continue;
				p->exited = true;
				p->exit_status = 0;
				log_info("vNode %s: lego-vmm (pid %d, adopted) is gone", p->name,
					 p->pid);
				pthread_cond_broadcast(&a->changed);
			}
			pthread_mutex_unlock(&a->lock);
			usleep(50 * 1000);
			continue;
		}
		pthread_mutex_lock(&a->lock);
		for (int i = 0; i < a->nr; i++) {
			struct vmm_proc *p = &a->procs[i];

			if (p->pid != pid)
				continue;
			p->exited = true;
			p->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			p->last_words[0] = '\0';
			if (p->exit_status) { /* why, in its own words */
				char log_path[PATH_MAX + 64];

				proc_path(a, log_path, sizeof(log_path), p->name, "vmm.log");
				proc_last_line(log_path, p->last_words, sizeof(p->last_words));
			}
			log_info("vNode %s: lego-vmm (pid %d) exited with status %d%s%s", p->name,
				 pid, p->exit_status, p->last_words[0] ? ": " : "", p->last_words);
		}
		pthread_cond_broadcast(&a->changed);
		pthread_mutex_unlock(&a->lock);
	}
	return NULL;
}

void proc_last_line(const char *path, char *out, size_t len)
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

/* @pid runs lego-vmm (a pid in vmm.pid may have been reused since). */
static bool is_vmm(pid_t pid)
{
	char path[64], cmd[PATH_MAX];
	FILE *f;
	size_t n = 0;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	if ((f = fopen(path, "r"))) {
		n = fread(cmd, 1, sizeof(cmd) - 1, f);
		fclose(f);
	}
	cmd[n] = '\0';
	return n && !strcmp(strrchr(cmd, '/') ? strrchr(cmd, '/') + 1 : cmd, "lego-vmm");
}

int proc_adopt(struct agent *a)
{
	char pattern[PATH_MAX + 16];
	int n = 0;
	glob_t g;

	snprintf(pattern, sizeof(pattern), "%s/*/vmm.pid", a->dir);
	if (glob(pattern, 0, NULL, &g))
		return 0;
	for (size_t i = 0; i < g.gl_pathc && a->nr < AGENT_MAX_VMMS; i++) {
		char name[AGENT_NAME_MAX], path[PATH_MAX + 64], err[256];
		const char *dir_end = strrchr(g.gl_pathv[i], '/'), *start;
		struct vmm_proc *p = &a->procs[a->nr];
		json_t *st, *nic, *xc;
		FILE *f = fopen(g.gl_pathv[i], "r");
		int pid = 0;
		size_t k;

		if (f) {
			if (fscanf(f, "%d", &pid) != 1)
				pid = 0;
			fclose(f);
		}
		for (start = dir_end; start > g.gl_pathv[i] && start[-1] != '/'; start--)
			;
		snprintf(name, sizeof(name), "%.*s", (int)(dir_end - start), start);
		if (pid <= 0 || kill(pid, 0) || !is_vmm(pid) || proc_find(a, name))
			continue;
		st = proc_ctl(a, name, json_pack("{s:s}", "cmd", "status"), 2000, err, sizeof(err));
		if (!st) {
			log_warn("vNode %s: a lego-vmm (pid %d) runs, but its control socket does "
				 "not answer (%s): left alone",
				 name, pid, err);
			continue;
		}
		memset(p, 0, sizeof(*p));
		snprintf(p->name, sizeof(p->name), "%s", name);
		p->pid = pid;
		p->adopted = true;
		p->memory = (uint64_t)json_integer_value(json_object_get(st, "memory_bytes"));
		p->cpus = (int)json_integer_value(json_object_get(st, "nr_vcpus"));
		json_array_foreach(json_object_get(st, "nics"), k, nic)
		{
			const char *tap = json_string_value(json_object_get(nic, "tap"));

			if (tap && p->nr_taps < ORDER_MAX_NICS)
				snprintf(p->taps[p->nr_taps++], sizeof(p->taps[0]), "%s", tap);
		}
		json_decref(st);
		xc = proc_ctl(a, name, json_pack("{s:s}", "cmd", "excache"), 2000, err,
			      sizeof(err));
		p->excache = (uint64_t)json_integer_value(json_object_get(xc, "size_bytes"));
		json_decref(xc);
		xc = proc_ctl(a, name, json_pack("{s:s}", "cmd", "memory"), 2000, err, sizeof(err));
		p->hotplug = xc != NULL;
		json_decref(xc);
		proc_path(a, path, sizeof(path), name, "console.in");
		p->console_in = open(path, O_RDWR | O_CLOEXEC);
		a->nr++;
		n++;
		log_info("vNode %s: took its running lego-vmm (pid %d) back", name, pid);
	}
	globfree(&g);
	return n;
}

int proc_start_reaper(struct agent *a)
{
	return -pthread_create(&a->reaper, NULL, reaper, a);
}

void proc_stop(struct agent *a, const char *name)
{
	struct vmm_proc *p = proc_find(a, name);
	struct timespec ts;

	if (!p || p->exited)
		return;
	kill(p->pid, SIGTERM);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	while ((p = proc_find(a, name)) && !p->exited)
		if (pthread_cond_timedwait(&a->changed, &a->lock, &ts) == ETIMEDOUT)
			break;
	if (p && !p->exited) {
		log_warn("vNode %s: lego-vmm did not stop in 5 s; killing it", name);
		kill(p->pid, SIGKILL);
		while ((p = proc_find(a, name)) && !p->exited)
			pthread_cond_wait(&a->changed, &a->lock);
	}
}

json_t *proc_json(const struct vmm_proc *p)
{
	json_t *j =
		json_pack("{s:s,s:i,s:{s:i,s:I}}", "state", p->exited ? "exited" : "running", "pid",
			  (int)p->pid, "running", "cpus", p->cpus, "memory", (json_int_t)p->memory);

	if (p->exited)
		json_object_set_new(j, "exit_status", json_integer(p->exit_status));
	if (p->exited && p->last_words[0])
		json_object_set_new(j, "last_words", json_string(p->last_words));
	return j;
}

json_t *proc_ctl(struct agent *a, const char *name, json_t *req, int timeout_ms, char *err,
		 size_t errlen)
{
	char path[PATH_MAX + 64];
	json_t *ans;

	proc_path(a, path, sizeof(path), name, "control.sock");
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
