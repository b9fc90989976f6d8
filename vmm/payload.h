/*
 * payload.h - payload mode: a freestanding 64-bit program (guest/payloads/)
 * run on every vCPU in ring 3 with identity page tables and IOPL 3, and the
 * port device of its runtime (print, report, exit). See guest/payloads/abi.h.
 */
#ifndef LEGO_VMM_PAYLOAD_H
#define LEGO_VMM_PAYLOAD_H

#include <stdio.h>

#include "vm.h"

/* payload_report_fn - called for every report a payload makes (any vCPU thread). */
typedef void (*payload_report_fn)(void *opaque, int vcpu, const char *key, uint64_t value);

struct payload_dev {
	struct vm *vm;
	FILE *out; /* guest prints and reports go here (stdout) */
	pthread_mutex_t out_lock;
	payload_report_fn on_report;
	void *report_opaque;
	_Atomic uint64_t nr_reports;
	bool syscall_probe; /* LP_PORT_SYSCALL_PROBE works (LEGO_TEST_SYSCALL_PROBE=1) */
};

/*
 * payload_load - check and load the image at @path into @vm, write the info
 * page (with @args, may be NULL), the GDT/IDT/TSS/page tables, and put every
 * vCPU at the entry point in ring 3. Returns 0 or -errno after logging why.
 */
int payload_load(struct vm *vm, const char *path, const char *args);

/* payload_user_segments - the payload's ring-3 CS, SS and data segments in @s. */
void payload_user_segments(struct kvm_sregs *s);

/*
 * payload_dev_init - claim the runtime's ports on @vm's port bus; prints and
 * reports go to @out, reports also to @on_report(@opaque, ...) if not NULL.
 */
int payload_dev_init(struct payload_dev *dev, struct vm *vm, FILE *out, payload_report_fn on_report,
		     void *opaque);

/* payload_dev_exit - release what payload_dev_init took. */
void payload_dev_exit(struct payload_dev *dev);

#endif
