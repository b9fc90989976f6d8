/* hello.c - the smallest payload: says which vCPU it is and how much memory it has. */
#include "rt.h"

int main(unsigned vcpu)
{
	const struct lp_info *info = rt_info();

	rt_printf("hello from vCPU %u of %u, %lu MiB of memory\n", vcpu, info->nr_vcpus,
		  (unsigned long)(info->mem_size >> 20));
	rt_report("vcpu_index", vcpu);
	rt_report("nr_vcpus", info->nr_vcpus);
	rt_report("mem_size", info->mem_size);
	/* probe=1: the VMM's vCPU thread makes a system call its filter refuses (a test's) */
	if (vcpu == 0 && rt_arg_u64("probe", 0))
		rt_outl(LP_PORT_SYSCALL_PROBE, 1);
	/* spin=1 keeps the guest running until the VMM is stopped from outside. */
	if (rt_arg_u64("spin", 0))
		for (;;)
			__asm__ volatile("pause");
	/* status=N lets tests check that the guest's status reaches the host. */
	return vcpu == 0 ? (int)rt_arg_u64("status", 0) : 0;
}
