/*
 * rt.h - the payload runtime: what a freestanding guest program may call.
 * A payload defines `int main(unsigned vcpu)`; it runs on every vCPU, and
 * its return value is that vCPU's status. The VM ends when every vCPU has
 * returned (with the first non-zero status) or when one calls rt_exit.
 */
#ifndef LEGO_RT_H
#define LEGO_RT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "../abi.h"

int main(unsigned vcpu);

/* rt_info - the info page the VMM wrote (read-only). */
static inline const struct lp_info *rt_info(void)
{
	return (const struct lp_info *)LP_INFO_ADDR;
}

/* rt_print - write @s to the VMM's console in one exit. */
void rt_print(const char *s);

/* rt_printf - formatted print: %s %c %d %u %x %p with l/ll and a width. */
void rt_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* rt_snprintf, rt_vsnprintf - the formatter behind rt_printf. */
int rt_snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int rt_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);

/* rt_report - report @key (lowercase, digits, '_') = @value to the host. */
void rt_report(const char *key, uint64_t value);

/* rt_exit - stop the whole VM now with @status. */
__attribute__((noreturn)) void rt_exit(int status);

/* rt_arg - the value of "key=value" in --args, or NULL; rt_arg_u64 parses
 * sizes with K/M/G suffixes and returns @def when absent or malformed. */
const char *rt_arg(const char *key, char *buf, size_t size);
uint64_t rt_arg_u64(const char *key, uint64_t def);
double rt_arg_double(const char *key, double def);
int rt_arg_is(const char *key, const char *value, int def);

/* rt_barrier - wait until every vCPU has reached the barrier. */
void rt_barrier(void);

static inline uint64_t rt_rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

/* rt_ns - nanoseconds from TSC cycles, with the TSC frequency the VMM gave. */
uint64_t rt_cycles_to_ns(uint64_t cycles);

double rt_log(double x);
double rt_exp(double x);
double rt_pow(double x, double y);

void *memset(void *s, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);

static inline void rt_outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline uint32_t rt_inl(uint16_t port)
{
	uint32_t v;

	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port) : "memory");
	return v;
}

#endif
