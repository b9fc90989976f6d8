/*
 * srv_tls.c - TLS for the server loop (srv.h, srv_int.h): a GnuTLS session
 * per connection whose transport is the connection's buffers, the handshake
 * and the client's certificate, decryption into the request buffer and
 * encryption of what is queued to send.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "srv_int.h"

/* The session's transport: ciphertext from crx, to ctx (never blocking). */
static ssize_t tls_pull(gnutls_transport_ptr_t p, void *data, size_t len)
{
	struct srv_conn *c = p;
	size_t n = c->crx_len - c->crx_off;

	if (!n) {
		gnutls_transport_set_errno(c->tls, EAGAIN);
		return -1;
	}
	n = n < len ? n : len;
	memcpy(data, c->crx + c->crx_off, n);
	c->crx_off += n;
	return (ssize_t)n;
}

static ssize_t tls_push(gnutls_transport_ptr_t p, const void *data, size_t len)
{
	struct srv_conn *c = p;

	if (len > CTX_CAP - c->ctx_len) { /* cannot happen: room is checked before a send */
		gnutls_transport_set_errno(c->tls, ENOBUFS);
		return -1;
	}
	memcpy(c->ctx + c->ctx_len, data, len);
	c->ctx_len += len;
	return (ssize_t)len;
}

void srv_tls_session(struct srv_conn *c)
{
	gnutls_set_default_priority(c->tls);
	gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, c->srv->tls);
	gnutls_certificate_server_set_request(c->tls, GNUTLS_CERT_REQUEST);
	gnutls_transport_set_ptr(c->tls, c);
	gnutls_transport_set_pull_function(c->tls, tls_pull);
	gnutls_transport_set_push_function(c->tls, tls_push);
}

void srv_tls_encrypt(struct srv_conn *c)
{
	size_t off = 0; /* encrypted so far: tx is moved down once, after the loop */

	while (c->handshaken && off < c->tx_len && CTX_CAP - c->ctx_len >= TLS_ROOM) {
		size_t left = c->tx_len - off;
		ssize_t n = gnutls_record_send(c->tls, c->tx + off,
					       left < TLS_CHUNK ? left : TLS_CHUNK);

		if (n <= 0) {
			log_warn("TLS: cannot encrypt a response: %s", gnutls_strerror((int)n));
			c->hangup = true;
			off = c->tx_len;
			break;
		}
		off += (size_t)n;
	}
	if (off) {
		memmove(c->tx, c->tx + off, c->tx_len - off);
		c->tx_len -= off;
	}
}

/* The client's certificate, if it presented one: a member of this cluster, or refused. */
static int tls_check_peer(struct srv_conn *c)
{
	const gnutls_datum_t *certs;
	unsigned n = 0;
	char why[512];

	certs = gnutls_certificate_get_peers(c->tls, &n);
	if (!n)
		return 0; /* a VMM: it proves itself with a credential */
	if (pki_verify(c->srv->tls_ca, certs[0].data, certs[0].size, &c->peer, why, sizeof(why))) {
		log_warn("refused a TLS client: %s", why);
		memset(&c->peer, 0, sizeof(c->peer));
		return -1;
	}
	return 0;
}

/*
 * Ciphertext arrived, or room did: finish the handshake, then decrypt into
 * rx and serve, for as long as that makes progress. False if @c was closed
 * (and may be freed).
 */
bool srv_tls_pump(struct srv_conn *c)
{
	if (!c->handshaken) {
		int r = gnutls_handshake(c->tls);

		if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
			srv_kick_send(c);
			if (!c->recv_posted)
				srv_post_recv(c);
			return true;
		}
		if (r < 0 || tls_check_peer(c)) {
			if (r < 0)
				log_warn("a TLS handshake failed: %s", gnutls_strerror(r));
			c->srv->nr_tls_refused++;
			c->hangup = true; /* after the alert the session may have queued */
			srv_kick_send(c);
			if (c->send_posted)
				return true;
			srv_conn_close(c);
			return false;
		}
		c->handshaken = true;
	}
	for (;;) {
		size_t filled;

		while (c->rx_len < RX_CAP) {
			ssize_t n =
				gnutls_record_recv(c->tls, c->rx + c->rx_len, RX_CAP - c->rx_len);

			if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
				break;
			if (n <= 0) { /* the client closed, or sent what does not decrypt */
				if (n < 0)
					log_warn("TLS: %s: closing the connection",
						 gnutls_strerror((int)n));
				srv_conn_close(c);
				return false;
			}
			c->rx_len += (size_t)n;
		}
		filled = c->rx_len;
		srv_conn_serve(c);
		/* on while serving made room and there is more to decrypt */
		if (c->hangup || c->rx_len == filled ||
		    (c->crx_off == c->crx_len && !gnutls_record_check_pending(c->tls)))
			return true;
	}
}

int srv_tls(struct srv *s, const struct pki_identity *id, char *err, size_t errlen)
{
	gnutls_certificate_credentials_t cred;
	int r = gnutls_certificate_allocate_credentials(&cred);

	if (r >= 0)
		r = gnutls_certificate_set_x509_key_file(cred, id->cert, id->key,
							 GNUTLS_X509_FMT_PEM);
	if (r >= 0)
		r = gnutls_certificate_set_x509_trust_file(cred, id->ca, GNUTLS_X509_FMT_PEM);
	if (r < 0) {
		snprintf(err, errlen, "TLS with %s and %s: %s", id->cert, id->key,
			 gnutls_strerror(r));
		gnutls_certificate_free_credentials(cred);
		return -1;
	}
	s->tls_ca = pki_read(id->ca);
	if (!s->tls_ca) {
		snprintf(err, errlen, "%s: %s", id->ca, strerror(errno));
		gnutls_certificate_free_credentials(cred);
		return -1;
	}
	s->tls = cred;
	return 0;
}

const struct pki_peer *srv_conn_peer(const struct srv_conn *c)
{
	return c->peer.role ? &c->peer : NULL;
}
