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
	/* spin=1 keeps the guest running until the VMM is stopped from outside. */
	if (rt_arg_u64("spin", 0))
		for (;;)
			__asm__ volatile("pause");
	/* status=N lets tests check that the guest's status reaches the host. */
	return vcpu == 0 ? (int)rt_arg_u64("status", 0) : 0;
}
