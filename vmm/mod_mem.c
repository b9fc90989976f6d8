/*
 * mod_mem.c - live memory resize: a virtio-mem device on PCI over a
 * hotpluggable region above the boot RAM, of --max-memory minus --memory
 * bytes. The control command memory.resize sets the memory the guest should
 * have; its driver plugs or unplugs blocks to follow. Plugged memory is
 * guest RAM like the rest: with an ExCache it is served from the memory
 * servers, and an unplugged block's pages are discarded from the ExCache;
 * without one it is local, and saved in snapshots with the rest.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "excache.h"
#include "util.h"
#include "virtio_mem.h"
#include "virtio_pci.h"
#include "vmm.h"

/* The region is a whole number of Linux memory blocks (128 MiB on x86-64),
 * so that the guest can add and remove it in memory blocks. */
#define REGION_ALIGN (128ULL << 20)

static int opt_max_memory(struct vmm *v, const char *arg, char *err, size_t errlen)
{
	if (parse_size(arg, &v->order.max_memory) || !v->order.max_memory) {
		snprintf(err, errlen, "--max-memory: '%s' is not a size such as 2G", arg);
		return -EINVAL;
	}
	return 0;
}

static void mem_configure(struct vmm *v, struct vm_config *cfg)
{
	if (v->order.max_memory > v->order.memory)
		cfg->hotplug_size = ALIGN_UP(v->order.max_memory - v->order.memory, REGION_ALIGN);
}

/* Blocks left the guest: under an ExCache their pages are dropped from it. */
static void mem_unplugged(void *opaque, uint64_t first, uint64_t n)
{
	struct vmm *v = opaque;
	const struct gmem *mem = &v->vm.mem;
	uint64_t per = mem->hp.block_size / 4096;

	if (v->xc)
		excache_discard(v->xc, mem->size / 4096 + first * per, n * per);
}

/*
 * How much of the region the guest may plug: all of it with local memory or
 * one memory server for all; under slabs placed one by one, as far as they
 * are placed.
 */
static uint64_t placed_usable(struct vmm *v)
{
	uint64_t all = v->order.max_memory - v->order.memory, placed;

	if (!v->xc)
		return all;
	placed = memroute_placed_pages(&v->xc->route) * 4096;
	placed = placed > v->order.memory ? placed - v->order.memory : 0;
	placed -= placed % ORDER_HOTPLUG_BLOCK;
	return placed < all ? placed : all;
}

static int mem_setup(struct vmm *v)
{
	struct virtio_mem *m;
	uint64_t usable, requested = v->order.hotplug;

	if (!v->order.max_memory)
		return VMM_IDLE;
	if (!v->pci) {
		log_err("live memory resize needs the PCI bus");
		return -ENODEV;
	}
	usable = placed_usable(v);
	if (requested > usable) {
		log_warn("%llu MiB of hotplugged memory asked for, but its slabs are placed for "
			 "%llu MiB: asking for that",
			 (unsigned long long)(requested >> 20), (unsigned long long)(usable >> 20));
		requested = usable;
	}
	m = virtio_mem_create(&v->vm, v->pci, usable, requested, mem_unplugged, v);
	if (!m)
		return -ENODEV;
	vmm_set_priv(v, &mod_mem, m);
	return 0;
}

static void mem_teardown(struct vmm *v)
{
	virtio_mem_destroy(vmm_priv(v, &mod_mem));
	vmm_set_priv(v, &mod_mem, NULL);
}

static json_t *mem_json(struct vmm *v)
{
	struct virtio_mem *m = vmm_priv(v, &mod_mem);
	struct virtio_mem_stats st;
	json_t *j;

	virtio_mem_stats(m, &st);
	j = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "boot_bytes",
		      (json_int_t)v->order.memory, "max_bytes", (json_int_t)v->order.max_memory,
		      "usable_bytes", (json_int_t)(v->order.memory + st.usable), "requested_bytes",
		      (json_int_t)(v->order.memory + st.requested), "plugged_bytes",
		      (json_int_t)st.plugged, "memory_bytes",
		      (json_int_t)(v->order.memory + st.plugged), "plugs", (json_int_t)st.plugs,
		      "unplugs", (json_int_t)st.unplugs, "nacks", (json_int_t)st.nacks, "errors",
		      (json_int_t)st.errors);
	if (v->xc && v->order.slab_size) { /* the slabs placed, and those the memory needs */
		uint64_t top = virtio_mem_top(m), want = st.requested > top ? st.requested : top;
		uint64_t need = v->order.memory + want;

		json_object_set_new(j, "slabs", json_integer((json_int_t)v->xc->route.nr_slabs));
		json_object_set_new(j, "slabs_needed",
				    json_integer((json_int_t)((need + v->order.slab_size - 1) /
							      v->order.slab_size)));
	}
	return j;
}

/* Servers of the order's JSON form, as an array of strings: their count, or -1. */
static int servers(json_t *arr, const char **out, int max)
{
	size_t i;
	json_t *e;

	if (!json_is_array(arr) || json_array_size(arr) > (size_t)max)
		return -1;
	json_array_foreach(arr, i, e)
	{
		if (!json_is_string(e))
			return -1;
		out[i] = json_string_value(e);
	}
	return (int)json_array_size(arr);
}

/*
 * The placement changes before a grow and after a shrink: {"first_slab": N,
 * "memsrv": [...], "memsrv_secondary": [...]} places slabs N, N+1, ...; or
 * {"slabs": N} gives back all but the first N (their blocks unplugged).
 */
static int replace(struct vmm *v, json_t *req, char *err, size_t errlen)
{
	struct virtio_mem *m = vmm_priv(v, &mod_mem);
	json_t *prim = json_object_get(req, "memsrv"),
	       *sec = json_object_get(req, "memsrv_secondary");
	json_t *first = json_object_get(req, "first_slab"), *keep = json_object_get(req, "slabs");
	const char *p[ORDER_MAX_SLABS], *s[ORDER_MAX_SLABS];
	int np, ns = 0, ret;

	if (!prim && !keep)
		return 0;
	if (!v->xc || !v->order.slab_size) {
		snprintf(err, errlen, "this vNode's memory is not placed in slabs");
		return -EINVAL;
	}
	if (keep) {
		uint64_t nr = json_is_integer(keep) ? (uint64_t)json_integer_value(keep) : 0;
		uint64_t bytes = nr * v->order.slab_size;

		ret = virtio_mem_set_usable(m,
					    bytes > v->order.memory ? bytes - v->order.memory : 0);
		if (ret == -EBUSY)
			snprintf(
				err, errlen,
				"blocks past %llu slabs are still plugged: the guest has not given "
				"them back yet",
				(unsigned long long)nr);
		if (!ret)
			ret = memroute_trim(&v->xc->route, nr, err, errlen);
	} else {
		np = servers(prim, p, ORDER_MAX_SLABS);
		ns = sec ? servers(sec, s, ORDER_MAX_SLABS) : 0;
		if (np <= 0 || ns < 0 || (sec && ns != np) || !json_is_integer(first) ||
		    (uint64_t)json_integer_value(first) != v->xc->route.nr_slabs) {
			snprintf(err, errlen,
				 "give first_slab (%llu: the slabs placed now), memsrv and, if "
				 "replicated, memsrv_secondary: one server per new slab",
				 (unsigned long long)v->xc->route.nr_slabs);
			return -EINVAL;
		}
		ret = memroute_extend(&v->xc->route, p, sec ? s : NULL, np, err, errlen);
		if (!ret)
			ret = virtio_mem_set_usable(m, placed_usable(v));
	}
	if (!ret)
		excache_route_to_order(v); /* a reset or a snapshot finds them */
	return ret;
}

static void mem_status(struct vmm *v, json_t *status)
{
	json_object_set_new(status, "hotplug", mem_json(v));
}

/* {"cmd":"memory.resize","size":"2G" or bytes}: the memory the guest should have. */
static json_t *cmd_resize(struct vmm *v, json_t *req, char *err, size_t errlen)
{
	json_t *arg = json_object_get(req, vnode_verbs[VERB_MEMORY_RESIZE].arg);
	uint64_t size = 0, boot = v->order.memory, max = v->order.max_memory;
	char a[32], b[32];

	if (json_is_integer(arg) && json_integer_value(arg) > 0)
		size = (uint64_t)json_integer_value(arg);
	else if (json_is_string(arg) && parse_size(json_string_value(arg), &size))
		size = 0;
	if (!size) {
		snprintf(err, errlen, "give \"size\": bytes, or a string such as \"2G\"");
		return NULL;
	}
	if (replace(v, req, err, errlen))
		return NULL;
	if (size < boot || size > max || (size - boot) % ORDER_HOTPLUG_BLOCK) {
		snprintf(err, errlen,
			 "the memory can be from %s (what it booted with) to %s (its maximum), "
			 "in steps of 2M",
			 format_size(boot, a, sizeof(a)), format_size(max, b, sizeof(b)));
		return NULL;
	}
	if (virtio_mem_request(vmm_priv(v, &mod_mem), size - boot)) {
		snprintf(err, errlen,
			 "its memory is placed for %s: the slabs for more must be placed first",
			 format_size(boot + placed_usable(v), a, sizeof(a)));
		return NULL;
	}
	v->order.hotplug = size - boot; /* a reboot or a snapshot keeps asking for it */
	return mem_json(v);
}

static json_t *mem_stats(struct vmm *v)
{
	return mem_json(v);
}

static void mem_quiesce(struct vmm *v)
{
	struct virtio_dev *d = virtio_mem_dev(vmm_priv(v, &mod_mem));

	vmm_devices_quiesce(&d, 1, true);
}

static void mem_unquiesce(struct vmm *v)
{
	struct virtio_dev *d = virtio_mem_dev(vmm_priv(v, &mod_mem));

	vmm_devices_quiesce(&d, 1, false);
}

/* A page of the region that is in no plugged block: not saved. */
static bool unplugged_page(void *opaque, uint64_t page)
{
	const struct gmem *mem = opaque;

	return !gmem_block_plugged(mem, page * 4096 / mem->hp.block_size);
}

static int mem_save(struct vmm *v, struct snap_writer *w)
{
	struct virtio_mem *m = vmm_priv(v, &mod_mem);
	struct virtio_dev *d = virtio_mem_dev(m);
	struct gmem *mem = &v->vm.mem;
	uint64_t nr = mem->hp.nr_blocks;
	uint8_t st[VIRTIO_MEM_STATE_MAX], *map = calloc((nr + 7) / 8, 1);
	int ret;

	if (!map)
		return -ENOMEM;
	for (uint64_t b = 0; b < nr; b++)
		if (gmem_block_plugged(mem, b))
			map[b / 8] |= (uint8_t)(1u << (b % 8));
	snap_put(w, "mem.state", st, virtio_mem_save(m, st));
	snap_put(w, "mem.plugged", map, (nr + 7) / 8);
	free(map);
	ret = vmm_devices_save(w, "mem.dev", &d, 1);
	if (!ret && !v->xc) /* memory that lives only here goes along */
		ret = vmm_save_pages(w, "mem.memory", mem->hp.hva, mem->hp.size / 4096,
				     unplugged_page, mem);
	return ret;
}

static int mem_restore(struct vmm *v, const struct snap *s)
{
	struct virtio_mem *m = vmm_priv(v, &mod_mem);
	struct virtio_dev *d = virtio_mem_dev(m);
	struct gmem *mem = &v->vm.mem;
	uint64_t len, map_len;
	const void *st = snap_get(s, "mem.state", &len);
	const uint8_t *map = snap_get(s, "mem.plugged", &map_len);
	int ret;

	if (!st || !map) {
		log_err("the snapshot has no virtio-mem device: its vNode had no --max-memory");
		return -EINVAL;
	}
	ret = virtio_mem_load(m, st, len, map, map_len);
	if (!ret)
		ret = vmm_devices_restore(s, "mem.dev", &d, 1);
	if (!ret && !v->xc)
		ret = vmm_restore_pages(s, "mem.memory", mem->hp.hva, mem->hp.size / 4096);
	return ret;
}

static const struct vmm_option mem_options[] = {
	{"max-memory", "SIZE",
	 "let the memory grow live up to SIZE (a virtio-mem device;\n"
	 "                   control command memory.resize); more than --memory, by a\n"
	 "                   multiple of 2M",
	 opt_max_memory},
	{NULL},
};

static json_t *cmd_memory(struct vmm *v, json_t *req, char *err, size_t errlen)
{
	(void)req, (void)err, (void)errlen;
	return mem_json(v);
}

static const struct vmm_cmd mem_cmds[] = {
	{"memory", "live memory resize: boot, maximum, requested and plugged bytes", 0, cmd_memory},
	{NULL, NULL, VERB_MEMORY_RESIZE, cmd_resize},
	{NULL},
};

const struct vmm_module mod_mem = {
	.name = "virtio-mem",
	.options = mem_options,
	.configure = mem_configure,
	.setup = mem_setup,
	.teardown = mem_teardown,
	.status = mem_status,
	.stats = mem_stats,
	.stats_tag = "MEMORY",
	.cmds = mem_cmds,
	.quiesce = mem_quiesce,
	.unquiesce = mem_unquiesce,
	.save = mem_save,
	.restore = mem_restore,
};
