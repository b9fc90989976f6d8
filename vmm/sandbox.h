/*
 * sandbox.h - lego-vmm's threads under seccomp filters.
 *
 * The threads that act on what the guest does (vCPUs, device I/O, the
 * ExCache's fault and write-back threads) each install, when they start and
 * before they touch anything of the guest, a filter of the system calls
 * their role needs (libseccomp); the filter is the thread's own and is kept
 * for its life (no_new_privs set). A call outside it stops the VMM: the
 * SIGSYS handler prints which thread made which call, the line the host
 * agent shows as the vNode's last words, and the process exits with
 * VM_EXIT_VMM_ERROR. The main thread (setting the machine up, again at a
 * reboot) and the control thread (snapshots, migration, commands from the
 * agent) take no input from the guest: they run under a list of calls
 * lego-vmm never makes (programs, other processes, privileges, mounts and
 * namespaces, the kernel's state), which sandbox_init installs on the main
 * thread before any other starts, so that every thread inherits it.
 *
 * --seccomp log (or LEGO_SECCOMP=log in the environment) logs a call
 * outside the filter to the kernel's audit log instead (dmesg: type=1326,
 * comm = the thread's name), which is how the lists were found; off
 * installs none.
 */
#ifndef LEGO_VMM_SANDBOX_H
#define LEGO_VMM_SANDBOX_H

enum sandbox_role {
	SB_VCPU,   /* KVM_RUN and the exits handled in the vCPU thread */
	SB_DEVICE, /* a virtio device's queues, its disk or network backend */
	SB_MEMORY, /* the ExCache: userfaultfd, memory servers, backups */
	NR_SB_ROLES
};

enum sandbox_mode { SB_ON, SB_LOG, SB_OFF };

/* sandbox_mode_parse - "on", "log" or "off"; -1 for anything else. */
int sandbox_mode_parse(const char *s);

/*
 * sandbox_init - the process's SIGSYS handler, the mode (LEGO_SECCOMP in
 * the environment, when set, overrides @mode), and the calls never made
 * refused to this thread and those it starts. Call once, on the main thread,
 * before any other starts. 0, or -1 with the reason on stderr.
 */
int sandbox_init(enum sandbox_mode mode);

/*
 * sandbox_enter - name the calling thread @name (as ps and the audit log
 * show it) and put it under @role's filter. Failing to install it stops the
 * VMM (a VMM that cannot sandbox a guest-facing thread does not run it).
 */
void sandbox_enter(enum sandbox_role role, const char *name);

/*
 * sandbox_allow_rdma - the ExCache's threads (SB_MEMORY) may reach memory
 * servers over RDMA: the verbs' ioctl (RDMA_VERBS_IOCTL) and read-write opens
 * (a connection opens /dev/infiniband/rdma_cm; a filter cannot tell paths
 * apart). Call before those threads start; only a VMM that may use RDMA.
 */
void sandbox_allow_rdma(void);

#endif
