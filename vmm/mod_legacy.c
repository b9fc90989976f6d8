/*
 * mod_legacy.c - the PC devices a stock kernel probes: COM1 (its console),
 * the i8042's reset line, the CMOS clock, and the ACPI power device whose
 * button the shutdown and reboot commands press (legacy_press).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "i8042.h"
#include "power.h"
#include "rtc.h"
#include "serial.h"
#include "vmm.h"

struct legacy {
	struct serial serial;
	struct rtc rtc;
	struct power power;
	/* armed by a shutdown or reboot: the guest's time to answer the button */
	int deadline_fd;
	bool deadline_reboot; /* ... after which the machine is reset, not stopped */
	int deadline_ms;
};

static int legacy_setup(struct vmm *v)
{
	struct legacy *l;
	int ret;

	if (!v->order.kernel)
		return VMM_IDLE; /* a payload has its own port device */
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->deadline_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	ret = l->deadline_fd < 0 ? -errno : 0;
	if (!ret)
		ret = serial_init(&l->serial, &v->vm, STDOUT_FILENO, SERIAL_IRQ);
	if (!ret)
		ret = i8042_init(&v->vm);
	if (!ret)
		ret = rtc_init(&l->rtc, &v->vm);
	if (!ret)
		ret = power_init(&l->power, &v->vm);
	if (ret) {
		log_err("cannot set up the PC devices: %s", strerror(-ret));
		if (l->deadline_fd >= 0)
			close(l->deadline_fd);
		free(l);
		return ret;
	}
	vmm_set_priv(v, &mod_legacy, l);
	v->serial = &l->serial;
	return 0;
}

static void legacy_teardown(struct vmm *v)
{
	struct legacy *l = vmm_priv(v, &mod_legacy);

	log_debug("serial: %llu bytes out, %llu in, %llu interrupts",
		  (unsigned long long)l->serial.tx_bytes, (unsigned long long)l->serial.rx_bytes,
		  (unsigned long long)l->serial.irqs);
	v->serial = NULL;
	pthread_mutex_destroy(&l->serial.lock);
	pthread_mutex_destroy(&l->rtc.lock);
	power_exit(&l->power);
	close(l->deadline_fd);
	free(l);
	vmm_set_priv(v, &mod_legacy, NULL);
}

/* The UART (its registers, what was typed and not yet read) and the CMOS registers. */
static int legacy_save(struct vmm *v, struct snap_writer *w)
{
	struct legacy *l = vmm_priv(v, &mod_legacy);
	uint8_t buf[SERIAL_STATE_MAX], cmos[129];

	snap_put(w, "legacy.serial", buf, serial_save(&l->serial, buf));
	pthread_mutex_lock(&l->rtc.lock);
	cmos[0] = l->rtc.index;
	memcpy(cmos + 1, l->rtc.ram, sizeof(l->rtc.ram));
	pthread_mutex_unlock(&l->rtc.lock);
	snap_put(w, "legacy.cmos", cmos, sizeof(cmos));
	return w->err;
}

static int legacy_restore(struct vmm *v, const struct snap *s)
{
	struct legacy *l = vmm_priv(v, &mod_legacy);
	const uint8_t *serial, *cmos;
	uint64_t len, cmos_len;

	serial = snap_get(s, "legacy.serial", &len);
	cmos = snap_get(s, "legacy.cmos", &cmos_len);
	if (!serial || !cmos || cmos_len != 1 + sizeof(l->rtc.ram) ||
	    serial_load(&l->serial, serial, len)) {
		log_err("the snapshot holds no PC devices' state (not of a Linux vNode?)");
		return -EINVAL;
	}
	pthread_mutex_lock(&l->rtc.lock);
	l->rtc.index = cmos[0];
	memcpy(l->rtc.ram, cmos + 1, sizeof(l->rtc.ram));
	pthread_mutex_unlock(&l->rtc.lock);
	return 0;
}

/* The button was pressed and the guest did not power off in time: power is cut (or reset). */
static bool deadline_passed(struct vmm *v, void *opaque)
{
	struct legacy *l = opaque;
	uint64_t n;

	if (read(l->deadline_fd, &n, sizeof(n)) != sizeof(n))
		return true;
	if (l->deadline_reboot)
		vm_reset(&v->vm,
			 "the guest did not shut down within %d ms of the power button: reset",
			 l->deadline_ms);
	else
		vm_stop(&v->vm, 0,
			"the guest did not power off within %d ms of the power button: stopped",
			l->deadline_ms);
	return true;
}

static int legacy_start(struct vmm *v)
{
	struct legacy *l = vmm_priv(v, &mod_legacy);
	struct vmm_watch w = {.fd = l->deadline_fd, .fn = deadline_passed, .opaque = l};

	return vmm_watch(v, &w);
}

int legacy_press(struct vmm *v, bool reboot, int timeout_ms)
{
	struct legacy *l = vmm_priv(v, &mod_legacy);
	struct itimerspec its = {.it_value = {timeout_ms / 1000, (timeout_ms % 1000) * 1000000L}};

	if (!vmm_active(v, &mod_legacy))
		return -ENODEV;
	l->deadline_reboot = reboot;
	l->deadline_ms = timeout_ms;
	power_reboot_next(&l->power, reboot);
	timerfd_settime(l->deadline_fd, 0, &its, NULL);
	power_press(&l->power);
	log_info("power button pressed (%s; %d ms for the guest to %s)",
		 reboot ? "reboot" : "shutdown", timeout_ms, reboot ? "shut down" : "power off");
	return 0;
}

static void legacy_status(struct vmm *v, json_t *status)
{
	struct legacy *l = vmm_priv(v, &mod_legacy);

	pthread_mutex_lock(&l->power.lock);
	json_object_set_new(status, "power_button_presses",
			    json_integer((json_int_t)l->power.presses));
	pthread_mutex_unlock(&l->power.lock);
}

const struct vmm_module mod_legacy = {
	.name = "legacy",
	.setup = legacy_setup,
	.start = legacy_start,
	.teardown = legacy_teardown,
	.status = legacy_status,
	.save = legacy_save,
	.restore = legacy_restore,
};
