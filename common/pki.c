/* pki.c - the cluster's CA and its members' certificates, with GnuTLS. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pki.h"
#include "util.h"

static const char *const roles[] = {"admin",  "reader",	 "manager", "agent",
				    "memsrv", "storsrv", "vmm"};

const char *pki_role_name(unsigned role)
{
	for (unsigned i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
		if (role == 1u << i)
			return roles[i];
	return NULL;
}

unsigned pki_role_parse(const char *name)
{
	for (unsigned i = 0; name && i < sizeof(roles) / sizeof(roles[0]); i++)
		if (!strcmp(name, roles[i]))
			return 1u << i;
	return 0;
}

char *pki_read(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (!f)
		return NULL;
	do {
		if (len + 4096 + 1 > cap) {
			char *nb = realloc(buf, cap = cap ? 2 * cap : 8192);

			if (!nb || cap > (1u << 20)) {
				free(nb ? nb : buf);
				fclose(f);
				errno = nb ? EFBIG : ENOMEM;
				return NULL;
			}
			buf = nb;
		}
		n = fread(buf + len, 1, 4096, f);
		len += n;
	} while (n);
	fclose(f);
	buf[len] = '\0';
	return buf;
}

int pki_write(const char *path, const void *data, size_t len, unsigned mode)
{
	char tmp[PATH_MAX + 8];
	int fd, e;

	snprintf(tmp, sizeof(tmp), "%s.new", path);
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return -1;
	if (fchmod(fd, mode) || write(fd, data, len) != (ssize_t)len || fsync(fd)) {
		e = errno ? errno : EIO;
		close(fd);
		unlink(tmp);
		errno = e;
		return -1;
	}
	close(fd);
	if (rename(tmp, path)) {
		e = errno;
		unlink(tmp);
		errno = e;
		return -1;
	}
	return 0;
}

void pki_paths(const char *prefix, struct pki_identity *id)
{
	const char *slash = strrchr(prefix, '/');
	int dirlen = slash ? (int)(slash - prefix) : 1;

	snprintf(id->ca, sizeof(id->ca), "%.*s/ca.pem", dirlen, slash ? prefix : ".");
	snprintf(id->cert, sizeof(id->cert), "%s.pem", prefix);
	snprintf(id->key, sizeof(id->key), "%s.key", prefix);
}

int pki_identity(const char *prefix, struct pki_identity *id, char *err, size_t errlen)
{
	struct stat st;

	pki_paths(prefix, id);
	for (const char *p = id->ca; p; p = p == id->ca ? id->cert : p == id->cert ? id->key : NULL)
		if (access(p, R_OK)) {
			snprintf(
				err, errlen,
				"%s: %s (a member's identity is PREFIX.pem, PREFIX.key and ca.pem "
				"beside them: legoctl up makes them, a new host joins with a token)",
				p, strerror(errno));
			return -1;
		}
	if (stat(id->key, &st) == 0 && (st.st_mode & 077)) {
		snprintf(err, errlen,
			 "%s: a key others can read (mode %04o) is no secret: chmod 600", id->key,
			 (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

#define TRY(call, what)                                                                            \
	do {                                                                                       \
		int r_ = (call);                                                                   \
		if (r_ < 0) {                                                                      \
			snprintf(err, errlen, "%s: %s", what, gnutls_strerror(r_));                \
			goto out;                                                                  \
		}                                                                                  \
	} while (0)

/* write_file - @text into @path (mode @mode), atomically; -1 with why in @err. */
static int write_file(const char *path, const char *text, unsigned mode, char *err, size_t errlen)
{
	if (pki_write(path, text, strlen(text), mode)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* crt_from_pem - a certificate from PEM text: 0, or GnuTLS's error. */
static int crt_from_pem(const char *pem, gnutls_x509_crt_t *crt)
{
	gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
	int r = gnutls_x509_crt_init(crt);

	if (r >= 0 && (r = gnutls_x509_crt_import(*crt, &d, GNUTLS_X509_FMT_PEM)) < 0) {
		gnutls_x509_crt_deinit(*crt);
		*crt = NULL;
	}
	return r;
}

/* key_pem - @key as PEM text (malloc'd; a secret: wipe it before freeing). */
static int key_pem(gnutls_x509_privkey_t key, char **pem)
{
	gnutls_datum_t d = {0};
	int r = gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &d);

	if (r >= 0) {
		*pem = strndup((const char *)d.data, d.size);
		r = *pem ? 0 : GNUTLS_E_MEMORY_ERROR;
		gnutls_memset(d.data, 0, d.size);
		gnutls_free(d.data);
	}
	return r;
}

static void free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static int new_key(gnutls_x509_privkey_t *key, char *err, size_t errlen)
{
	int r = gnutls_x509_privkey_init(key);

	if (r >= 0)
		r = gnutls_x509_privkey_generate(
			*key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
	if (r < 0)
		snprintf(err, errlen, "cannot make a key: %s", gnutls_strerror(r));
	return r < 0 ? -1 : 0;
}

/* The fields every certificate has: version, serial, validity, subject. */
static int fill_cert(gnutls_x509_crt_t crt, const char *name, const char *role, const char *cluster,
		     time_t not_before, time_t not_after, char *err, size_t errlen)
{
	unsigned char serial[16];
	int ret = -1;

	TRY(gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial)), "random");
	serial[0] &= 0x7f; /* a positive number */
	TRY(gnutls_x509_crt_set_version(crt, 3), "certificate version");
	TRY(gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)), "serial");
	TRY(gnutls_x509_crt_set_activation_time(crt, not_before), "activation time");
	TRY(gnutls_x509_crt_set_expiration_time(crt, not_after), "expiration time");
	TRY(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, name,
					  (unsigned)strlen(name)),
	    "common name");
	TRY(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_ORGANIZATIONAL_UNIT_NAME, 0, role,
					  (unsigned)strlen(role)),
	    "role");
	TRY(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_ORGANIZATION_NAME, 0, cluster,
					  (unsigned)strlen(cluster)),
	    "cluster name");
	ret = 0;
out:
	return ret;
}

int pki_init(const char *dir, const char *cluster, char *err, size_t errlen)
{
	gnutls_x509_privkey_t key = NULL;
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t d = {0};
	char path[PATH_MAX + 16], *kp = NULL;
	unsigned char kid[64];
	size_t kid_len = sizeof(kid);
	time_t now = time(NULL);
	int ret = -1;

	if (mkdir(dir, 0700) && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	chmod(dir, 0700);
	snprintf(path, sizeof(path), "%s/ca.key", dir);
	if (!access(path, F_OK)) {
		snprintf(err, errlen, "%s exists: this cluster has its identity already", path);
		return -EEXIST;
	}
	if (new_key(&key, err, errlen))
		return -1;
	TRY(gnutls_x509_crt_init(&crt), "certificate");
	if (fill_cert(crt, cluster, "ca", cluster, now - 300, now + PKI_CA_DAYS * 86400L, err,
		      errlen))
		goto out;
	TRY(gnutls_x509_crt_set_key(crt, key), "CA key");
	TRY(gnutls_x509_crt_set_basic_constraints(crt, 1, 0), "CA constraints");
	TRY(gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN |
						       GNUTLS_KEY_DIGITAL_SIGNATURE),
	    "CA key usage");
	TRY(gnutls_x509_crt_get_key_id(crt, 0, kid, &kid_len), "key id");
	TRY(gnutls_x509_crt_set_subject_key_id(crt, kid, kid_len), "key id");
	TRY(gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0), "signing the CA");
	TRY(key_pem(key, &kp), "exporting the CA key");
	if (write_file(path, kp, 0600, err, errlen))
		goto out;
	TRY(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d), "exporting the CA");
	snprintf(path, sizeof(path), "%s/ca.pem", dir);
	ret = pki_write(path, d.data, d.size, 0644);
	if (ret)
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
out:
	free_secret(kp);
	gnutls_free(d.data);
	if (crt)
		gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
	return ret;
}

/* Sign @pub as @req says, with the CA in @dir; the certificate in PEM into *@pem. */
static int sign_pubkey(const char *dir, gnutls_pubkey_t pub, const struct pki_cert_req *req,
		       char **pem, char *err, size_t errlen)
{
	gnutls_x509_privkey_t cakey = NULL;
	gnutls_x509_crt_t ca = NULL, crt = NULL;
	gnutls_datum_t kd = {0}, out = {0};
	char path[PATH_MAX + 16], cluster[64] = "", *ca_pem = NULL;
	size_t cluster_len = sizeof(cluster) - 1;
	unsigned char kid[64];
	size_t kid_len = sizeof(kid);
	const char *role = pki_role_name(req->role);
	time_t now = time(NULL);
	int ret = -1;

	if (!role || !req->name || !*req->name || strlen(req->name) >= 64) {
		snprintf(err, errlen, "a certificate needs one role and a name of 1 to 63 bytes");
		return -1;
	}
	snprintf(path, sizeof(path), "%s/ca.key", dir);
	kd.data = (unsigned char *)pki_read(path);
	if (kd.data) {
		kd.size = (unsigned)strlen((char *)kd.data);
		snprintf(path, sizeof(path), "%s/ca.pem", dir);
		ca_pem = pki_read(path);
	}
	if (!kd.data || !ca_pem) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	TRY(gnutls_x509_privkey_init(&cakey), "CA key");
	TRY(gnutls_x509_privkey_import(cakey, &kd, GNUTLS_X509_FMT_PEM), "reading the CA key");
	TRY(crt_from_pem(ca_pem, &ca), "reading the CA");
	TRY(gnutls_x509_crt_get_dn_by_oid(ca, GNUTLS_OID_X520_ORGANIZATION_NAME, 0, 0, cluster,
					  &cluster_len),
	    "the CA's cluster name");
	TRY(gnutls_x509_crt_init(&crt), "certificate");
	if (fill_cert(crt, req->name, role, cluster, req->not_before ? req->not_before : now - 300,
		      req->not_after ? req->not_after : now + PKI_MEMBER_DAYS * 86400L, err,
		      errlen))
		goto out;
	if (req->role == PKI_VMM) { /* which vNode, from which epoch: "VNODE.EPOCH" */
		char uid[48];

		snprintf(uid, sizeof(uid), "%llu.%llu", (unsigned long long)req->vnode,
			 (unsigned long long)req->epoch);
		TRY(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_LDAP_UID, 0, uid,
						  (unsigned)strlen(uid)),
		    "the VMM's vNode");
	}
	TRY(gnutls_x509_crt_set_pubkey(crt, pub), "the member's key");
	TRY(gnutls_x509_crt_set_basic_constraints(crt, 0, -1), "constraints");
	TRY(gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE), "key usage");
	TRY(gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0), "purpose");
	TRY(gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT, 0), "purpose");
	for (const char *const *h = req->hosts; h && *h; h++) {
		unsigned char ip[16];

		if (inet_pton(AF_INET, *h, ip) == 1)
			TRY(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, 4,
								 GNUTLS_FSAN_APPEND),
			    "address");
		else if (inet_pton(AF_INET6, *h, ip) == 1)
			TRY(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, 16,
								 GNUTLS_FSAN_APPEND),
			    "address");
		else
			TRY(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, *h,
								 (unsigned)strlen(*h),
								 GNUTLS_FSAN_APPEND),
			    "host name");
	}
	TRY(gnutls_x509_crt_get_key_id(ca, 0, kid, &kid_len), "the CA's key id");
	TRY(gnutls_x509_crt_set_authority_key_id(crt, kid, kid_len), "authority key id");
	TRY(gnutls_x509_crt_sign2(crt, ca, cakey, GNUTLS_DIG_SHA256, 0), "signing");
	TRY(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &out), "exporting");
	*pem = strndup((const char *)out.data, out.size);
	ret = *pem ? 0 : -1;
out:
	gnutls_free(out.data);
	free_secret((char *)kd.data);
	free(ca_pem);
	if (crt)
		gnutls_x509_crt_deinit(crt);
	if (ca)
		gnutls_x509_crt_deinit(ca);
	if (cakey)
		gnutls_x509_privkey_deinit(cakey);
	return ret;
}

int pki_issue_pem(const char *dir, const struct pki_cert_req *req, char **cert, char **keyp,
		  char *err, size_t errlen)
{
	gnutls_x509_privkey_t key = NULL;
	gnutls_pubkey_t pub = NULL;
	int ret = -1;

	*cert = *keyp = NULL;
	if (new_key(&key, err, errlen))
		return -1;
	TRY(gnutls_pubkey_init(&pub), "key");
	{
		gnutls_privkey_t pk;
		int r;

		TRY(gnutls_privkey_init(&pk), "key");
		r = gnutls_privkey_import_x509(pk, key, 0);
		if (r >= 0)
			r = gnutls_pubkey_import_privkey(pub, pk, 0, 0);
		gnutls_privkey_deinit(pk);
		TRY(r, "the member's public key");
	}
	if (sign_pubkey(dir, pub, req, cert, err, errlen))
		goto out;
	TRY(key_pem(key, keyp), "exporting the key");
	ret = 0;
out:
	if (ret) {
		free(*cert);
		*cert = NULL;
	}
	if (pub)
		gnutls_pubkey_deinit(pub);
	gnutls_x509_privkey_deinit(key);
	return ret;
}

int pki_issue(const char *dir, const struct pki_cert_req *req, char *err, size_t errlen)
{
	char path[PATH_MAX + 80], *cert, *key;
	int ret;

	if (pki_issue_pem(dir, req, &cert, &key, err, errlen))
		return -1;
	snprintf(path, sizeof(path), "%s/%s.key", dir, req->name);
	ret = write_file(path, key, 0600, err, errlen);
	snprintf(path, sizeof(path), "%s/%s.pem", dir, req->name);
	if (!ret)
		ret = write_file(path, cert, 0644, err, errlen);
	free_secret(key);
	free(cert);
	return ret;
}

int pki_sign_csr(const char *dir, const char *csr_pem, const struct pki_cert_req *req, char **pem,
		 char *err, size_t errlen)
{
	gnutls_x509_crq_t crq = NULL;
	gnutls_pubkey_t pub = NULL;
	gnutls_datum_t d = {(unsigned char *)csr_pem, (unsigned)strlen(csr_pem)};
	int ret = -1;

	TRY(gnutls_x509_crq_init(&crq), "request");
	TRY(gnutls_x509_crq_import(crq, &d, GNUTLS_X509_FMT_PEM), "not a certificate request");
	/* the request is signed by its own key: whoever sent it holds that key */
	TRY(gnutls_x509_crq_verify(crq, 0), "the certificate request's signature");
	TRY(gnutls_pubkey_init(&pub), "key");
	TRY(gnutls_pubkey_import_x509_crq(pub, crq, 0), "the request's key");
	ret = sign_pubkey(dir, pub, req, pem, err, errlen);
out:
	if (pub)
		gnutls_pubkey_deinit(pub);
	if (crq)
		gnutls_x509_crq_deinit(crq);
	return ret;
}

int pki_make_csr(const char *key_path, const char *name, char **csr_pem, char *err, size_t errlen)
{
	gnutls_x509_privkey_t key = NULL;
	gnutls_x509_crq_t crq = NULL;
	gnutls_datum_t d = {0};
	char *kp = NULL;
	int ret = -1;

	if (new_key(&key, err, errlen))
		return -1;
	TRY(gnutls_x509_crq_init(&crq), "request");
	TRY(gnutls_x509_crq_set_version(crq, 1), "request");
	TRY(gnutls_x509_crq_set_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 0, name,
					  (unsigned)strlen(name)),
	    "request name");
	TRY(gnutls_x509_crq_set_key(crq, key), "request key");
	TRY(gnutls_x509_crq_sign2(crq, key, GNUTLS_DIG_SHA256, 0), "signing the request");
	TRY(key_pem(key, &kp), "exporting the key");
	if (write_file(key_path, kp, 0600, err, errlen))
		goto out;
	TRY(gnutls_x509_crq_export2(crq, GNUTLS_X509_FMT_PEM, &d), "exporting the request");
	*csr_pem = strndup((const char *)d.data, d.size);
	ret = *csr_pem ? 0 : -1;
out:
	free_secret(kp);
	gnutls_free(d.data);
	if (crq)
		gnutls_x509_crq_deinit(crq);
	gnutls_x509_privkey_deinit(key);
	return ret;
}

static void get_dn(gnutls_x509_crt_t crt, const char *oid, char *buf, size_t len)
{
	size_t n = len - 1;

	if (gnutls_x509_crt_get_dn_by_oid(crt, oid, 0, 0, buf, &n) < 0)
		n = 0;
	buf[n] = '\0';
}

int pki_verify(const char *ca_pem, const void *der, size_t len, struct pki_peer *peer, char *err,
	       size_t errlen)
{
	gnutls_x509_crt_t ca = NULL, crt = NULL;
	gnutls_datum_t d = {(unsigned char *)der, (unsigned)len};
	char role[32], when[64], issuer[128], mine[64];
	unsigned status = 0;
	time_t t;
	int ret = -1;

	memset(peer, 0, sizeof(*peer));
	TRY(crt_from_pem(ca_pem, &ca), "the cluster's CA");
	TRY(gnutls_x509_crt_init(&crt), "certificate");
	TRY(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER), "the peer's certificate");
	TRY(gnutls_x509_crt_verify(crt, &ca, 1, 0, &status), "verifying the peer's certificate");
	get_dn(crt, GNUTLS_OID_X520_COMMON_NAME, peer->name, sizeof(peer->name));
	get_dn(crt, GNUTLS_OID_X520_ORGANIZATIONAL_UNIT_NAME, role, sizeof(role));
	get_dn(crt, GNUTLS_OID_X520_ORGANIZATION_NAME, peer->cluster, sizeof(peer->cluster));
	get_dn(ca, GNUTLS_OID_X520_ORGANIZATION_NAME, mine, sizeof(mine));
	peer->not_after = gnutls_x509_crt_get_expiration_time(crt);
	if (status & (GNUTLS_CERT_SIGNER_NOT_FOUND | GNUTLS_CERT_SIGNER_NOT_CA)) {
		size_t n = sizeof(issuer) - 1;

		if (gnutls_x509_crt_get_issuer_dn_by_oid(crt, GNUTLS_OID_X520_ORGANIZATION_NAME, 0,
							 0, issuer, &n) < 0)
			n = 0;
		issuer[n] = '\0';
		snprintf(err, errlen,
			 "'%s' is not a member of this cluster ('%s'): its certificate is signed "
			 "by '%s'",
			 peer->name, mine, issuer);
		goto out;
	}
	if (status & (GNUTLS_CERT_EXPIRED | GNUTLS_CERT_NOT_ACTIVATED)) {
		t = status & GNUTLS_CERT_EXPIRED ? peer->not_after
						 : gnutls_x509_crt_get_activation_time(crt);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime(&t));
		snprintf(err, errlen, "the certificate of '%s' %s %s", peer->name,
			 status & GNUTLS_CERT_EXPIRED ? "expired on" : "is not valid before", when);
		goto out;
	}
	if (status) {
		gnutls_datum_t why = {0};

		gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why, 0);
		snprintf(err, errlen, "the certificate of '%s' is not valid: %s", peer->name,
			 why.data ? (char *)why.data : "unknown reason");
		gnutls_free(why.data);
		goto out;
	}
	peer->role = pki_role_parse(role);
	if (peer->role == PKI_VMM) {
		char uid[48], *dot;

		get_dn(crt, GNUTLS_OID_LDAP_UID, uid, sizeof(uid));
		dot = strchr(uid, '.');
		if (!dot || sscanf(uid, "%" SCNu64, &peer->vnode) != 1 ||
		    sscanf(dot + 1, "%" SCNu64, &peer->epoch) != 1) {
			snprintf(err, errlen, "the VMM certificate '%s' names no vNode",
				 peer->name);
			goto out;
		}
	}
	if (!peer->role) {
		snprintf(err, errlen, "the certificate of '%s' names no role lego knows ('%s')",
			 peer->name, role);
		goto out;
	}
	ret = 0;
out:
	if (crt)
		gnutls_x509_crt_deinit(crt);
	if (ca)
		gnutls_x509_crt_deinit(ca);
	return ret;
}

int pki_fingerprint(const char *ca_pem, char hex[65], char *err, size_t errlen)
{
	gnutls_x509_crt_t ca = NULL;
	unsigned char md[32];
	size_t n = sizeof(md);
	int ret = -1;

	TRY(crt_from_pem(ca_pem, &ca), "the cluster's CA");
	TRY(gnutls_x509_crt_get_fingerprint(ca, GNUTLS_DIG_SHA256, md, &n), "fingerprint");
	util_hex(md, sizeof(md), hex);
	ret = 0;
out:
	if (ca)
		gnutls_x509_crt_deinit(ca);
	return ret;
}

int pki_init_cluster(const char *dir, const char *cluster, const char *const *hosts, char *err,
		     size_t errlen)
{
	static const char *const local[] = {"127.0.0.1", "localhost", NULL};
	const struct pki_cert_req reqs[] = {
		{.name = "manager", .role = PKI_MANAGER, .hosts = hosts ? hosts : local},
		{.name = "admin", .role = PKI_ADMIN},
		{.name = "reader", .role = PKI_READER},
	};
	int r = pki_init(dir, cluster, err, errlen);

	for (size_t i = 0; !r && i < sizeof(reqs) / sizeof(reqs[0]); i++)
		r = pki_issue(dir, &reqs[i], err, errlen);
	return r;
}

int pki_init_etcd(const char *dir, const char *const *hosts, char *err, size_t errlen)
{
	static const char *const local[] = {"127.0.0.1", "localhost", NULL};
	const struct pki_cert_req reqs[] = {
		{.name = "etcd", .role = PKI_MANAGER, .hosts = hosts ? hosts : local},
		{.name = "manager", .role = PKI_MANAGER},
	};
	char edir[PATH_MAX];
	int r;

	snprintf(edir, sizeof(edir), "%s/etcd", dir);
	r = pki_init(edir, "lego-etcd", err, errlen);
	for (size_t i = 0; !r && i < sizeof(reqs) / sizeof(reqs[0]); i++)
		r = pki_issue(edir, &reqs[i], err, errlen);
	return r;
}
