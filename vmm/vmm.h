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
#include "snap.h"
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

	/*
	 * The vNode at rest (vmm_snapshot). quiesce - the vCPUs are paused: finish
	 * what is in flight and start nothing new until unquiesce. save - the
	 * module's state into sections of @w named "<module>..." (snap.h). restore -
	 * run instead of start's first boot, after every setup and before any start:
	 * take the state back from @s. Each returns 0 or -errno after logging why.
	 */
	void (*quiesce)(struct vmm *v);
	void (*unquiesce)(struct vmm *v);
	int (*save)(struct vmm *v, struct snap_writer *w);
	int (*restore)(struct vmm *v, const struct snap *s);
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
	bool check_leaks;	  /* --check-leaks: after teardown, report what is still held */
	int seccomp;		  /* --seccomp: enum sandbox_mode (0: on) */
	const char *mode;	  /* the machine profile: "payload" or "linux" */
	struct snap *restoring;	  /* --restore: the snapshot the vNode comes back from */
	bool restored;		  /* ... and came back from */
	uint64_t init_ns, run_ns; /* when lego-vmm started, and its vCPUs (0: not yet) */
	/* the vNode goes on elsewhere (a snapshot it stopped for, a migration): its
	 * memory stays on the memory servers when this VMM exits */
	bool keep_memory;
	pthread_mutex_t life_lock; /* pause, snapshot and their state below: one at a time */
	bool paused;
	uint64_t resets;  /* times the machine was reset (a reboot) and booted again */
	bool incoming;	  /* a migration's target (--incoming): the state comes from the source */
	int migrate_sock; /* ... on this connection, between migrate_incoming and _commit */
	uint64_t migrate_epoch; /* ... and the epoch to take the vNode over at */

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
 * stops or SIGTERM/SIGINT/SIGHUP stops it, tear down in reverse order. A
 * reset (vm_reset: the guest rebooting) does all of it again with the same
 * order: devices reset, kernel loaded again, the same memory servers.
 * Returns the exit status (vm.h).
 */
int vmm_run(struct vmm *v);

/*
 * The modules of lego-vmm, in setup order (main.c lists them): the machine
 * itself (mod_machine.c), the host's quirks (pvm_compat.c), the two machine profiles,
 * the legacy PC devices, the ExCache, the PCI bus and its virtio devices
 * (disks, network), migration, and the control socket last (so that it
 * goes first).
 */
/* excache_route_to_order - the order's slab lists made what the ExCache's route is now. */
void excache_route_to_order(struct vmm *v);

extern const struct vmm_module mod_machine, mod_pvm, mod_payload, mod_linux, mod_legacy,
	mod_excache, mod_pci, mod_blk, mod_net, mod_mem, mod_migrate, mod_control;

/*
 * A migration's target (migrate.c): migrate_incoming waits for the source
 * and takes its snapshot as v->restoring; after the modules restored from
 * it, migrate_commit finishes the handshake and takes the vNode over on the
 * memory servers (its ExCache connects then). 0 or -errno, logged.
 */
int migrate_incoming(struct vmm *v);
int migrate_commit(struct vmm *v);

/*
 * legacy_press - press the power button (mod_legacy.c): the guest should shut
 * down within @timeout_ms, after which it is stopped, or reset if @reboot
 * (its power-off then resets it too). -ENODEV when the machine has none.
 */
int legacy_press(struct vmm *v, bool reboot, int timeout_ms);

/* vmm_status - the "status" answer: the VM, its vCPUs, and each active module's fields. */
json_t *vmm_status(struct vmm *v);

/*
 * vmm_pause - stop the vCPUs (out of KVM_RUN, their exits complete) and
 * quiesce every module; vmm_resume undoes it. Both idempotent; pause fails
 * (-ESHUTDOWN) when the guest is stopping. Called with life_lock held.
 */
int vmm_pause(struct vmm *v);
void vmm_resume(struct vmm *v);

/*
 * vmm_save - the paused vNode as a snapshot into @fd (seekable, at its
 * start): its order, then every active module's state. With an ExCache its
 * dirty pages are written back first, and the snapshot holds which pages the
 * memory servers have; without one it holds the memory. 0 or -errno, with
 * why in @err.
 */
int vmm_save(struct vmm *v, int fd, char *err, size_t errlen);

/*
 * For the modules of virtio devices: quiesce, unquiesce, save as sections
 * "<prefix>.<i>" and restore their @n devices @devs (virtio_pci.h).
 */
struct virtio_dev;
/*
 * vmm_save_pages / vmm_restore_pages - @pages pages of guest memory from
 * @base that live only here (no ExCache): the ones that are not zero (and
 * not @skip-ped), as a map of one bit per page ("<name>.map") and those
 * pages in order ("<name>"). Zero pages cost their bit; restore leaves them
 * untouched in fresh anonymous memory. 0 or -errno (restore: -EINVAL for a
 * snapshot that does not hold them, logged).
 */
int vmm_save_pages(struct snap_writer *w, const char *name, const uint8_t *base, uint64_t pages,
		   bool (*skip)(void *opaque, uint64_t page), void *opaque);
int vmm_restore_pages(const struct snap *s, const char *name, uint8_t *base, uint64_t pages);

void vmm_devices_quiesce(struct virtio_dev *const *devs, int n, bool quiesce);
int vmm_devices_save(struct snap_writer *w, const char *prefix, struct virtio_dev *const *devs,
		     int n);
int vmm_devices_restore(const struct snap *s, const char *prefix, struct virtio_dev *const *devs,
			int n);

#endif
