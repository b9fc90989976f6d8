/*
 * order.h - a vNode order: everything one lego-vmm needs to run one vNode
 * (its machine, what it boots, where its memory and disks live, and the
 * credentials that reach them), defined once. The manager writes it, the
 * agent completes it for its host (boot kit and payload paths, the control
 * socket) and hands it to lego-vmm through an inherited descriptor, never
 * in argv; lego-vmm runs it. Its one JSON form is read and written here;
 * lego-vmm's command-line options are a person's way to fill in the same
 * structure. The control verbs that act on a running vNode are here too,
 * so that manager, agent and lego-vmm spell them the same.
 */
#ifndef LEGO_ORDER_H
#define LEGO_ORDER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define ORDER_MAX_CPUS	    64
#define ORDER_MAX_DISKS	    8
#define ORDER_MAX_NICS	    4
#define ORDER_MAX_SLABS	    4096
#define ORDER_MIN_MEMORY    (4ULL << 20)
#define ORDER_HOTPLUG_BLOCK (2ULL << 20) /* live resize moves memory in these */

/* A disk: a raw image file, or a volume storsrv://HOST:PORT/VOLUME with its token. */
struct order_disk {
	char *url;
	uint8_t token[LMP_TOKEN_LEN];
	bool has_token;
};

/* A network interface: a virtio-net device on a TAP, and what the guest is told of it. */
struct order_nic {
	char *tap; /* the TAP device's name */
	uint8_t mac[6];
	bool has_mac;  /* else a random locally administered one */
	char *ip;      /* "A.B.C.D/N" for the guest to take, or NULL */
	char *gateway; /* its default route, or NULL */
};

struct vnode_order {
	char *name; /* the vNode's name (NULL when run by hand): for messages */
	int cpus;
	uint64_t memory; /* bytes of guest RAM it boots with */
	/* Live resize (virtio-mem): the memory may grow to @max_memory (0: it
	 * cannot); @hotplug bytes above @memory are asked of the guest now. */
	uint64_t max_memory, hotplug;

	/* What runs: a payload (+ args), or a Linux kernel (+ initrd, cmdline).
	 * In the manager's order neither names the agent's boot kit. */
	char *payload, *args;
	char *kernel, *initrd, *cmdline;

	/* The ExCache: at most @excache bytes resident here (0: all memory
	 * local), the rest on memory servers. */
	uint64_t excache;
	uint64_t vnode;		      /* its number there (0: a random one) */
	uint8_t token[LMP_TOKEN_LEN]; /* its secret there (!has_token: a random one) */
	bool has_token;
	uint64_t slab_size; /* bytes per slab when the servers differ per slab */
	int nr_memsrv;	    /* the primary of each slab, or one server for all */
	char **memsrv;
	int nr_secondary; /* replicated: the secondary of each slab (0: not replicated) */
	char **secondary;
	uint64_t epoch; /* of the placement (0 without a manager) */
	struct order_backup {
		char *url; /* storsrv://HOST:PORT/VOLUME the secondaries back up to (NULL: none) */
		uint8_t token[LMP_TOKEN_LEN];
		bool has_token;
		uint32_t interval_ms;
	} backup;

	int nr_disks;
	struct order_disk disks[ORDER_MAX_DISKS];
	int nr_nics;
	struct order_nic nics[ORDER_MAX_NICS];

	/* A migration's target: wait for the running vNode's state on this
	 * HOST:PORT, from a source that presents @migrate_token (NULL: boot). */
	char *incoming;
	uint8_t migrate_token[LMP_TOKEN_LEN];
	bool has_migrate_token;

	/* How it runs on its host. */
	char *control;	     /* the control socket's path (NULL: none) */
	char *cpuid;	     /* "host" or "baseline" (NULL: host) */
	char *transport;     /* to memory servers: "tcp", "rdma" or "auto" (NULL: tcp) */
	char *tls_ca;	     /* the cluster's CA (PEM): its servers speak TLS (NULL: TCP) */
	char *tls_cert;	     /* the VMM's certificate from the manager (PEM): its vNode, */
	char *tls_key;	     /* its epoch; and its key (secret) */
	int disk_deadline_s; /* a disk request fails to the guest after this long unanswered */
	unsigned prefetch;   /* pages fetched at once on sequential misses (1: off) */
	bool poll_spin;	     /* fault threads spin instead of blocking */
	unsigned spin_us;    /* ... or poll this long after a fault before sleeping */
	char *writes;	     /* how the ExCache learns of writes to pages it fetched for a
			      * read: "sums" (installed writable; content sums at eviction)
			      * or "wp" (installed write-protected) (NULL: sums) */
	unsigned warm;	     /* restored or migrated: fetch the pages resident at the save
			      * ahead of the guest (1, the default) or only on its faults */
};

/* order_init - an empty order with the defaults (1 vCPU, 256 MiB, ...). */
void order_init(struct vnode_order *o);

/* order_free - free what @o holds, leaving an empty order (order_init again to reuse). */
void order_free(struct vnode_order *o);

/*
 * order_from_json - read @j onto @o (which order_init prepared): every key
 * checked for its type and range, unknown keys refused. 0, or -EINVAL with
 * a sentence in @err; @o is then to be freed.
 */
int order_from_json(struct vnode_order *o, const json_t *j, char *err, size_t errlen);

/* order_to_json - the JSON form of @o, credentials included (never log it). */
json_t *order_to_json(const struct vnode_order *o);

/* order_public_json - the same with every credential replaced by "(secret)": for logs. */
json_t *order_public_json(const struct vnode_order *o);

/*
 * order_check - what must hold between the parts of an order (one thing to
 * boot, ExCache with memory servers, one secondary per slab, a backup only
 * when replicated, ...). 0, or -EINVAL with a sentence for a person in @err.
 */
int order_check(const struct vnode_order *o, char *err, size_t errlen);

/* order_set - replace the string *@field with a copy of @value (NULL clears it). 0 or -ENOMEM. */
int order_set(char **field, const char *value);

/*
 * order_set_servers - the list @text ("HOST:PORT" or "A,B,...") into
 * *@list, *@nr. 0, -EINVAL for an empty entry, -E2BIG past ORDER_MAX_SLABS.
 */
int order_set_servers(char ***list, int *nr, const char *text);

/* order_add_disk - append a disk at @url (no token yet). -E2BIG past ORDER_MAX_DISKS. */
int order_add_disk(struct vnode_order *o, const char *url);

/*
 * order_add_nic - append a network interface from @text: "TAP" or
 * "TAP,mac=52:54:00:12:34:56,ip=10.0.0.2/24,gw=10.0.0.1" (each optional).
 * 0, or -EINVAL with a sentence in @err, -E2BIG past ORDER_MAX_NICS.
 */
int order_add_nic(struct vnode_order *o, const char *text, char *err, size_t errlen);

/* order_mac_parse / order_mac_text - "52:54:00:12:34:56" and back (@text: 18 bytes). */
int order_mac_parse(const char *text, uint8_t mac[6]);
void order_mac_text(const uint8_t mac[6], char *text);

/*
 * order_write_fd / order_read_fd - the order as JSON through a file
 * descriptor: written whole into @fd (a memfd or a file of mode 0600), or
 * read from @fd until its end. 0, or -errno with a sentence in @err.
 */
int order_write_fd(const struct vnode_order *o, int fd, char *err, size_t errlen);
int order_read_fd(struct vnode_order *o, int fd, char *err, size_t errlen);

/*
 * order_memfd - a sealed anonymous file (memfd) holding @o's JSON, for a
 * child to inherit: no path, no mode, visible to no other user. The fd, or
 * -errno with a sentence in @err.
 */
int order_memfd(const struct vnode_order *o, char *err, size_t errlen);

/*
 * The verbs that act on a running vNode, the same in the manager's orders,
 * the agent's API (POST /v1/vnodes/NAME/<op>) and lego-vmm's control socket
 * ({"cmd": <cmd>, <arg>: ...}).
 */
enum vnode_verb {
	VERB_EXCACHE_RESIZE,   /* "size": the ExCache's new size (bytes, or text such as "64M") */
	VERB_MEMSRV_SECONDARY, /* "addr": fill it as the new secondary */
	VERB_MEMSRV_LOST,      /* "addr": the manager declared it down: fail over now */
	VERB_MEMSRV_RESTORE,   /* "addr": refill the slabs that lost every copy, from the backup */
	VERB_PAUSE,	       /* no argument: the vCPUs stop, the devices go quiet */
	VERB_RESUME,	       /* no argument: a paused vNode runs on */
	VERB_MEMORY_RESIZE,    /* "size": the memory the guest should have (bytes or "2G") */
	NR_VERBS
};

struct vnode_verb_def {
	const char *op;	 /* the agent's path element */
	const char *cmd; /* lego-vmm's control command */
	const char *arg; /* the key of its one argument (NULL: none) */
	const char *help;
	const char *extra[4]; /* keys passed along as they are, when given (NULL-ended) */
};

extern const struct vnode_verb_def vnode_verbs[NR_VERBS];

/* vnode_verb_by_op - the verb whose agent path element is @op, or -1. */
int vnode_verb_by_op(const char *op);

#endif
