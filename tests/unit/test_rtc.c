/* test_rtc.c - the CMOS clock's registers, from a fixed clock. */
#include "rtc.h"
#include "test.h"

static time_t fixed_now(void)
{
	return 1795525509; /* Tue 2026-11-24 13:05:09 UTC */
}

static void clock_at_fixed_time(struct rtc *rtc)
{
	ASSERT_EQ(rtc_init(rtc, NULL), 0);
	rtc->now = fixed_now;
}

TEST(rtc_time_in_bcd_24h_by_default)
{
	struct rtc rtc;

	clock_at_fixed_time(&rtc);
	ASSERT_EQ(rtc_read(&rtc, 0x00), 0x09);
	ASSERT_EQ(rtc_read(&rtc, 0x02), 0x05);
	ASSERT_EQ(rtc_read(&rtc, 0x04), 0x13);
	ASSERT_EQ(rtc_read(&rtc, 0x06), 0x03); /* Tuesday: 1 is Sunday */
	ASSERT_EQ(rtc_read(&rtc, 0x07), 0x24);
	ASSERT_EQ(rtc_read(&rtc, 0x08), 0x11);
	ASSERT_EQ(rtc_read(&rtc, 0x09), 0x26);
	ASSERT_EQ(rtc_read(&rtc, 0x32), 0x20);
	ASSERT_EQ(rtc_read(&rtc, 0x8a) & 0x80, 0); /* never "update in progress"; NMI bit ignored */
	ASSERT_EQ(rtc_read(&rtc, 0x0d), 0x80);	   /* valid RAM and time */
}

TEST(rtc_binary_and_12h_formats_follow_register_b)
{
	struct rtc rtc;

	clock_at_fixed_time(&rtc);
	rtc_write(&rtc, 0x0b, 0x04 | 0x02); /* binary, 24h */
	ASSERT_EQ(rtc_read(&rtc, 0x04), 13);
	ASSERT_EQ(rtc_read(&rtc, 0x07), 24);
	ASSERT_EQ(rtc_read(&rtc, 0x09), 26);
	rtc_write(&rtc, 0x0b, 0x00);		      /* BCD, 12h */
	ASSERT_EQ(rtc_read(&rtc, 0x04), 0x80 | 0x01); /* 1 PM */
	rtc_write(&rtc, 0x0b, 0x80 | 0x40 | 0x02);    /* SET and PIE are not offered */
	ASSERT_EQ(rtc_read(&rtc, 0x0b), 0x02);
}

TEST(rtc_ram_and_read_only_registers)
{
	struct rtc rtc;

	clock_at_fixed_time(&rtc);
	rtc_write(&rtc, 0x40, 0x5a);
	ASSERT_EQ(rtc_read(&rtc, 0x40), 0x5a);
	rtc_write(&rtc, 0x0d, 0x00);
	ASSERT_EQ(rtc_read(&rtc, 0x0d), 0x80);
	rtc_write(&rtc, 0x0c, 0xff);
	ASSERT_EQ(rtc_read(&rtc, 0x0c), 0x00);
	rtc_write(&rtc, 0x00, 0x30); /* setting the time is ignored: the host's clock rules */
	ASSERT_EQ(rtc_read(&rtc, 0x00), 0x09);
}
