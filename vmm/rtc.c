/* rtc.c - CMOS clock registers from the host's clock. */
#include <string.h>

#include "bus.h"
#include "rtc.h"

#define REG_SECONDS 0x00
#define REG_MINUTES 0x02
#define REG_HOURS   0x04
#define REG_WEEKDAY 0x06
#define REG_DAY	    0x07
#define REG_MONTH   0x08
#define REG_YEAR    0x09
#define REG_A	    0x0a
#define REG_B	    0x0b
#define REG_C	    0x0c
#define REG_D	    0x0d
#define REG_CENTURY 0x32

#define A_UIP	   0x80 /* update in progress: never, the time is read atomically */
#define A_DEFAULT  0x26 /* 32.768 kHz time base, 1024 Hz rate */
#define B_24H	   0x02
#define B_BINARY   0x04
#define B_DEFAULT  B_24H /* BCD, 24-hour, no interrupts */
#define D_VRT	   0x80	 /* valid RAM and time */
#define HOURS_PM   0x80
#define NMI_MASKED 0x80 /* bit 7 of the index port */

static uint8_t rtc_encode(const struct rtc *rtc, int v)
{
	if (rtc->ram[REG_B] & B_BINARY)
		return (uint8_t)v;
	return (uint8_t)((v / 10) << 4 | v % 10);
}

uint8_t rtc_read(struct rtc *rtc, uint8_t reg)
{
	time_t t = rtc->now();
	struct tm tm;
	int hour;

	reg &= 0x7f;
	if (reg > REG_YEAR && reg != REG_CENTURY)
		return reg == REG_A ? (uint8_t)(rtc->ram[REG_A] & ~A_UIP) : rtc->ram[reg];
	gmtime_r(&t, &tm);
	switch (reg) {
	case REG_SECONDS:
		return rtc_encode(rtc, tm.tm_sec > 59 ? 59 : tm.tm_sec);
	case REG_MINUTES:
		return rtc_encode(rtc, tm.tm_min);
	case REG_HOURS:
		if (rtc->ram[REG_B] & B_24H)
			return rtc_encode(rtc, tm.tm_hour);
		hour = tm.tm_hour % 12 ? tm.tm_hour % 12 : 12;
		return (uint8_t)(rtc_encode(rtc, hour) | (tm.tm_hour >= 12 ? HOURS_PM : 0));
	case REG_WEEKDAY:
		return rtc_encode(rtc, tm.tm_wday + 1);
	case REG_DAY:
		return rtc_encode(rtc, tm.tm_mday);
	case REG_MONTH:
		return rtc_encode(rtc, tm.tm_mon + 1);
	case REG_YEAR:
		return rtc_encode(rtc, tm.tm_year % 100);
	case REG_CENTURY:
		return rtc_encode(rtc, (tm.tm_year + 1900) / 100);
	default:
		return rtc->ram[reg]; /* alarm registers: what was written */
	}
}

void rtc_write(struct rtc *rtc, uint8_t reg, uint8_t v)
{
	reg &= 0x7f;
	if (reg == REG_C || reg == REG_D)
		return; /* read-only */
	if (reg == REG_B)
		v &= B_24H |
		     B_BINARY; /* formats are honoured; interrupts and SET are not offered */
	rtc->ram[reg] = v;
}

static void rtc_io(struct vcpu *vcpu, void *opaque, uint64_t off, void *data, uint32_t len,
		   bool is_write)
{
	struct rtc *rtc = opaque;
	uint8_t *v = data;

	(void)vcpu;
	if (len != 1) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&rtc->lock);
	if (off == 0) {
		if (is_write)
			rtc->index = *v & ~NMI_MASKED;
		else
			*v = 0xff; /* the index register is write-only */
	} else if (is_write) {
		rtc_write(rtc, rtc->index, *v);
	} else {
		*v = rtc_read(rtc, rtc->index);
	}
	pthread_mutex_unlock(&rtc->lock);
}

static time_t rtc_host_now(void)
{
	return time(NULL);
}

int rtc_init(struct rtc *rtc, struct vm *vm)
{
	memset(rtc, 0, sizeof(*rtc));
	pthread_mutex_init(&rtc->lock, NULL);
	rtc->now = rtc_host_now;
	rtc->ram[REG_A] = A_DEFAULT;
	rtc->ram[REG_B] = B_DEFAULT;
	rtc->ram[REG_D] = D_VRT;
	if (!vm)
		return 0; /* a clock alone, for tests */
	return bus_register(&vm->pio, RTC_INDEX_PORT, 2, rtc_io, rtc, "rtc");
}
