/* pci.c - host bridge, configuration mechanism #1, BAR routing (see pci.h). */
#include <errno.h>
#include <string.h>

#include "log.h"
#include "pci.h"

#define PCI_CFG_ADDR_PORT 0xcf8
#define PCI_CFG_DATA_PORT 0xcfc
#define PCI_COMMAND	  0x04
#define PCI_STATUS	  0x06
#define PCI_BAR0	  0x10
#define PCI_CAP_PTR	  0x34
#define PCI_CMD_MEM	  0x2
#define PCI_STATUS_CAPS	  0x10

static void put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

void pci_dev_init(struct pci_dev *dev, uint16_t vendor, uint16_t device, uint32_t class,
		  uint8_t revision, uint16_t subsys_vendor, uint16_t subsys)
{
	memset(dev->cfg, 0, sizeof(dev->cfg));
	memset(dev->bar_size, 0, sizeof(dev->bar_size));
	dev->cap_free = dev->cap_last = 0;
	put16(dev->cfg + 0x00, vendor);
	put16(dev->cfg + 0x02, device);
	dev->cfg[0x08] = revision;
	dev->cfg[0x09] = class & 0xff;
	dev->cfg[0x0a] = (class >> 8) & 0xff;
	dev->cfg[0x0b] = (class >> 16) & 0xff;
	put16(dev->cfg + 0x2c, subsys_vendor);
	put16(dev->cfg + 0x2e, subsys);
}

void pci_dev_add_bar(struct pci_dev *dev, int bar, uint32_t size)
{
	dev->bar_size[bar] = size;
}

int pci_dev_add_cap(struct pci_dev *dev, const void *data, uint8_t len)
{
	uint8_t pos = dev->cap_free ? dev->cap_free : 0x40;

	if (pos + len > 256 || len < 2)
		return -ENOSPC;
	memcpy(dev->cfg + pos, data, len);
	dev->cfg[pos + 1] = 0; /* end of the list, until the next one is added */
	if (dev->cap_last)
		dev->cfg[dev->cap_last + 1] = pos;
	else
		dev->cfg[PCI_CAP_PTR] = pos;
	dev->cap_last = pos;
	dev->cap_free = (pos + len + 3) & ~3;
	put16(dev->cfg + PCI_STATUS, dev->cfg[PCI_STATUS] | PCI_STATUS_CAPS);
	return 0;
}

uint64_t pci_bar_addr(const struct pci_dev *dev, int bar)
{
	return get32(dev->cfg + PCI_BAR0 + 4 * bar) & ~0xfULL;
}

int pci_register(struct pci *pci, struct pci_dev *dev)
{
	int slot = -1;

	for (int i = 0; i < PCI_MAX_DEVS && slot < 0; i++)
		if (!pci->devs[i])
			slot = i;
	if (slot < 0)
		return -ENOSPC;
	for (int b = 0; b < PCI_MAX_BARS; b++) {
		uint32_t size = dev->bar_size[b];

		if (!size)
			continue;
		pci->next_bar = (pci->next_bar + size - 1) & ~(uint64_t)(size - 1);
		if (pci->next_bar + size > PCI_MMIO_BASE + PCI_MMIO_SIZE)
			return -ENOSPC;
		put32(dev->cfg + PCI_BAR0 + 4 * b, (uint32_t)pci->next_bar);
		pci->next_bar += size;
	}
	/* firmware leaves memory decoding on, as a BIOS would for a boot device */
	put16(dev->cfg + PCI_COMMAND, dev->cfg[PCI_COMMAND] | PCI_CMD_MEM);
	dev->slot = slot;
	pci->devs[slot] = dev;
	return 0;
}

static struct pci_dev *pci_lookup(struct pci *pci, uint32_t addr)
{
	unsigned bus = (addr >> 16) & 0xff, slot = (addr >> 11) & 0x1f, fn = (addr >> 8) & 7;

	if (!(addr & 0x80000000U) || bus != 0 || fn != 0)
		return NULL;
	return pci->devs[slot];
}

uint32_t pci_cfg_read(struct pci *pci, uint32_t addr, uint32_t off, uint32_t len)
{
	struct pci_dev *dev;
	uint32_t reg = (addr & 0xfc) + off, val = 0xffffffff;

	pthread_mutex_lock(&pci->lock);
	dev = pci_lookup(pci, addr);
	if (dev && reg + len <= 256) {
		val = 0;
		memcpy(&val, dev->cfg + reg, len);
	} else if (len < 4) {
		val &= (1U << (8 * len)) - 1;
	}
	pthread_mutex_unlock(&pci->lock);
	return val;
}

void pci_cfg_write(struct pci *pci, uint32_t addr, uint32_t off, uint32_t len, uint32_t val)
{
	struct pci_dev *dev;
	uint32_t reg = (addr & 0xfc) + off;

	pthread_mutex_lock(&pci->lock);
	dev = pci_lookup(pci, addr);
	if (!dev || reg + len > 256)
		goto out;
	if (reg >= PCI_BAR0 && reg < PCI_BAR0 + 4 * PCI_MAX_BARS) {
		int b = (reg - PCI_BAR0) / 4;
		uint32_t size = dev->bar_size[b];

		/* Only whole-BAR writes; the size bits read back as zero (sizing). */
		if (len == 4 && size)
			put32(dev->cfg + PCI_BAR0 + 4 * b, val & ~(size - 1) & ~0xfU);
		goto out;
	}
	switch (reg) {
	case PCI_COMMAND:
	case PCI_COMMAND + 1:
	case 0x0c: /* cache line size */
	case 0x0d: /* latency timer */
	case 0x3c: /* interrupt line: the guest's note to itself */
		memcpy(dev->cfg + reg, &val, len > 2 ? 2 : len);
		break;
	default:
		break; /* everything else is read-only */
	}
out:
	pthread_mutex_unlock(&pci->lock);
}

static void pci_port(struct vcpu *vcpu, void *opaque, uint64_t offset, void *data, uint32_t len,
		     bool is_write)
{
	struct pci *pci = opaque;
	uint32_t val = 0;

	(void)vcpu;
	if (offset < 4) { /* 0xcf8: the address register, 32-bit accesses only */
		if (len != 4 || offset) {
			if (!is_write)
				memset(data, 0xff, len);
			return;
		}
		if (is_write)
			memcpy(&pci->addr, data, 4);
		else
			memcpy(data, &pci->addr, 4);
		return;
	}
	offset -= 4;
	if (offset + len > 4)
		return;
	if (is_write) {
		memcpy(&val, data, len);
		pci_cfg_write(pci, pci->addr, offset, len, val);
	} else {
		val = pci_cfg_read(pci, pci->addr, offset, len);
		memcpy(data, &val, len);
	}
}

static void pci_mmio(struct vcpu *vcpu, void *opaque, uint64_t offset, void *data, uint32_t len,
		     bool is_write)
{
	struct pci *pci = opaque;
	uint64_t addr = PCI_MMIO_BASE + offset;

	for (int i = 0; i < PCI_MAX_DEVS; i++) {
		struct pci_dev *dev = pci->devs[i];

		if (!dev || !(dev->cfg[PCI_COMMAND] & PCI_CMD_MEM))
			continue;
		for (int b = 0; b < PCI_MAX_BARS; b++) {
			uint64_t base = pci_bar_addr(dev, b);

			if (dev->bar_size[b] && addr >= base &&
			    addr + len <= base + dev->bar_size[b]) {
				dev->bar_fn(dev, b, addr - base, data, len, is_write);
				return;
			}
		}
	}
	/* nothing decodes it: a master abort reads all-ones */
	if (!is_write)
		memset(data, 0xff, len);
	(void)vcpu;
}

int pci_init(struct pci *pci, struct vm *vm)
{
	int ret;

	memset(pci, 0, sizeof(*pci));
	pci->vm = vm;
	pci->next_bar = PCI_MMIO_BASE;
	pthread_mutex_init(&pci->lock, NULL);
	pci_dev_init(&pci->host_bridge, 0x8086, 0x29c0, 0x060000, 0, 0x1af4, 0x1100);
	pci->host_bridge.slot = 0;
	pci->devs[0] = &pci->host_bridge;
	ret = bus_register(&vm->pio, PCI_CFG_ADDR_PORT, 8, pci_port, pci, "pci-config");
	if (!ret)
		ret = bus_register(&vm->mmio, PCI_MMIO_BASE, PCI_MMIO_SIZE, pci_mmio, pci,
				   "pci-mmio");
	return ret;
}
