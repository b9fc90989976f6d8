/* rt.c - the payload runtime: console, reports, arguments, barrier, libc bits. */
#include "rt.h"

void rt_main(unsigned vcpu);

void *memset(void *s, int c, size_t n)
{
	unsigned char *p = s;

	while (n--)
		*p++ = (unsigned char)c;
	return s;
}

void *memcpy(void *d, const void *s, size_t n)
{
	unsigned char *dp = d;
	const unsigned char *sp = s;

	while (n--)
		*dp++ = *sp++;
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;

	for (; n; n--, x++, y++)
		if (*x != *y)
			return *x - *y;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

int strcmp(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return (unsigned char)*a - (unsigned char)*b;
}

void rt_print(const char *s)
{
	/* Identity-mapped: a pointer is its guest-physical address. */
	rt_outl(LP_PORT_PRINT, (uint32_t)(uintptr_t)s);
}

static void fmt_put(char *buf, size_t size, size_t *pos, char c)
{
	if (*pos + 1 < size)
		buf[*pos] = c;
	(*pos)++;
}

static void fmt_num(char *buf, size_t size, size_t *pos, uint64_t v, unsigned base, int neg,
		    int width, char pad)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	if (neg)
		tmp[n++] = '-';
	for (; width > n; width--)
		fmt_put(buf, size, pos, pad);
	while (n)
		fmt_put(buf, size, pos, tmp[--n]);
}

int rt_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	size_t pos = 0;

	for (; *fmt; fmt++) {
		int width = 0, longs = 0, alt = 0;
		char pad = ' ';
		uint64_t u;
		int64_t s;

		if (*fmt != '%') {
			fmt_put(buf, size, &pos, *fmt);
			continue;
		}
		fmt++;
		if (*fmt == '#')
			alt = 1, fmt++;
		if (*fmt == '0')
			pad = '0', fmt++;
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l')
			longs++, fmt++;
		switch (*fmt) {
		case 'd':
		case 'i':
			s = longs ? va_arg(ap, long) : va_arg(ap, int);
			fmt_num(buf, size, &pos, s < 0 ? -(uint64_t)s : (uint64_t)s, 10, s < 0,
				width, pad);
			break;
		case 'u':
		case 'x':
			u = longs ? va_arg(ap, unsigned long) : va_arg(ap, unsigned);
			if (alt && *fmt == 'x') {
				fmt_put(buf, size, &pos, '0');
				fmt_put(buf, size, &pos, 'x');
			}
			fmt_num(buf, size, &pos, u, *fmt == 'x' ? 16 : 10, 0, width, pad);
			break;
		case 'p':
			fmt_put(buf, size, &pos, '0');
			fmt_put(buf, size, &pos, 'x');
			fmt_num(buf, size, &pos, (uintptr_t)va_arg(ap, void *), 16, 0, width, pad);
			break;
		case 'c':
			fmt_put(buf, size, &pos, (char)va_arg(ap, int));
			break;
		case 's': {
			const char *str = va_arg(ap, const char *);

			for (str = str ? str : "(null)"; *str; str++)
				fmt_put(buf, size, &pos, *str);
			break;
		}
		case '%':
			fmt_put(buf, size, &pos, '%');
			break;
		default:
			fmt_put(buf, size, &pos, '?');
			if (!*fmt)
				fmt--;
		}
	}
	if (size)
		buf[pos < size ? pos : size - 1] = '\0';
	return (int)pos;
}

int rt_snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = rt_vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

void rt_printf(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	rt_vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	rt_print(buf);
}

void rt_report(const char *key, uint64_t value)
{
	struct lp_report r;
	size_t n = strlen(key);

	if (n >= sizeof(r.key))
		n = sizeof(r.key) - 1;
	memset(&r, 0, sizeof(r));
	memcpy(r.key, key, n);
	r.value = value;
	rt_outl(LP_PORT_REPORT, (uint32_t)(uintptr_t)&r);
}

void rt_exit(int status)
{
	for (;;)
		rt_outl(LP_PORT_EXIT, (uint32_t)status);
}

const char *rt_arg(const char *key, char *buf, size_t size)
{
	const char *a = rt_info()->args;
	size_t klen = strlen(key);

	while (*a) {
		const char *word = a, *end;

		while (*a && *a != ' ')
			a++;
		end = a;
		while (*a == ' ')
			a++;
		if ((size_t)(end - word) > klen && memcmp(word, key, klen) == 0 &&
		    word[klen] == '=') {
			size_t n = end - word - klen - 1;

			if (n >= size)
				n = size - 1;
			memcpy(buf, word + klen + 1, n);
			buf[n] = '\0';
			return buf;
		}
	}
	return 0;
}

uint64_t rt_arg_u64(const char *key, uint64_t def)
{
	char buf[32];
	const char *p = rt_arg(key, buf, sizeof(buf));
	uint64_t v = 0;

	if (!p || !*p)
		return def;
	for (; *p >= '0' && *p <= '9'; p++)
		v = v * 10 + (*p - '0');
	switch (*p) {
	case 'K':
	case 'k':
		v <<= 10;
		p++;
		break;
	case 'M':
	case 'm':
		v <<= 20;
		p++;
		break;
	case 'G':
	case 'g':
		v <<= 30;
		p++;
		break;
	}
	return *p ? def : v;
}

double rt_arg_double(const char *key, double def)
{
	char buf[32];
	const char *p = rt_arg(key, buf, sizeof(buf));
	double v = 0, scale = 1;

	if (!p || !*p)
		return def;
	for (; *p >= '0' && *p <= '9'; p++)
		v = v * 10 + (*p - '0');
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			v += (*p - '0') * (scale /= 10);
	return *p ? def : v;
}

int rt_arg_is(const char *key, const char *value, int def)
{
	char buf[64];
	const char *p = rt_arg(key, buf, sizeof(buf));

	return p ? strcmp(p, value) == 0 : def;
}

uint64_t rt_cycles_to_ns(uint64_t cycles)
{
	uint64_t khz = rt_info()->tsc_khz ? rt_info()->tsc_khz : 1000000;

	return (uint64_t)((unsigned __int128)cycles * 1000000 / khz);
}

/* Sense-reversing barrier: ring-3 atomics run natively, no exit needed. */
static volatile unsigned rt_barrier_count;
static volatile unsigned rt_barrier_sense;

void rt_barrier(void)
{
	unsigned sense = rt_barrier_sense;

	if (__atomic_add_fetch(&rt_barrier_count, 1, __ATOMIC_ACQ_REL) == rt_info()->nr_vcpus) {
		rt_barrier_count = 0;
		__atomic_store_n(&rt_barrier_sense, !sense, __ATOMIC_RELEASE);
		return;
	}
	while (__atomic_load_n(&rt_barrier_sense, __ATOMIC_ACQUIRE) == sense)
		__asm__ volatile("pause");
}

void rt_main(unsigned vcpu)
{
	int status = main(vcpu);

	for (;;)
		rt_outl(LP_PORT_VCPU_DONE, (uint32_t)status);
}
