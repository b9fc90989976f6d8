/* mod_legacy.c - the PC devices a stock kernel probes: COM1 (its console), the i8042's reset line, the CMOS clock. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "i8042.h"
#include "rtc.h"
#include "serial.h"
#include "vmm.h"

struct legacy {
	struct serial serial;
	struct rtc rtc;
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
	ret = serial_init(&l->serial, &v->vm, STDOUT_FILENO, SERIAL_IRQ);
	if (!ret)
		ret = i8042_init(&v->vm);
	if (!ret)
		ret = rtc_init(&l->rtc, &v->vm);
	if (ret) {
		log_err("cannot set up the PC devices: %s", strerror(-ret));
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

const struct vmm_module mod_legacy = {
	.name = "legacy",
	.setup = legacy_setup,
	.teardown = legacy_teardown,
	.save = legacy_save,
	.restore = legacy_restore,
};
