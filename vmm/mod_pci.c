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

	if (!v->order.kernel && !v->order.nr_disks && !v->order.nr_nics && !v->order.max_memory)
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

/* The bridge's own: the configuration address last selected (each device saves its space). */
static int pci_save(struct vmm *v, struct snap_writer *w)
{
	uint32_t addr;

	pthread_mutex_lock(&v->pci->lock);
	addr = v->pci->addr;
	pthread_mutex_unlock(&v->pci->lock);
	snap_put(w, "pci", &addr, sizeof(addr));
	return w->err;
}

static int pci_restore(struct vmm *v, const struct snap *s)
{
	uint64_t len;
	const uint32_t *addr = snap_get(s, "pci", &len);

	if (!addr || len != sizeof(*addr)) {
		log_err("the snapshot has no PCI bus: its vNode had other devices");
		return -EINVAL;
	}
	v->pci->addr = *addr;
	return 0;
}

const struct vmm_module mod_pci = {
	.name = "pci",
	.setup = pci_setup,
	.teardown = pci_teardown,
	.save = pci_save,
	.restore = pci_restore,
};
