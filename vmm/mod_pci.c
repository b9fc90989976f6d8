/* mod_pci.c - the PCI host bridge, for the virtio devices that sit on it (pci.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pci.h"
#include "vmm.h"

static int pci_setup(struct vmm *v)
{
	struct pci *pci;
	int ret;

	if (!v->order.kernel && !v->order.nr_disks && !v->order.nr_nics)
		return VMM_IDLE; /* a payload without devices has no bus to probe */
	pci = calloc(1, sizeof(*pci));
	if (!pci)
		return -ENOMEM;
	ret = pci_init(pci, &v->vm);
	if (ret) {
		log_err("cannot set up the PCI bus: %s", strerror(-ret));
		pthread_mutex_destroy(&pci->lock);
		free(pci);
		return ret;
	}
	v->pci = pci;
	return 0;
}

static void pci_teardown(struct vmm *v)
{
	pthread_mutex_destroy(&v->pci->lock);
	free(v->pci);
	v->pci = NULL;
}

const struct vmm_module mod_pci = {
	.name = "pci",
	.setup = pci_setup,
	.teardown = pci_teardown,
};
