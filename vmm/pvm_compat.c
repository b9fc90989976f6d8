/* pvm_compat.c - kvm_pvm workarounds (see pvm_compat.h); none run on hardware KVM. */
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "pvm_compat.h"
#include "vcpu.h"

bool pvm_compat_host(void)
{
	return access("/sys/module/kvm_pvm", F_OK) == 0;
}

int pvm_compat_user_pio(struct vcpu *vcpu, struct kvm_regs *r, unsigned iopl)
{
	uint8_t insn[3] = {0}, op;
	unsigned i = 0, size = 4, port;
	bool out, opsize16 = false;
	uint32_t data;

	if (iopl != 3)
		return 0; /* the #GP is what real hardware would raise too */
	if (vcpu_read_virt(vcpu, r->rip, insn, sizeof(insn)) &&
	    vcpu_read_virt(vcpu, r->rip, insn, 2) && vcpu_read_virt(vcpu, r->rip, insn, 1))
		return 0;
	if (insn[0] == 0x66) {
		opsize16 = true;
		i++;
	}
	op = insn[i];
	switch (op) {
	case 0xe4:
	case 0xe5:
	case 0xe6:
	case 0xe7: /* in/out with an 8-bit port */
		port = insn[i + 1];
		i += 2;
		break;
	case 0xec:
	case 0xed:
	case 0xee:
	case 0xef: /* in/out with the port in %dx */
		port = r->rdx & 0xffff;
		i += 1;
		break;
	default:
		return 0; /* string I/O and everything else: not emulated */
	}
	out = op & 2;
	if (!(op & 1))
		size = 1;
	else if (opsize16)
		size = 2;
	data = (uint32_t)r->rax;
	vcpu_pio(vcpu, (uint16_t)port, &data, size, out);
	if (!out) {
		uint64_t mask = size == 4 ? 0xffffffffULL : size == 2 ? 0xffff : 0xff;

		/* a 32-bit in zero-extends into %rax; narrower ones merge */
		r->rax = size == 4 ? data : (r->rax & ~mask) | (data & mask);
	}
	r->rip += i;
	return 1;
}
