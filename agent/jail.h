/*
 * jail.h - lego-vmm's jail: what the host agent takes away from a VMM
 * between fork and exec, in the manner of Firecracker's jailer but as a few
 * functions of the agent rather than a program of its own.
 *
 * A jailed lego-vmm has
 *   - a mount namespace of its own whose root is an empty tmpfs (read-only
 *     once built) holding only what it needs, each at its own path so that
 *     its order needs no rewriting: the system's libraries and a few files of
 *     /etc read-only, its own binary, the kernel, initrd or payload its order
 *     names, its vNode's directory (writable: control socket, snapshots), a
 *     snapshot it restores, and /proc showing its own processes only;
 *   - device nodes for KVM, the TUN driver and userfaultfd made in that
 *     tmpfs and owned by it alone (the host's stay as they are: root's);
 *   - a user and group of its own, JAIL_ID_BASE + its pid, which no other
 *     VMM has while it lives (none may signal, trace or read another);
 *   - no capabilities: none effective, permitted, inheritable or ambient,
 *     an empty bounding set, and no_new_privs (no exec can give any back).
 * Its TAPs are handed to its user (TUNSETOWNER) before the drop.
 */
#ifndef LEGO_JAIL_H
#define LEGO_JAIL_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "order.h"

#define JAIL_ID_BASE   0x40000000u /* + pid (below 2^22): far above any user's range */
#define JAIL_MAX_BINDS (8 + ORDER_MAX_DISKS)

struct jail_bind {
	char path[PATH_MAX]; /* a file or directory, bound at the same path */
	bool writable;
};

/* What one VMM's jail holds; made before fork, used in the child (no allocation there). */
#define JAIL_MAX_RDMA	  8
#define JAIL_RDMA_MEMLOCK (512ULL << 20) /* what its registered buffers may pin */

struct jail {
	char root[PATH_MAX]; /* an empty directory the jail's tmpfs is mounted on */
	char home[PATH_MAX]; /* the vNode's directory: handed to the VMM's user */
	char vmm[PATH_MAX];  /* lego-vmm, as the child runs it */
	char own[PATH_MAX];  /* a file handed to the VMM's user besides (a snapshot), or "" */
	int nr;
	struct jail_bind binds[JAIL_MAX_BINDS];
	int nr_taps;
	char taps[ORDER_MAX_NICS][16];
	/* RDMA (an order whose transport may be RDMA, on a host with a device): the
	 * verbs' device nodes, handed to the VMM's user; /sys and the providers'
	 * configuration are bound read-only (libibverbs finds its devices there) */
	int nr_rdma;
	char rdma[JAIL_MAX_RDMA][64];
};

/*
 * jail_plan - the jail of the VMM that runs @o from the directory @home, with
 * its tmpfs on @root, lego-vmm at @vmm, restoring the snapshot @snap (NULL:
 * none). The order's files become real paths (in @o) and are bound read-only,
 * its local disks writable. 0, or -errno with a sentence in @err.
 */
int jail_plan(struct jail *j, const char *root, const char *home, const char *vmm,
	      struct vnode_order *o, const char *snap, char *err, size_t errlen);

/*
 * jail_enter - in the forked child, as root: build the jail of @j and enter
 * it, as the user and group jail_id(getpid()). 0, or -errno with a sentence
 * in @err (the child should then exit: it is half jailed).
 */
int jail_enter(const struct jail *j, char *err, size_t errlen);

/* jail_id - the user and group id of the jailed process @pid. */
static inline unsigned jail_id(pid_t pid)
{
	return JAIL_ID_BASE + (unsigned)pid;
}

#endif
