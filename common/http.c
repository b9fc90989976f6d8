/* http.c - JSON over HTTP, served with libmicrohttpd: routes, roles, the caller's
 * certificate checked once per connection. Calling is http_client.c. */
#include <errno.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "http_int.h"
#include "log.h"
#include "util.h"

#define HTTP_BODY_MAX (4 * 1024 * 1024)

struct httpd {
	struct MHD_Daemon *d;
	const struct http_route *routes;
	void *opaque;
	int fd;
	bool tls;
	char *ca, *cert, *key; /* PEM, while the daemon runs */
};

int body_append(struct body *b, const void *data, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *nb;

		while (cap < b->len + n + 1)
			cap *= 2;
		nb = realloc(b->buf, cap);
		if (!nb)
			return -1;
		b->buf = nb;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, data, n);
	b->len += n;
	b->buf[b->len] = '\0';
	return 0;
}

static const struct http_route *route_find(struct httpd *h, const char *method, const char *url,
					   const char **rest, bool *other_method)
{
	*other_method = false;
	for (const struct http_route *r = h->routes; r->method; r++) {
		size_t n = strlen(r->prefix);
		bool prefix = r->prefix[n - 1] == '/';

		if (prefix ? strncmp(url, r->prefix, n) != 0 || !url[n]
			   : strcmp(url, r->prefix) != 0)
			continue;
		if (strcmp(method, r->method) != 0) {
			*other_method = true;
			continue;
		}
		*rest = prefix ? url + n : "";
		return r;
	}
	return NULL;
}

static enum MHD_Result send_resp(struct MHD_Connection *conn, struct http_resp *resp)
{
	const char *body = resp->body ? resp->body : "";
	struct MHD_Response *r = MHD_create_response_from_buffer(
		resp->body_len ? resp->body_len : strlen(body),
		resp->body ? resp->body : (void *)"",
		resp->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret;

	MHD_add_response_header(r, "Content-Type",
				resp->content_type ? resp->content_type : "application/json");
	ret = MHD_queue_response(conn, (unsigned)resp->status, r);
	MHD_destroy_response(r);
	return ret;
}

/*
 * Is the caller of @r on @conn a member of the cluster in a role @r allows?
 * Who it is goes into @b->peer; if not, the answer says why (401 without a
 * certificate, 403 with one that is not good enough).
 */
/*
 * A connection's caller, once verified: the requests that follow on it (a
 * kept-alive connection) present the same certificate, and are not
 * verified again while it is valid.
 */
struct conn_peer {
	gnutls_datum_t der; /* the certificate verified (malloc'd), or none */
	struct pki_peer peer;
};

static void on_connection(void *cls, struct MHD_Connection *conn, void **ctx,
			  enum MHD_ConnectionNotificationCode code)
{
	struct conn_peer *cp = *ctx;

	(void)cls, (void)conn;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		*ctx = calloc(1, sizeof(struct conn_peer));
	} else if (cp) {
		free(cp->der.data);
		free(cp);
		*ctx = NULL;
	}
}

/* Who @cert is (into @peer): the connection's verified caller again, or verified now. */
static int verify_caller(struct httpd *h, struct MHD_Connection *conn, const gnutls_datum_t *cert,
			 struct pki_peer *peer, char *why, size_t len)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct conn_peer *cp = ci ? ci->socket_context : NULL;

	if (cp && cp->der.size == cert->size && !memcmp(cp->der.data, cert->data, cert->size) &&
	    time(NULL) < cp->peer.not_after) {
		*peer = cp->peer;
		return 0;
	}
	if (pki_verify(h->ca, cert->data, cert->size, peer, why, len))
		return -1;
	if (cp && (cp->der.data = realloc(cp->der.data, cert->size))) {
		memcpy(cp->der.data, cert->data, cert->size);
		cp->der.size = cert->size;
		cp->peer = *peer;
	} else if (cp) {
		cp->der.size = 0;
	}
	return 0;
}

static bool caller_allowed(struct httpd *h, struct MHD_Connection *conn, const struct http_route *r,
			   struct body *b, struct http_resp *resp)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	const gnutls_datum_t *certs = NULL;
	unsigned n = 0;
	char why[512], roles[128] = "";

	if (ci && ci->tls_session)
		certs = gnutls_certificate_get_peers(ci->tls_session, &n);
	if (!n) {
		http_error(resp, 401,
			   "%s %s needs a certificate of a member of this cluster, and the caller "
			   "presented none",
			   r->method, r->prefix);
		return false;
	}
	if (verify_caller(h, conn, &certs[0], &b->peer, why, sizeof(why))) {
		log_warn("refused %s %s: %s", r->method, r->prefix, why);
		http_error(resp, 403, "%s", why);
		memset(&b->peer, 0, sizeof(b->peer));
		return false;
	}
	if (b->peer.role & r->allow)
		return true;
	for (unsigned bit = 1; bit & PKI_ANY; bit <<= 1)
		if (r->allow & bit)
			snprintf(roles + strlen(roles), sizeof(roles) - strlen(roles), "%s%s",
				 roles[0] ? ", " : "", pki_role_name(bit));
	log_warn("refused %s %s to '%s', a %s", r->method, r->prefix, b->peer.name,
		 pki_role_name(b->peer.role));
	http_error(resp, 403, "'%s' is a%s %s, and %s %s is for: %s", b->peer.name,
		   strchr("aeiou", pki_role_name(b->peer.role)[0]) ? "n" : "",
		   pki_role_name(b->peer.role), r->method, r->prefix, roles);
	memset(&b->peer, 0, sizeof(b->peer));
	return false;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **state)
{
	struct httpd *h = cls;
	struct body *b = *state;
	struct http_resp resp = {0};
	const struct http_route *r;
	const char *rest = "";
	bool other;

	(void)version;
	if (!b) {
		b = calloc(1, sizeof(*b));
		if (!b)
			return MHD_NO;
		*state = b;
		/* who calls, and may they: decided before a byte of the body is read */
		r = route_find(h, method, url, &rest, &other);
		if (r && h->tls && !(r->allow & HTTP_PUBLIC) &&
		    !caller_allowed(h, conn, r, b, &resp))
			return send_resp(conn, &resp);
		return MHD_YES;
	}
	if (*upload_size) {
		if (b->len + *upload_size > HTTP_BODY_MAX)
			b->too_big = true;
		else if (body_append(b, upload, *upload_size))
			return MHD_NO;
		*upload_size = 0;
		return MHD_YES;
	}
	if (b->too_big) {
		http_error(&resp, 413, "request body larger than %d bytes", HTTP_BODY_MAX);
		return send_resp(conn, &resp);
	}
	r = route_find(h, method, url, &rest, &other);
	if (!r) {
		if (other)
			http_error(&resp, 405, "%s is not allowed on %s", method, url);
		else
			http_error(&resp, 404, "no such resource: %s", url);
		return send_resp(conn, &resp);
	}
	const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
	struct http_req req = {
		.method = method,
		.path = url,
		.rest = rest,
		.body = b->buf ? b->buf : "",
		.body_len = b->len,
		.content_type = ct ? ct : "",
		.conn = conn,
		.peer = h->tls && b->peer.role ? &b->peer : NULL,
	};
	r->fn(h->opaque, &req, &resp);
	if (!resp.status)
		http_error(&resp, 500, "the handler of %s %s gave no answer", method, url);
	return send_resp(conn, &resp);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **state,
			 enum MHD_RequestTerminationCode code)
{
	struct body *b = *state;

	(void)cls, (void)conn, (void)code;
	if (b) {
		free(b->buf);
		free(b);
		*state = NULL;
	}
}

static void httpd_free(struct httpd *h)
{
	if (h->key) {
		explicit_bzero(h->key, strlen(h->key));
		free(h->key);
	}
	free(h->cert);
	free(h->ca);
	free(h);
}

struct httpd *httpd_start(const char *addr, const struct http_route *routes, void *opaque,
			  const struct pki_identity *id, char *err, size_t errlen)
{
	struct httpd *h = calloc(1, sizeof(*h));
	/* poll(2), not select(2): a descriptor past 1023 is a connection like another */
	unsigned flags =
		MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
	unsigned long nofile = nofile_raise();
	unsigned limit =
		nofile && nofile < HTTP_MAX_CONNS + 128 ? (unsigned)nofile / 2 : HTTP_MAX_CONNS;

	if (!h) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->routes = routes;
	h->opaque = opaque;
	if (id) {
		const char *bad = !(h->ca = pki_read(id->ca))	    ? id->ca
				  : !(h->cert = pki_read(id->cert)) ? id->cert
				  : !(h->key = pki_read(id->key))   ? id->key
								    : NULL;

		if (bad) {
			snprintf(err, errlen, "%s: %s", bad, strerror(errno));
			httpd_free(h);
			return NULL;
		}
		h->tls = true;
		flags |= MHD_USE_TLS;
	}
	h->fd = tcp_listen(addr, 3000, err, errlen);
	if (h->fd < 0) {
		httpd_free(h);
		return NULL;
	}
	/* MHD_OPTION_HTTPS_MEM_TRUST makes the server ask for the caller's certificate;
	 * caller_allowed verifies it, so that a refusal can say why */
	h->d = h->tls ? MHD_start_daemon(
				flags, 0, NULL, NULL, on_request, h, MHD_OPTION_LISTEN_SOCKET,
				h->fd, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_IDLE_S,
				MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_HTTPS_MEM_KEY,
				h->key, MHD_OPTION_HTTPS_MEM_CERT, h->cert,
				MHD_OPTION_HTTPS_MEM_TRUST, h->ca, MHD_OPTION_NOTIFY_CONNECTION,
				on_connection, h, MHD_OPTION_END)
		      : MHD_start_daemon(flags, 0, NULL, NULL, on_request, h,
					 MHD_OPTION_LISTEN_SOCKET, h->fd,
					 MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
					 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_IDLE_S,
					 MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_END);
	if (!h->d) {
		snprintf(err, errlen, "cannot start the HTTP%s server on %s%s", h->tls ? "S" : "",
			 addr, h->tls ? " (is the certificate the key's?)" : "");
		close(h->fd);
		httpd_free(h);
		return NULL;
	}
	return h;
}

void httpd_stop(struct httpd *h)
{
	if (!h)
		return;
	MHD_stop_daemon(h->d);
	close(h->fd);
	httpd_free(h);
}

const char *http_query(const struct http_req *req, const char *key)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *http_req_header(const struct http_req *req, const char *name)
{
	return req->conn ? MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name) : NULL;
}

void http_json(struct http_resp *resp, int status, json_t *body)
{
	resp->status = status;
	resp->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
	resp->content_type = "application/json";
	json_decref(body);
	if (!resp->body) { /* never an empty answer that says it is JSON */
		resp->status = 500;
		resp->body = strdup("{\"error\":\"the answer could not be written as JSON\"}");
	}
}

void http_error(struct http_resp *resp, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	utf8_scrub(msg); /* a path with stray bytes, a message cut mid-character */
	http_json(resp, status, json_pack("{ss}", "error", msg));
}

void http_text(struct http_resp *resp, int status, const char *type, const char *text)
{
	resp->status = status;
	resp->body = strdup(text);
	resp->content_type = type;
}

json_t *http_parse_body(const struct http_req *req, struct http_resp *resp)
{
	json_error_t e;
	json_t *j = json_loadb(req->body, req->body_len, 0, &e);

	if (!j) {
		http_error(resp, 400, "the request body is not JSON: %s (line %d)", e.text, e.line);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		http_error(resp, 400, "the request body must be a JSON object");
		return NULL;
	}
	return j;
}
