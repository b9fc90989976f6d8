/*
 * mod_net.c - the vNode's network interfaces: one virtio-net device on PCI
 * per interface of the order, each on a TAP (net.h). A Linux guest is told
 * its address on its command line (mod_linux.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "virtio_net.h"
#include "vmm.h"

struct nics {
	int nr;
	struct virtio_net *dev[ORDER_MAX_NICS];
	uint8_t mac[ORDER_MAX_NICS][6];
};

static int opt_net(struct vmm *v, const char *arg, char *err, size_t errlen)
{
	char why[256];
	int ret = order_add_nic(&v->order, arg, why, sizeof(why));

	if (ret)
		snprintf(err, errlen, "--net %s", why);
	return ret;
}

static void net_teardown(struct vmm *v)
{
	struct nics *ns = vmm_priv(v, &mod_net);

	while (ns->nr)
		virtio_net_destroy(ns->dev[--ns->nr]);
	free(ns);
	vmm_set_priv(v, &mod_net, NULL);
}

static int net_setup(struct vmm *v)
{
	struct nics *ns;

	if (!v->order.nr_nics)
		return VMM_IDLE;
	ns = calloc(1, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	vmm_set_priv(v, &mod_net, ns);
	for (int i = 0; i < v->order.nr_nics; i++) {
		const struct order_nic *nic = &v->order.nics[i];
		uint8_t *mac = ns->mac[ns->nr];
		struct net_backend *be;
		int ret;

		if (nic->has_mac) {
			memcpy(mac, nic->mac, 6);
		} else { /* locally administered, unicast: no vendor's address */
			if (getrandom(mac, 6, 0) != 6)
				memset(mac, 0x42, 6);
			mac[0] = (mac[0] & 0xfe) | 0x02;
			/* in the order from now on: a snapshot's restore keeps it */
			memcpy(v->order.nics[i].mac, mac, 6);
			v->order.nics[i].has_mac = true;
		}
		ret = net_tap_open(nic->tap, &be);
		if (!ret && !(ns->dev[ns->nr] = virtio_net_create(&v->vm, v->pci, be, mac))) {
			be->ops->close(be);
			ret = -ENODEV;
		}
		if (ret) {
			net_teardown(v);
			return ret;
		}
		ns->nr++;
	}
	return 0;
}

static void net_status(struct vmm *v, json_t *status)
{
	struct nics *ns = vmm_priv(v, &mod_net);
	json_t *arr = json_array();

	for (int i = 0; i < ns->nr; i++) {
		struct virtio_net_stats st;
		char mac[18], error[160];
		json_t *j;

		virtio_net_stats(ns->dev[i], &st, error, sizeof(error));
		order_mac_text(ns->mac[i], mac);
		j = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I}", "tap", v->order.nics[i].tap,
			      "mac", mac, "tx_frames", (json_int_t)st.tx_frames, "tx_bytes",
			      (json_int_t)st.tx_bytes, "tx_dropped", (json_int_t)st.tx_dropped,
			      "rx_frames", (json_int_t)st.rx_frames, "rx_bytes",
			      (json_int_t)st.rx_bytes, "rx_dropped", (json_int_t)st.rx_dropped);
		if (v->order.nics[i].ip)
			json_object_set_new(j, "ip", json_string(v->order.nics[i].ip));
		if (error[0])
			json_object_set_new(j, "error", json_string(error));
		json_array_append_new(arr, j);
	}
	json_object_set_new(status, "nics", arr);
}

static int devs(struct vmm *v, struct virtio_dev **out)
{
	struct nics *ns = vmm_priv(v, &mod_net);

	for (int i = 0; i < ns->nr; i++)
		out[i] = virtio_net_dev(ns->dev[i]);
	return ns->nr;
}

static void net_quiesce(struct vmm *v)
{
	struct virtio_dev *d[ORDER_MAX_NICS];

	vmm_devices_quiesce(d, devs(v, d), true);
}

static void net_unquiesce(struct vmm *v)
{
	struct virtio_dev *d[ORDER_MAX_NICS];

	vmm_devices_quiesce(d, devs(v, d), false);
}

static int net_save(struct vmm *v, struct snap_writer *w)
{
	struct virtio_dev *d[ORDER_MAX_NICS];

	return vmm_devices_save(w, "net", d, devs(v, d));
}

static int net_restore(struct vmm *v, const struct snap *s)
{
	struct virtio_dev *d[ORDER_MAX_NICS];

	return vmm_devices_restore(s, "net", d, devs(v, d));
}

static const struct vmm_option net_options[] = {
	{"net", "TAP[,mac=MAC][,ip=A.B.C.D/N][,gw=A.B.C.D]",
	 "a virtio-net interface on the TAP device TAP\n"
	 "                   (made if missing), with this MAC (default: random); a Linux\n"
	 "                   guest's init takes ip= and gw= (lego.ip=, lego.gw=); up to 4",
	 opt_net},
	{NULL},
};

const struct vmm_module mod_net = {
	.name = "virtio-net",
	.options = net_options,
	.setup = net_setup,
	.teardown = net_teardown,
	.status = net_status,
	.quiesce = net_quiesce,
	.unquiesce = net_unquiesce,
	.save = net_save,
	.restore = net_restore,
};
