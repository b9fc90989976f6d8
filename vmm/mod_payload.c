/* mod_payload.c - the payload profile: a freestanding test program in ring 3 (payload.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "payload.h"
#include "vmm.h"

static int opt_payload(struct vmm *v, const char *arg, char *err, size_t errlen)
{
	(void)err, (void)errlen;
	return order_set(&v->order.payload, arg);
}

static int opt_args(struct vmm *v, const char *arg, char *err, size_t errlen)
{
	(void)err, (void)errlen;
	return order_set(&v->order.args, arg);
}

static void payload_configure(struct vmm *v, struct vm_config *cfg)
{
	if (!v->order.payload)
		return;
	v->mode = "payload";
	cfg->strict_io = true; /* a payload that touches what no device claims is stopped */
}

static int payload_setup(struct vmm *v)
{
	struct payload_dev *dev;
	int ret;

	if (!v->order.payload)
		return VMM_IDLE;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	ret = payload_dev_init(dev, &v->vm, stdout, NULL, NULL);
	if (ret) {
		payload_dev_exit(dev);
		free(dev);
		return ret;
	}
	vmm_set_priv(v, &mod_payload, dev);
	return 0;
}

static int payload_start(struct vmm *v)
{
	/* restored: the image, its tables and every vCPU's place are back already */
	return v->restoring ? 0 : payload_load(&v->vm, v->order.payload, v->order.args);
}

/* What the port device counts: the reports so far go on from there. */
static int payload_save(struct vmm *v, struct snap_writer *w)
{
	struct payload_dev *dev = vmm_priv(v, &mod_payload);
	uint64_t reports = dev->nr_reports;

	snap_put(w, "payload", &reports, sizeof(reports));
	return w->err;
}

static int payload_restore(struct vmm *v, const struct snap *s)
{
	struct payload_dev *dev = vmm_priv(v, &mod_payload);
	const uint64_t *reports;
	uint64_t len;

	reports = snap_get(s, "payload", &len);
	if (!reports || len != sizeof(*reports)) {
		log_err("the snapshot is not of a payload vNode");
		return -EINVAL;
	}
	dev->nr_reports = *reports;
	return 0;
}

static void payload_teardown(struct vmm *v)
{
	struct payload_dev *dev = vmm_priv(v, &mod_payload);

	payload_dev_exit(dev);
	free(dev);
	vmm_set_priv(v, &mod_payload, NULL);
}

static void payload_status(struct vmm *v, json_t *status)
{
	struct payload_dev *dev = vmm_priv(v, &mod_payload);

	json_object_set_new(status, "reports", json_integer((json_int_t)dev->nr_reports));
}

static const struct vmm_option payload_options[] = {
	{"payload", "FILE",
	 "run a freestanding test payload (guest/payloads/, built by\n"
	 "                   make into build/guest/payloads/) in 64-bit ring 3 on every vCPU",
	 opt_payload},
	{"args", "TEXT", "argument text handed to the payload, e.g. \"mode=seq pages=1024\"",
	 opt_args},
	{NULL},
};

const struct vmm_module mod_payload = {
	.name = "payload",
	.options = payload_options,
	.configure = payload_configure,
	.setup = payload_setup,
	.start = payload_start,
	.teardown = payload_teardown,
	.status = payload_status,
	.save = payload_save,
	.restore = payload_restore,
};
