/*
 * mod_blk.c - the vNode's disks: one virtio-blk device on PCI per disk of
 * the order, each over its backend (blk.h): a raw image file, or a volume
 * on a storage server.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blk.h"
#include "virtio_blk.h"
#include "virtio_pci.h"
#include "vmm.h"

struct disks {
	int nr;
	struct virtio_blk *dev[ORDER_MAX_DISKS];
};

static int opt_disk(struct vmm *v, const char *arg, char *err, size_t errlen)
{
	int ret = order_add_disk(&v->order, arg);

	if (ret == -E2BIG)
		snprintf(err, errlen, "%s: at most %d --disk", arg, ORDER_MAX_DISKS);
	return ret;
}

static int opt_deadline(struct vmm *v, const char *arg, char *err, size_t errlen)
{
	char *end;
	long n = strtol(arg, &end, 10);

	if (*end || end == arg || n < 1 || n > 86400) {
		snprintf(err, errlen, "--disk-deadline: '%s' is not a number of seconds", arg);
		return -EINVAL;
	}
	v->order.disk_deadline_s = (int)n;
	return 0;
}

static int open_backend(struct vmm *v, const struct order_disk *d, struct blk_backend **be)
{
	if (!strncmp(d->url, BLK_NET_SCHEME, strlen(BLK_NET_SCHEME)))
		return blk_net_open(d->url, d->token, v->order.disk_deadline_s * 1000, be);
	return blk_raw_open(d->url, false, be);
}

static void blk_teardown(struct vmm *v)
{
	struct disks *ds = vmm_priv(v, &mod_blk);

	while (ds->nr)
		virtio_blk_destroy(ds->dev[--ds->nr]); /* waits for what is in flight */
	free(ds);
	vmm_set_priv(v, &mod_blk, NULL);
}

static int blk_setup(struct vmm *v)
{
	struct disks *ds;

	if (!v->order.nr_disks)
		return VMM_IDLE;
	ds = calloc(1, sizeof(*ds));
	if (!ds)
		return -ENOMEM;
	vmm_set_priv(v, &mod_blk, ds);
	for (int i = 0; i < v->order.nr_disks; i++) {
		struct blk_backend *be;
		int ret = open_backend(v, &v->order.disks[i], &be);

		if (!ret) {
			ds->dev[ds->nr] = virtio_blk_create(&v->vm, v->pci, be);
			if (!ds->dev[ds->nr]) {
				be->ops->close(be);
				ret = -ENODEV;
			}
		}
		if (ret) {
			blk_teardown(v);
			return ret < 0 ? ret : -EIO;
		}
		ds->nr++;
	}
	return 0;
}

static void blk_status(struct vmm *v, json_t *status)
{
	struct disks *ds = vmm_priv(v, &mod_blk);
	json_t *arr = json_array();

	for (int i = 0; i < ds->nr; i++) {
		uint64_t requests, errors;

		virtio_blk_stats(ds->dev[i], &requests, &errors);
		json_array_append_new(arr, json_pack("{s:s,s:I,s:I}", "disk", v->order.disks[i].url,
						     "requests", (json_int_t)requests, "errors",
						     (json_int_t)errors));
	}
	json_object_set_new(status, "disks", arr);
}

static int devs(struct vmm *v, struct virtio_dev **out)
{
	struct disks *ds = vmm_priv(v, &mod_blk);

	for (int i = 0; i < ds->nr; i++)
		out[i] = virtio_blk_dev(ds->dev[i]);
	return ds->nr;
}

/* Every request in flight lands first: a snapshot holds none half done. */
static void blk_quiesce(struct vmm *v)
{
	struct virtio_dev *d[ORDER_MAX_DISKS];

	vmm_devices_quiesce(d, devs(v, d), true);
}

static void blk_unquiesce(struct vmm *v)
{
	struct virtio_dev *d[ORDER_MAX_DISKS];

	vmm_devices_quiesce(d, devs(v, d), false);
}

static int blk_save(struct vmm *v, struct snap_writer *w)
{
	struct virtio_dev *d[ORDER_MAX_DISKS];

	return vmm_devices_save(w, "blk", d, devs(v, d));
}

static int blk_restore(struct vmm *v, const struct snap *s)
{
	struct virtio_dev *d[ORDER_MAX_DISKS];

	return vmm_devices_restore(s, "blk", d, devs(v, d));
}

static const struct vmm_option blk_options[] = {
	{"disk", "IMAGE",
	 "a virtio-blk disk (PCI, virtio 1.x) backed by the raw file IMAGE,\n"
	 "                   or by a volume of lego-storsrv: storsrv://HOST:PORT/VOLUME;\n"
	 "                   up to 8, in this order (vda, vdb, ...); a volume's token\n"
	 "                   goes in the order: disks[{\"url\":...,\"token\":...}]",
	 opt_disk},
	{"disk-deadline", "S",
	 "fail a disk request to the guest only after S seconds\n"
	 "                   without the storage server (default 30; it is retried meanwhile)",
	 opt_deadline},
	{NULL},
};

const struct vmm_module mod_blk = {
	.name = "virtio-blk",
	.options = blk_options,
	.setup = blk_setup,
	.teardown = blk_teardown,
	.status = blk_status,
	.quiesce = blk_quiesce,
	.unquiesce = blk_unquiesce,
	.save = blk_save,
	.restore = blk_restore,
};
