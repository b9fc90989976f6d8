/* test_pci.c - configuration space through mechanism #1 semantics: IDs, BAR sizing, capabilities. */
#include <string.h>

#include "pci.h"
#include "test.h"

static struct pci pci;
static struct pci_dev dev;

static uint32_t addr(unsigned slot, unsigned reg)
{
	return 0x80000000u | slot << 11 | reg;
}

static void setup(void)
{
	static const uint8_t cap1[16] = {0x09, 0, 16, 1};
	static const uint8_t cap2[20] = {0x09, 0, 20, 2};

	memset(&pci, 0, sizeof(pci));
	pthread_mutex_init(&pci.lock, NULL);
	pci.next_bar = PCI_MMIO_BASE;
	pci_dev_init(&pci.host_bridge, 0x8086, 0x29c0, 0x060000, 0, 0, 0);
	pci.devs[0] = &pci.host_bridge;
	pci_dev_init(&dev, 0x1af4, 0x1042, 0x018000, 1, 0x1af4, 0x42);
	pci_dev_add_bar(&dev, 0, 0x4000);
	ASSERT_EQ(pci_dev_add_cap(&dev, cap1, sizeof(cap1)), 0);
	ASSERT_EQ(pci_dev_add_cap(&dev, cap2, sizeof(cap2)), 0);
	ASSERT_EQ(pci_register(&pci, &dev), 0);
}

TEST(ids_and_absent_slots)
{
	setup();
	ASSERT_EQ(dev.slot, 1);
	ASSERT_EQ(pci_cfg_read(&pci, addr(0, 0), 0, 4), 0x29c08086);
	ASSERT_EQ(pci_cfg_read(&pci, addr(1, 0), 0, 4), 0x10421af4);
	ASSERT_EQ(pci_cfg_read(&pci, addr(1, 0), 2, 2), 0x1042);
	ASSERT_EQ(pci_cfg_read(&pci, addr(1, 8), 0, 4) >> 8, 0x018000);
	ASSERT_EQ(pci_cfg_read(&pci, addr(7, 0), 0, 4), 0xffffffff);
	ASSERT_EQ(pci_cfg_read(&pci, addr(7, 0), 0, 2), 0xffff);
	ASSERT_EQ(pci_cfg_read(&pci, addr(1, 0) & ~0x80000000u, 0, 4), 0xffffffff);
	ASSERT_EQ(pci_cfg_read(&pci, addr(1, 0) | 1 << 8, 0, 4), 0xffffffff); /* function 1 */
}

TEST(bar_sizing_and_relocation)
{
	setup();
	ASSERT_EQ(pci_cfg_read(&pci, addr(1, 0x10), 0, 4), PCI_MMIO_BASE);
	pci_cfg_write(&pci, addr(1, 0x10), 0, 4, 0xffffffff);
	ASSERT_EQ(pci_cfg_read(&pci, addr(1, 0x10), 0, 4), 0xffffc000); /* 16 KiB */
	pci_cfg_write(&pci, addr(1, 0x10), 0, 4, 0xe0100000);
	ASSERT_EQ(pci_bar_addr(&dev, 0), 0xe0100000);
	pci_cfg_write(&pci, addr(1, 0x14), 0, 4, 0xffffffff); /* no BAR 1 */
	ASSERT_EQ(pci_cfg_read(&pci, addr(1, 0x14), 0, 4), 0);
}

TEST(capability_list_and_read_only_registers)
{
	uint32_t ptr, n = 0;

	setup();
	ASSERT(pci_cfg_read(&pci, addr(1, 4), 2, 2) & 0x10, "capabilities bit in status");
	for (ptr = pci_cfg_read(&pci, addr(1, 0x34), 0, 1); ptr;
	     ptr = pci_cfg_read(&pci, addr(1, ptr), 1, 1)) {
		ASSERT_EQ(pci_cfg_read(&pci, addr(1, ptr), 0, 1), 0x09);
		ASSERT_EQ(pci_cfg_read(&pci, addr(1, ptr), 3, 1), ++n);
		ASSERT(n < 10, "the list loops");
	}
	ASSERT_EQ(n, 2);
	pci_cfg_write(&pci, addr(1, 0), 0, 4, 0x12345678); /* IDs are read-only */
	ASSERT_EQ(pci_cfg_read(&pci, addr(1, 0), 0, 4), 0x10421af4);
	pci_cfg_write(&pci, addr(1, 0x3c), 0, 1, 11); /* interrupt line is the guest's */
	ASSERT_EQ(pci_cfg_read(&pci, addr(1, 0x3c), 0, 1), 11);
}
