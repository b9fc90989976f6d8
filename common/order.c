/* order.c - the vNode order's defaults, values and checks (see order.h); its JSON form is in order_json.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "order.h"
#include "order_int.h"
#include "util.h"

const struct vnode_verb_def vnode_verbs[NR_VERBS] = {
	[VERB_EXCACHE_RESIZE] =
		{"excache", "excache.resize", "size",
		 "change the ExCache size while the guest runs: {\"size\":\"64M\"}"},
	[VERB_MEMSRV_SECONDARY] = {"secondary", "memsrv.secondary", "addr",
				   "fill a new secondary for the slabs that lack one: "
				   "{\"addr\":\"HOST:PORT\"}"},
	[VERB_MEMSRV_LOST] = {"lost", "memsrv.lost", "addr",
			      "fail over from a server the manager declared down: "
			      "{\"addr\":\"HOST:PORT\"}"},
	[VERB_MEMSRV_RESTORE] = {"restore", "memsrv.restore", "addr",
				 "refill the slabs that lost every copy from the backup, on "
				 "{\"addr\":\"HOST:PORT\"}"},
	[VERB_PAUSE] = {"pause", "pause", NULL,
			"stop the vCPUs and quiesce the devices until resume"},
	[VERB_RESUME] = {"resume", "resume", NULL, "let a paused vNode run again"},
	[VERB_MEMORY_RESIZE] = {"memory",
				"memory.resize",
				"size",
				"grow or shrink the guest's memory while it runs (virtio-mem): "
				"{\"size\":\"2G\"}, between --memory and --max-memory; with "
				"first_slab, memsrv, memsrv_secondary: slabs placed for it; with "
				"slabs: all but that many given back",
				{"first_slab", "memsrv", "memsrv_secondary", "slabs"}},
};

int vnode_verb_by_op(const char *op)
{
	for (int i = 0; i < NR_VERBS; i++)
		if (!strcmp(vnode_verbs[i].op, op))
			return i;
	return -1;
}

void order_init(struct vnode_order *o)
{
	*o = (struct vnode_order){.cpus = 1,
				  .memory = 256 * MiB,
				  .prefetch = 64,
				  .warm = 1,
				  .disk_deadline_s = 30,
				  .backup.interval_ms = 1000};
}

void order_free_list(char **list, int n)
{
	for (int i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

void order_free(struct vnode_order *o)
{
	char **strs[] = {&o->name,    &o->payload,  &o->args,	 &o->kernel,	 &o->initrd,
			 &o->cmdline, &o->control,  &o->cpuid,	 &o->backup.url, &o->incoming,
			 &o->tls_ca,  &o->tls_cert, &o->tls_key, &o->transport,	 &o->writes};

	if (o->tls_key)
		explicit_bzero(o->tls_key, strlen(o->tls_key));
	for (size_t i = 0; i < ARRAY_SIZE(strs); i++) {
		free(*strs[i]);
		*strs[i] = NULL;
	}
	order_free_list(o->memsrv, o->nr_memsrv);
	order_free_list(o->secondary, o->nr_secondary);
	o->memsrv = o->secondary = NULL;
	o->nr_memsrv = o->nr_secondary = 0;
	for (int i = 0; i < o->nr_disks; i++)
		free(o->disks[i].url);
	o->nr_disks = 0;
	for (int i = 0; i < o->nr_nics; i++) {
		free(o->nics[i].tap);
		free(o->nics[i].ip);
		free(o->nics[i].gateway);
	}
	memset(o->nics, 0, sizeof(o->nics));
	o->nr_nics = 0;
	/* the secrets do not outlive the order */
	explicit_bzero(o->token, sizeof(o->token));
	explicit_bzero(o->backup.token, sizeof(o->backup.token));
	explicit_bzero(o->disks, sizeof(o->disks));
}

int order_set(char **field, const char *value)
{
	char *copy = value ? strdup(value) : NULL;

	if (value && !copy)
		return -ENOMEM;
	free(*field);
	*field = copy;
	return 0;
}

int order_push(char ***list, int *nr, const char *s, size_t len)
{
	char **grown, *copy;

	if (*nr >= ORDER_MAX_SLABS)
		return -E2BIG;
	if (!len)
		return -EINVAL;
	copy = strndup(s, len);
	grown = copy ? realloc(*list, (*nr + 1) * sizeof(**list)) : NULL;
	if (!grown) {
		free(copy);
		return -ENOMEM;
	}
	grown[(*nr)++] = copy;
	*list = grown;
	return 0;
}

int order_set_servers(char ***list, int *nr, const char *text)
{
	int ret = 0;

	order_free_list(*list, *nr);
	*list = NULL;
	*nr = 0;
	for (const char *s = text; !ret; s++) {
		const char *comma = strchrnul(s, ',');

		ret = order_push(list, nr, s, comma - s);
		if (!*comma)
			break;
		s = comma;
	}
	return ret;
}

int order_add_disk(struct vnode_order *o, const char *url)
{
	struct order_disk *d;

	if (o->nr_disks == ORDER_MAX_DISKS)
		return -E2BIG;
	d = &o->disks[o->nr_disks];
	*d = (struct order_disk){.url = strdup(url)};
	if (!d->url)
		return -ENOMEM;
	o->nr_disks++;
	return 0;
}

int order_mac_parse(const char *text, uint8_t mac[6])
{
	unsigned v[6];
	char end;

	if (sscanf(text, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
		   &end) != 6 ||
	    strlen(text) != 17)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	/* a unicast address: a group address would make every host answer */
	return mac[0] & 1 ? -EINVAL : 0;
}

void order_mac_text(const uint8_t mac[6], char *text)
{
	sprintf(text, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
		mac[5]);
}

/* "A.B.C.D/N" (@prefix) or "A.B.C.D" */
static bool ipv4_ok(const char *text, bool prefix)
{
	unsigned a, b, c, d, n = 32;
	char end;
	int got = prefix ? sscanf(text, "%u.%u.%u.%u/%u%c", &a, &b, &c, &d, &n, &end)
			 : sscanf(text, "%u.%u.%u.%u%c", &a, &b, &c, &d, &end);

	return got == (prefix ? 5 : 4) && a < 256 && b < 256 && c < 256 && d < 256 && n >= 1 &&
	       (!prefix || n <= 30);
}

/* What a network interface must be; its TAP may still be for the agent to name (@tap false). */
int order_nic_check(const struct order_nic *nic, bool tap, const char **why)
{
	*why = tap && (!nic->tap || !nic->tap[0] || strlen(nic->tap) > 15)
		       ? "a network interface names its TAP (1 to 15 characters)"
	       : nic->ip && !ipv4_ok(nic->ip, true)	       ? "ip= is A.B.C.D/N"
	       : nic->gateway && !ipv4_ok(nic->gateway, false) ? "gw= is A.B.C.D"
							       : NULL;
	return *why ? -EINVAL : 0;
}

int order_add_nic(struct vnode_order *o, const char *text, char *err, size_t errlen)
{
	struct order_nic *nic;
	char *copy, *save = NULL, *part;
	const char *why = NULL;
	int ret = 0;

	if (o->nr_nics == ORDER_MAX_NICS) {
		snprintf(err, errlen, "at most %d network interfaces", ORDER_MAX_NICS);
		return -E2BIG;
	}
	copy = strdup(text);
	if (!copy)
		return -ENOMEM;
	nic = &o->nics[o->nr_nics++];
	for (part = strtok_r(copy, ",", &save); part && !ret; part = strtok_r(NULL, ",", &save)) {
		if (!nic->tap)
			ret = order_set(&nic->tap, part);
		else if (!strncmp(part, "mac=", 4))
			ret = order_mac_parse(part + 4, nic->mac) ? (why = "mac= is a unicast "
									   "xx:xx:xx:xx:xx:xx",
								     -EINVAL)
								  : (nic->has_mac = true, 0);
		else if (!strncmp(part, "ip=", 3))
			ret = order_set(&nic->ip, part + 3);
		else if (!strncmp(part, "gw=", 3))
			ret = order_set(&nic->gateway, part + 3);
		else
			ret = (why = "give TAP[,mac=MAC][,ip=A.B.C.D/N][,gw=A.B.C.D]", -EINVAL);
	}
	free(copy);
	if (!ret)
		ret = order_nic_check(nic, true, &why);
	if (ret)
		snprintf(err, errlen, "'%s': %s", text, why ? why : strerror(-ret));
	return ret;
}

/* A storsrv:// URL with a host and a volume after it. */
static bool volume_url(const char *url)
{
	const char *rest = url + strlen("storsrv://");

	return !strncmp(url, "storsrv://", strlen("storsrv://")) && strchr(rest, '/') &&
	       strchr(rest, '/') != rest && lmp_vol_name_ok(strchr(rest, '/') + 1);
}

int order_check(const struct vnode_order *o, char *err, size_t errlen)
{
	const char *why = NULL;

	/* Said in lego-vmm's option names: a person at its command line is who
	 * reads these; an order from the manager that fails them is a bug. */
	if (!o->payload == !o->kernel)
		why = "nothing to run: give --kernel BZIMAGE or --payload FILE (one of them)";
	else if ((o->initrd || o->cmdline) && !o->kernel)
		why = "--initrd and --append go with --kernel";
	else if (o->args && !o->payload)
		why = "--args goes with --payload";
	else if (o->memory < ORDER_MIN_MEMORY || o->memory % 4096)
		why = "--memory must be a multiple of 4 KiB of at least 4M";
	else if (o->max_memory &&
		 (o->max_memory <= o->memory || (o->max_memory - o->memory) % ORDER_HOTPLUG_BLOCK))
		why = "--max-memory is more than --memory, by a multiple of 2M";
	else if (o->hotplug &&
		 (o->hotplug % ORDER_HOTPLUG_BLOCK || o->memory + o->hotplug > o->max_memory))
		why = "the hotplugged memory is a multiple of 2M up to --max-memory";
	else if (o->cpus < 1 || o->cpus > ORDER_MAX_CPUS)
		why = "--cpus must be from 1 to 64";
	else if (!o->excache != !o->nr_memsrv)
		why = "--excache and --memsrv go together: the ExCache holds what is resident, "
		      "the memory server the rest";
	else if (o->excache && o->excache < 256 * KiB)
		why = "--excache must be at least 256K";
	else if (o->nr_secondary && o->nr_secondary != o->nr_memsrv)
		why = "one secondary per slab: --memsrv-secondary lists as many servers as "
		      "--memsrv";
	else if (o->nr_memsrv > 1 && !o->slab_size)
		why = "--memsrv lists several servers: give --slab-size too";
	else if (o->slab_size % 4096)
		why = "--slab-size must be a whole number of pages";
	else if (o->backup.url &&
		 (!o->nr_secondary || !o->backup.has_token || !volume_url(o->backup.url)))
		why = "--memsrv-backup storsrv://HOST:PORT/VOLUME goes with the order's backup.token "
		      "and --memsrv-secondary";
	else if (o->cpuid && strcmp(o->cpuid, "host") && strcmp(o->cpuid, "baseline"))
		why = "--cpuid is host or baseline";
	else if (o->transport && strcmp(o->transport, "tcp") && strcmp(o->transport, "rdma") &&
		 strcmp(o->transport, "auto"))
		why = "--transport is tcp, rdma or auto";
	else if (o->writes && strcmp(o->writes, "sums") && strcmp(o->writes, "wp"))
		why = "--excache-writes is sums or wp";
	else if (o->tls_ca && strncmp(o->tls_ca, "-----BEGIN CERTIFICATE-----", 27))
		why = "the order's tls_ca is the cluster's CA certificate, in PEM";
	else if (!o->tls_cert != !o->tls_key || (o->tls_cert && !o->tls_ca))
		why = "the order's tls_cert and tls_key go together, with tls_ca";
	else if (o->incoming && (!o->has_migrate_token || !o->excache))
		why = "--incoming goes with the order's migrate_token, for a vNode whose memory is on "
		      "memory servers (--excache, --memsrv)";
	for (int i = 0; !why && i < o->nr_nics; i++)
		order_nic_check(&o->nics[i], true, &why);
	for (int i = 0; !why && i < o->nr_disks; i++) {
		bool remote = !strncmp(o->disks[i].url, "storsrv://", strlen("storsrv://"));

		if (remote && !volume_url(o->disks[i].url))
			why = "--disk storsrv://HOST:PORT/VOLUME names a host and a volume";
		else if (remote && !o->disks[i].has_token)
			why = "--disk storsrv://...: a volume on a storage server needs its token "
			      "(the order's disks[{\"url\":...,\"token\":...}])";
		else if (!remote && o->disks[i].has_token)
			why = "a disk's token goes with a volume: storsrv://HOST:PORT/VOLUME";
	}
	if (why) {
		snprintf(err, errlen, "%s", why);
		return -EINVAL;
	}
	return 0;
}

/* ---- through a file descriptor ---- */

int order_write_fd(const struct vnode_order *o, int fd, char *err, size_t errlen)
{
	json_t *j = order_to_json(o);
	char *text = json_dumps(j, JSON_COMPACT);
	size_t len = text ? strlen(text) : 0, off = 0;
	int ret = text ? 0 : -ENOMEM;

	json_decref(j);
	while (!ret && off < len) {
		ssize_t n = write(fd, text + off, len - off);

		if (n < 0 && errno != EINTR)
			ret = -errno;
		off += n > 0 ? (size_t)n : 0;
	}
	if (text) {
		explicit_bzero(text, len);
		free(text);
	}
	if (ret)
		snprintf(err, errlen, "cannot write the order: %s", strerror(-ret));
	return ret;
}

int order_read_fd(struct vnode_order *o, int fd, char *err, size_t errlen)
{
	json_error_t je;
	json_t *j;
	int ret;

	lseek(fd, 0, SEEK_SET); /* a memfd written by the parent is read from its start */
	j = json_loadfd(fd, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		snprintf(err, errlen, "the order is not JSON: %s (line %d)", je.text, je.line);
		return -EINVAL;
	}
	ret = order_from_json(o, j, err, errlen);
	json_decref(j);
	return ret;
}

int order_memfd(const struct vnode_order *o, char *err, size_t errlen)
{
	int fd = memfd_create("lego-order", MFD_CLOEXEC | MFD_ALLOW_SEALING), ret;

	if (fd < 0) {
		snprintf(err, errlen, "memfd_create: %s", strerror(errno));
		return -errno;
	}
	ret = order_write_fd(o, fd, err, errlen);
	if (!ret &&
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL))
		ret = -errno, snprintf(err, errlen, "sealing the order: %s", strerror(errno));
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}
