/* rt_math.c - log, exp and pow for payloads (no libm in a freestanding guest). */
#include "rt.h"

#define LN2 0.69314718055994530942

double rt_log(double x)
{
	union {
		double d;
		uint64_t u;
	} v = {.d = x};
	int e;
	double m, s, s2, sum, term;

	if (x <= 0)
		return -1e308;
	/* x = m * 2^e with m in [sqrt(2)/2, sqrt(2)): the series then converges fast. */
	e = (int)((v.u >> 52) & 0x7ff) - 1023;
	v.u = (v.u & ~(0x7ffULL << 52)) | (1023ULL << 52);
	m = v.d;
	if (m > 1.41421356237309504880) {
		m /= 2;
		e++;
	}
	s = (m - 1) / (m + 1);
	s2 = s * s;
	sum = 0;
	term = s;
	for (int k = 1; k < 40; k += 2) {
		sum += term / k;
		term *= s2;
	}
	return 2 * sum + e * LN2;
}

double rt_exp(double x)
{
	union {
		double d;
		uint64_t u;
	} scale;
	double r, sum = 1, term = 1;
	int k;

	if (x > 709)
		return 1e308;
	if (x < -708)
		return 0;
	k = (int)(x / LN2 + (x < 0 ? -0.5 : 0.5));
	r = x - k * LN2;
	for (int i = 1; i < 20; i++) {
		term *= r / i;
		sum += term;
	}
	scale.u = (uint64_t)(k + 1023) << 52;
	return sum * scale.d;
}

double rt_pow(double x, double y)
{
	if (x == 0)
		return 0;
	return rt_exp(y * rt_log(x));
}
