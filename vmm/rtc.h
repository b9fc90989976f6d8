/*
 * rtc.h - the MC146818 CMOS clock at ports 0x70/0x71, as far as a kernel
 * reads it: the wall-clock time (the host's, in UTC, never "updating"),
 * status registers that say the clock is valid, and 128 bytes of CMOS RAM.
 * Without it every read floats high, which reads as "update in progress"
 * forever: Linux then polls ~80,000 times at boot (each one a VM exit) and
 * still starts without the time. Setting the time is accepted and ignored
 * (a vNode's clock is the host's); there is no periodic or alarm interrupt.
 */
#ifndef LEGO_VMM_RTC_H
#define LEGO_VMM_RTC_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "vm.h"

#define RTC_INDEX_PORT 0x70
#define RTC_DATA_PORT  0x71

struct rtc {
	pthread_mutex_t lock;
	uint8_t index;
	uint8_t ram[128];
	time_t (*now)(void); /* the clock read (time() unless a test sets another) */
};

/* rtc_init - claim ports 0x70-0x71 on @vm. */
int rtc_init(struct rtc *rtc, struct vm *vm);

/* rtc_read - register @reg as the guest reads it (for tests and the port handler). */
uint8_t rtc_read(struct rtc *rtc, uint8_t reg);

/* rtc_write - the guest writes @v to register @reg. */
void rtc_write(struct rtc *rtc, uint8_t reg, uint8_t v);

#endif
