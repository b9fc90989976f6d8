/* payload_dev.c - the payload runtime's port device: print, report, finish, exit, exceptions. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "abi.h"
#include "log.h"
#include "payload.h"
#include "util.h"

static const char *const payload_vector_names[32] = {
	[0] = "#DE divide error",
	[1] = "#DB debug",
	[2] = "NMI",
	[3] = "#BP breakpoint",
	[4] = "#OF overflow",
	[5] = "#BR bound range",
	[6] = "#UD invalid opcode",
	[7] = "#NM device not available",
	[8] = "#DF double fault",
	[10] = "#TS invalid TSS",
	[11] = "#NP segment not present",
	[12] = "#SS stack fault",
	[13] = "#GP general protection (a privileged instruction, or a bad address)",
	[14] = "#PF page fault",
	[16] = "#MF x87 floating point",
	[17] = "#AC alignment check",
	[18] = "#MC machine check",
	[19] = "#XM SIMD floating point",
	[20] = "#VE virtualization",
	[21] = "#CP control protection",
};

static bool payload_vector_has_error(unsigned v)
{
	return v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21 || v == 29 || v == 30;
}

/*
 * A ring-0 stub reported exception @vector. Return the vCPU to the
 * interrupted context (what the stub's iretq would do) so that it either
 * resumes there or, for a real fault, the dump shows the faulting instruction.
 */
static void payload_exception(struct vcpu *vcpu, unsigned vector)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	uint64_t frame[8], err = 0, *f = frame + 2;
	const char *name = vector < 32 ? payload_vector_names[vector] : NULL;
	bool user;
	char extra[96] = "";

	if (ioctl(vcpu->fd, KVM_GET_REGS, &r) < 0 || ioctl(vcpu->fd, KVM_GET_SREGS, &s) < 0 ||
	    gmem_read(&vcpu->vm->mem, r.rsp, frame, sizeof(frame))) {
		vcpu_fault(vcpu, "exception %u; its frame cannot be read", vector);
		return;
	}
	/* The stub saved %rdx and %rax (it needs them for its out) below the frame. */
	r.rdx = frame[0];
	r.rax = frame[1];
	if (payload_vector_has_error(vector))
		err = *f++;
	user = (f[1] & 3) == 3;
	if (!user) {
		vcpu_fault(vcpu, "exception %s in the payload's ring-0 stubs (RIP %#llx)",
			   name ? name : "(reserved vector)", (unsigned long long)f[0]);
		return;
	}
	r.rip = f[0];
	r.rflags = f[2];
	r.rsp = f[3];
	payload_user_segments(&s);
	if (ioctl(vcpu->fd, KVM_SET_SREGS, &s) < 0 || ioctl(vcpu->fd, KVM_SET_REGS, &r) < 0) {
		vm_stop(vcpu->vm, VM_EXIT_VMM_ERROR, "cannot resume vCPU %d: %s", vcpu->index,
			strerror(errno));
		return;
	}
	if (vector == 13 && vcpu->vm->quirks && vcpu->vm->quirks->user_gp &&
	    vcpu->vm->quirks->user_gp(vcpu, &r, 3)) {
		/* IOPL 3 is the payload ABI: set at entry, and ring 3 cannot lower it. */
		if (!vm_stopping(vcpu->vm) && ioctl(vcpu->fd, KVM_SET_REGS, &r) < 0)
			vm_stop(vcpu->vm, VM_EXIT_VMM_ERROR, "cannot resume vCPU %d: %s",
				vcpu->index, strerror(errno));
		return;
	}
	if (vector == 14)
		snprintf(extra, sizeof(extra), " at address %#llx (%s, %s)", s.cr2,
			 err & 1 ? "protection violation" : "not mapped",
			 err & 16  ? "instruction fetch"
			 : err & 2 ? "write"
				   : "read");
	vcpu_fault(vcpu, "exception %s%s, error code %#llx, at RIP %#llx in user mode",
		   name ? name : "(reserved vector)", extra, (unsigned long long)err, r.rip);
}

static void payload_print(struct payload_dev *dev, struct vcpu *vcpu, uint32_t gpa)
{
	char line[4096];
	int n = gmem_read_str(&dev->vm->mem, gpa, line, sizeof(line));

	if (n == -EFAULT) {
		vcpu_fault(vcpu, "print of a string at %#x, outside guest RAM", gpa);
		return;
	}
	pthread_mutex_lock(&dev->out_lock);
	fputs(line, dev->out);
	fflush(dev->out);
	pthread_mutex_unlock(&dev->out_lock);
}

static bool payload_key_ok(const char *key)
{
	if (!*key)
		return false;
	for (; *key; key++)
		if (!((*key >= 'a' && *key <= 'z') || (*key >= '0' && *key <= '9') || *key == '_'))
			return false;
	return true;
}

static void payload_report(struct payload_dev *dev, struct vcpu *vcpu, uint32_t gpa)
{
	struct lp_report rep;

	if (gmem_read(&dev->vm->mem, gpa, &rep, sizeof(rep))) {
		vcpu_fault(vcpu, "report at %#x, outside guest RAM", gpa);
		return;
	}
	rep.key[sizeof(rep.key) - 1] = '\0';
	if (!payload_key_ok(rep.key)) {
		vcpu_fault(vcpu, "report with a malformed key (want [a-z0-9_]+)");
		return;
	}
	dev->nr_reports++;
	pthread_mutex_lock(&dev->out_lock);
	fprintf(dev->out, "REPORT vcpu=%d %s=%llu\n", vcpu->index, rep.key,
		(unsigned long long)rep.value);
	fflush(dev->out);
	pthread_mutex_unlock(&dev->out_lock);
	if (dev->on_report)
		dev->on_report(dev->report_opaque, vcpu->index, rep.key, rep.value);
}

static void payload_io(struct vcpu *vcpu, void *opaque, uint64_t offset, void *data, uint32_t len,
		       bool is_write)
{
	struct payload_dev *dev = opaque;
	uint16_t port = LP_PORT_BASE + offset;
	uint32_t val = 0;

	memcpy(&val, data, len < 4 ? len : 4);
	if (port == LP_PORT_EXCEPTION && is_write) {
		payload_exception(vcpu, val & 0xff);
		return;
	}
	if (len != 4) {
		vcpu_fault(vcpu, "%u-byte access to payload port %#x (the runtime uses 32-bit)",
			   len, port);
		return;
	}
	if (!is_write) {
		if (port != LP_PORT_VCPU_ID) {
			vcpu_fault(vcpu, "read of write-only payload port %#x", port);
			return;
		}
		val = vcpu->index;
		memcpy(data, &val, 4);
		return;
	}
	switch (port) {
	case LP_PORT_PRINT:
		payload_print(dev, vcpu, val);
		break;
	case LP_PORT_REPORT:
		payload_report(dev, vcpu, val);
		break;
	case LP_PORT_START: {
		uint64_t expected = 0;

		atomic_compare_exchange_strong(&dev->vm->first_guest_ns, &expected, now_ns());
		break;
	}
	case LP_PORT_VCPU_DONE:
		vcpu_finish(vcpu, (int)val);
		break;
	case LP_PORT_EXIT:
		vm_stop(dev->vm, (int)(val & 0xff), "the payload exited with status %u", val);
		break;
	case LP_PORT_SYSCALL_PROBE:
		if (!dev->syscall_probe)
			vcpu_fault(vcpu,
				   "write to the system call probe port %#x, which is off "
				   "(LEGO_TEST_SYSCALL_PROBE=1 turns it on, for tests)",
				   port);
		else
			syscall(SYS_getppid);
		break;
	default:
		vcpu_fault(vcpu, "write to unknown payload port %#x", port);
	}
}

int payload_dev_init(struct payload_dev *dev, struct vm *vm, FILE *out, payload_report_fn on_report,
		     void *opaque)
{
	memset(dev, 0, sizeof(*dev));
	dev->vm = vm;
	dev->out = out;
	dev->on_report = on_report;
	dev->report_opaque = opaque;
	dev->syscall_probe = getenv("LEGO_TEST_SYSCALL_PROBE") &&
			     !strcmp(getenv("LEGO_TEST_SYSCALL_PROBE"), "1");
	pthread_mutex_init(&dev->out_lock, NULL);
	return bus_register(&vm->pio, LP_PORT_BASE, LP_PORT_LEN, payload_io, dev, "payload");
}

void payload_dev_exit(struct payload_dev *dev)
{
	pthread_mutex_destroy(&dev->out_lock);
}
