/* member.c - a component's identity in the cluster, and joining one with a token. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "member.h"
#include "xport.h"

int member_opt(struct member_opts *o, int c, const char *arg)
{
	switch (c) {
	case MEMBER_OPT_IDENTITY:
		o->identity = arg;
		return 1;
	case MEMBER_OPT_JOIN:
		o->join = arg;
		return 1;
	case MEMBER_OPT_ADVERTISE:
		o->advertise = arg;
		return 1;
	default:
		return 0;
	}
}

/* The host part of "HOST:PORT" or "[V6]:PORT" into @host. */
static void host_of(const char *addr, char *host, size_t len)
{
	const char *colon = strrchr(addr, ':');
	size_t n = colon ? (size_t)(colon - addr) : strlen(addr);

	if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']')
		addr++, n -= 2;
	snprintf(host, len, "%.*s", (int)n, addr);
}

static bool unspecified(const char *host)
{
	return !*host || !strcmp(host, "0.0.0.0") || !strcmp(host, "::");
}

int member_join(const char *managers, const char *token, const char *prefix, const char *role,
		const char *name, const char *const *hosts, char *err, size_t errlen)
{
	struct http_managers ms;
	const char *manager_url;
	struct pki_identity paths, id = {0}; /* (nothing to present, no CA yet) */
	char url[512], fpr[65], want[17], why[512], *ca = NULL, *csr = NULL, *text = NULL;
	char *answer = NULL;
	json_t *req = NULL, *ans = NULL, *hl = json_array();
	int status, ret = -1;

	if (sscanf(token, "lj1.%16[0-9a-f].", want) != 1) {
		snprintf(err, errlen,
			 "not a join token (lj1.FPR.ID.SECRET): make one with "
			 "'legoctl token create --role %s'",
			 role);
		goto out;
	}
	if (http_managers_parse(&ms, managers, err, errlen))
		goto out;
	manager_url = ms.url[0];
	/* 1. the cluster's CA, from anyone, believed only if it has the token's fingerprint */
	snprintf(url, sizeof(url), "%s/v1/ca", manager_url);
	status = http_call_with(&id, "GET", url, NULL, NULL, &ca, 5000, why, sizeof(why));
	if (status != 200) {
		snprintf(err, errlen, "cannot fetch the cluster's CA: %s",
			 status < 0 ? why : "the manager refused");
		goto out;
	}
	if (pki_fingerprint(ca, fpr, why, sizeof(why)) || strncmp(fpr, want, 16)) {
		snprintf(err, errlen,
			 "the CA %s presents is not the one the token names (fingerprint %.16s, "
			 "token %s): not joining",
			 manager_url, fpr, want);
		goto out;
	}
	pki_paths(prefix, &paths);
	snprintf(id.ca, sizeof(id.ca), "%s", paths.ca);
	if (pki_write(id.ca, ca, strlen(ca), 0644)) {
		snprintf(err, errlen, "%s: %s", id.ca, strerror(errno));
		goto out;
	}
	/* 2. a key of its own, and the manager's signature on it for the token */
	if (pki_make_csr(paths.key, name, &csr, err, errlen))
		goto out;
	for (const char *const *h = hosts; h && *h; h++)
		json_array_append_new(hl, json_string(*h));
	req = json_pack("{s:s,s:s,s:s,s:s,s:O}", "token", token, "role", role, "name", name, "csr",
			csr, "hosts", hl);
	text = json_dumps(req, JSON_COMPACT);
	snprintf(url, sizeof(url), "%s/v1/join", manager_url);
	status = http_call_with(&id, "POST", url, NULL, text, &answer, 10000, why, sizeof(why));
	ans = status > 0 ? json_loads(answer, 0, NULL) : NULL;
	if (status == 307 && json_string_value(json_object_get(ans, "leader"))) {
		/* a standby: the leader admits members (the CA is the same) */
		snprintf(url, sizeof(url), "%s/v1/join",
			 json_string_value(json_object_get(ans, "leader")));
		json_decref(ans);
		free(answer);
		answer = NULL;
		status = http_call_with(&id, "POST", url, NULL, text, &answer, 10000, why,
					sizeof(why));
		ans = status > 0 ? json_loads(answer, 0, NULL) : NULL;
	}
	if (status != 200 || !json_string_value(json_object_get(ans, "cert"))) {
		const char *e = json_string_value(json_object_get(ans, "error"));

		snprintf(err, errlen, "the manager refused to admit %s '%s': %s", role, name,
			 status < 0 ? why
			 : e	    ? e
				    : "no reason given");
		unlink(paths.key);
		goto out;
	}
	const char *cert = json_string_value(json_object_get(ans, "cert"));
	if (pki_write(paths.cert, cert, strlen(cert), 0644)) {
		snprintf(err, errlen, "%s: %s", paths.cert, strerror(errno));
		goto out;
	}
	log_info("joined the cluster at %s as %s '%s'", manager_url, role, name);
	ret = 0;
out:
	if (text)
		explicit_bzero(text, strlen(text));
	free(text);
	free(answer);
	free(ca);
	free(csr);
	json_decref(req);
	json_decref(ans);
	json_decref(hl);
	return ret;
}

int member_start(const struct member_opts *o, const char *role, const char *listen, char *addr,
		 size_t addrlen, struct pki_identity *id, char *err, size_t errlen)
{
	char host[256], cert[PATH_MAX];

	snprintf(addr, addrlen, "%s", o->advertise ? o->advertise : listen);
	host_of(addr, host, sizeof(host));
	if (unspecified(host) || !strchr(addr, ':')) {
		snprintf(err, errlen,
			 "%s is not an address others can reach: give --advertise HOST:PORT", addr);
		return -1;
	}
	if (!o->identity) {
		snprintf(err, errlen,
			 "--manager needs --identity PREFIX: a member's certificate "
			 "(legoctl up makes one; a new host joins with --join FILE)");
		return -1;
	}
	snprintf(cert, sizeof(cert), "%s.pem", o->identity);
	if (o->join && access(cert, F_OK)) {
		const char *base = strrchr(o->identity, '/');
		const char *hosts[] = {host, NULL};
		char *token = pki_read(o->join);
		int r;

		if (!token) {
			snprintf(err, errlen, "--join %s: %s", o->join, strerror(errno));
			return -1;
		}
		token[strcspn(token, " \r\n")] = '\0';
		r = member_join(o->manager, token, o->identity, role, base ? base + 1 : o->identity,
				hosts, err, errlen);
		explicit_bzero(token, strlen(token));
		free(token);
		if (r)
			return -1;
	}
	if (pki_identity(o->identity, id, err, errlen))
		return -1;
	http_identity(id);
	/* its own calls on the data path (a memory server's backups) are TLS as well */
	return xport_tls_files(id, err, errlen);
}
