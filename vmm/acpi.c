/* acpi.c - building RSDP, XSDT, FADT, MADT and DSDT in guest memory (ACPI 6.x layouts). */
#include <string.h>

#include "acpi.h"
#include "aml.h"
#include "pci.h"
#include "serial.h"
#include "log.h"
#include "util.h"

struct acpi_hdr {
	char sig[4];
	uint32_t len;
	uint8_t rev, checksum;
	char oem[6], oem_table[8];
	uint32_t oem_rev;
	char creator[4];
	uint32_t creator_rev;
} __attribute__((packed));

struct acpi_rsdp {
	char sig[8];
	uint8_t checksum;
	char oem[6];
	uint8_t rev;
	uint32_t rsdt;
	uint32_t len;
	uint64_t xsdt;
	uint8_t ext_checksum, reserved[3];
} __attribute__((packed));

struct madt_lapic {
	uint8_t type, len, uid, apic_id;
	uint32_t flags;
} __attribute__((packed));

struct madt_ioapic {
	uint8_t type, len, id, reserved;
	uint32_t addr, gsi_base;
} __attribute__((packed));

struct madt_iso {
	uint8_t type, len, bus, source;
	uint32_t gsi;
	uint16_t flags;
} __attribute__((packed));

_Static_assert(sizeof(struct acpi_hdr) == 36, "ACPI header");
_Static_assert(sizeof(struct acpi_rsdp) == 36, "RSDP");

uint8_t acpi_checksum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	while (len--)
		sum += *b++;
	return (uint8_t)-sum;
}

static void acpi_hdr(struct acpi_hdr *h, const char *sig, uint32_t len, uint8_t rev)
{
	memcpy(h->sig, sig, 4);
	h->len = len;
	h->rev = rev;
	memcpy(h->oem, "LEGO  ", 6);
	memcpy(h->oem_table, "LEGOVNOD", 8);
	h->oem_rev = 1;
	memcpy(h->creator, "LEGO", 4);
	h->creator_rev = 1;
	h->checksum = 0;
	h->checksum = acpi_checksum(h, len);
}

/* A Generic Address Structure at @p: one byte at I/O @port. */
static void acpi_gas_io(uint8_t *p, uint16_t port)
{
	uint64_t addr = port;

	p[0] = 1; /* system I/O space */
	p[1] = 8; /* register bit width */
	p[2] = 0; /* bit offset */
	p[3] = 1; /* byte access */
	memcpy(p + 4, &addr, 8);
}

/* Write @len bytes of table @t at *@at (16-byte aligned), return its address. */
static uint64_t acpi_put(struct vm *vm, uint64_t *at, const void *t, uint32_t len)
{
	uint64_t addr = (*at + 15) & ~15ULL;

	gmem_write(&vm->mem, addr, t, len);
	*at = addr + len;
	return addr;
}

/*
 * The DSDT's AML: \_SB.PCI0, a PCI root bridge (PNP0A03) decoding bus 0, the
 * configuration ports, all other I/O ports and the MMIO window, with a _PRT
 * wiring every slot's INTA-D to IOAPIC inputs as pci_intx_gsi() does.
 * Returns the AML's length (0 if @cap is too small).
 */
size_t acpi_dsdt_body(uint8_t *out, size_t cap)
{
	struct aml a;

	aml_init(&a, out, cap);
	aml_scope_begin(&a, "\\_SB");
	aml_device_begin(&a, "PCI0");
	aml_name_decl(&a, "_HID");
	aml_eisaid(&a, "PNP0A03");
	aml_name_decl(&a, "_UID");
	aml_int(&a, 0);
	aml_name_decl(&a, "_SEG");
	aml_int(&a, 0);
	aml_name_decl(&a, "_BBN");
	aml_int(&a, 0);
	aml_name_decl(&a, "_CRS");
	aml_buffer_begin(&a);
	aml_res_word_bus(&a, 0, 0);
	aml_res_io(&a, 0xcf8, 8);
	aml_res_word_io(&a, 0x0000, 0x0cf7);
	aml_res_word_io(&a, 0x0d00, 0xffff);
	aml_res_dword_mem(&a, (uint32_t)PCI_MMIO_BASE,
			  (uint32_t)(PCI_MMIO_BASE + PCI_MMIO_SIZE - 1));
	aml_res_end(&a);
	aml_end(&a);
	aml_name_decl(&a, "_PRT");
	aml_package_begin(&a, PCI_MAX_DEVS * 4);
	for (int slot = 0; slot < PCI_MAX_DEVS; slot++) {
		for (int pin = 0; pin < 4; pin++) {
			aml_package_begin(&a, 4);
			aml_int(&a, (uint64_t)slot << 16 | 0xffff); /* any function of the slot */
			aml_int(&a, (uint64_t)pin);
			aml_int(&a, 0); /* no link device: the next field is a GSI */
			aml_int(&a, (uint64_t)pci_intx_gsi(slot, pin));
			aml_end(&a);
		}
	}
	aml_end(&a);
	aml_end(&a); /* PCI0 */
	/*
	 * COM1. A hardware-reduced ACPI machine has no legacy PIC, so Linux
	 * maps no ISA IRQ by itself: the 8250's interrupt exists only once
	 * the port is described here (8250_pnp then takes over ttyS0).
	 */
	aml_device_begin(&a, "COM1");
	aml_name_decl(&a, "_HID");
	aml_eisaid(&a, "PNP0501");
	aml_name_decl(&a, "_UID");
	aml_int(&a, 0);
	aml_name_decl(&a, "_CRS");
	aml_buffer_begin(&a);
	aml_res_io(&a, SERIAL_COM1, 8);
	aml_res_irq(&a, 1u << SERIAL_IRQ);
	aml_res_end(&a);
	aml_end(&a);
	aml_end(&a); /* COM1 */
	/*
	 * The power button of a hardware-reduced machine: a Generic Event Device
	 * whose edge interrupt runs _EVT, which tells the button (PNP0C0C) it was
	 * pressed; the kernel's button driver reports KEY_POWER for the guest's
	 * userspace to shut down (acpid, systemd-logind).
	 */
	aml_device_begin(&a, "GED0");
	aml_name_decl(&a, "_HID");
	aml_string(&a, "ACPI0013");
	aml_name_decl(&a, "_UID");
	aml_int(&a, 0);
	aml_name_decl(&a, "_CRS");
	aml_buffer_begin(&a);
	aml_res_irq(&a, 1u << ACPI_GED_IRQ);
	aml_res_end(&a);
	aml_end(&a);
	aml_method_begin(&a, "_EVT", 1);
	aml_notify(&a, "\\_SB.PWRB", 0x80); /* "status change": the button was pressed */
	aml_end(&a);
	aml_end(&a); /* GED0 */
	aml_device_begin(&a, "PWRB");
	aml_name_decl(&a, "_HID");
	aml_eisaid(&a, "PNP0C0C");
	aml_name_decl(&a, "_UID");
	aml_int(&a, 0);
	aml_end(&a); /* PWRB */
	aml_end(&a); /* \_SB */
	/* S5 (soft off) is SLP_TYP 5 in the sleep control register: the kernel's poweroff. */
	aml_name_decl(&a, "\\_S5");
	aml_package_begin(&a, 2);
	aml_int(&a, ACPI_SLP_TYP_S5);
	aml_int(&a, 0);
	aml_end(&a);
	return a.error ? 0 : a.len;
}

uint64_t acpi_build(struct vm *vm, int nr_vcpus)
{
	uint8_t buf[8192];
	uint64_t at = ACPI_RSDP_ADDR + 64, dsdt, fadt, madt, xsdt;
	struct acpi_rsdp rsdp = {.sig = "RSD PTR ", .oem = "LEGO  ", .rev = 2, .len = 36};
	struct acpi_hdr *h = (struct acpi_hdr *)buf;
	uint32_t len;

	/* DSDT: the PCI host bridge (bus 0 enumerated, INTx routed) and COM1. */
	memset(buf, 0, sizeof(buf));
	len = sizeof(*h) + acpi_dsdt_body(buf + sizeof(*h), sizeof(buf) - sizeof(*h));
	acpi_hdr(h, "DSDT", len, 2);
	dsdt = acpi_put(vm, &at, buf, len);

	/* FADT, revision 6, hardware-reduced: no PM timer, no SCI, no PM1 blocks; the
	 * sleep control and status registers are the two ports of power.c. */
	memset(buf, 0, sizeof(buf));
	len = 276;
	put_le32(buf + 40, (uint32_t)dsdt);		 /* DSDT */
	put_le32(buf + 112, (1u << 20) | (1u << 8));	 /* HW_REDUCED_ACPI, PWR_BUTTON */
	put_le16(buf + 109, 0);				 /* IAPC_BOOT_ARCH */
	buf[131] = 1;					 /* FADT minor version */
	put_le64(buf + 140, dsdt);			 /* X_DSDT */
	acpi_gas_io(buf + 244, ACPI_SLEEP_CONTROL_PORT); /* SLEEP_CONTROL_REG */
	acpi_gas_io(buf + 256, ACPI_SLEEP_STATUS_PORT);	 /* SLEEP_STATUS_REG */
	acpi_hdr(h, "FACP", len, 6);
	fadt = acpi_put(vm, &at, buf, len);

	/* MADT: local APIC address, PC-AT compatible (there are 8259s), then entries. */
	memset(buf, 0, sizeof(buf));
	len = sizeof(*h) + 8;
	put_le32(buf + 36, (uint32_t)LAPIC_ADDR);
	put_le32(buf + 40, 1); /* PCAT_COMPAT */
	for (int i = 0; i < nr_vcpus; i++) {
		struct madt_lapic l = {0, sizeof(l), (uint8_t)i, (uint8_t)i, 1 /* enabled */};

		memcpy(buf + len, &l, sizeof(l));
		len += sizeof(l);
	}
	{
		struct madt_ioapic io = {1, sizeof(io), (uint8_t)nr_vcpus, 0, (uint32_t)IOAPIC_ADDR,
					 0};
		struct madt_iso pit = {2, sizeof(pit), 0, 0, 2, 0}; /* ISA IRQ 0 is GSI 2 */

		memcpy(buf + len, &io, sizeof(io));
		len += sizeof(io);
		memcpy(buf + len, &pit, sizeof(pit));
		len += sizeof(pit);
	}
	acpi_hdr(h, "APIC", len, 5);
	madt = acpi_put(vm, &at, buf, len);

	/* XSDT: FADT and MADT. */
	memset(buf, 0, sizeof(buf));
	len = sizeof(*h) + 16;
	memcpy(buf + 36, &fadt, 8);
	memcpy(buf + 44, &madt, 8);
	acpi_hdr(h, "XSDT", len, 1);
	xsdt = acpi_put(vm, &at, buf, len);

	rsdp.xsdt = xsdt;
	rsdp.checksum = acpi_checksum(&rsdp, 20);
	rsdp.ext_checksum = acpi_checksum(&rsdp, 36);
	gmem_write(&vm->mem, ACPI_RSDP_ADDR, &rsdp, sizeof(rsdp));
	if (at > ACPI_TABLES_END)
		log_warn("ACPI tables overflow their area");
	return ACPI_RSDP_ADDR;
}
