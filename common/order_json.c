/* order_json.c - the vNode order's one JSON form: read with every key checked, written back. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "order.h"
#include "order_int.h"
#include "util.h"

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
	F("transport", K_STR, transport),
	F("tls_ca", K_STR, tls_ca),
	F("tls_cert", K_STR, tls_cert),
	F("tls_key", K_STR, tls_key),
	FR("disk_deadline_s", K_INT, disk_deadline_s, 1, 86400),
	FR("prefetch", K_UINT, prefetch, 1, LMP_MAX_PAGES),
	F("poll", K_BOOL_POLL, poll_spin),
	FR("spin_us", K_UINT, spin_us, 0, 100000),
	F("writes", K_STR, writes),
	FR("warm", K_UINT, warm, 0, 1),
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
		order_free_list(*list, *nr);
		*list = NULL;
		*nr = 0;
		json_array_foreach(v, i, e)
		{
			const char *s = json_string_value(e);

			ret = s ? order_push(list, nr, s, strlen(s)) : -EINVAL;
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
		if (order_nic_check(nic, false, &why)) {
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
				util_hex((const uint8_t *)(base + f->off), LMP_TOKEN_LEN, text);
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
		util_hex(o->backup.token, LMP_TOKEN_LEN, text);
		json_object_set_new(j, "backup",
				    json_pack("{s:s,s:s,s:i}", "url", o->backup.url, "token", text,
					      "interval_ms", (int)o->backup.interval_ms));
	}
	if (o->nr_disks) {
		json_t *disks = json_array();

		for (int i = 0; i < o->nr_disks; i++) {
			json_t *d = json_pack("{s:s}", "url", o->disks[i].url);

			if (o->disks[i].has_token) {
				util_hex(o->disks[i].token, LMP_TOKEN_LEN, text);
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
