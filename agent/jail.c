/* jail.c - lego-vmm's jail (see jail.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "jail.h"

/* The system's part of every jail: libraries, and what glibc reads to resolve names and
 * tell the time. Those missing on a host are left out; a symbolic link (/lib on a
 * merged-/usr system) is made again as one. */
static const char *const system_paths[] = {
	"/usr",
	"/lib",
	"/lib64",
	"/lib32",
	"/etc/ld.so.cache",
	"/etc/hosts",
	"/etc/resolv.conf",
	"/etc/nsswitch.conf",
	"/etc/host.conf",
	"/etc/gai.conf",
	"/etc/localtime",
	"/etc/services",
	"/etc/protocols",
	"/etc/gnutls",
	"/sys/module/kvm_pvm",
};

/* Device nodes: the VMM's own (owner only), and everyone's. */
static const char *const own_devices[] = {"/dev/kvm", "/dev/net/tun", "/dev/userfaultfd"};
static const char *const common_devices[] = {"/dev/null", "/dev/zero", "/dev/urandom",
					     "/dev/random"};

static int say(char *err, size_t errlen, int ret, const char *what, const char *path)
{
	snprintf(err, errlen, "%s %s: %s", what, path, strerror(-ret));
	return ret;
}

/* @path as a real path into @field of the order, and bound (read-only unless @rw). */
static int plan_file(struct jail *j, char **field, bool rw, char *err, size_t errlen)
{
	char real[PATH_MAX];

	if (!*field)
		return 0;
	if (!realpath(*field, real))
		return 0; /* lego-vmm says it is missing, in its own words */
	if (j->nr == JAIL_MAX_BINDS) {
		snprintf(err, errlen, "jail: more than %d files", JAIL_MAX_BINDS);
		return -E2BIG;
	}
	if (strcmp(real, *field) && order_set(field, real)) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(j->binds[j->nr].path, sizeof(j->binds[0].path), "%s", real);
	j->binds[j->nr++].writable = rw;
	return 0;
}

/* What a VMM that may use RDMA needs of the host, when it has an RDMA device. */
static int plan_rdma(struct jail *j, const struct vnode_order *o, char *err, size_t errlen)
{
	static const char *const paths[] = {"/sys", "/etc/libibverbs.d", "/etc/rdma"};
	DIR *d;
	struct dirent *e;

	if (!o->transport || !strcmp(o->transport, "tcp") || !(d = opendir("/dev/infiniband")))
		return 0;
	while ((e = readdir(d)) && j->nr_rdma < JAIL_MAX_RDMA)
		if (e->d_name[0] != '.')
			snprintf(j->rdma[j->nr_rdma++], sizeof(j->rdma[0]), "/dev/infiniband/%.40s",
				 e->d_name);
	closedir(d);
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		if (access(paths[i], F_OK))
			continue;
		if (j->nr == JAIL_MAX_BINDS) {
			snprintf(err, errlen, "jail: more than %d files", JAIL_MAX_BINDS);
			return -E2BIG;
		}
		snprintf(j->binds[j->nr].path, sizeof(j->binds[0].path), "%s", paths[i]);
		j->binds[j->nr++].writable = false;
	}
	return 0;
}

int jail_plan(struct jail *j, const char *root, const char *home, const char *vmm,
	      struct vnode_order *o, const char *snap, char *err, size_t errlen)
{
	char *own = snap ? strdup(snap) : NULL, *exe = strdup(vmm);
	int ret;

	memset(j, 0, sizeof(*j));
	snprintf(j->root, sizeof(j->root), "%s", root);
	snprintf(j->home, sizeof(j->home), "%s", home);
	ret = exe ? plan_file(j, &exe, false, err, errlen) : -ENOMEM;
	if (!ret)
		snprintf(j->vmm, sizeof(j->vmm), "%s", exe);
	if (!ret)
		ret = plan_file(j, &o->kernel, false, err, errlen);
	if (!ret)
		ret = plan_file(j, &o->initrd, false, err, errlen);
	if (!ret)
		ret = plan_file(j, &o->payload, false, err, errlen);
	for (int i = 0; !ret && i < o->nr_disks; i++)
		if (o->disks[i].url[0] == '/')
			ret = plan_file(j, &o->disks[i].url, true, err, errlen);
	if (!ret && own) {
		ret = plan_file(j, &own, false, err, errlen);
		snprintf(j->own, sizeof(j->own), "%s", own);
	}
	for (int i = 0; i < o->nr_nics; i++)
		snprintf(j->taps[j->nr_taps++], sizeof(j->taps[0]), "%s", o->nics[i].tap);
	if (!ret)
		ret = plan_rdma(j, o, err, errlen);
	free(own);
	free(exe);
	if (ret == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	return ret;
}

/* ---- in the child: system calls and stack buffers only ---- */

/* mkdir -p of @path (inside the jail's tmpfs), mode 0755. */
static int make_dirs(const char *path)
{
	char p[2 * PATH_MAX];

	snprintf(p, sizeof(p), "%s", path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	return mkdir(p, 0755) && errno != EEXIST ? -errno : 0;
}

/* @path of the host at the same path under @root: bound (read-only unless @rw), or a
 * symbolic link made again. -ENOENT when the host has no @path. */
static int bind_in(const char *root, const char *path, bool rw, char *err, size_t errlen)
{
	char at[2 * PATH_MAX], link[PATH_MAX], dir[2 * PATH_MAX];
	struct stat st;
	ssize_t n;

	if (lstat(path, &st))
		return -errno;
	if ((size_t)snprintf(at, sizeof(at), "%s%s", root, path) >= sizeof(at))
		return say(err, errlen, -ENAMETOOLONG, "jail: path", path);
	snprintf(dir, sizeof(dir), "%s", at);
	*strrchr(dir, '/') = '\0';
	if (make_dirs(dir))
		return say(err, errlen, -errno, "jail: mkdir", dir);
	if (S_ISLNK(st.st_mode)) {
		n = readlink(path, link, sizeof(link) - 1);
		if (n < 0)
			return say(err, errlen, -errno, "jail: readlink", path);
		link[n] = '\0';
		if (symlink(link, at) && errno != EEXIST)
			return say(err, errlen, -errno, "jail: symlink", at);
		return 0;
	}
	if (S_ISDIR(st.st_mode) ? mkdir(at, 0755) && errno != EEXIST
				: mknod(at, S_IFREG | 0600, 0) && errno != EEXIST)
		return say(err, errlen, -errno, "jail: mount point", at);
	if (mount(path, at, NULL, MS_BIND | MS_REC, NULL))
		return say(err, errlen, -errno, "jail: bind", path);
	if (mount(NULL, at, NULL,
		  MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | (rw ? 0 : MS_RDONLY), NULL))
		return say(err, errlen, -errno, "jail: remount", path);
	return 0;
}

/* A device node like the host's @path under @root, mode @mode, owned by @id. */
static int device_in(const char *root, const char *path, unsigned mode, unsigned id, char *err,
		     size_t errlen)
{
	char at[2 * PATH_MAX], dir[2 * PATH_MAX];
	struct stat st;

	if (stat(path, &st) || !S_ISCHR(st.st_mode))
		return 0; /* a host without it: lego-vmm says so when it needs it */
	snprintf(at, sizeof(at), "%s%s", root, path);
	snprintf(dir, sizeof(dir), "%s", at);
	*strrchr(dir, '/') = '\0';
	if (make_dirs(dir) || mknod(at, S_IFCHR | mode, st.st_rdev) || chmod(at, mode) ||
	    chown(at, id, id))
		return say(err, errlen, -errno, "jail: device", at);
	return 0;
}

/* The TAP @name handed to @id: its VMM attaches to it without CAP_NET_ADMIN. */
static int give_tap(const char *name, unsigned id, char *err, size_t errlen)
{
	struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR};
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC), ret = 0;

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (fd < 0 || ioctl(fd, TUNSETIFF, &ifr) || ioctl(fd, TUNSETOWNER, (unsigned long)id) ||
	    ioctl(fd, TUNSETGROUP, (unsigned long)id))
		ret = say(err, errlen, -errno, "jail: handing over the TAP", name);
	if (fd >= 0)
		close(fd);
	return ret;
}

/* Every capability gone for good: bounding set, then (after the user changed) the rest. */
static int drop_privileges(unsigned id, char *err, size_t errlen)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2] = {{0}};

	for (int cap = 0; cap <= 63; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) && errno != EINVAL)
			return say(err, errlen, -errno, "jail:", "emptying the bounding set");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) && errno != EINVAL)
		return say(err, errlen, -errno, "jail:", "clearing ambient capabilities");
	if (setgroups(0, NULL) || setresgid(id, id, id) || setresuid(id, id, id))
		return say(err, errlen, -errno, "jail:", "changing user");
	if (syscall(SYS_capset, &h, d)) /* the inheritable set survives a change of user */
		return say(err, errlen, -errno, "jail:", "clearing capabilities");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return say(err, errlen, -errno, "jail:", "no_new_privs");
	return 0;
}

int jail_enter(const struct jail *j, char *err, size_t errlen)
{
	unsigned id = jail_id(getpid());
	char at[PATH_MAX + 16];
	int ret = 0;

	umask(022); /* the jail's directories are for the VMM to pass through (the agent's is 077) */
	if (unshare(CLONE_NEWNS))
		return say(err, errlen, -errno, "jail:", "a mount namespace");
	/* nothing done here reaches the host's mounts */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		return say(err, errlen, -errno, "jail: private", "/");
	if (mount("lego-jail", j->root, "tmpfs", MS_NOSUID, "mode=0755,size=1m"))
		return say(err, errlen, -errno, "jail: tmpfs on", j->root);
	for (size_t i = 0; i < sizeof(system_paths) / sizeof(system_paths[0]); i++) {
		ret = bind_in(j->root, system_paths[i], false, err, errlen);
		if (ret && ret != -ENOENT)
			return ret;
	}
	for (int i = 0; i < j->nr; i++) {
		ret = bind_in(j->root, j->binds[i].path, j->binds[i].writable, err, errlen);
		if (ret)
			return ret == -ENOENT ? say(err, errlen, ret, "jail:", j->binds[i].path)
					      : ret;
	}
	/* its home: the vNode's directory, its own */
	if (chown(j->home, id, id) || (j->own[0] && chown(j->own, id, id)))
		return say(err, errlen, -errno, "jail: chown", j->home);
	ret = bind_in(j->root, j->home, true, err, errlen);
	for (size_t i = 0; !ret && i < sizeof(own_devices) / sizeof(own_devices[0]); i++)
		ret = device_in(j->root, own_devices[i], 0600, id, err, errlen);
	for (size_t i = 0; !ret && i < sizeof(common_devices) / sizeof(common_devices[0]); i++)
		ret = device_in(j->root, common_devices[i], 0666, 0, err, errlen);
	for (int i = 0; !ret && i < j->nr_rdma; i++)
		ret = device_in(j->root, j->rdma[i], 0600, id, err, errlen);
	for (int i = 0; !ret && i < j->nr_taps; i++)
		ret = give_tap(j->taps[i], id, err, errlen);
	if (ret)
		return ret;
	/* /proc: its own processes only (hidepid), and nothing of the host's but them
	 * (subset=pid: no /proc/sys, no kallsyms) */
	snprintf(at, sizeof(at), "%s/proc", j->root);
	if (mkdir(at, 0555) || mount("proc", at, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
				     "hidepid=invisible,subset=pid"))
		return say(err, errlen, -errno, "jail: mount", at);
	/* the tmpfs becomes the root, the host's is let go */
	snprintf(at, sizeof(at), "%s/.old", j->root);
	if (mkdir(at, 0700) || syscall(SYS_pivot_root, j->root, at) || chdir("/") ||
	    umount2("/.old", MNT_DETACH) || rmdir("/.old"))
		return say(err, errlen, -errno, "jail: pivot_root to", j->root);
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID, NULL))
		return say(err, errlen, -errno, "jail: read-only", "/");
	if (j->nr_rdma) { /* its RDMA buffers are registered: pinned (about 2.3 MiB a connection) */
		struct rlimit lim = {JAIL_RDMA_MEMLOCK, JAIL_RDMA_MEMLOCK};

		if (setrlimit(RLIMIT_MEMLOCK, &lim))
			return say(err, errlen, -errno, "jail: setrlimit", "RLIMIT_MEMLOCK");
	}
	return drop_privileges(id, err, errlen);
}
