/* remote.c - the manager's calls to other components (storage servers, agents), and the vNode order. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "manager.h"
#include "order.h"
#include "storclient.h"
#include "xport.h"

#define AGENT_TIMEOUT_MS 15000

int volume_op(const char *addr, uint16_t type, const char *name, const char *token_hex,
	      uint64_t size, char *err, size_t errlen)
{
	struct lmp_vol vol = {.size = size};
	struct xport *x;
	int ret;

	snprintf(vol.name, sizeof(vol.name), "%s", name);
	lmp_token_parse(token_hex, vol.token);
	ret = xport_connect(addr, 2000, 10000, &x, err, errlen);
	if (ret)
		return ret;
	ret = stor_vol(x, type, &vol);
	xport_close(x);
	explicit_bzero(vol.token, sizeof(vol.token));
	if (ret)
		snprintf(err, errlen, "storage server %s: volume %s: %s", addr, name,
			 stor_strerror(ret));
	return ret;
}

/* One request @type with body @body to the server @addr: its status, or the transport's -errno. */
static int data_call(const char *addr, uint16_t type, const void *body, size_t len, uint64_t *arg,
		     char *err, size_t errlen)
{
	struct iovec iov = {(void *)body, len};
	struct lmp_hdr resp;
	struct xport *x;
	int ret = xport_connect(addr, 2000, 10000, &x, err, errlen);

	if (ret)
		return ret;
	ret = xport_call(x, type, 0, &iov, 1, &resp, NULL, 0);
	xport_close(x);
	if (!ret && arg)
		*arg = resp.arg;
	return ret ? ret : resp.status;
}

int volume_clone_op(const char *addr, const char *src, const char *src_token, const char *dst,
		    const char *dst_token, char *err, size_t errlen)
{
	struct lmp_vol_clone c = {0};
	int ret;

	snprintf(c.src, sizeof(c.src), "%s", src);
	snprintf(c.dst.name, sizeof(c.dst.name), "%s", dst);
	lmp_token_parse(src_token, c.src_token);
	lmp_token_parse(dst_token, c.dst.token);
	ret = data_call(addr, LMP_VOL_CLONE, &c, sizeof(c), NULL, err, errlen);
	explicit_bzero(&c, sizeof(c));
	if (ret)
		snprintf(err, errlen, "storage server %s: volume %s copied as %s: %s", addr, src,
			 dst, stor_strerror(ret));
	return ret;
}

int memsrv_clone_op(const char *addr, const struct vnode *src, const struct vnode *dst,
		    uint32_t flags, uint64_t *pages, char *err, size_t errlen)
{
	struct lmp_clone c = {.src = src ? src->id : 0,
			      .src_epoch = src ? src->epoch : 0,
			      .dst = dst->id,
			      .dst_epoch = dst->epoch,
			      .flags = flags};
	int ret;

	if (src)
		lmp_token_parse(src->token, c.src_token);
	lmp_token_parse(dst->token, c.dst_token);
	ret = data_call(addr, LMP_CLONE, &c, sizeof(c), pages, err, errlen);
	explicit_bzero(&c, sizeof(c));
	if (ret)
		snprintf(err, errlen, "memory server %s: %s of vNode %s: %s", addr,
			 flags & LMP_CLONE_DROP ? "dropping the pages" : "copying the pages",
			 src ? src->name : dst->name,
			 ret == -ESTALE	  ? "its copy there is not at the vNode's epoch"
			 : ret == -EPERM  ? "refused to the manager's credential"
			 : ret == -EACCES ? "wrong token"
			 : ret == -ENOENT ? "it holds no page of it"
			 : ret == -EEXIST ? "it knows the new vNode's number already"
			 : ret == -EBUSY  ? "a VMM holds it"
			 : ret == -ENOSPC ? "no room"
					  : strerror(-ret));
	return ret;
}

int agent_call(const char *agent, const char *method, const char *path, json_t *body, json_t **out,
	       char *err, size_t errlen)
{
	return agent_call_ms(agent, method, path, body, out, AGENT_TIMEOUT_MS, err, errlen);
}

int agent_call_ms(const char *agent, const char *method, const char *path, json_t *body,
		  json_t **out, int timeout_ms, char *err, size_t errlen)
{
	char url[ADDR_LEN + 128], why[512];
	int status;

	snprintf(url, sizeof(url), "%s://%s%s", http_scheme(), agent, path);
	status = http_call(method, url, body, out, timeout_ms, why, sizeof(why));
	if (status >= 200 && status < 300)
		return 0;
	snprintf(err, errlen, "host agent %s: %s", agent, why);
	switch (status) {
	case 404:
		return -ENOENT;
	case 409:
		return -EEXIST;
	case 422:
		return -ECHILD; /* lego-vmm exited at once: the order could not run */
	default:
		return status < 0 ? -EHOSTUNREACH : -EREMOTEIO;
	}
}

/* The primaries (or secondaries) of @v's slabs, one per slab, into @list/@nr. */
static int servers(char ***list, int *nr, const struct vnode *v, bool secondary)
{
	*list = calloc(v->nr_slabs + 1, sizeof(**list));
	if (!*list)
		return -ENOMEM;
	for (int i = 0; i < v->nr_slabs; i++) {
		(*list)[i] = strdup(secondary ? v->slabs[i].secondary : v->slabs[i].primary);
		if (!(*list)[i])
			return -ENOMEM;
		*nr = i + 1;
	}
	return 0;
}

json_t *vnode_order(struct vnode *v, const struct ipam *ipam)
{
	static const char *const boot[] = {"payload", "args", "kernel", "initrd", "cmdline"};
	struct vnode_order o;
	bool replicated = v->nr_slabs > 0;
	char url[ADDR_LEN + NAME_LEN + 32];
	json_t *j = NULL;

	order_init(&o);
	o.cpus = (int)spec_u64(v->spec, "cpus");
	o.memory = v->placed_memory;
	if (vnode_max_memory(v)) { /* it boots with its memory; the rest is hotplugged */
		o.memory = spec_u64(v->spec, "memory");
		o.max_memory = vnode_max_memory(v);
		o.hotplug = spec_u64(v->spec, "hotplug");
	}
	o.excache = vnode_excache(v);
	o.vnode = v->id;
	o.has_token = !lmp_token_parse(v->token, o.token);
	o.slab_size = v->slab_size;
	o.epoch = v->epoch;
	for (int i = 0; i < v->nr_slabs; i++)
		replicated &= v->slabs[i].secondary[0] != '\0';
	if (order_set(&o.name, v->name) || servers(&o.memsrv, &o.nr_memsrv, v, false) ||
	    /* each slab's write-backs go to its secondary too, and the VMM fails over */
	    (replicated && servers(&o.secondary, &o.nr_secondary, v, true)))
		goto out;
	if (replicated && v->backup_storsrv[0]) {
		snprintf(url, sizeof(url), "storsrv://%s/%s.mem", v->backup_storsrv, v->name);
		o.backup.has_token = !lmp_token_parse(v->backup_token, o.backup.token);
		if (order_set(&o.backup.url, url))
			goto out;
	}
	if (v->ip[0] && ipam->used) { /* one interface: the agent names its TAP */
		struct order_nic *nic = &o.nics[o.nr_nics++];
		char cidr[20], gw[16];

		ipam_cidr(ipam, v->ip, cidr);
		ipam_gateway(ipam, gw);
		nic->has_mac = !order_mac_parse(v->mac, nic->mac);
		if (order_set(&nic->ip, cidr) || order_set(&nic->gateway, gw))
			goto out;
	}
	for (int i = 0; v->storsrv[0] && i < (vnode_nr_disks(v) ? vnode_nr_disks(v) : 1); i++) {
		char vol[NAME_LEN + 8];

		vnode_volume(v, i, vol, sizeof(vol));
		snprintf(url, sizeof(url), "storsrv://%s/%s", v->storsrv, vol);
		if (order_add_disk(&o, url))
			goto out;
		o.disks[i].has_token = !lmp_token_parse(v->vol_token, o.disks[i].token);
	}
	if (spec_str(v->spec, "transport") &&
	    order_set(&o.transport, spec_str(v->spec, "transport")))
		goto out;
	for (size_t i = 0; i < sizeof(boot) / sizeof(boot[0]); i++) {
		char **field[] = {&o.payload, &o.args, &o.kernel, &o.initrd, &o.cmdline};

		if (spec_str(v->spec, boot[i]) && order_set(field[i], spec_str(v->spec, boot[i])))
			goto out;
	}
	j = order_to_json(&o);
out:
	order_free(&o);
	return j;
}

int agent_run_order(struct manager *m, const char *agent, json_t *order, json_t **out, char *err,
		    size_t errlen)
{
	int r = members_vmm_credential(m, order, err, errlen);

	return r ? r : agent_call(agent, "POST", "/v1/vnodes", order, out, err, errlen);
}
