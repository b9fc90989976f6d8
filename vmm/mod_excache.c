/*
 * mod_excache.c - the ExCache module: guest RAM served from memory servers
 * (excache.h), its route with replication and backups (memroute.h), and
 * the control commands that act on them while the guest runs, the refills
 * and restores among them on a thread of their own.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "excache.h"
#include "rdma.h"
#include "sandbox.h"
#include "util.h"
#include "vmm.h"

struct xc_module {
	struct excache xc;
	char *memsrv, *secondary; /* the order's lists, as memroute takes them */
	char backup_host[128], backup_volume[LMP_VOL_NAME_LEN];
	/* a refill or restore under way: one at a time, joined before the route goes */
	atomic_bool filling;
	pthread_t filler;
	bool filler_started;
};

struct fill_job {
	struct excache *xc;
	char addr[128];
	bool restore; /* from the backup, rather than a copy of the primary */
	atomic_bool *filling;
};

/* ---- options ---- */

static int opt_size(uint64_t *out, const char *arg, uint64_t min, const char *what, char *err,
		    size_t errlen)
{
	if (parse_size(arg, out) || *out < min) {
		snprintf(err, errlen, "%s: '%s' is not a size of at least %lluK", what, arg,
			 (unsigned long long)(min / KiB));
		return -EINVAL;
	}
	return 0;
}

static int opt_number(uint64_t *out, const char *arg, uint64_t lo, uint64_t hi, const char *what,
		      char *err, size_t errlen)
{
	char *end;

	errno = 0;
	*out = strtoull(arg, &end, 10);
	if (errno || *end || end == arg || *arg == '-' || *out < lo || *out > hi) {
		snprintf(err, errlen, "%s: '%s' is not a number from %llu to %llu", what, arg,
			 (unsigned long long)lo, (unsigned long long)hi);
		return -EINVAL;
	}
	return 0;
}

static int opt_excache(struct vmm *v, const char *arg, char *err, size_t errlen)
{
	return opt_size(&v->order.excache, arg, 256 * KiB, "--excache", err, errlen);
}

static int opt_servers(char ***list, int *nr, const char *arg, const char *what, char *err,
		       size_t errlen)
{
	int ret = order_set_servers(list, nr, arg);

	if (ret)
		snprintf(err, errlen, "%s: '%s' is not HOST:PORT[,HOST:PORT...]%s", what, arg,
			 ret == -E2BIG ? " of at most 4096 slabs" : "");
	return ret;
}

static int opt_memsrv(struct vmm *v, const char *arg, char *err, size_t errlen)
{
	return opt_servers(&v->order.memsrv, &v->order.nr_memsrv, arg, "--memsrv", err, errlen);
}

static int opt_secondary(struct vmm *v, const char *arg, char *err, size_t errlen)
{
	return opt_servers(&v->order.secondary, &v->order.nr_secondary, arg, "--memsrv-secondary",
			   err, errlen);
}

static int opt_slab_size(struct vmm *v, const char *arg, char *err, size_t errlen)
{
	if (parse_size(arg, &v->order.slab_size) || !v->order.slab_size ||
	    v->order.slab_size % 4096) {
		snprintf(err, errlen, "--slab-size: '%s' is not a whole number of pages", arg);
		return -EINVAL;
	}
	return 0;
}

static int opt_epoch(struct vmm *v, const char *arg, char *err, size_t errlen)
{
	return opt_number(&v->order.epoch, arg, 0, INT64_MAX, "--epoch", err, errlen);
}

static int opt_backup(struct vmm *v, const char *arg, char *err, size_t errlen)
{
	(void)err, (void)errlen;
	return order_set(&v->order.backup.url, arg);
}

static int opt_backup_interval(struct vmm *v, const char *arg, char *err, size_t errlen)
{
	uint64_t ms;
	int ret = opt_number(&ms, arg, 100, 3600000, "--backup-interval", err, errlen);

	v->order.backup.interval_ms = (uint32_t)ms;
	return ret;
}

static int opt_vnode(struct vmm *v, const char *arg, char *err, size_t errlen)
{
	return opt_number(&v->order.vnode, arg, 0, INT64_MAX, "--vnode", err, errlen);
}

static int opt_poll(struct vmm *v, const char *arg, char *err, size_t errlen)
{
	if (strcmp(arg, "block") && strcmp(arg, "spin")) {
		snprintf(err, errlen, "--excache-poll: '%s' is neither block nor spin", arg);
		return -EINVAL;
	}
	v->order.poll_spin = !strcmp(arg, "spin");
	return 0;
}

static int opt_writes(struct vmm *v, const char *arg, char *err, size_t errlen)
{
	if (strcmp(arg, "sums") && strcmp(arg, "wp")) {
		snprintf(err, errlen, "--excache-writes: '%s' is neither sums nor wp", arg);
		return -EINVAL;
	}
	return order_set(&v->order.writes, arg);
}

static int opt_prefetch(struct vmm *v, const char *arg, char *err, size_t errlen)
{
	uint64_t n;
	int ret = opt_number(&n, arg, 1, LMP_MAX_PAGES, "--prefetch", err, errlen);

	v->order.prefetch = (unsigned)n;
	return ret;
}

static int opt_spin(struct vmm *v, const char *arg, char *err, size_t errlen)
{
	uint64_t n;
	int ret = opt_number(&n, arg, 0, 100000, "--spin-us", err, errlen);

	v->order.spin_us = (unsigned)n;
	return ret;
}

static int opt_warm(struct vmm *v, const char *arg, char *err, size_t errlen)
{
	uint64_t n;
	int ret = opt_number(&n, arg, 0, 1, "--warm", err, errlen);

	v->order.warm = (unsigned)n;
	return ret;
}

static int opt_transport(struct vmm *v, const char *arg, char *err, size_t errlen)
{
	if (strcmp(arg, "tcp") && strcmp(arg, "rdma") && strcmp(arg, "auto")) {
		snprintf(err, errlen, "--transport: '%s' is not tcp, rdma or auto", arg);
		return -EINVAL;
	}
	return order_set(&v->order.transport, arg);
}

static const struct vmm_option xc_options[] = {
	{"excache", "SIZE", "keep at most SIZE of guest RAM resident here (the ExCache)...",
	 opt_excache},
	{"memsrv", "ADDR",
	 "...and the rest on the memory server at HOST:PORT, or\n"
	 "                   ADDR,ADDR,... one per slab of --slab-size SIZE, in order",
	 opt_memsrv},
	{"slab-size", "SIZE", "bytes per slab when --memsrv lists one server per slab",
	 opt_slab_size},
	{"memsrv-secondary", "ADDR[,ADDR...]",
	 "replicate: every write-back also goes to the slab's\n"
	 "                   secondary; if a server is lost, its slabs fail over to their\n"
	 "                   secondaries while the guest runs",
	 opt_secondary},
	{"epoch", "N", "the placement's epoch (from the manager; default 0)", opt_epoch},
	{"transport", "tcp|rdma|auto",
	 "how pages travel to the memory servers: tcp (the\n"
	 "                   default); rdma: over RDMA, after authenticating over TCP\n"
	 "                   (fails where a server or this host has none); auto: RDMA\n"
	 "                   where both ends have it, else TCP",
	 opt_transport},
	{"memsrv-backup", "storsrv://HOST:PORT/VOLUME",
	 "the secondaries back the memory up there\n"
	 "                   every --backup-interval MS (default 1000); if every copy of a\n"
	 "                   slab is lost, its accesses wait (2 min at most) for a restore\n"
	 "                   from it (control command memsrv.restore);\n"
	 "                   its token: the order's backup.token",
	 opt_backup},
	{"backup-interval", "MS", "how often the backup is brought up to date",
	 opt_backup_interval},
	{"vnode", "ID",
	 "the vNode's number on the memory server (default: random;\n"
	 "                   its token is random too, or the order's \"token\")",
	 opt_vnode},
	{"excache-poll", "block|spin", "how fault threads wait (default block)", opt_poll},
	{"excache-writes", "sums|wp",
	 "pages fetched for a read are installed writable, and an evicted\n"
	 "                   one is written back only if its content sum changed (sums,\n"
	 "                   default); or write-protected, their first write trapped (wp)",
	 opt_writes},
	{"prefetch", "N",
	 "pages fetched at once on sequential misses (default 64, the most; 1 = off)",
	 opt_prefetch},
	{"spin-us", "N",
	 "fault threads poll for the next fault N us before sleeping\n"
	 "                   (default 0: sleep at once; spinning helps only with spare cores)",
	 opt_spin},
	{"warm", "0|1",
	 "restored or migrated: fetch the pages the ExCache held when\n"
	 "                   the vNode was saved ahead of the guest (1, default), or only\n"
	 "                   as it faults on them (0)",
	 opt_warm},
	{NULL},
};

/* ---- setup ---- */

/* @list of @n servers as memroute takes it: "A" or "A,B,...". NULL without memory. */
static char *join(char *const *list, int n)
{
	size_t len = 1;
	char *s, *p;

	for (int i = 0; i < n; i++)
		len += strlen(list[i]) + 1;
	s = p = malloc(len);
	for (int i = 0; s && i < n; i++)
		p += sprintf(p, "%s%s", i ? "," : "", list[i]);
	return s;
}

static int xc_setup(struct vmm *v)
{
	const struct vnode_order *o = &v->order;
	struct xc_module *m;
	struct excache_config cfg = {
		.size = o->excache > o->memory ? o->memory : o->excache,
		.slab_size = o->slab_size,
		.nr_fault_threads = o->cpus,
		.poll = o->poll_spin ? EXCACHE_POLL_SPIN : EXCACHE_POLL_BLOCK,
		.prefetch_max = o->prefetch,
		.spin_us = o->spin_us,
		.writes_wp = o->writes && !strcmp(o->writes, "wp"),
		.defer_connect = v->incoming, /* a migration's target: once the vNode is its own */
	};
	int ret;

	if (!o->excache)
		return VMM_IDLE;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->memsrv = join(o->memsrv, o->nr_memsrv);
	m->secondary = o->nr_secondary ? join(o->secondary, o->nr_secondary) : NULL;
	if (!m->memsrv || (o->nr_secondary && !m->secondary)) {
		ret = -ENOMEM;
		goto fail;
	}
	cfg.memsrv = m->memsrv;
	cfg.memsrv_secondary = m->secondary;
	cfg.cred.nr_pages = v->vm.mem.map_size / 4096; /* the hotpluggable region too */
	cfg.cred.vnode = o->vnode;
	cfg.cred.epoch = o->epoch;
	cfg.cred.transport = memclient_transport_parse(o->transport);
	if (cfg.cred.transport == MEMCLIENT_AUTO) { /* no device here: TCP, without asking */
		char why[512];

		if (rdma_why_off(why, sizeof(why)))
			cfg.cred.transport = MEMCLIENT_TCP;
	}
	if (cfg.cred.transport != MEMCLIENT_TCP)
		sandbox_allow_rdma();
	if (o->backup.url) { /* storsrv://HOST:PORT/VOLUME, checked with the order */
		const char *host = o->backup.url + strlen("storsrv://");
		const char *slash = strchr(host, '/');

		snprintf(m->backup_host, sizeof(m->backup_host), "%.*s", (int)(slash - host), host);
		snprintf(m->backup_volume, sizeof(m->backup_volume), "%s", slash + 1);
		memcpy(cfg.backup_token, o->backup.token, LMP_TOKEN_LEN);
		cfg.backup_storsrv = m->backup_host;
		cfg.backup_volume = m->backup_volume;
		cfg.backup_interval_ms = o->backup.interval_ms;
	}
	memcpy(cfg.cred.token, o->token, LMP_TOKEN_LEN);
	/* Without a manager to hand them out, a fresh random identity: nobody else
	 * knows the token, so nobody else reaches the pages. */
	if ((!o->vnode && getrandom(&cfg.cred.vnode, sizeof(cfg.cred.vnode), 0) < 0) ||
	    (!o->has_token && getrandom(cfg.cred.token, LMP_TOKEN_LEN, 0) < 0)) {
		ret = -errno;
		goto fail;
	}
	/* unplugged memory is the ExCache's to refuse: no PROT_NONE under it */
	ret = gmem_hotplug_unprotect(&v->vm.mem);
	if (!ret)
		ret = excache_init(&m->xc, &v->vm, &cfg);
	if (!ret && memroute_placed_pages(&m->xc.route) < v->vm.mem.size / 4096) {
		log_err("the memory servers listed hold %llu pages of the %llu the vNode boots with",
			(unsigned long long)memroute_placed_pages(&m->xc.route),
			(unsigned long long)(v->vm.mem.size / 4096));
		ret = -EINVAL;
	}
	explicit_bzero(&cfg.cred.token, sizeof(cfg.cred.token));
	explicit_bzero(cfg.backup_token, sizeof(cfg.backup_token));
	if (ret) {
		excache_exit(&m->xc);
		goto fail;
	}
	vmm_set_priv(v, &mod_excache, m);
	v->xc = &m->xc;
	return 0;
fail:
	free(m->memsrv);
	free(m->secondary);
	free(m);
	return ret < 0 ? ret : -EIO;
}

/* Before the vCPUs are joined: releases an access that waits for a page. */
static void xc_stop(struct vmm *v)
{
	excache_stop(v->xc);
}

/*
 * The order says where the slabs are now, after whatever failovers, refills
 * and hotplugs moved or added them: for a reset, which boots the same vNode
 * again, and for a snapshot. Left as ordered when a slab has no copy left
 * (its restore is under way).
 */
void excache_route_to_order(struct vmm *v)
{
	struct memroute *r = &v->xc->route;
	size_t cap = r->nr_slabs * 130 + 1;
	char *prim = malloc(cap), *sec = malloc(cap);
	size_t np = 0, ns = 0;
	bool ok = prim && sec, all_sec = true;

	pthread_mutex_lock(&r->lock);
	for (uint64_t k = 0; ok && k < r->nr_slabs; k++) {
		int p = r->slabs[k].primary, q = r->slabs[k].secondary;

		ok = p >= 0;
		if (ok)
			np += (size_t)snprintf(prim + np, cap - np, "%s%s", k ? "," : "",
					       r->servers[p].addr);
		all_sec &= q >= 0;
		if (ok && q >= 0)
			ns += (size_t)snprintf(sec + ns, cap - ns, "%s%s", k ? "," : "",
					       r->servers[q].addr);
	}
	pthread_mutex_unlock(&r->lock);
	if (ok && r->nr_slabs > 1 && !v->order.slab_size)
		v->order.slab_size = r->slab_pages * 4096;
	if (ok && order_set_servers(&v->order.memsrv, &v->order.nr_memsrv, prim))
		ok = false;
	/* a slab that lost its secondary keeps the order's: its refill was ordered */
	if (ok && all_sec && v->order.nr_secondary &&
	    order_set_servers(&v->order.secondary, &v->order.nr_secondary, sec))
		ok = false;
	if (!ok)
		log_warn("reset: the memory route could not be taken over as it is now; "
			 "booting again on the servers of the order");
	free(prim);
	free(sec);
}

static void xc_teardown(struct vmm *v)
{
	struct xc_module *m = vmm_priv(v, &mod_excache);

	if (v->vm.reset && v->keep_memory) { /* at the epoch it holds now (after a migration) */
		v->order.epoch = memroute_epoch(&m->xc.route);
		excache_route_to_order(v);
	}

	if (m->filler_started) { /* a refill or restore under way ends first: it uses the route */
		memroute_close_all(&m->xc.route);
		pthread_join(m->filler, NULL);
	}
	m->xc.keep_memory = v->keep_memory;
	excache_exit(&m->xc);
	v->xc = NULL;
	free(m->memsrv);
	free(m->secondary);
	free(m);
	vmm_set_priv(v, &mod_excache, NULL);
}

/* ---- the vNode at rest ---- */

/* Its dirty pages written back, and which pages the memory servers hold. */
static int xc_save(struct vmm *v, struct snap_writer *w)
{
	uint64_t len = (v->xc->nr_pages + 7) / 8;
	uint8_t *map = malloc(len);
	int ret = excache_flush(v->xc);

	if (!map || ret) {
		free(map);
		return ret ? ret : -ENOMEM;
	}
	excache_remote_map(v->xc, map);
	snap_put(w, "excache.remote", map, len);
	/* the working set: what the restored guest is about to touch again */
	excache_resident_map(v->xc, map);
	snap_put(w, "excache.resident", map, len);
	free(map);
	return w->err;
}

static int xc_restore(struct vmm *v, const struct snap *s)
{
	uint64_t len;
	const uint8_t *map = snap_get(s, "excache.remote", &len);

	if (!map || len != (v->xc->nr_pages + 7) / 8) {
		log_err("the snapshot does not say which pages the memory servers hold (its vNode "
			"had no ExCache?)");
		return -EINVAL;
	}
	excache_set_remote(v->xc, map);
	map = snap_get(s, "excache.resident", &len);
	if (map && len == (v->xc->nr_pages + 7) / 8 && v->order.warm)
		excache_warm(v->xc, map); /* without it, the guest faults them in one by one */
	return 0;
}

/* ---- statistics and commands ---- */

static json_t *xc_stats(struct vmm *v)
{
	struct excache *xc = v->xc;
	struct excache_stats *s = &xc->stats;
	json_t *hist = json_array(), *j;

	for (int i = 0; i < XC_HIST_BUCKETS; i++)
		json_array_append_new(hist, json_integer((json_int_t)s->lat_hist[i]));
	j = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
		      "s:I,s:I,s:o,s:s,s:I,s:I}",
		      "size_bytes", (json_int_t)(xc->limit * 4096), "resident_pages",
		      (json_int_t)xc->resident, "ram_hva", (json_int_t)(uintptr_t)xc->base,
		      "misses", (json_int_t)s->misses, "zero_fills", (json_int_t)s->zero_fills,
		      "fetches", (json_int_t)s->fetches, "prefetched", (json_int_t)s->prefetched,
		      "wp_faults", (json_int_t)s->wp_faults, "evictions", (json_int_t)s->evictions,
		      "clean_drops", (json_int_t)s->clean_drops, "dirty_writebacks",
		      (json_int_t)s->dirty_writebacks, "writebacks_aborted",
		      (json_int_t)s->wb_aborted, "discarded", (json_int_t)s->discarded, "bytes_in",
		      (json_int_t)s->bytes_in, "bytes_out", (json_int_t)s->bytes_out, "miss_p50_ns",
		      (json_int_t)excache_percentile(xc, 50), "miss_p99_ns",
		      (json_int_t)excache_percentile(xc, 99), "miss_samples",
		      (json_int_t)s->lat_next, "ram_bytes", (json_int_t)gmem_ram_bytes(&v->vm.mem),
		      "miss_latency_log2_us", hist, "memsrv", xc->cfg.memsrv, "warmed",
		      (json_int_t)s->warmed, "warm_ns", (json_int_t)s->warm_ns);
	json_object_set_new(j, "route", memroute_status(&xc->route));
	json_object_set_new(j, "zeroed_ahead", json_integer((json_int_t)s->zeroed_ahead));
	json_object_set_new(j, "unchanged_drops", json_integer((json_int_t)s->unchanged_drops));
	json_object_set_new(j, "writes", json_string(xc->cfg.writes_wp ? "wp" : "sums"));
	json_object_set_new(
		j, "remote_miss_steps",
		json_pack("{s:I,s:I,s:I,s:I,s:I}", "samples", (json_int_t)s->steps.next,
			  "room_p50_ns", (json_int_t)excache_step_percentile(xc, XC_STEP_ROOM, 50),
			  "fetch_p50_ns",
			  (json_int_t)excache_step_percentile(xc, XC_STEP_FETCH, 50),
			  "install_p50_ns",
			  (json_int_t)excache_step_percentile(xc, XC_STEP_INSTALL, 50),
			  "service_p50_ns",
			  (json_int_t)excache_step_percentile(xc, XC_STEP_SERVICE, 50)));
	return j;
}

static json_t *cmd_stats(struct vmm *v, json_t *req, char *err, size_t errlen)
{
	(void)req, (void)err, (void)errlen;
	return xc_stats(v);
}

/* {"cmd":"excache.resize","size":"64M" or bytes} */
static json_t *cmd_resize(struct vmm *v, json_t *req, char *err, size_t errlen)
{
	json_t *arg = json_object_get(req, vnode_verbs[VERB_EXCACHE_RESIZE].arg);
	uint64_t size = 0;

	if (json_is_integer(arg) && json_integer_value(arg) > 0)
		size = (uint64_t)json_integer_value(arg);
	else if (json_is_string(arg) && parse_size(json_string_value(arg), &size))
		size = 0;
	if (size < 256 * KiB) {
		snprintf(err, errlen,
			 "give \"size\": bytes, or a string such as \"64M\" (at least "
			 "256K)");
		return NULL;
	}
	if (size > gmem_ram_bytes(&v->vm.mem))
		size = gmem_ram_bytes(&v->vm.mem);
	excache_resize(v->xc, size);
	return json_pack("{s:I}", "size_bytes", (json_int_t)size);
}

static void *fill_main(void *arg)
{
	struct fill_job *job = arg;
	struct memroute_client rc;
	char err[256];

	sandbox_enter(SB_MEMORY, "xc-fill");
	if (memroute_open(&rc, &job->xc->route, err, sizeof(err)) == 0) {
		if ((job->restore ? memroute_restore : memroute_add_secondary)(&rc, job->addr, err,
									       sizeof(err)))
			log_err("%s", err);
		memroute_close(&rc);
	} else {
		log_err("refill of %s: %s", job->addr, err);
	}
	atomic_store(job->filling, false);
	free(job);
	return NULL;
}

/*
 * {"cmd":"memsrv.secondary" or "memsrv.restore","addr":"HOST:PORT"}: fill a
 * new secondary for the slabs that lack one, or the slabs that lost every
 * copy from the backup (memroute.h), on a thread of its own.
 */
static json_t *cmd_fill(struct vmm *v, json_t *req, bool restore, char *err, size_t errlen)
{
	struct xc_module *m = vmm_priv(v, &mod_excache);
	const char *addr = json_string_value(json_object_get(req, "addr"));
	struct fill_job *job;
	pthread_t t;

	if (!addr || !strchr(addr, ':') || strlen(addr) >= sizeof(job->addr)) {
		snprintf(err, errlen, "give \"addr\": the new secondary's \"HOST:PORT\"");
		return NULL;
	}
	if (atomic_exchange(&m->filling, true)) {
		snprintf(err, errlen, "a refill or a restore is under way already");
		return NULL;
	}
	job = calloc(1, sizeof(*job));
	if (!job) {
		atomic_store(&m->filling, false);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	*job = (struct fill_job){.xc = &m->xc, .restore = restore, .filling = &m->filling};
	snprintf(job->addr, sizeof(job->addr), "%s", addr);
	if (m->filler_started) /* the last one is done (filling was false): reap it */
		pthread_join(m->filler, NULL);
	m->filler_started = false;
	if (pthread_create(&t, NULL, fill_main, job)) {
		free(job);
		atomic_store(&m->filling, false);
		snprintf(err, errlen, "cannot start the refill");
		return NULL;
	}
	m->filler = t;
	m->filler_started = true;
	return json_pack("{s:s}", restore ? "restoring" : "refilling", addr);
}

static json_t *cmd_secondary(struct vmm *v, json_t *req, char *err, size_t errlen)
{
	return cmd_fill(v, req, false, err, errlen);
}

static json_t *cmd_restore(struct vmm *v, json_t *req, char *err, size_t errlen)
{
	return cmd_fill(v, req, true, err, errlen);
}

/* {"cmd":"memsrv.lost","addr":"HOST:PORT"}: the manager declared it down: fail over now. */
static json_t *cmd_lost(struct vmm *v, json_t *req, char *err, size_t errlen)
{
	const char *addr = json_string_value(json_object_get(req, "addr"));
	int ret;

	if (!addr) {
		snprintf(err, errlen, "give \"addr\": the lost server's \"HOST:PORT\"");
		return NULL;
	}
	ret = memroute_lose(&v->xc->route, addr);
	if (ret == -EHOSTDOWN) {
		snprintf(err, errlen, "%s holds the only copy of a slab: not failing over", addr);
		return NULL;
	}
	return json_pack("{s:b}", "failed_over", ret == 0);
}

static const struct vmm_cmd xc_cmds[] = {
	{"excache", "ExCache statistics: misses, evictions, write-backs, latency", 0, cmd_stats},
	{NULL, NULL, VERB_EXCACHE_RESIZE, cmd_resize},
	{NULL, NULL, VERB_MEMSRV_LOST, cmd_lost},
	{NULL, NULL, VERB_MEMSRV_RESTORE, cmd_restore},
	{NULL, NULL, VERB_MEMSRV_SECONDARY, cmd_secondary},
	{NULL},
};

const struct vmm_module mod_excache = {
	.name = "excache",
	.options = xc_options,
	.setup = xc_setup,
	.stop = xc_stop,
	.teardown = xc_teardown,
	.stats = xc_stats,
	.stats_tag = "EXCACHE",
	.cmds = xc_cmds,
	.save = xc_save,
	.restore = xc_restore,
};
