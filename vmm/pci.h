/*
 * pci.h - a PCI host bridge with configuration mechanism #1 (ports 0xcf8 and
 * 0xcfc) on bus 0, and memory BARs inside one MMIO window that the bridge
 * claims on the bus as a whole and routes to whichever device's BAR holds
 * the address at the time of the access (so the guest may move BARs).
 */
#ifndef LEGO_VMM_PCI_H
#define LEGO_VMM_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vm.h"

#define PCI_MMIO_BASE 0xe0000000ULL
#define PCI_MMIO_SIZE 0x10000000ULL
#define PCI_MAX_DEVS  32
#define PCI_MAX_BARS  6

struct pci_dev;

/* pci_bar_fn - an access at @offset into BAR @bar of @dev. */
typedef void (*pci_bar_fn)(struct pci_dev *dev, int bar, uint64_t offset, void *data, uint32_t len,
			   bool is_write);

struct pci_dev {
	uint8_t cfg[256];		 /* configuration space, as the guest reads it */
	uint32_t bar_size[PCI_MAX_BARS]; /* 0: no BAR; memory BARs only, powers of two */
	pci_bar_fn bar_fn;
	int slot;		    /* device number on bus 0 */
	uint8_t cap_free, cap_last; /* capability list building */
	void *opaque;		    /* the device model's own state */
};

struct pci {
	struct vm *vm;
	pthread_mutex_t lock; /* config space: several vCPUs may touch it */
	uint32_t addr;	      /* the last value written to 0xcf8 */
	uint64_t next_bar;    /* BAR allocation cursor in the MMIO window */
	struct pci_dev *devs[PCI_MAX_DEVS];
	struct pci_dev host_bridge;
};

/* pci_init - a host bridge at 00:00.0; claims 0xcf8-0xcff and the MMIO window. */
int pci_init(struct pci *pci, struct vm *vm);

/*
 * Legacy INTx wiring, the same in the ACPI _PRT and in the devices: pin @pin
 * (0 = INTA) of the device in @slot drives IOAPIC input 16 + (slot + pin) % 8,
 * level-triggered (the IOAPIC's first 16 inputs stay the ISA interrupts).
 */
#define PCI_INTX_GSI_BASE 16
#define PCI_INTX_GSIS	  8
static inline int pci_intx_gsi(int slot, int pin)
{
	return PCI_INTX_GSI_BASE + (slot + pin) % PCI_INTX_GSIS;
}

/*
 * pci_dev_init - fill @dev's configuration header: @vendor, @device, @class
 * (24 bits), @subsys_vendor and @subsys. Add BARs with pci_dev_add_bar and
 * capabilities with pci_dev_add_cap before pci_register.
 */
void pci_dev_init(struct pci_dev *dev, uint16_t vendor, uint16_t device, uint32_t class,
		  uint8_t revision, uint16_t subsys_vendor, uint16_t subsys);

/* pci_dev_add_bar - a 32-bit memory BAR @bar of @size bytes (a power of two, >= 4 KiB). */
void pci_dev_add_bar(struct pci_dev *dev, int bar, uint32_t size);

/* pci_dev_add_cap - append capability @data (@len bytes, its first byte the ID) to the list. */
int pci_dev_add_cap(struct pci_dev *dev, const void *data, uint8_t len);

/* pci_register - put @dev in the next free slot and assign its BARs. -ENOSPC when full. */
int pci_register(struct pci *pci, struct pci_dev *dev);

/* pci_bar_addr - the guest-physical address BAR @bar currently decodes. */
uint64_t pci_bar_addr(const struct pci_dev *dev, int bar);

/* Configuration space access, as the port handlers make it (exposed for tests). */
uint32_t pci_cfg_read(struct pci *pci, uint32_t addr, uint32_t off, uint32_t len);
void pci_cfg_write(struct pci *pci, uint32_t addr, uint32_t off, uint32_t len, uint32_t val);

#endif
