/*
 * acpi.h - the ACPI tables a stock x86 kernel needs to find its CPUs and
 * interrupt controllers (a Debian kernel has no MP-table support): RSDP,
 * XSDT, FADT (hardware-reduced, with sleep registers), MADT (one local APIC
 * per vCPU, the IOAPIC, the PIT's override) and a DSDT with the PCI root
 * bridge and its interrupt routing, COM1, a power button and \_S5.
 */
#ifndef LEGO_VMM_ACPI_H
#define LEGO_VMM_ACPI_H

#include <stdint.h>

#include "vm.h"

#define ACPI_RSDP_ADDR	0xe0000ULL /* in the BIOS area the kernel scans */
#define ACPI_TABLES_END 0xf0000ULL
#define IOAPIC_ADDR	0xfec00000ULL
#define LAPIC_ADDR	0xfee00000ULL

/* The power device (power.c): the sleep registers the FADT names, the
 * interrupt of the Generic Event Device behind the power button, and the
 * sleep type the DSDT's \_S5 gives. */
#define ACPI_SLEEP_CONTROL_PORT 0x600
#define ACPI_SLEEP_STATUS_PORT	0x601
#define ACPI_GED_IRQ		10
#define ACPI_SLP_TYP_S5		5

/* acpi_build - write the tables for @nr_vcpus into @vm's memory. Returns the RSDP address. */
uint64_t acpi_build(struct vm *vm, int nr_vcpus);

/* acpi_dsdt_body - the DSDT's AML (after its header) into @out; its length, 0 if it does not fit. */
size_t acpi_dsdt_body(uint8_t *out, size_t cap);

/* acpi_checksum - the byte that makes @len bytes at @p sum to zero. */
uint8_t acpi_checksum(const void *p, size_t len);

#endif
