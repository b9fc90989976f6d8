/* main.c - lego-vmm: the modules it is made of, in setup order; vmm.c runs them. */
#include <stdlib.h>

#include "vmm.h"

static const struct vmm_module *const modules[] = {
	&mod_machine, &mod_pvm, &mod_payload, &mod_linux, &mod_legacy,	&mod_excache,
	&mod_pci,     &mod_blk, &mod_net,     &mod_mem,	  &mod_migrate, &mod_control,
};

int main(int argc, char **argv)
{
	struct vmm v;
	int ret;

	vmm_init(&v, modules, sizeof(modules) / sizeof(modules[0]));
	ret = vmm_parse_args(&v, argc, argv);
	if (ret) {
		if (v.restoring) {
			snap_close(v.restoring);
			free(v.restoring);
		}
		order_free(&v.order);
		return ret < 0 ? 0 : ret;
	}
	return vmm_run(&v);
}
