/*
 * members.c - who belongs to the cluster: join tokens, and the certificates
 * the manager signs for the hosts that present one.
 *
 *   POST /v1/tokens  {"role", "ttl_s"}       admin: a join token (single use)
 *   GET  /v1/ca                              anyone: the cluster's CA (public)
 *   POST /v1/join    {"token", "name", "csr", "hosts"}
 *                                            anyone with a token: a certificate
 *
 * And every VMM's credential: a certificate for exactly its vNode (by name
 * and number) from the epoch it starts at, with its key, in its order. The
 * memory and storage servers check it themselves against the CA.
 *
 * A join token is "lj1.FPR.ID.SECRET": FPR, the first 16 hex digits of the
 * CA's SHA-256, lets the new host check that the CA it fetched is this
 * cluster's before it trusts it (as kubeadm's discovery hash does); ID
 * finds the token's row; SECRET is known to the manager only as its
 * SHA-256. A token is used at most once, before it expires, for the role it
 * was made for; every refusal is logged.
 */
#include <errno.h>
#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "manager.h"
#include "util.h"

#define TOKEN_TTL_DEFAULT_S 900
#define TOKEN_TTL_MAX_S	    (7 * 86400)

static void sha256_hex(const char *text, char out[65])
{
	uint8_t md[32];

	gnutls_hash_fast(GNUTLS_DIG_SHA256, text, strlen(text), md);
	util_hex(md, sizeof(md), out);
}

int members_init(struct manager *m, const char *pki_dir, char *err, size_t errlen)
{
	char prefix[PATH_MAX], *ca;

	snprintf(m->pki, sizeof(m->pki), "%s", pki_dir);
	snprintf(prefix, sizeof(prefix), "%s/manager", pki_dir);
	if (pki_identity(prefix, &m->id, err, errlen))
		return -1;
	ca = pki_read(m->id.ca);
	if (!ca || pki_fingerprint(ca, m->ca_fpr, err, errlen)) {
		if (!ca)
			snprintf(err, errlen, "%s: %s", m->id.ca, strerror(errno));
		free(ca);
		return -1;
	}
	free(ca);
	snprintf(prefix, sizeof(prefix), "%s/ca.key", pki_dir);
	m->can_sign = access(prefix, R_OK) == 0;
	return 0;
}

int members_token_create(struct manager *m, unsigned role, long ttl_s, char *token, size_t len,
			 time_t *expires, char *err, size_t errlen)
{
	uint8_t id[8], secret[16];
	char idh[17], sh[33], hash[65];
	int rc;

	if (!m->can_sign) {
		snprintf(err, errlen,
			 "this manager holds no CA key (%s/ca.key): it cannot admit "
			 "members",
			 m->pki);
		return -EINVAL;
	}
	if (!pki_role_name(role) || !(role & PKI_COMPONENT)) {
		snprintf(err, errlen, "a join token is for a component: agent, memsrv or storsrv");
		return -EINVAL;
	}
	if (ttl_s <= 0)
		ttl_s = TOKEN_TTL_DEFAULT_S;
	if (ttl_s > TOKEN_TTL_MAX_S) {
		snprintf(err, errlen, "a join token lives at most %d s (7 days)", TOKEN_TTL_MAX_S);
		return -EINVAL;
	}
	if (getrandom(id, sizeof(id), 0) != sizeof(id) ||
	    getrandom(secret, sizeof(secret), 0) != sizeof(secret)) {
		snprintf(err, errlen, "no randomness for a token");
		return -EIO;
	}
	util_hex(id, sizeof(id), idh);
	util_hex(secret, sizeof(secret), sh);
	sha256_hex(sh, hash);
	*expires = time(NULL) + ttl_s;
	struct join_token t = {.expires = *expires};
	snprintf(t.id, sizeof(t.id), "%s", idh);
	snprintf(t.hash, sizeof(t.hash), "%s", hash);
	snprintf(t.role, sizeof(t.role), "%s", pki_role_name(role));
	pthread_mutex_lock(&m->lock);
	rc = m->store->token_add(m, &t);
	pthread_mutex_unlock(&m->lock);
	if (rc) {
		snprintf(err, errlen, "the join token could not be kept in the %s store",
			 m->store->name);
		return -EIO;
	}
	snprintf(token, len, "lj1.%.16s.%s.%s", m->ca_fpr, idh, sh);
	explicit_bzero(sh, sizeof(sh));
	explicit_bzero(secret, sizeof(secret));
	log_info("join token %s made for a %s, valid %ld s", idh, pki_role_name(role), ttl_s);
	return 0;
}

/*
 * Use @token for @role: 0 if it is good (it is then spent), or -EACCES with
 * why. Read and spent under the manager's lock, and the store spends only a
 * token not used yet: two joins racing with one token cannot both win.
 */
static int token_use(struct manager *m, const char *token, const char *role, char *err,
		     size_t errlen)
{
	char idh[17], sh[33], hash[65];
	struct join_token t = {0};
	int found, spent = 0;
	time_t now = time(NULL);

	if (sscanf(token, "lj1.%*16[0-9a-f].%16[0-9a-f].%32[0-9a-f]", idh, sh) != 2 ||
	    strlen(token) != 4 + 16 + 1 + 16 + 1 + 32) {
		snprintf(err, errlen, "not a join token (lj1.FPR.ID.SECRET)");
		return -EACCES;
	}
	sha256_hex(sh, hash);
	explicit_bzero(sh, sizeof(sh));
	pthread_mutex_lock(&m->lock);
	found = m->store->token_get(m, idh, hash, &t);
	if (!found && !t.used && t.expires > now && !strcmp(t.role, role))
		spent = m->store->token_spend(m, &t, now);
	pthread_mutex_unlock(&m->lock);
	if (found == -ENOENT)
		snprintf(err, errlen, "join token %s is not one this cluster made", idh);
	else if (found)
		snprintf(err, errlen, "join token %s cannot be checked: the store fails", idh);
	else if (t.used)
		snprintf(err, errlen, "join token %s was used already", idh);
	else if (t.expires <= now)
		snprintf(err, errlen, "join token %s expired", idh);
	else if (strcmp(t.role, role))
		snprintf(err, errlen, "join token %s is for a %s, not a %s", idh, t.role, role);
	else if (spent != 1)
		snprintf(err, errlen, "join token %s was used already", idh);
	else
		return 0;
	return -EACCES;
}

static bool good_name(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (!n || n > 63)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' ||
		      *s == '.' || *s == '_'))
			return false;
	return true;
}

int members_join(struct manager *m, json_t *req, char **cert, char *err, size_t errlen)
{
	const char *token = spec_str(req, "token"), *name = spec_str(req, "name");
	const char *role = spec_str(req, "role"), *csr = spec_str(req, "csr");
	json_t *hosts = json_object_get(req, "hosts"), *h;
	const char *hl[9] = {NULL};
	char why[256];
	size_t i;
	int r;

	if (!token || !csr || !good_name(name) || !pki_role_parse(role) ||
	    (hosts && (!json_is_array(hosts) || json_array_size(hosts) > 8))) {
		snprintf(err, errlen,
			 "a join needs token, role, name (a-z, 0-9, '-', '.', '_'; "
			 "at most 63), csr (PEM) and hosts (at most 8)");
		return -EINVAL;
	}
	json_array_foreach(hosts, i, h)
	{
		hl[i] = json_string_value(h);
		if (!host_ok(hl[i]) || !strcmp(hl[i], "0.0.0.0") || !strcmp(hl[i], "::")) {
			snprintf(err, errlen,
				 "hosts: each is an address or a host name others "
				 "reach the member at (never 0.0.0.0)");
			return -EINVAL;
		}
	}
	/* the request is checked before the token is spent: a bad one does not waste it */
	struct pki_cert_req cr = {.name = name, .role = pki_role_parse(role), .hosts = hl};
	if (pki_sign_csr(m->pki, csr, &cr, cert, why, sizeof(why))) {
		log_warn("refused a %s joining as '%s': %s", role, name, why);
		snprintf(err, errlen, "%s", why);
		return -EINVAL;
	}
	r = token_use(m, token, role, why, sizeof(why));
	if (r) {
		log_warn("refused a %s joining as '%s': %s", role, name, why);
		snprintf(err, errlen, "%s", why);
		free(*cert);
		*cert = NULL;
		return r;
	}
	log_info("%s '%s' joined the cluster", role, name);
	return 0;
}

int members_vmm_credential(struct manager *m, json_t *order, char *err, size_t errlen)
{
	const char *name = json_string_value(json_object_get(order, "name"));
	struct pki_cert_req req = {
		.name = name,
		.role = PKI_VMM,
		.vnode = (uint64_t)json_integer_value(json_object_get(order, "vnode")),
		.epoch = (uint64_t)json_integer_value(json_object_get(order, "epoch")),
	};
	char *cert, *key;

	if (!m->can_sign)
		return 0; /* a manager without the CA key: its servers speak plain TCP */
	if (pki_issue_pem(m->pki, &req, &cert, &key, err, errlen))
		return -EIO;
	json_object_set_new(order, "tls_cert", json_string(cert));
	json_object_set_new(order, "tls_key", json_string(key));
	explicit_bzero(key, strlen(key));
	free(key);
	free(cert);
	return 0;
}
