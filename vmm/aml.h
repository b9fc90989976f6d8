/*
 * aml.h - just enough of an ACPI Machine Language writer for a DSDT that
 * describes static hardware: scopes, devices, named integers, strings,
 * buffers, packages, resource templates and methods as simple as a Notify
 * (ACPI 6.x, chapters 19 and 20).
 *
 * Objects with a PkgLength (scopes, devices, buffers, packages) are opened
 * with aml_*_begin and closed with aml_end, which writes the length in its
 * shortest encoding. Nesting depth is bounded by AML_MAX_DEPTH.
 */
#ifndef LEGO_VMM_AML_H
#define LEGO_VMM_AML_H

#include <stddef.h>
#include <stdint.h>

#define AML_MAX_DEPTH 8

struct aml {
	uint8_t *buf;
	size_t len, cap;
	size_t open[AML_MAX_DEPTH]; /* where each open object's PkgLength goes */
	int depth;
	int error; /* set on overflow or misuse; everything after is dropped */
};

/* aml_init - write into @buf (@cap bytes). */
void aml_init(struct aml *a, uint8_t *buf, size_t cap);

void aml_byte(struct aml *a, uint8_t b);
void aml_bytes(struct aml *a, const void *p, size_t n);

/* aml_name - a NameString: "\\_SB_", "PCI0", "_HID"; segments shorter than 4 are padded with '_'. */
void aml_name(struct aml *a, const char *path);

/* aml_int - the shortest integer encoding of @v (Zero, One, Byte/Word/DWord/QWord). */
void aml_int(struct aml *a, uint64_t v);

/* aml_string - a String constant ("ACPI0013"). */
void aml_string(struct aml *a, const char *s);

/* aml_eisaid - EISAID("PNP0A03") as the compressed DWord integer. */
void aml_eisaid(struct aml *a, const char *id);

/* Name(@name, <object written next>) */
void aml_name_decl(struct aml *a, const char *name);

void aml_scope_begin(struct aml *a, const char *name);
void aml_device_begin(struct aml *a, const char *name);
void aml_package_begin(struct aml *a, uint8_t nr_elements);
/* aml_method_begin - Method(@name, @nr_args) { <terms until aml_end> }, not serialized. */
void aml_method_begin(struct aml *a, const char *name, int nr_args);
/* aml_notify - Notify(@path, @value), a term inside a method. */
void aml_notify(struct aml *a, const char *path, uint64_t value);
/* aml_buffer_begin - a Buffer whose size is what is written until aml_end. */
void aml_buffer_begin(struct aml *a);
void aml_end(struct aml *a);

/* Resource descriptors, inside a buffer (end a template with aml_res_end). */
void aml_res_io(struct aml *a, uint16_t base, uint8_t len);
/* aml_res_irq - IRQNoFlags: the ISA IRQs in @mask (bit n = IRQ n), edge, active high. */
void aml_res_irq(struct aml *a, uint16_t mask);
void aml_res_word_bus(struct aml *a, uint16_t min, uint16_t max);
void aml_res_word_io(struct aml *a, uint16_t min, uint16_t max);
void aml_res_dword_mem(struct aml *a, uint32_t min, uint32_t max);
void aml_res_end(struct aml *a);

/* aml_pkglen_encode - PkgLength for @content bytes following it (1-4 bytes written
 * to @out); returns the encoding's size, or 0 if @content is too large. */
int aml_pkglen_encode(size_t content, uint8_t out[4]);

#endif
