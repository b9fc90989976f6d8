/* test_pki.c - the cluster's CA, its members' certificates, and what verifying one tells. */
#include <errno.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pki.h"
#include "test.h"

/* The certificate @dir/@name.pem in DER, for pki_verify. */
static size_t der_of(const char *dir, const char *name, unsigned char *out, size_t len)
{
	char p[600], *pem;
	gnutls_x509_crt_t crt;
	gnutls_datum_t d;

	snprintf(p, sizeof(p), "%s/%s.pem", dir, name);
	pem = pki_read(p);
	ASSERT(pem, "%s", p);
	d.data = (unsigned char *)pem;
	d.size = (unsigned)strlen(pem);
	ASSERT(gnutls_x509_crt_init(&crt) == 0);
	ASSERT(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM) == 0);
	ASSERT(gnutls_x509_crt_export(crt, GNUTLS_X509_FMT_DER, out, &len) == 0);
	gnutls_x509_crt_deinit(crt);
	free(pem);
	return len;
}

static char *ca_of(const char *dir)
{
	char p[600];

	snprintf(p, sizeof(p), "%s/ca.pem", dir);
	return pki_read(p);
}

TEST(a_member_is_who_its_certificate_says)
{
	char dir[400], err[1024], *ca;
	unsigned char der[4096];
	struct pki_peer peer;
	size_t n;

	snprintf(dir, sizeof(dir), "%s/pki", test_tmpdir());
	ASSERT(pki_init_cluster(dir, "c1", NULL, err, sizeof(err)) == 0, "%s", err);
	/* a cluster's identity is never replaced by accident */
	ASSERT_EQ(pki_init(dir, "c1", err, sizeof(err)), -EEXIST);
	ASSERT_CONTAINS(err, "has its identity already");
	ca = ca_of(dir);
	n = der_of(dir, "admin", der, sizeof(der));
	ASSERT(pki_verify(ca, der, n, &peer, err, sizeof(err)) == 0, "%s", err);
	ASSERT_EQ(peer.role, PKI_ADMIN);
	ASSERT(!strcmp(peer.name, "admin") && !strcmp(peer.cluster, "c1"));
	n = der_of(dir, "manager", der, sizeof(der));
	ASSERT(pki_verify(ca, der, n, &peer, err, sizeof(err)) == 0, "%s", err);
	ASSERT_EQ(peer.role, PKI_MANAGER);
	/* garbage is not a certificate */
	memset(der, 0x30, 64);
	ASSERT(pki_verify(ca, der, 64, &peer, err, sizeof(err)) < 0);
	free(ca);
	for (unsigned r = 1; r <= PKI_STORSRV; r <<= 1)
		ASSERT_EQ(pki_role_parse(pki_role_name(r)), r);
	ASSERT_EQ(pki_role_parse("root"), 0);
	ASSERT(pki_role_name(PKI_ADMIN | PKI_READER) == NULL);
}

TEST(strangers_and_the_expired_are_refused_with_the_reason)
{
	char dir[400], other[400], err[1024], *ca;
	unsigned char der[4096];
	struct pki_peer peer;
	size_t n;

	snprintf(dir, sizeof(dir), "%s/pki", test_tmpdir());
	snprintf(other, sizeof(other), "%s/other", test_tmpdir());
	ASSERT(pki_init_cluster(dir, "mine", NULL, err, sizeof(err)) == 0, "%s", err);
	ASSERT(pki_init_cluster(other, "theirs", NULL, err, sizeof(err)) == 0, "%s", err);
	ca = ca_of(dir);
	n = der_of(other, "admin", der, sizeof(der));
	ASSERT(pki_verify(ca, der, n, &peer, err, sizeof(err)) < 0);
	ASSERT_CONTAINS(err, "not a member of this cluster ('mine')");
	ASSERT_CONTAINS(err, "signed by 'theirs'");

	struct pki_cert_req old = {.name = "old",
				   .role = PKI_AGENT,
				   .not_before = time(NULL) - 7200,
				   .not_after = time(NULL) - 60};
	ASSERT(pki_issue(dir, &old, err, sizeof(err)) == 0, "%s", err);
	n = der_of(dir, "old", der, sizeof(der));
	ASSERT(pki_verify(ca, der, n, &peer, err, sizeof(err)) < 0);
	ASSERT_CONTAINS(err, "the certificate of 'old' expired on");
	struct pki_cert_req early = {.name = "early",
				     .role = PKI_AGENT,
				     .not_before = time(NULL) + 3600,
				     .not_after = time(NULL) + 7200};
	ASSERT(pki_issue(dir, &early, err, sizeof(err)) == 0, "%s", err);
	n = der_of(dir, "early", der, sizeof(der));
	ASSERT(pki_verify(ca, der, n, &peer, err, sizeof(err)) < 0);
	ASSERT_CONTAINS(err, "is not valid before");
	/* a certificate needs one role and a name */
	struct pki_cert_req two = {.name = "x", .role = PKI_ADMIN | PKI_AGENT};
	ASSERT(pki_issue(dir, &two, err, sizeof(err)) < 0);
	free(ca);
}

TEST(a_signed_request_gets_what_the_manager_says_not_what_it_asks)
{
	char dir[400], key[500], err[1024], *csr = NULL, *pem = NULL, *ca;
	unsigned char der[4096];
	struct pki_peer peer;
	gnutls_x509_crt_t crt;
	gnutls_datum_t d;
	size_t n = sizeof(der);

	snprintf(dir, sizeof(dir), "%s/pki", test_tmpdir());
	ASSERT(pki_init_cluster(dir, "c", NULL, err, sizeof(err)) == 0, "%s", err);
	snprintf(key, sizeof(key), "%s/new.key", test_tmpdir());
	/* it asks to be "admin"; the token it joins with is for a memory server */
	ASSERT(pki_make_csr(key, "admin", &csr, err, sizeof(err)) == 0, "%s", err);
	struct stat st;
	ASSERT(stat(key, &st) == 0 && (st.st_mode & 077) == 0, "the key is mode %o", st.st_mode);
	const char *hosts[] = {"10.1.2.3", "mem3.example", NULL};
	struct pki_cert_req req = {.name = "memsrv-3", .role = PKI_MEMSRV, .hosts = hosts};
	ASSERT(pki_sign_csr(dir, csr, &req, &pem, err, sizeof(err)) == 0, "%s", err);
	d.data = (unsigned char *)pem;
	d.size = (unsigned)strlen(pem);
	ASSERT(gnutls_x509_crt_init(&crt) == 0);
	ASSERT(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM) == 0);
	ASSERT(gnutls_x509_crt_check_hostname(crt, "10.1.2.3"));
	ASSERT(gnutls_x509_crt_check_hostname(crt, "mem3.example"));
	ASSERT(!gnutls_x509_crt_check_hostname(crt, "10.1.2.4"));
	ASSERT(gnutls_x509_crt_export(crt, GNUTLS_X509_FMT_DER, der, &n) == 0);
	gnutls_x509_crt_deinit(crt);
	ca = ca_of(dir);
	ASSERT(pki_verify(ca, der, n, &peer, err, sizeof(err)) == 0, "%s", err);
	ASSERT_EQ(peer.role, PKI_MEMSRV);
	ASSERT(!strcmp(peer.name, "memsrv-3"), "%s", peer.name);
	free(pem);
	/* a request whose signature does not hold is refused */
	char *bad = strdup(csr);
	char *mid = bad + strlen(bad) / 2;
	*mid = *mid == 'A' ? 'B' : 'A';
	ASSERT(pki_sign_csr(dir, bad, &req, &pem, err, sizeof(err)) < 0);
	ASSERT(pki_sign_csr(dir, "-----BEGIN NONSENSE-----", &req, &pem, err, sizeof(err)) < 0);
	free(bad);
	free(csr);
	free(ca);
}

TEST(a_key_others_can_read_is_refused)
{
	char dir[400], prefix[500], p[520], err[1024];
	struct pki_identity id;

	snprintf(dir, sizeof(dir), "%s/pki", test_tmpdir());
	ASSERT(pki_init_cluster(dir, "c", NULL, err, sizeof(err)) == 0, "%s", err);
	snprintf(prefix, sizeof(prefix), "%s/admin", dir);
	ASSERT(pki_identity(prefix, &id, err, sizeof(err)) == 0, "%s", err);
	snprintf(p, sizeof(p), "%s.key", prefix);
	ASSERT(chmod(p, 0644) == 0);
	ASSERT(pki_identity(prefix, &id, err, sizeof(err)) < 0);
	ASSERT_CONTAINS(err, "chmod 600");
	snprintf(prefix, sizeof(prefix), "%s/nobody", dir);
	ASSERT(pki_identity(prefix, &id, err, sizeof(err)) < 0);
	ASSERT_CONTAINS(err, "nobody.pem");
}
