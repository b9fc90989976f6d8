/* procs.c - the agent's table of the VMMs it runs: reaping, stopping, asking them. */
#include <errno.h>
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

static void *reaper(void *arg)
{
	struct agent *a = arg;

	for (;;) {
		int st;
		pid_t pid = waitpid(-1, &st, 0);

		if (pid < 0) {
			usleep(100 * 1000);
			continue;
		}
		pthread_mutex_lock(&a->lock);
		for (int i = 0; i < a->nr; i++) {
			struct vmm_proc *p = &a->procs[i];

			if (p->pid != pid)
				continue;
			p->exited = true;
			p->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			log_info("vNode %s: lego-vmm (pid %d) exited with status %d", p->name, pid,
				 p->exit_status);
		}
		pthread_cond_broadcast(&a->changed);
		pthread_mutex_unlock(&a->lock);
	}
	return NULL;
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
