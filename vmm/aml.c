/* aml.c - a small AML writer (see aml.h). */
#include <string.h>

#include "aml.h"
#include "util.h"

enum {
	AML_ZERO = 0x00,
	AML_ONE = 0x01,
	AML_NAME_OP = 0x08,
	AML_BYTE_PREFIX = 0x0a,
	AML_WORD_PREFIX = 0x0b,
	AML_DWORD_PREFIX = 0x0c,
	AML_STRING_PREFIX = 0x0d,
	AML_QWORD_PREFIX = 0x0e,
	AML_SCOPE_OP = 0x10,
	AML_BUFFER_OP = 0x11,
	AML_PACKAGE_OP = 0x12,
	AML_METHOD_OP = 0x14,
	AML_EXT_PREFIX = 0x5b,
	AML_DEVICE_OP = 0x82, /* after AML_EXT_PREFIX */
	AML_NOTIFY_OP = 0x86,
	AML_ROOT_CHAR = '\\',
	AML_DUAL_NAME = 0x2e,
	AML_MULTI_NAME = 0x2f,
};

/* The open objects whose length is only known at aml_end: a buffer also gets its size. */
#define AML_OPEN_BUFFER ((size_t)1 << 63)

void aml_init(struct aml *a, uint8_t *buf, size_t cap)
{
	memset(a, 0, sizeof(*a));
	a->buf = buf;
	a->cap = cap;
}

void aml_bytes(struct aml *a, const void *p, size_t n)
{
	if (a->error || n > a->cap - a->len) {
		a->error = 1;
		return;
	}
	memcpy(a->buf + a->len, p, n);
	a->len += n;
}

void aml_byte(struct aml *a, uint8_t b)
{
	aml_bytes(a, &b, 1);
}

static void aml_le(struct aml *a, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		aml_byte(a, (uint8_t)(v >> (8 * i)));
}

/* Insert @n bytes at @at, moving what follows. */
static void aml_insert(struct aml *a, size_t at, const void *p, size_t n)
{
	if (a->error || n > a->cap - a->len || at > a->len) {
		a->error = 1;
		return;
	}
	memmove(a->buf + at + n, a->buf + at, a->len - at);
	memcpy(a->buf + at, p, n);
	a->len += n;
}

int aml_pkglen_encode(size_t content, uint8_t out[4])
{
	size_t total;

	if (content + 1 <= 0x3f) {
		out[0] = (uint8_t)(content + 1);
		return 1;
	}
	for (int n = 2; n <= 4; n++) {
		total = content + (size_t)n;
		if (total < (1ULL << (4 + 8 * (n - 1)))) {
			out[0] = (uint8_t)(((n - 1) << 6) | (total & 0xf));
			for (int i = 1; i < n; i++)
				out[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
			return n;
		}
	}
	return 0;
}

static void aml_name_seg(struct aml *a, const char *s, size_t n)
{
	char seg[4] = {'_', '_', '_', '_'};

	if (n == 0 || n > 4) {
		a->error = 1;
		return;
	}
	memcpy(seg, s, n);
	aml_bytes(a, seg, 4);
}

void aml_name(struct aml *a, const char *path)
{
	const char *segs[16];
	size_t lens[16], nr = 0;

	while (*path == AML_ROOT_CHAR || *path == '^')
		aml_byte(a, (uint8_t)*path++);
	while (*path && nr < ARRAY_SIZE(segs)) {
		const char *dot = strchr(path, '.');
		size_t n = dot ? (size_t)(dot - path) : strlen(path);

		segs[nr] = path;
		lens[nr++] = n;
		path += n + (dot != NULL);
	}
	if (nr == 0) {
		aml_byte(a, AML_ZERO); /* NullName */
		return;
	}
	if (nr == 2)
		aml_byte(a, AML_DUAL_NAME);
	else if (nr > 2) {
		aml_byte(a, AML_MULTI_NAME);
		aml_byte(a, (uint8_t)nr);
	}
	for (size_t i = 0; i < nr; i++)
		aml_name_seg(a, segs[i], lens[i]);
}

void aml_int(struct aml *a, uint64_t v)
{
	if (v == 0)
		aml_byte(a, AML_ZERO);
	else if (v == 1)
		aml_byte(a, AML_ONE);
	else if (v <= 0xff) {
		aml_byte(a, AML_BYTE_PREFIX);
		aml_le(a, v, 1);
	} else if (v <= 0xffff) {
		aml_byte(a, AML_WORD_PREFIX);
		aml_le(a, v, 2);
	} else if (v <= 0xffffffff) {
		aml_byte(a, AML_DWORD_PREFIX);
		aml_le(a, v, 4);
	} else {
		aml_byte(a, AML_QWORD_PREFIX);
		aml_le(a, v, 8);
	}
}

void aml_string(struct aml *a, const char *s)
{
	aml_byte(a, AML_STRING_PREFIX);
	aml_bytes(a, s, strlen(s) + 1);
}

void aml_eisaid(struct aml *a, const char *id)
{
	uint32_t vendor, product = 0;

	if (strlen(id) != 7) {
		a->error = 1;
		return;
	}
	vendor = ((uint32_t)(id[0] & 0x1f) << 10) | ((uint32_t)(id[1] & 0x1f) << 5) |
		 (uint32_t)(id[2] & 0x1f);
	for (int i = 3; i < 7; i++) {
		char c = id[i];

		product = product << 4 | (uint32_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
	}
	/* stored big-endian: vendor bytes first, then the product number */
	aml_byte(a, AML_DWORD_PREFIX);
	aml_byte(a, (uint8_t)(vendor >> 8));
	aml_byte(a, (uint8_t)vendor);
	aml_byte(a, (uint8_t)(product >> 8));
	aml_byte(a, (uint8_t)product);
}

void aml_name_decl(struct aml *a, const char *name)
{
	aml_byte(a, AML_NAME_OP);
	aml_name(a, name);
}

static void aml_open(struct aml *a, size_t mark)
{
	if (a->depth >= AML_MAX_DEPTH) {
		a->error = 1;
		return;
	}
	a->open[a->depth++] = mark;
}

void aml_scope_begin(struct aml *a, const char *name)
{
	aml_byte(a, AML_SCOPE_OP);
	aml_open(a, a->len);
	aml_name(a, name);
}

void aml_device_begin(struct aml *a, const char *name)
{
	aml_byte(a, AML_EXT_PREFIX);
	aml_byte(a, AML_DEVICE_OP);
	aml_open(a, a->len);
	aml_name(a, name);
}

void aml_method_begin(struct aml *a, const char *name, int nr_args)
{
	aml_byte(a, AML_METHOD_OP);
	aml_open(a, a->len);
	aml_name(a, name);
	aml_byte(a, (uint8_t)(nr_args & 7)); /* MethodFlags: not serialized, sync level 0 */
}

void aml_notify(struct aml *a, const char *path, uint64_t value)
{
	aml_byte(a, AML_NOTIFY_OP);
	aml_name(a, path);
	aml_int(a, value);
}

void aml_package_begin(struct aml *a, uint8_t nr_elements)
{
	aml_byte(a, AML_PACKAGE_OP);
	aml_open(a, a->len);
	aml_byte(a, nr_elements);
}

void aml_buffer_begin(struct aml *a)
{
	aml_byte(a, AML_BUFFER_OP);
	aml_open(a, a->len | AML_OPEN_BUFFER);
}

void aml_end(struct aml *a)
{
	uint8_t enc[4];
	size_t mark;
	int n;

	if (a->error || a->depth == 0) {
		a->error = 1;
		return;
	}
	mark = a->open[--a->depth];
	if (mark & AML_OPEN_BUFFER) {
		struct aml size;
		uint8_t sbuf[9];

		mark &= ~AML_OPEN_BUFFER;
		aml_init(&size, sbuf, sizeof(sbuf));
		aml_int(&size, a->len - mark);
		aml_insert(a, mark, sbuf, size.len);
	}
	n = aml_pkglen_encode(a->len - mark, enc);
	if (n == 0) {
		a->error = 1;
		return;
	}
	aml_insert(a, mark, enc, (size_t)n);
}

/* --- resource descriptors (ACPI 6.x, 6.4) --- */

void aml_res_io(struct aml *a, uint16_t base, uint8_t len)
{
	aml_byte(a, 0x47); /* small item 8 (I/O port), 7 bytes */
	aml_byte(a, 0x01); /* 16-bit decode */
	aml_le(a, base, 2);
	aml_le(a, base, 2);
	aml_byte(a, 1); /* alignment */
	aml_byte(a, len);
}

void aml_res_irq(struct aml *a, uint16_t mask)
{
	aml_byte(a, 0x22); /* small item 4 (IRQ), 2 bytes: edge-triggered, active high */
	aml_le(a, mask, 2);
}

/* Word address space descriptor: bus numbers (type 2) or I/O (type 1). */
static void aml_res_word(struct aml *a, uint8_t type, uint8_t type_flags, uint16_t min,
			 uint16_t max)
{
	aml_byte(a, 0x88);
	aml_le(a, 13, 2);
	aml_byte(a, type);
	aml_byte(a, 0x0c); /* producer, positive decode, min and max fixed */
	aml_byte(a, type_flags);
	aml_le(a, 0, 2); /* granularity */
	aml_le(a, min, 2);
	aml_le(a, max, 2);
	aml_le(a, 0, 2); /* translation */
	aml_le(a, (uint32_t)max - min + 1, 2);
}

void aml_res_word_bus(struct aml *a, uint16_t min, uint16_t max)
{
	aml_res_word(a, 2, 0, min, max);
}

void aml_res_word_io(struct aml *a, uint16_t min, uint16_t max)
{
	aml_res_word(a, 1, 3 /* ISA and non-ISA ranges */, min, max);
}

void aml_res_dword_mem(struct aml *a, uint32_t min, uint32_t max)
{
	aml_byte(a, 0x87);
	aml_le(a, 23, 2);
	aml_byte(a, 0);	   /* memory range */
	aml_byte(a, 0x0c); /* producer, positive decode, min and max fixed */
	aml_byte(a, 0x01); /* read-write, non-cacheable */
	aml_le(a, 0, 4);   /* granularity */
	aml_le(a, min, 4);
	aml_le(a, max, 4);
	aml_le(a, 0, 4); /* translation */
	aml_le(a, (uint64_t)max - min + 1, 4);
}

void aml_res_end(struct aml *a)
{
	aml_byte(a, 0x79); /* end tag */
	aml_byte(a, 0);	   /* checksum 0: treat as correct */
}
