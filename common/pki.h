/*
 * pki.h - the cluster's identity: its certificate authority, and a
 * certificate for every member (GnuTLS, ECDSA P-256).
 *
 * A cluster is its CA: the manager's host creates it once (`lego-manager
 * init`, or `legoctl up`), in a directory of mode 0700 whose keys are files
 * of mode 0600. Every member - a component, an administrator, a monitor -
 * holds a key and a certificate the CA signed, which says who it is:
 *
 *   CN = its name ("memsrv-1", "admin"), OU = its role, O = the cluster's name
 *
 * A member proves itself by the TLS handshake; what it may do follows from
 * its role (http.h's routes say which roles may call them). Certificates
 * are found by a prefix: PREFIX.pem, PREFIX.key and ca.pem beside them.
 */
#ifndef LEGO_PKI_H
#define LEGO_PKI_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* A member's role: one bit each, so that a route can allow several. */
enum pki_role {
	PKI_ADMIN = 1 << 0,   /* legoctl: everything */
	PKI_READER = 1 << 1,  /* monitoring: reads only */
	PKI_MANAGER = 1 << 2, /* lego-manager */
	PKI_AGENT = 1 << 3,   /* lego-agent */
	PKI_MEMSRV = 1 << 4,  /* lego-memsrv */
	PKI_STORSRV = 1 << 5, /* lego-storsrv */
	PKI_VMM = 1 << 6,     /* one lego-vmm: one vNode, from one epoch on (below) */
};
#define PKI_COMPONENT (PKI_AGENT | PKI_MEMSRV | PKI_STORSRV)
#define PKI_ANY	      (PKI_ADMIN | PKI_READER | PKI_MANAGER | PKI_COMPONENT)

/* role_name - "admin", ...; NULL for anything but one role. role_parse - the role, 0 if none. */
const char *pki_role_name(unsigned role);
unsigned pki_role_parse(const char *name);

/* Where a member's identity lives. */
struct pki_identity {
	char ca[PATH_MAX];   /* the cluster's CA certificate */
	char cert[PATH_MAX]; /* the member's certificate */
	char key[PATH_MAX];  /* its key (mode 0600) */
};

/*
 * pki_identity - the identity of prefix @prefix ("DIR/NAME": DIR/NAME.pem,
 * DIR/NAME.key, DIR/ca.pem). 0, or -1 with a sentence in @err if a file is
 * missing or the key is readable by others.
 */
int pki_identity(const char *prefix, struct pki_identity *id, char *err, size_t errlen);

/* pki_paths - the three paths of prefix @prefix, whether the files are there or not. */
void pki_paths(const char *prefix, struct pki_identity *id);

/* What a certificate says, once it has been verified. */
struct pki_peer {
	unsigned role;
	char name[64];
	char cluster[64];
	time_t not_after;
	/* a VMM's (PKI_VMM): its vNode, and the epoch the manager started it at */
	uint64_t vnode, epoch;
};

/* A certificate to issue. */
struct pki_cert_req {
	const char *name;
	unsigned role;
	const char *const *hosts;     /* its addresses and host names (NULL-ended; may be NULL) */
	time_t not_before, not_after; /* 0: now, and now + PKI_MEMBER_DAYS */
	uint64_t vnode, epoch;	      /* PKI_VMM: the vNode it acts for, from which epoch */
};
#define PKI_MEMBER_DAYS 365
#define PKI_CA_DAYS	3650

/*
 * pki_init - create the CA of cluster @cluster in @dir (made 0700 if
 * missing): ca.key (0600) and ca.pem. Refuses (-1, -EEXIST) if ca.key is
 * there already: a cluster's identity is never replaced by accident.
 */
int pki_init(const char *dir, const char *cluster, char *err, size_t errlen);

/*
 * pki_init_cluster - a new cluster in @dir: pki_init, then the certificates
 * of the manager (for @hosts; NULL: 127.0.0.1 and localhost), of "admin" and
 * of "reader".
 */
int pki_init_cluster(const char *dir, const char *cluster, const char *const *hosts, char *err,
		     size_t errlen);

/*
 * pki_init_etcd - etcd's own identity in @dir/etcd: a CA for etcd alone
 * (refused if one is there), the members' certificate etcd.pem (for @hosts;
 * NULL: 127.0.0.1 and localhost) and the managers' client certificate
 * manager.pem. Nothing the cluster's CA signed is trusted by etcd.
 */
int pki_init_etcd(const char *dir, const char *const *hosts, char *err, size_t errlen);

/* pki_issue - a new key and certificate for @req in @dir: NAME.key (0600), NAME.pem. */
int pki_issue(const char *dir, const struct pki_cert_req *req, char *err, size_t errlen);

/* pki_issue_pem - the same, as PEM text (malloc'd; the key to be wiped and freed). */
int pki_issue_pem(const char *dir, const struct pki_cert_req *req, char **cert, char **key,
		  char *err, size_t errlen);

/*
 * pki_sign_csr - the certificate (PEM, malloc'd into *@pem) for the public
 * key of the certificate request @csr_pem, signed by the CA in @dir. What the
 * certificate says comes from @req alone, never from the request.
 */
int pki_sign_csr(const char *dir, const char *csr_pem, const struct pki_cert_req *req, char **pem,
		 char *err, size_t errlen);

/* pki_make_csr - a new key in @key_path (0600) and a request for it (PEM, malloc'd). */
int pki_make_csr(const char *key_path, const char *name, char **csr_pem, char *err, size_t errlen);

/*
 * pki_verify - is @der (@len bytes, one DER certificate) a member of the
 * cluster whose CA is @ca_pem, valid now? 0 and what it says in @peer, or -1
 * with the reason for a person: "certificate expired on ...", "not a member
 * of this cluster (its certificate is signed by ...)", ...
 */
int pki_verify(const char *ca_pem, const void *der, size_t len, struct pki_peer *peer, char *err,
	       size_t errlen);

/* pki_fingerprint - the SHA-256 of @dir's CA certificate (DER), in hex (65 bytes). */
int pki_fingerprint(const char *ca_pem, char hex[65], char *err, size_t errlen);

/* pki_read - the whole of a (small) file, NUL-terminated, malloc'd; NULL with errno. */
char *pki_read(const char *path);

/* pki_write - write @len bytes to @path (mode @mode), atomically; -1 with errno. */
int pki_write(const char *path, const void *data, size_t len, unsigned mode);

#endif
