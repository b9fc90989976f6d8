/*
 * srv_int.h - what the server loop (srv.c) and its TLS layer (srv_tls.c)
 * share: a connection's state, and the loop's steps the TLS layer calls.
 *
 * TLS sits between the socket and the request buffers: io_uring receives
 * ciphertext into crx, the session decrypts it into rx (its pull function
 * reads crx), requests are served from rx as without TLS, and responses
 * queued in tx are encrypted into ctx (its push function appends there)
 * only as far as ctx has room, so that tx's room still holds a slow
 * reader back.
 */
#ifndef LEGO_SRV_INT_H
#define LEGO_SRV_INT_H

#include <gnutls/gnutls.h>
#include <stdbool.h>

#include "srv.h"

#define RX_CAP	  (2 * SRV_MSG_MAX)
#define TX_CAP	  (8 * SRV_MSG_MAX)
#define RING_SIZE 256
#define TLS_CHUNK 16384		     /* the most plaintext in one TLS record */
#define TLS_ROOM  (TLS_CHUNK + 1024) /* a record's ciphertext, with room to spare */
#define CRX_CAP	  (4 * TLS_ROOM)
#define CTX_CAP	  (8 * TLS_ROOM)

struct srv_conn {
	struct srv *srv;
	struct srv_conn *prev, *next;  /* srv->conns, while open */
	uint64_t opened_ms, active_ms; /* accepted; the last request completed */
	uint64_t requests;
	int fd;
	void *session;
	int inflight; /* posted recv/send plus deferred requests */
	int deferred; /* requests to be answered with srv_respond */
	bool recv_posted, send_posted;
	bool hangup;		    /* close once every response is sent, the deferred ones too */
	struct srv_conn *kick_next; /* on srv->kicks: answered, to send after this batch */
	bool kick_queued;
	bool dead; /* closed: waiting for what is in flight */
	size_t rx_len, tx_len;
	size_t tx_reserved; /* promised to deferred requests */
	uint8_t *rx, *tx;
	/* TLS (srv->tls): the session, and ciphertext as received and to send */
	gnutls_session_t tls;
	bool handshaken;
	uint8_t *crx, *ctx;
	size_t crx_off, crx_len, ctx_len;
	struct pki_peer peer; /* the client's certificate (role 0: it presented none) */
};

/* srv.c: the loop's steps */
void srv_post_recv(struct srv_conn *c);
void srv_kick_send(struct srv_conn *c);
void srv_conn_close(struct srv_conn *c);
void srv_conn_serve(struct srv_conn *c);

/* srv_tls.c: srv_tls_session - set up @c's new session (c->tls from gnutls_init);
 * srv_tls_encrypt - encrypt tx into ctx as far as ctx has room; srv_tls_pump -
 * ciphertext arrived, or room did: handshake, decrypt, serve (false if @c was
 * closed, and may be freed). */
void srv_tls_session(struct srv_conn *c);
void srv_tls_encrypt(struct srv_conn *c);
bool srv_tls_pump(struct srv_conn *c);

#endif
