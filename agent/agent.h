/*
 * agent.h - lego-agent, the host agent: it runs vNodes' VMMs (one lego-vmm
 * process each) on this machine when the manager orders it, tells the
 * manager in its heartbeats which of them run and what their ExCaches do,
 * passes the verbs of order.h on to a VMM's control socket, and relays the
 * serial console. Its API (JSON over HTTP), used by the manager and legoctl:
 *
 *   POST   /v1/vnodes                 run a VMM: a vNode order (order.h), with
 *                                      "restore": SNAPSHOT to bring one back
 *   POST   /v1/vnodes/NAME/migrate    {"to", "token"}: move it to another agent's VMM
 *   POST   /v1/vnodes/NAME/snapshot   {"snapshot": NAME}: save it, and stop
 *   GET    /v1/vnodes                 what runs here
 *   POST   /v1/vnodes/NAME/shutdown   {"timeout_s": N, "force": bool}: the power
 *                                      button, stopped after N s (default 60)
 *   POST   /v1/vnodes/NAME/reboot     {"timeout_s": N, "force": bool}: the guest reboots
 *   DELETE /v1/vnodes/NAME            stop it (SIGTERM, then SIGKILL after 5 s)
 *   POST   /v1/vnodes/NAME/VERB       a verb of order.h, {ARG: value}, to its VMM
 *   GET    /v1/vnodes/NAME/console?from=N   the console's output from byte N
 *   POST   /v1/vnodes/NAME/console    bytes typed into the console
 *
 * The agent completes an order for its host (the boot kit's kernel when it
 * names none, payloads by name, the control socket's path, a TAP for each
 * network interface on the host's bridge) and hands it to lego-vmm through
 * an inherited descriptor, never in argv. Each vNode has a directory
 * DIR/NAME: control.sock, console.log (serial output), console.in (a FIFO:
 * serial input), vmm.log (lego-vmm's own log) and vmm.pid.
 *
 * A restarted agent takes back the VMMs it left running (proc_adopt): a
 * VMM outlives its agent (its own session), so an agent's crash or upgrade
 * stops no vNode.
 *
 * The host's network for vNodes (netdev.h): a bridge made at start (the
 * vNodes' gateway, --gateway) and removed at exit, a persistent TAP per
 * interface on it, removed with its VMM.
 */
#ifndef LEGO_AGENT_H
#define LEGO_AGENT_H

#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "order.h"
#include "pki.h"

#define AGENT_MAX_VMMS 256
#define AGENT_NAME_MAX 64

/* One lego-vmm this agent started. */
struct vmm_proc {
	char name[AGENT_NAME_MAX];
	pid_t pid;
	bool exited;
	bool adopted;	      /* left running by a previous run of the agent, and taken back */
	int exit_status;      /* as lego-vmm documents it; 128+N for signal N (adopted: 0) */
	char last_words[256]; /* a failed lego-vmm's last line (its log) */
	int console_in;	      /* the FIFO, held open so the VMM never sees its end */
	uint64_t excache, memory;
	bool hotplug; /* its memory can grow and shrink live (a virtio-mem device) */
	int cpus;
	int nr_taps;
	char taps[ORDER_MAX_NICS][16]; /* made for it; removed when it is forgotten */
};

struct agent {
	pthread_mutex_t lock; /* the table below */
	pthread_cond_t changed;
	struct vmm_proc procs[AGENT_MAX_VMMS];
	int nr;
	char dir[1024], vmm[PATH_MAX], kit[PATH_MAX], payloads[PATH_MAX];
	const char *addr;	/* --listen: the API */
	char advertise[256];	/* where the manager and legoctl reach it */
	struct pki_identity id; /* its certificate in the cluster */
	char *tls_ca;		/* the cluster's CA (PEM), for its VMMs' orders */
	uint64_t capacity;
	int cpus;
	pthread_t reaper;
	/* the host network: its bridge ("": none), and why there is none if it failed */
	char bridge[16], gateway[32], net_error[256];
	unsigned next_tap;
	bool own_bridge; /* made by this agent: removed at its exit (another's stays) */
	/* --jail: each lego-vmm jailed (jail.h), its tmpfs mounted here, DIR/.jail ("": not
	 * jailed) */
	char jail_root[PATH_MAX];
	/* the highest term of a leading manager seen (its orders, its heartbeat answers):
	 * an order of a lower one comes from a deposed manager and is refused. DIR/term. */
	uint64_t term;
};

/* agent_term_init - the term kept in DIR/term (0 if none). */
void agent_term_init(struct agent *a);
/* agent_term_seen - a manager of term @term leads (kept if it is higher). a->lock not held. */
void agent_term_seen(struct agent *a, uint64_t term);

/* ---- procs.c: the table of VMMs; a->lock held unless said ---- */

/* proc_find - the VMM of vNode @name, or NULL. */
struct vmm_proc *proc_find(struct agent *a, const char *name);

/* proc_forget - drop @p from the table (its console FIFO closed, its TAPs removed). */
void proc_forget(struct agent *a, struct vmm_proc *p);

/* proc_stop - stop @name's VMM: SIGTERM, SIGKILL after 5 s; drops the lock while it waits. */
void proc_stop(struct agent *a, const char *name);

/* proc_json - what the manager and legoctl see of @p. */
json_t *proc_json(const struct vmm_proc *p);

/* proc_path - DIR/@name/@file into @buf. No lock needed. */
void proc_path(const struct agent *a, char *buf, size_t len, const char *name, const char *file);

/*
 * proc_adopt - at start: the VMMs a previous run of this agent left running
 * (DIR/NAME/vmm.pid, a live lego-vmm whose control socket answers), taken
 * back into the table. Returns how many. Before the API and the reaper start.
 */
int proc_adopt(struct agent *a);

/* proc_start_reaper - a thread that reaps exited VMMs and marks them. No lock needed. */
int proc_start_reaper(struct agent *a);

/*
 * proc_ctl - send @req (stolen) to the control socket of @name's VMM and
 * return its answer, or NULL with the reason in @err. Called without the
 * lock: a VMM may be slow.
 */
json_t *proc_ctl(struct agent *a, const char *name, json_t *req, int timeout_ms, char *err,
		 size_t errlen);

/* ---- run.c: an order into a running lego-vmm ---- */

/*
 * agent_run - complete @o for this host and start its lego-vmm, restored
 * from this agent's snapshot named @restore (NULL: it boots) of the vNode @of
 * (NULL: of @o's own; a copy runs from another's); returns once
 * its control socket is up (a migration's target, o->incoming: once it
 * listens there; an address of port 0 gets a free port, in o->incoming). 0 (its pid in *@pid), or -errno with a
 * sentence in @err: -EINVAL the order cannot run, -EEXIST the vNode runs
 * here already, -ENOSPC the table is full, -ECHILD lego-vmm exited at once
 * (its last words in @err), another for a failure of this host. Takes the
 * lock itself.
 */
int agent_run(struct agent *a, struct vnode_order *o, const char *restore, const char *of,
	      pid_t *pid, char *err, size_t errlen);

/* proc_last_line - the last line of the file @path into @out (for an error message). */
void proc_last_line(const char *path, char *out, size_t len);

/* ---- api.c: the HTTP API and the heartbeat ---- */

struct httpd *agent_api_start(struct agent *a, char *err, size_t errlen);

/* agent_beat - the heartbeat's body: capacity, use, and each VMM's state and ExCache. */
json_t *agent_beat(void *opaque);
/* agent_beat_answer - what the manager answered: the term of the one that leads. */
void agent_beat_answer(void *opaque, json_t *answer);

#endif
