/*
 * vmm.h - lego-vmm the program: the machine it runs, the vNode order it
 * runs it for, and the modules it is made of.
 *
 * Each feature (a machine profile, a group of devices, the ExCache, the
 * control socket, a host's quirks) is a module: one const table of
 * options, setup, teardown, control commands and statistics, as Solo5's
 * hvt modules and kvmtool's init/exit lists are. main.c lists the modules
 * in setup order; vmm.c drives them. A module whose part of the order is
 * empty stays idle; setup runs in list order, and teardown runs in reverse
 * for exactly the modules whose setup succeeded, on every path. Modules
 * keep their state behind vmm_priv and offer what others need through the
 * shared pointers of struct vmm (the PCI bus, the ExCache, the console
 * UART), set by the module that owns them.
 */
#ifndef LEGO_VMM_VMM_H
#define LEGO_VMM_VMM_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "ctl.h"
#include "log.h"
#include "order.h"
#include "vm.h"

struct vmm;

/* A command-line option of a module: --NAME [ARG]. */
struct vmm_option {
	const char *name;
	const char *arg;  /* the value's name in --help ("SIZE"), NULL for a flag */
	const char *help; /* one line or more, for --help */
	/* parse - apply @arg (NULL for a flag) to @v, usually its order: 0, or
	 * -EINVAL with a sentence for a person in @err */
	int (*parse)(struct vmm *v, const char *arg, char *err, size_t errlen);
};

/*
 * A control-socket command of a module, served while it is active (ctl.h):
 * its own @name and @help, or (name NULL) those of vnode_verbs[@verb], the
 * verbs manager and agent send (order.h).
 */
struct vmm_cmd {
	const char *name, *help;
	int verb;
	json_t *(*fn)(struct vmm *v, json_t *req, char *err, size_t errlen);
};

#define VMM_IDLE 1 /* setup's answer when the order does not use the module */

struct vmm_module {
	const char *name;
	const struct vmm_option *options; /* ends with a NULL name; may be NULL */
	/* configure - before the VM exists: what the module needs of it */
	void (*configure)(struct vmm *v, struct vm_config *cfg);
	/* setup - take what the order needs of the module: 0, VMM_IDLE, or
	 * -errno after logging why and undoing its own part */
	int (*setup)(struct vmm *v);
	/* start - every module is set up: last steps before the vCPUs run
	 * (loading the image, serving the control socket). 0 or -errno, logged. */
	int (*start)(struct vmm *v);
	/* stop - the guest is stopping: release what might hold a vCPU back */
	void (*stop)(struct vmm *v);
	/* teardown - release everything setup took */
	void (*teardown)(struct vmm *v);
	/* status - add the module's fields to the "status" answer */
	void (*status)(struct vmm *v, json_t *status);
	/* stats - its own statistics: answered to the command of the same name
	 * and printed as "<stats_tag> {json}" at exit with --stats */
	json_t *(*stats)(struct vmm *v);
	const char *stats_tag;
	const struct vmm_cmd *cmds; /* ends with a NULL fn; may be NULL */
};

#define VMM_MAX_MODULES 16
#define VMM_MAX_WATCHES 8

/* A descriptor the main loop polls for a module while the guest runs. */
struct vmm_watch {
	int fd;
	/* ready - whether to read now (NULL: always); when not, the loop looks again soon */
	bool (*ready)(struct vmm *v, void *opaque);
	/* fn - @fd is readable (or hung up): false to stop watching it (vm_stop
	 * stops the guest, and the loop with it) */
	bool (*fn)(struct vmm *v, void *opaque);
	void *opaque;
};

struct vmm {
	struct vm vm;
	struct vnode_order order;
	/* how this run reports, not part of the order */
	bool stats;
	enum log_level level;
	bool check_leaks; /* --check-leaks: after teardown, report what is still held */
	const char *mode; /* the machine profile: "payload" or "linux" */

	/* what modules offer each other; NULL until their module is set up */
	struct pci *pci;
	struct excache *xc;
	struct serial *serial;
	struct ctl *ctl;

	const struct vmm_module *const *modules;
	int nr_modules;
	void *priv[VMM_MAX_MODULES];
	bool active[VMM_MAX_MODULES];
	struct vmm_watch watches[VMM_MAX_WATCHES];
	int nr_watches;
	uint64_t inherited_fds[16]; /* descriptors 0-1023 open at start: not leaks */
};

/* vmm_init - an empty program of @nr @modules (in setup order), with an empty order. */
void vmm_init(struct vmm *v, const struct vmm_module *const *modules, int nr);

/* vmm_priv / vmm_set_priv - module @m's own state in @v. */
void *vmm_priv(struct vmm *v, const struct vmm_module *m);
void vmm_set_priv(struct vmm *v, const struct vmm_module *m, void *priv);

/* vmm_active - whether @m's setup succeeded and it is not idle. */
bool vmm_active(const struct vmm *v, const struct vmm_module *m);

/* vmm_watch - poll @w->fd while the guest runs (from a module's start). -ENOSPC when full. */
int vmm_watch(struct vmm *v, const struct vmm_watch *w);

/*
 * vmm_parse_args - the command line into @v: the modules' options and the
 * program's own (--order FILE, --order-fd N, --stats, -v, -q, --help,
 * --version). Returns 0, or the exit status to end with (0 after --help,
 * VM_EXIT_USAGE for a wrong command line, said on stderr).
 */
int vmm_parse_args(struct vmm *v, int argc, char **argv);

/*
 * vmm_run - create the VM, set every module up, run the guest until it
 * stops or SIGTERM/SIGINT/SIGHUP stops it, tear down in reverse order.
 * Returns the exit status (vm.h).
 */
int vmm_run(struct vmm *v);

/*
 * The modules of lego-vmm, in setup order (main.c lists them): the machine
 * itself (vmm.c), the host's quirks (pvm_compat.c), the two machine profiles,
 * the legacy PC devices, the ExCache, the PCI bus and its virtio devices
 * (disks, network),
 * and the control socket last (so that it goes first).
 */
extern const struct vmm_module mod_machine, mod_pvm, mod_payload, mod_linux, mod_legacy,
	mod_excache, mod_pci, mod_blk, mod_net, mod_control;

/* vmm_status - the "status" answer: the VM, its vCPUs, and each active module's fields. */
json_t *vmm_status(struct vmm *v);

#endif
