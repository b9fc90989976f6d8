/*
 * fuzz_virtio_blk.c - a virtio-blk device (vmm/virtio_blk.c on the
 * virtio-pci transport, vmm/virtio_pci.c, behind the PCI host bridge,
 * vmm/pci.c) driven by a guest that writes what it likes: the input is a
 * run of register accesses and then the guest RAM's contents (where the
 * queues and requests the accesses point at lie). The device is the VMM's
 * own, over a raw disk image in a tmpfs file with real io_uring I/O; its
 * queue notifications go through its own thread, as when KVM has no
 * ioeventfd. An access is 11 bytes: a kind (bits 0-1: 1, 2, 4 or 8 bytes;
 * bit 2: a write; bit 3: PCI configuration space through 0xcf8/0xcfc
 * instead of the BAR; bit 4: let the device work 1 ms first), a 16-bit
 * offset and a 64-bit value. Nothing may be read or written outside guest
 * RAM and the device's registers (ASan: RAM is a global array with red
 * zones); reads of a register return what a register can; after every
 * input the driver resets the device (status 0), which waits for its I/O,
 * so that the next input starts from a fresh device.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blk.h"
#include "bus.h"
#include "fuzz.h"
#include "log.h"
#include "pci.h"
#include "virtio_blk.h"
#include "virtio_pci.h"
#include "vm.h"

#define RAM	  (256 * 1024)
#define DISK_SIZE (1 << 20)
#define ACCESS	  11

static uint8_t ram[RAM] __attribute__((aligned(4096)));
static struct vm vm;
static struct pci pci;
static struct virtio_blk *blk;
static struct virtio_dev *vd;
static char image[64];
static uint8_t cfg[256]; /* the device's configuration space as enumerated */

static void remove_image(void)
{
	unlink(image);
}

static void start(void)
{
	struct blk_backend *be;
	int fd;

	log_init("fuzz_virtio_blk", LOG_NONE); /* a guest's faults are logged, and expected */
	snprintf(image, sizeof(image), "%s/fuzz_virtio_blk.XXXXXX",
		 access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm");
	fd = mkstemp(image);
	must(fd >= 0 && ftruncate(fd, DISK_SIZE) == 0, "no disk image");
	close(fd);
	atexit(remove_image);
	vm.kvm_fd = vm.vm_fd = -1; /* no KVM: no ioeventfd, no interrupt line */
	vm.mem = (struct gmem){.base = ram, .size = RAM, .map_size = RAM, .nr = 1};
	vm.mem.regions[0] = (struct gmem_region){0, RAM, ram};
	bus_init(&vm.pio, "pio");
	bus_init(&vm.mmio, "mmio");
	must(pci_init(&pci, &vm) == 0, "pci_init");
	must(blk_raw_open(image, false, &be) == 0, "blk_raw_open");
	blk = virtio_blk_create(&vm, &pci, be);
	must(blk != NULL, "virtio_blk_create");
	vd = virtio_blk_dev(blk);
	memcpy(cfg, vd->pci.cfg, sizeof(cfg));
}

static uint64_t reg(uint64_t addr, uint32_t len, bool pio, uint64_t val, bool write)
{
	uint64_t data = write ? val : 0;

	if (pio)
		bus_dispatch(&vm.pio, NULL, addr, &data, len, write);
	else
		bus_dispatch(&vm.mmio, NULL, addr, &data, len, write);
	return data;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t bar;
	uint8_t status;
	size_t nr;

	if (!blk)
		start();
	if (size < 1)
		return 0;
	nr = data[0];
	data++, size--;
	if (size < nr * ACCESS)
		nr = size / ACCESS;
	memset(ram, 0, RAM);
	memcpy(ram, data + nr * ACCESS, size - nr * ACCESS < RAM ? size - nr * ACCESS : RAM);
	for (size_t i = 0; i < nr; i++) {
		const uint8_t *a = data + i * ACCESS;
		uint32_t len = 1u << (a[0] & 3);
		bool write = a[0] & 4, pio = a[0] & 8;
		uint16_t off;
		uint64_t val, got;

		memcpy(&off, a + 1, sizeof(off));
		memcpy(&val, a + 3, sizeof(val));
		if (a[0] & 16)
			usleep(1000);
		bar = pci_bar_addr(&vd->pci, 0);
		if (pio) /* 0xcf8 takes the address, 0xcfc-0xcff the data */
			got = reg(0xcf8 + (off & 7), len > 4 ? 4 : len, true, val, write);
		else
			got = reg(bar + (off % VIRTIO_BAR_SIZE), len, false, val, write);
		if (!write && len < 8)
			must(got >> (8 * len) == 0, "a register read wider than the access");
	}
	/* The driver resets the device (status 0, which waits for its I/O), wherever
	 * the input moved its BAR, and the firmware's enumeration is put back. */
	status = 0;
	vd->pci.bar_fn(&vd->pci, 0, VIRTIO_BAR_COMMON + 0x14, &status, 1, true);
	status = 0xff;
	vd->pci.bar_fn(&vd->pci, 0, VIRTIO_BAR_COMMON + 0x14, &status, 1, false);
	must(status == 0, "the device is not reset after status 0");
	pthread_mutex_lock(&pci.lock);
	memcpy(vd->pci.cfg, cfg, sizeof(cfg));
	pci.addr = 0;
	pthread_mutex_unlock(&pci.lock);
	return 0;
}
