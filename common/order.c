/* order.c - the vNode order's defaults, checks, and its one JSON form (see order.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "order.h"
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
				  .prefetch = 16,
				  .disk_deadline_s = 30,
				  .backup.interval_ms = 1000};
}

static void free_list(char **list, int n)
{
	for (int i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

void order_free(struct vnode_order *o)
{
	char **strs[] = {&o->name,    &o->payload,  &o->args,	&o->kernel,	&o->initrd,
			 &o->cmdline, &o->control,  &o->cpuid,	&o->backup.url, &o->incoming,
			 &o->tls_ca,  &o->tls_cert, &o->tls_key};

	if (o->tls_key)
		explicit_bzero(o->tls_key, strlen(o->tls_key));
	for (size_t i = 0; i < ARRAY_SIZE(strs); i++) {
		free(*strs[i]);
		*strs[i] = NULL;
	}
	free_list(o->memsrv, o->nr_memsrv);
	free_list(o->secondary, o->nr_secondary);
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

static int push(char ***list, int *nr, const char *s, size_t len)
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

	free_list(*list, *nr);
	*list = NULL;
	*nr = 0;
	for (const char *s = text; !ret; s++) {
		const char *comma = strchrnul(s, ',');

		ret = push(list, nr, s, comma - s);
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
static int nic_check(const struct order_nic *nic, bool tap, const char **why)
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
		ret = nic_check(nic, true, &why);
	if (ret)
		snprintf(err, errlen, "'%s': %s", text, why ? why : strerror(-ret));
	return ret;
}

static void hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

/* ---- JSON ---- */

/* K_U64Z: a K_U64 left out of the JSON when it is 0 (a feature the order does not use) */
enum kind { K_STR, K_U64, K_U64Z, K_INT, K_UINT, K_TOKEN, K_SERVERS, K_BOOL_POLL };

struct field {
	const char *key;
	enum kind kind;
	size_t off, off2; /* K_TOKEN: the has_token flag (or 0); K_SERVERS: the count */
	uint64_t min, max;
};

#define F(k, kind, m)                                                                              \
	{                                                                                          \
		k, kind, offsetof(struct vnode_order, m), 0, 0, UINT64_MAX                         \
	}
#define FR(k, kind, m, lo, hi)                                                                     \
	{                                                                                          \
		k, kind, offsetof(struct vnode_order, m), 0, lo, hi                                \
	}
#define F2(k, kind, m, m2)                                                                         \
	{                                                                                          \
		k, kind, offsetof(struct vnode_order, m), offsetof(struct vnode_order, m2), 0, 0   \
	}

static const struct field fields[] = {
	F("name", K_STR, name),
	FR("cpus", K_INT, cpus, 1, ORDER_MAX_CPUS),
	FR("memory", K_U64, memory, ORDER_MIN_MEMORY, 1ULL << 46),
	FR("max_memory", K_U64Z, max_memory, 0, 1ULL << 46),
	FR("hotplug", K_U64Z, hotplug, 0, 1ULL << 46),
	F("payload", K_STR, payload),
	F("args", K_STR, args),
	F("kernel", K_STR, kernel),
	F("initrd", K_STR, initrd),
	F("cmdline", K_STR, cmdline),
	F("excache", K_U64, excache),
	FR("vnode", K_U64, vnode, 0, INT64_MAX),
	F2("token", K_TOKEN, token, has_token),
	F("slab_size", K_U64, slab_size),
	F2("memsrv", K_SERVERS, memsrv, nr_memsrv),
	F2("memsrv_secondary", K_SERVERS, secondary, nr_secondary),
	FR("epoch", K_U64, epoch, 0, INT64_MAX),
	F("control", K_STR, control),
	F("incoming", K_STR, incoming),
	F2("migrate_token", K_TOKEN, migrate_token, has_migrate_token),
	F("cpuid", K_STR, cpuid),
	F("tls_ca", K_STR, tls_ca),
	F("tls_cert", K_STR, tls_cert),
	F("tls_key", K_STR, tls_key),
	FR("disk_deadline_s", K_INT, disk_deadline_s, 1, 86400),
	FR("prefetch", K_UINT, prefetch, 1, LMP_MAX_PAGES),
	F("poll", K_BOOL_POLL, poll_spin),
	FR("spin_us", K_UINT, spin_us, 0, 100000),
};

static int token_from(const json_t *v, uint8_t *token, const char *key, char *err, size_t errlen)
{
	const char *text = json_string_value(v);

	if (!text || lmp_token_parse(text, token)) {
		snprintf(err, errlen, "order: %s must be 64 hex digits", key);
		return -EINVAL;
	}
	return 0;
}

static int read_field(struct vnode_order *o, const struct field *f, const json_t *v, char *err,
		      size_t errlen)
{
	char *base = (char *)o;

	switch (f->kind) {
	case K_STR:
		if (!json_is_string(v))
			break;
		return order_set((char **)(base + f->off), json_string_value(v));
	case K_U64:
	case K_U64Z:
	case K_INT:
	case K_UINT: {
		json_int_t n = json_integer_value(v);

		if (!json_is_integer(v) || n < 0 || (uint64_t)n < f->min || (uint64_t)n > f->max) {
			snprintf(err, errlen, "order: %s must be a whole number from %llu to %llu",
				 f->key, (unsigned long long)f->min, (unsigned long long)f->max);
			return -EINVAL;
		}
		if (f->kind == K_U64 || f->kind == K_U64Z)
			*(uint64_t *)(base + f->off) = (uint64_t)n;
		else if (f->kind == K_INT)
			*(int *)(base + f->off) = (int)n;
		else
			*(unsigned *)(base + f->off) = (unsigned)n;
		return 0;
	}
	case K_TOKEN:
		*(bool *)(base + f->off2) = true;
		return token_from(v, (uint8_t *)(base + f->off), f->key, err, errlen);
	case K_SERVERS: {
		char ***list = (char ***)(base + f->off);
		int *nr = (int *)(base + f->off2), ret;
		size_t i;
		json_t *e;

		if (!json_is_array(v))
			break;
		free_list(*list, *nr);
		*list = NULL;
		*nr = 0;
		json_array_foreach(v, i, e)
		{
			const char *s = json_string_value(e);

			ret = s ? push(list, nr, s, strlen(s)) : -EINVAL;
			if (ret) {
				snprintf(err, errlen, "order: %s: %s", f->key,
					 ret == -E2BIG
						 ? "too many slabs"
						 : "each server is a non-empty \"HOST:PORT\"");
				return ret;
			}
		}
		return 0;
	}
	case K_BOOL_POLL:
		if (!json_is_string(v) || (strcmp(json_string_value(v), "block") &&
					   strcmp(json_string_value(v), "spin"))) {
			snprintf(err, errlen, "order: poll is \"block\" or \"spin\"");
			return -EINVAL;
		}
		*(bool *)(base + f->off) = !strcmp(json_string_value(v), "spin");
		return 0;
	}
	snprintf(err, errlen, "order: %s has the wrong type", f->key);
	return -EINVAL;
}

static int read_backup(struct vnode_order *o, const json_t *b, char *err, size_t errlen)
{
	const json_t *url = json_object_get(b, "url"), *iv = json_object_get(b, "interval_ms");
	const char *key;
	json_t *v;

	if (!json_is_object(b) || !json_is_string(url) || !json_object_get(b, "token")) {
		snprintf(err, errlen,
			 "order: backup is {\"url\": \"storsrv://...\", \"token\": ...}");
		return -EINVAL;
	}
	json_object_foreach((json_t *)b, key, v)
	{
		if (strcmp(key, "url") && strcmp(key, "token") && strcmp(key, "interval_ms")) {
			snprintf(err, errlen, "order: backup: unknown key '%s'", key);
			return -EINVAL;
		}
	}
	if (iv && (!json_is_integer(iv) || json_integer_value(iv) < 100 ||
		   json_integer_value(iv) > 3600000)) {
		snprintf(err, errlen, "order: backup.interval_ms is 100 to 3600000");
		return -EINVAL;
	}
	if (iv)
		o->backup.interval_ms = (uint32_t)json_integer_value(iv);
	if (token_from(json_object_get(b, "token"), o->backup.token, "backup.token", err, errlen))
		return -EINVAL;
	o->backup.has_token = true;
	return order_set(&o->backup.url, json_string_value(url));
}

static int read_disks(struct vnode_order *o, const json_t *disks, char *err, size_t errlen)
{
	size_t i;
	json_t *d;

	if (!json_is_array(disks) || json_array_size(disks) > ORDER_MAX_DISKS) {
		snprintf(err, errlen, "order: disks is an array of at most %d", ORDER_MAX_DISKS);
		return -EINVAL;
	}
	json_array_foreach(disks, i, d)
	{
		const json_t *url = json_object_get(d, "url"), *tok = json_object_get(d, "token");
		int ret;

		if (!json_is_string(url) || json_object_size(d) != 1u + !!tok) {
			snprintf(err, errlen, "order: each disk is {\"url\": ..., \"token\": ...}");
			return -EINVAL;
		}
		ret = order_add_disk(o, json_string_value(url));
		if (ret)
			return ret;
		if (tok) {
			o->disks[o->nr_disks - 1].has_token = true;
			if (token_from(tok, o->disks[o->nr_disks - 1].token, "disk token", err,
				       errlen))
				return -EINVAL;
		}
	}
	return 0;
}

static int read_nics(struct vnode_order *o, const json_t *nics, char *err, size_t errlen)
{
	size_t i;
	json_t *d;

	if (!json_is_array(nics) || json_array_size(nics) > ORDER_MAX_NICS) {
		snprintf(err, errlen, "order: nics is an array of at most %d", ORDER_MAX_NICS);
		return -EINVAL;
	}
	json_array_foreach(nics, i, d)
	{
		struct order_nic *nic = &o->nics[o->nr_nics++];
		static const char *const keys[] = {"tap", "mac", "ip", "gateway"};
		const char *key, *why;
		json_t *v;

		json_object_foreach(d, key, v)
		{
			size_t k = 0;

			while (k < ARRAY_SIZE(keys) && strcmp(keys[k], key))
				k++;
			if (k == ARRAY_SIZE(keys) || !json_is_string(v)) {
				snprintf(err, errlen,
					 "order: a nic is {\"tap\", \"mac\", \"ip\", "
					 "\"gateway\"}, strings");
				return -EINVAL;
			}
		}
		if (!json_is_object(d) ||
		    order_set(&nic->tap, json_string_value(json_object_get(d, "tap"))) ||
		    order_set(&nic->ip, json_string_value(json_object_get(d, "ip"))) ||
		    order_set(&nic->gateway, json_string_value(json_object_get(d, "gateway")))) {
			snprintf(err, errlen, "order: a nic is a JSON object");
			return -EINVAL;
		}
		if (json_object_get(d, "mac")) {
			if (order_mac_parse(json_string_value(json_object_get(d, "mac")),
					    nic->mac)) {
				snprintf(err, errlen,
					 "order: a nic's mac is a unicast "
					 "xx:xx:xx:xx:xx:xx");
				return -EINVAL;
			}
			nic->has_mac = true;
		}
		if (nic_check(nic, false, &why)) {
			snprintf(err, errlen, "order: %s", why);
			return -EINVAL;
		}
	}
	return 0;
}

int order_from_json(struct vnode_order *o, const json_t *j, char *err, size_t errlen)
{
	const char *key;
	json_t *v;

	if (!json_is_object(j)) {
		snprintf(err, errlen, "an order is a JSON object");
		return -EINVAL;
	}
	json_object_foreach((json_t *)j, key, v)
	{
		const struct field *f = NULL;
		int ret;

		for (size_t i = 0; i < ARRAY_SIZE(fields) && !f; i++)
			if (!strcmp(fields[i].key, key))
				f = &fields[i];
		if (json_is_null(v))
			continue; /* absent */
		if (f)
			ret = read_field(o, f, v, err, errlen);
		else if (!strcmp(key, "backup"))
			ret = read_backup(o, v, err, errlen);
		else if (!strcmp(key, "disks"))
			ret = read_disks(o, v, err, errlen);
		else if (!strcmp(key, "nics"))
			ret = read_nics(o, v, err, errlen);
		else {
			snprintf(err, errlen, "order: unknown key '%s'", key);
			ret = -EINVAL;
		}
		if (ret == -ENOMEM)
			snprintf(err, errlen, "order: out of memory");
		if (ret)
			return -EINVAL;
	}
	return 0;
}

json_t *order_to_json(const struct vnode_order *o)
{
	const char *base = (const char *)o;
	json_t *j = json_object();
	char text[2 * LMP_TOKEN_LEN + 1];

	for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
		const struct field *f = &fields[i];
		json_t *v = NULL;

		switch (f->kind) {
		case K_STR: {
			const char *s = *(char *const *)(base + f->off);

			v = s ? json_string(s) : NULL;
			break;
		}
		case K_U64:
			v = json_integer((json_int_t) * (const uint64_t *)(base + f->off));
			break;
		case K_U64Z:
			if (*(const uint64_t *)(base + f->off))
				v = json_integer((json_int_t) * (const uint64_t *)(base + f->off));
			break;
		case K_INT:
			v = json_integer(*(const int *)(base + f->off));
			break;
		case K_UINT:
			v = json_integer(*(const unsigned *)(base + f->off));
			break;
		case K_TOKEN:
			if (*(const bool *)(base + f->off2)) {
				hex((const uint8_t *)(base + f->off), LMP_TOKEN_LEN, text);
				v = json_string(text);
			}
			break;
		case K_SERVERS: {
			char *const *list = *(char **const *)(base + f->off);
			int nr = *(const int *)(base + f->off2);

			if (nr) {
				v = json_array();
				for (int k = 0; k < nr; k++)
					json_array_append_new(v, json_string(list[k]));
			}
			break;
		}
		case K_BOOL_POLL:
			v = json_string(*(const bool *)(base + f->off) ? "spin" : "block");
			break;
		}
		if (v)
			json_object_set_new(j, f->key, v);
	}
	if (o->backup.url && o->backup.has_token) {
		hex(o->backup.token, LMP_TOKEN_LEN, text);
		json_object_set_new(j, "backup",
				    json_pack("{s:s,s:s,s:i}", "url", o->backup.url, "token", text,
					      "interval_ms", (int)o->backup.interval_ms));
	}
	if (o->nr_disks) {
		json_t *disks = json_array();

		for (int i = 0; i < o->nr_disks; i++) {
			json_t *d = json_pack("{s:s}", "url", o->disks[i].url);

			if (o->disks[i].has_token) {
				hex(o->disks[i].token, LMP_TOKEN_LEN, text);
				json_object_set_new(d, "token", json_string(text));
			}
			json_array_append_new(disks, d);
		}
		json_object_set_new(j, "disks", disks);
	}
	if (o->nr_nics) {
		json_t *nics = json_array();

		for (int i = 0; i < o->nr_nics; i++) {
			const struct order_nic *nic = &o->nics[i];
			json_t *d = json_object();

			if (nic->tap)
				json_object_set_new(d, "tap", json_string(nic->tap));
			if (nic->has_mac) {
				order_mac_text(nic->mac, text);
				json_object_set_new(d, "mac", json_string(text));
			}
			if (nic->ip)
				json_object_set_new(d, "ip", json_string(nic->ip));
			if (nic->gateway)
				json_object_set_new(d, "gateway", json_string(nic->gateway));
			json_array_append_new(nics, d);
		}
		json_object_set_new(j, "nics", nics);
	}
	explicit_bzero(text, sizeof(text));
	return j;
}

json_t *order_public_json(const struct vnode_order *o)
{
	json_t *j = order_to_json(o), *d;
	size_t i;

	if (json_object_get(j, "token"))
		json_object_set_new(j, "token", json_string("(secret)"));
	if (json_object_get(j, "migrate_token"))
		json_object_set_new(j, "migrate_token", json_string("(secret)"));
	if (json_object_get(j, "backup"))
		json_object_set_new(json_object_get(j, "backup"), "token", json_string("(secret)"));
	json_array_foreach(json_object_get(j, "disks"), i, d)
	{
		if (json_object_get(d, "token"))
			json_object_set_new(d, "token", json_string("(secret)"));
	}
	if (json_object_get(j, "tls_ca")) /* public, but a page of base64 */
		json_object_set_new(j, "tls_ca", json_string("(the cluster's CA)"));
	if (json_object_get(j, "tls_cert"))
		json_object_set_new(j, "tls_cert", json_string("(the VMM's certificate)"));
	if (json_object_get(j, "tls_key"))
		json_object_set_new(j, "tls_key", json_string("(secret)"));
	return j;
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
	else if (o->tls_ca && strncmp(o->tls_ca, "-----BEGIN CERTIFICATE-----", 27))
		why = "the order's tls_ca is the cluster's CA certificate, in PEM";
	else if (!o->tls_cert != !o->tls_key || (o->tls_cert && !o->tls_ca))
		why = "the order's tls_cert and tls_key go together, with tls_ca";
	else if (o->incoming && (!o->has_migrate_token || !o->excache))
		why = "--incoming goes with the order's migrate_token, for a vNode whose memory is on "
		      "memory servers (--excache, --memsrv)";
	for (int i = 0; !why && i < o->nr_nics; i++)
		nic_check(&o->nics[i], true, &why);
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
