/*
 * power.h - the vNode's power, as a hardware-reduced ACPI machine has it:
 * the sleep control and status registers the FADT names (the kernel's
 * poweroff writes S5 into the first) and a power button behind a Generic
 * Event Device (acpi.c describes both). Pressing the button is a request the
 * guest answers by shutting down; power_reboot_next makes its power-off a
 * reset instead, which is how a vNode reboots gracefully.
 */
#ifndef LEGO_VMM_POWER_H
#define LEGO_VMM_POWER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vm.h"

struct power {
	struct vm *vm;
	pthread_mutex_t lock;
	bool reset_on_off; /* the next S5 resets the machine instead of stopping it */
	uint64_t presses;  /* power button presses */
};

/* power_init - claim the sleep registers on @vm's port bus. 0 or -errno. */
int power_init(struct power *p, struct vm *vm);
void power_exit(struct power *p);

/* power_press - press the power button (an edge on the GED's interrupt). */
void power_press(struct power *p);

/* power_reboot_next - whether the guest's next power-off resets it instead. */
void power_reboot_next(struct power *p, bool reboot);

/* power_sleep_write - a write of @value to the sleep control register (tests call it too). */
void power_sleep_write(struct power *p, uint8_t value);

#endif
