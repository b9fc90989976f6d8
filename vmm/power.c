/* power.c - the ACPI sleep registers and the power button (see power.h). */
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>

#include "acpi.h"
#include "bus.h"
#include "power.h"
#include "log.h"

/* ACPI 6.x 4.8.3.7: SLP_TYPx in bits 2-4 of the sleep control register, SLP_EN bit 5. */
#define SLEEP_TYP(v) (((v) >> 2) & 7)
#define SLEEP_EN     0x20

void power_sleep_write(struct power *p, uint8_t value)
{
	bool reset;

	if (!(value & SLEEP_EN))
		return;
	if (SLEEP_TYP(value) != ACPI_SLP_TYP_S5) {
		/* the DSDT offers no other state: a guest asking for one gets no sleep */
		log_warn("the guest asked for sleep type %u, which this machine does not have",
			 SLEEP_TYP(value));
		return;
	}
	pthread_mutex_lock(&p->lock);
	reset = p->reset_on_off;
	p->reset_on_off = false;
	pthread_mutex_unlock(&p->lock);
	if (reset)
		vm_reset(p->vm, "the guest shut down for a reboot (ACPI S5): booting again");
	else
		vm_stop(p->vm, 0, "the guest powered off (ACPI S5)");
}

static void sleep_control(struct vcpu *vcpu, void *opaque, uint64_t off, void *data, uint32_t len,
			  bool is_write)
{
	(void)vcpu, (void)off;
	if (!is_write)
		memset(data, 0, len);
	else
		power_sleep_write(opaque, *(uint8_t *)data);
}

/* Reads say "not asleep"; the kernel clears WAKE_STS before sleeping, nothing to keep. */
static void sleep_status(struct vcpu *vcpu, void *opaque, uint64_t off, void *data, uint32_t len,
			 bool is_write)
{
	(void)vcpu, (void)opaque, (void)off;
	if (!is_write)
		memset(data, 0, len);
}

int power_init(struct power *p, struct vm *vm)
{
	int ret;

	memset(p, 0, sizeof(*p));
	p->vm = vm;
	pthread_mutex_init(&p->lock, NULL);
	ret = bus_register(&vm->pio, ACPI_SLEEP_CONTROL_PORT, 1, sleep_control, p, "acpi-sleep");
	if (!ret)
		ret = bus_register(&vm->pio, ACPI_SLEEP_STATUS_PORT, 1, sleep_status, p,
				   "acpi-sleep-status");
	return ret;
}

void power_exit(struct power *p)
{
	pthread_mutex_destroy(&p->lock);
}

void power_press(struct power *p)
{
	struct kvm_irq_level irq = {.irq = ACPI_GED_IRQ, .level = 1};

	pthread_mutex_lock(&p->lock);
	p->presses++;
	pthread_mutex_unlock(&p->lock);
	/* an edge: the GED's interrupt is edge-triggered, active high (acpi.c) */
	ioctl(p->vm->vm_fd, KVM_IRQ_LINE, &irq);
	irq.level = 0;
	ioctl(p->vm->vm_fd, KVM_IRQ_LINE, &irq);
}

void power_reboot_next(struct power *p, bool reboot)
{
	pthread_mutex_lock(&p->lock);
	p->reset_on_off = reboot;
	pthread_mutex_unlock(&p->lock);
}
