/* test_acpi.c - the ACPI tables as a kernel reads them: checksums, links, MADT, DSDT AML. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acpi.h"
#include "aml.h"
#include "pci.h"
#include "test.h"

static uint8_t low_ram[1 << 20];

static struct vm *fake_vm(void)
{
	static struct vm vm;

	memset(&vm, 0, sizeof(vm));
	memset(low_ram, 0, sizeof(low_ram));
	vm.mem.base = low_ram;
	vm.mem.size = sizeof(low_ram);
	vm.mem.nr = 1;
	vm.mem.regions[0] = (struct gmem_region){0, sizeof(low_ram), low_ram};
	return &vm;
}

static uint32_t rd32(uint64_t gpa)
{
	uint32_t v;

	memcpy(&v, low_ram + gpa, 4);
	return v;
}

static uint64_t rd64(uint64_t gpa)
{
	uint64_t v;

	memcpy(&v, low_ram + gpa, 8);
	return v;
}

static uint8_t sum(uint64_t gpa, uint32_t len)
{
	uint8_t s = 0;

	for (uint32_t i = 0; i < len; i++)
		s += low_ram[gpa + i];
	return s;
}

/* A table at @gpa with signature @sig and a zero checksum; returns its length. */
static uint32_t check_table(uint64_t gpa, const char *sig)
{
	uint32_t len;

	ASSERT(gpa >= ACPI_RSDP_ADDR && gpa < ACPI_TABLES_END, "table outside the ACPI area");
	ASSERT(!memcmp(low_ram + gpa, sig, 4), "table signature");
	len = rd32(gpa + 4);
	ASSERT(len >= 36 && gpa + len <= ACPI_TABLES_END);
	ASSERT_EQ(sum(gpa, len), 0);
	return len;
}

TEST(acpi_rsdp_xsdt_and_checksums)
{
	struct vm *vm = fake_vm();
	uint64_t rsdp = acpi_build(vm, 2), xsdt, fadt, madt, dsdt;
	uint32_t xlen;

	ASSERT_EQ(rsdp, ACPI_RSDP_ADDR);
	ASSERT(!memcmp(low_ram + rsdp, "RSD PTR ", 8));
	ASSERT_EQ(low_ram[rsdp + 15], 2); /* revision: ACPI 2.0+, XSDT used */
	ASSERT_EQ(sum(rsdp, 20), 0);	  /* the ACPI 1.0 checksum */
	ASSERT_EQ(sum(rsdp, 36), 0);	  /* the extended one */
	xsdt = rd64(rsdp + 24);
	xlen = check_table(xsdt, "XSDT");
	ASSERT_EQ(xlen, 36 + 2 * 8);
	fadt = rd64(xsdt + 36);
	madt = rd64(xsdt + 44);
	check_table(fadt, "FACP");
	check_table(madt, "APIC");
	dsdt = rd64(fadt + 140); /* X_DSDT */
	ASSERT_EQ(rd32(fadt + 40), dsdt);
	ASSERT(rd32(fadt + 112) & (1u << 20), "hardware-reduced ACPI flag");
	check_table(dsdt, "DSDT");
	/* the sleep registers a hardware-reduced poweroff writes: one byte each in I/O space */
	ASSERT_EQ(low_ram[fadt + 244], 1); /* SLEEP_CONTROL_REG: system I/O */
	ASSERT_EQ(low_ram[fadt + 245], 8);
	ASSERT_EQ(rd64(fadt + 248), ACPI_SLEEP_CONTROL_PORT);
	ASSERT_EQ(low_ram[fadt + 256], 1); /* SLEEP_STATUS_REG */
	ASSERT_EQ(rd64(fadt + 260), ACPI_SLEEP_STATUS_PORT);
	ASSERT(rd32(fadt + 4) >= 268, "the FADT is too short for its sleep registers");
}

/* The MADT entries of type @type, in order, into @out; returns how many. */
static int madt_entries(uint64_t madt, uint8_t type, uint64_t *out, int max)
{
	uint32_t len = rd32(madt + 4);
	int n = 0;

	for (uint64_t p = madt + 44; p < madt + len;) {
		uint8_t t = low_ram[p], l = low_ram[p + 1];

		ASSERT(l >= 2 && p + l <= madt + len, "MADT entry runs past the table");
		if (t == type && n < max)
			out[n++] = p;
		p += l;
	}
	return n;
}

TEST(acpi_madt_has_one_enabled_lapic_per_vcpu)
{
	static const int counts[] = {1, 2, 7, 64};

	for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
		struct vm *vm = fake_vm();
		uint64_t rsdp = acpi_build(vm, counts[c]);
		uint64_t madt = rd64(rd64(rsdp + 24) + 44), e[80];
		int n;

		check_table(madt, "APIC");
		ASSERT_EQ(rd32(madt + 36), (uint32_t)LAPIC_ADDR);
		n = madt_entries(madt, 0, e, 80);
		ASSERT_EQ(n, counts[c]);
		for (int i = 0; i < n; i++) {
			ASSERT_EQ(low_ram[e[i] + 1], 8);
			ASSERT_EQ(low_ram[e[i] + 3], i); /* APIC ID = vCPU index */
			ASSERT_EQ(rd32(e[i] + 4) & 1, 1);
		}
		n = madt_entries(madt, 1, e, 80);
		ASSERT_EQ(n, 1);
		ASSERT_EQ(rd32(e[0] + 4), (uint32_t)IOAPIC_ADDR);
		ASSERT_EQ(rd32(e[0] + 8), 0); /* GSI base */
		ASSERT(low_ram[e[0] + 2] >= counts[c], "IOAPIC ID must not collide with a LAPIC's");
		n = madt_entries(madt, 2, e, 80);
		ASSERT_EQ(n, 1);
		ASSERT_EQ(low_ram[e[0] + 3], 0); /* ISA IRQ 0 (the PIT)... */
		ASSERT_EQ(rd32(e[0] + 4), 2);	 /* ...is GSI 2 */
	}
}

TEST(aml_pkglength_encodings)
{
	uint8_t e[4];

	ASSERT_EQ(aml_pkglen_encode(0, e), 1);
	ASSERT_EQ(e[0], 1);
	ASSERT_EQ(aml_pkglen_encode(62, e), 1);
	ASSERT_EQ(e[0], 63);
	/* 63 content bytes + 2 length bytes = 65 = 0x41: lead 0x41 (1 follows, low nibble 1) */
	ASSERT_EQ(aml_pkglen_encode(63, e), 2);
	ASSERT_EQ(e[0], 0x41);
	ASSERT_EQ(e[1], 0x04);
	ASSERT_EQ(aml_pkglen_encode(4093, e), 2);
	ASSERT_EQ(aml_pkglen_encode(4094, e), 3);
	ASSERT_EQ(aml_pkglen_encode((1u << 20) - 4, e), 3);
	ASSERT_EQ(aml_pkglen_encode((1u << 20) - 3, e), 4);
	ASSERT_EQ(aml_pkglen_encode(1u << 28, e), 0);
}

TEST(aml_objects_and_overflow)
{
	uint8_t buf[64];
	struct aml a;
	static const uint8_t want[] = {0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x03};

	aml_init(&a, buf, sizeof(buf));
	aml_name_decl(&a, "_HID");
	aml_eisaid(&a, "PNP0A03"); /* the well-known 0x030ad041 */
	ASSERT_EQ(a.error, 0);
	ASSERT_EQ(a.len, sizeof(want));
	ASSERT(!memcmp(buf, want, sizeof(want)));

	aml_init(&a, buf, sizeof(buf));
	aml_buffer_begin(&a);
	aml_byte(&a, 0x79);
	aml_byte(&a, 0x00);
	aml_end(&a);
	/* BufferOp, PkgLength, BufferSize (BytePrefix 2), the two bytes */
	ASSERT_EQ(a.len, 6u);
	ASSERT_EQ(buf[0], 0x11);
	ASSERT_EQ(buf[1], 5); /* PkgLength counts itself, the size integer and the bytes */
	ASSERT_EQ(buf[2], 0x0a);
	ASSERT_EQ(buf[3], 2);

	aml_init(&a, buf, 8);
	aml_scope_begin(&a, "\\_SB");
	for (int i = 0; i < 10; i++)
		aml_int(&a, 0x12345678);
	aml_end(&a);
	ASSERT(a.error, "overflow must be reported, not truncated silently");

	aml_init(&a, buf, sizeof(buf));
	aml_end(&a);
	ASSERT(a.error, "an end without a begin");
}

/* The DSDT, disassembled by ACPICA's iasl when it is installed (make deps installs it). */
TEST(acpi_dsdt_pci_root_bridge_routing_and_com1)
{
	uint8_t body[8192];
	size_t n = acpi_dsdt_body(body, sizeof(body));
	char dir[256], cmd[700], path[300], line[512];
	int prt = 0, hid = 0, crs_mem = 0, com1 = 0, irq4 = 0, ged = 0, ged_irq = 0, pwrb = 0;
	int notify = 0, s5 = 0;
	FILE *f;

	ASSERT(n > 0);
	ASSERT(memmem(body, n, "PCI0", 4) != NULL);
	ASSERT(memmem(body, n, "_PRT", 4) != NULL);
	ASSERT_EQ(acpi_dsdt_body(body, 100), 0); /* too small: refused */
	/* every slot's INTA-D routed as the devices are wired (pci_intx_gsi) */
	for (int slot = 0; slot < PCI_MAX_DEVS; slot++) {
		for (int pin = 0; pin < 4; pin++) {
			uint8_t e[32];
			struct aml a;

			aml_init(&a, e, sizeof(e));
			aml_package_begin(&a, 4);
			aml_int(&a, (uint64_t)slot << 16 | 0xffff);
			aml_int(&a, (uint64_t)pin);
			aml_int(&a, 0);
			aml_int(&a, (uint64_t)pci_intx_gsi(slot, pin));
			aml_end(&a);
			ASSERT(memmem(body, n, e, a.len) != NULL, "a _PRT entry is missing");
			ASSERT(pci_intx_gsi(slot, pin) >= 16 && pci_intx_gsi(slot, pin) < 24);
		}
	}
	if (system("command -v iasl >/dev/null 2>&1") != 0) {
		test_skip("iasl not installed: the AML was only checked byte-wise");
		return;
	}
	{
		struct vm *vm = fake_vm();
		uint64_t dsdt = rd64(rd64(rd64(acpi_build(vm, 2) + 24) + 36) + 140);
		uint32_t len = check_table(dsdt, "DSDT");

		snprintf(dir, sizeof(dir), "%s", test_tmpdir());
		snprintf(path, sizeof(path), "%s/dsdt.dat", dir);
		f = fopen(path, "wb");
		ASSERT(f != NULL);
		ASSERT_EQ(fwrite(low_ram + dsdt, 1, len, f), len);
		fclose(f);
	}
	snprintf(cmd, sizeof(cmd), "cd %s && iasl -d dsdt.dat >iasl.log 2>&1", dir);
	ASSERT_EQ(system(cmd), 0);
	snprintf(path, sizeof(path), "%s/dsdt.dsl", dir);
	f = fopen(path, "r");
	ASSERT(f != NULL, "iasl wrote no disassembly");
	while (fgets(line, sizeof(line), f)) {
		if (strstr(line, "EisaId (\"PNP0A03\")"))
			hid++;
		if (strstr(line, "DWordMemory"))
			crs_mem++;
		if (strstr(line, "EisaId (\"PNP0501\")"))
			com1++;
		if (strstr(line, "IRQNoFlags") && fgets(line, sizeof(line), f)) {
			irq4 += strstr(line, "{4}") != NULL;
			ged_irq += strstr(line, "{10}") != NULL;
		}
		if (strstr(line, "\"ACPI0013\"")) /* the Generic Event Device */
			ged++;
		if (strstr(line, "EisaId (\"PNP0C0C\")")) /* the power button */
			pwrb++;
		if (strstr(line, "Notify (PWRB, 0x80)") ||
		    strstr(line, "Notify (\\_SB.PWRB, 0x80)"))
			notify++;
		if (strstr(line, "_S5, Package"))
			s5++;
		if (strstr(line, "Package (0x04)")) /* a _PRT entry */
			prt++;
	}
	fclose(f);
	ASSERT_EQ(hid, 1);
	ASSERT_EQ(crs_mem, 1);
	ASSERT_EQ(prt, PCI_MAX_DEVS * 4);
	ASSERT_EQ(com1, 1); /* without it Linux has no IRQ 4 for the serial port */
	ASSERT_EQ(irq4, 1);
	ASSERT_EQ(ged, 1);
	ASSERT_EQ(ged_irq, 1);
	ASSERT_EQ(ACPI_GED_IRQ, 10);
	ASSERT_EQ(pwrb, 1);
	ASSERT_EQ(notify, 1); /* _EVT tells the button it was pressed */
	ASSERT_EQ(s5, 1);     /* without \_S5 the kernel has no ACPI poweroff */
}
