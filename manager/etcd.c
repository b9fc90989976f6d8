/* etcd.c - etcd v3 through its JSON gateway (etcd.h). */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd.h"
#include "log.h"
#include "util.h"

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

json_t *etcd_b64(const void *data, size_t len)
{
	const uint8_t *p = data;
	char *out = malloc(4 * ((len + 2) / 3) + 1), *o = out;
	json_t *j;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0) |
			     (i + 2 < len ? p[i + 2] : 0);

		*o++ = b64chars[v >> 18 & 63];
		*o++ = b64chars[v >> 12 & 63];
		*o++ = i + 1 < len ? b64chars[v >> 6 & 63] : '=';
		*o++ = i + 2 < len ? b64chars[v & 63] : '=';
	}
	*o = '\0';
	j = json_string(out);
	free(out);
	return j;
}

char *etcd_unb64(const json_t *s, size_t *len)
{
	const char *in = json_string_value(s);
	size_t n = in ? strlen(in) : 0, k = 0;
	uint32_t acc = 0;
	int bits = 0;
	char *out;

	if (!in || !(out = malloc(n / 4 * 3 + 4)))
		return NULL;
	for (size_t i = 0; i < n && in[i] != '='; i++) {
		const char *c = strchr(b64chars, in[i]);

		if (!c || !in[i]) {
			free(out);
			return NULL;
		}
		acc = acc << 6 | (uint32_t)(c - b64chars);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[k++] = (char)(acc >> bits & 0xff);
		}
	}
	out[k] = '\0';
	if (len)
		*len = k;
	return out;
}

json_t *etcd_key(const struct etcd *e, const char *name)
{
	char key[512];

	snprintf(key, sizeof(key), "%s%s", e->prefix, name);
	return etcd_b64(key, strlen(key));
}

json_t *etcd_key_end(const struct etcd *e, const char *name)
{
	char key[512];
	size_t n;

	/* every key with this prefix is below the prefix with its last byte + 1 */
	n = (size_t)snprintf(key, sizeof(key), "%s%s", e->prefix, name);
	key[n - 1]++;
	return etcd_b64(key, n);
}

int64_t etcd_num(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (json_is_integer(v))
		return json_integer_value(v);
	return json_is_string(v) ? strtoll(json_string_value(v), NULL, 10) : 0;
}

char *etcd_name(const struct etcd *e, const json_t *kv, const char *sub)
{
	char *key = etcd_unb64(json_object_get(kv, "key"), NULL), *name = NULL;
	size_t p = strlen(e->prefix), s = strlen(sub);

	if (key && !strncmp(key, e->prefix, p) && !strncmp(key + p, sub, s))
		name = strdup(key + p + s);
	free(key);
	return name;
}

static void handle_free(void *c)
{
	curl_easy_cleanup(c);
}

int etcd_open(struct etcd *e, const char *spec, const struct pki_identity *id, char *err,
	      size_t errlen)
{
	const char *p;

	memset(e, 0, sizeof(*e));
	if (strncmp(spec, "etcd://", 7) || !spec[7]) {
		snprintf(err, errlen, "'%s' is not etcd://HOST:PORT[,HOST:PORT...]", spec);
		return -EINVAL;
	}
	for (p = spec + 7; *p;) {
		size_t n = strcspn(p, ",");

		if (!n || n > 100 || !memchr(p, ':', n)) {
			snprintf(err, errlen, "'%s': '%.*s' is not HOST:PORT", spec, (int)n, p);
			return -EINVAL;
		}
		if (e->nr_endpoints == ETCD_MAX_ENDPOINTS) {
			snprintf(err, errlen, "'%s': at most %d etcd endpoints", spec,
				 ETCD_MAX_ENDPOINTS);
			return -EINVAL;
		}
		snprintf(e->endpoints[e->nr_endpoints++], sizeof(e->endpoints[0]), "https://%.*s",
			 (int)n, p);
		p += n + (p[n] == ',');
	}
	e->id = *id;
	snprintf(e->prefix, sizeof(e->prefix), "/lego/");
	e->timeout_ms = 3000;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (pthread_key_create(&e->handle, handle_free)) {
		snprintf(err, errlen, "no thread key for etcd's connections");
		return -EINVAL;
	}
	return 0;
}

void etcd_close(struct etcd *e)
{
	CURL *c = e->nr_endpoints ? pthread_getspecific(e->handle) : NULL;

	if (c) {
		curl_easy_cleanup(c);
		pthread_setspecific(e->handle, NULL);
	}
	if (e->nr_endpoints)
		pthread_key_delete(e->handle);
	e->nr_endpoints = 0;
}

struct buf {
	char *p;
	size_t n;
};

static size_t on_data(char *ptr, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;
	char *p = realloc(b->p, b->n + size * n + 1);

	if (!p)
		return 0;
	memcpy(p + b->n, ptr, size * n);
	b->n += size * n;
	p[b->n] = '\0';
	b->p = p;
	return size * n;
}

/* One POST to one endpoint: the HTTP status, or -1 if it could not be reached. */
static long post(struct etcd *e, int ep, const char *path, const char *body, struct buf *b,
		 char *why)
{
	CURL *c = pthread_getspecific(e->handle);
	struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	char url[256];
	long status = -1;

	if (c)
		curl_easy_reset(c);
	else if ((c = curl_easy_init()))
		pthread_setspecific(e->handle, c);
	if (!c || !hdrs) {
		curl_slist_free_all(hdrs);
		snprintf(why, CURL_ERROR_SIZE, "out of memory");
		return -1;
	}
	snprintf(url, sizeof(url), "%s/v3/%s", e->endpoints[ep], path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)e->timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CAINFO, e->id.ca);
	curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_SSLCERT, e->id.cert);
	curl_easy_setopt(c, CURLOPT_SSLKEY, e->id.key);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, why);
	why[0] = '\0';
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdrs);
	return status;
}

int etcd_call(struct etcd *e, const char *path, json_t *req, json_t **resp, char *err,
	      size_t errlen)
{
	char *body = json_dumps(req, JSON_COMPACT), why[CURL_ERROR_SIZE];
	int first = __atomic_load_n(&e->current, __ATOMIC_RELAXED);

	*resp = NULL;
	if (!body) {
		snprintf(err, errlen, "etcd %s: out of memory", path);
		return -ENOMEM;
	}
	for (int k = 0; k < e->nr_endpoints; k++) {
		int ep = (first + k) % e->nr_endpoints;
		struct buf b = {0};
		long status = post(e, ep, path, body, &b, why);
		json_t *j;

		if (status < 0 || status == 503) { /* down, or a member without a quorum */
			snprintf(err, errlen, "etcd %s: %s", e->endpoints[ep],
				 status < 0 ? why : "unavailable");
			free(b.p);
			continue;
		}
		__atomic_store_n(&e->current, ep, __ATOMIC_RELAXED);
		free(body);
		j = b.p ? json_loads(b.p, 0, NULL) : NULL;
		if (status != 200 || !j) {
			const char *m = json_string_value(json_object_get(j, "error"));

			snprintf(err, errlen, "etcd %s: %s", path, m ? m : b.p ? b.p : "no answer");
			free(b.p);
			json_decref(j);
			return -EREMOTEIO;
		}
		free(b.p);
		*resp = j;
		return 0;
	}
	free(body);
	return -EHOSTUNREACH;
}
