/*
 * http.h - the JSON-over-HTTP control plane every component shares.
 *
 * Server side (lego-manager, lego-agent): libmicrohttpd with a thread per
 * connection, a table of routes, request bodies collected for the handler,
 * JSON or text answers. Client side (legoctl, heartbeats, the manager calling
 * agents): libcurl. No HTTP is parsed here by hand.
 *
 * In a cluster every call is HTTPS with both ends authenticated (pki.h):
 * the server presents its member certificate and asks for the caller's; a
 * route names the roles that may call it, and a caller without a valid
 * certificate of one of them is refused with the reason, before its body is
 * read.
 */
#ifndef LEGO_HTTP_H
#define LEGO_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "pki.h"

/* ---- server ---- */

struct http_req {
	const char *method; /* "GET", "POST", ... */
	const char *path;   /* "/v1/vnodes/web" */
	const char *rest;   /* what follows the route's prefix: "web" */
	const char *body;   /* NUL-terminated request body ("" if none) */
	size_t body_len;
	const char *content_type;    /* or "" */
	void *conn;		     /* the libmicrohttpd connection, for http_query */
	const struct pki_peer *peer; /* who called (NULL on a plain-HTTP server) */
};

struct http_resp {
	int status;
	char *body;	 /* malloc'd; freed by the server */
	size_t body_len; /* 0: strlen(body); else its bytes, NUL bytes and all */
	const char *content_type;
};

/* A handler fills @resp; the helpers below do that for JSON and errors. */
typedef void (*http_handler)(void *opaque, const struct http_req *req, struct http_resp *resp);

struct http_route {
	const char *method;
	const char *prefix; /* the path, or a prefix ending in '/' that takes a rest */
	http_handler fn;
	unsigned allow; /* the roles (pki.h) that may call it, or HTTP_PUBLIC */
};

/* A route anyone may call, with or without a certificate (joining with a token). */
#define HTTP_PUBLIC (1u << 31)

struct httpd;

/*
 * httpd_start - listen on @addr ("HOST:PORT") and serve @routes (terminated
 * by a NULL method) with @opaque: HTTPS as the member @id, or plain HTTP if
 * @id is NULL (then no route's roles are checked: only for tests of this
 * file). NULL with a reason in @err.
 *
 * Bounds (a flood of connections): at most HTTP_MAX_CONNS at once, within
 * the open files the process may have (raised to its hard limit), polled
 * (no FD_SETSIZE ceiling); a connection silent for HTTP_IDLE_S seconds
 * (idle, half-open, or a request trickling in) is closed; a body is at most
 * 4 MiB.
 */
#define HTTP_MAX_CONNS 4096
#define HTTP_IDLE_S    10
struct httpd *httpd_start(const char *addr, const struct http_route *routes, void *opaque,
			  const struct pki_identity *id, char *err, size_t errlen);
void httpd_stop(struct httpd *h);

/* http_query - the value of query argument @key, or NULL. */
const char *http_query(const struct http_req *req, const char *key);

/* http_req_header - the value of request header @name, or NULL. */
const char *http_req_header(const struct http_req *req, const char *name);

/* http_json - answer @status with @body (reference stolen). */
void http_json(struct http_resp *resp, int status, json_t *body);

/* http_error - answer {"error": message} with @status. */
void http_error(struct http_resp *resp, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* http_text - answer @status with a copy of @text as @type. */
void http_text(struct http_resp *resp, int status, const char *type, const char *text);

/* http_parse_body - the request body as a JSON object, or NULL after answering 400. */
json_t *http_parse_body(const struct http_req *req, struct http_resp *resp);

/* ---- client ---- */

/*
 * http_identity - the member this process is on every https:// call: the
 * certificate it presents, and the CA the server must be signed by. Call
 * once, before any call. http_scheme - "https" once that is set, else "http".
 */
void http_identity(const struct pki_identity *id);
const char *http_scheme(void);

/*
 * http_call - @method @url with @body (JSON, may be NULL; not stolen) and wait
 * at most @timeout_ms. On a transport error returns -1 with a sentence in
 * @err. Otherwise returns the HTTP status and, if @out, the parsed JSON answer
 * (NULL if it was not JSON); for a status >= 400 @err gets the answer's
 * "error" member.
 */
int http_call(const char *method, const char *url, json_t *body, json_t **out, int timeout_ms,
	      char *err, size_t errlen);

/*
 * http_call_raw - like http_call with a text body of @type (may be NULL) and
 * the answer as text in *@out (malloc'd, NUL-terminated).
 */
int http_call_raw(const char *method, const char *url, const char *type, const char *body,
		  char **out, int timeout_ms, char *err, size_t errlen);

/*
 * http_call_with - http_call_raw as @id: its certificate if id->cert is not
 * empty, the server checked against id->ca if that is not empty (an empty
 * one trusts any server: only to fetch a CA that is then checked against a
 * fingerprint). @id NULL: plain HTTP.
 */
int http_call_with(const struct pki_identity *id, const char *method, const char *url,
		   const char *type, const char *body, char **out, int timeout_ms, char *err,
		   size_t errlen);

/*
 * http_call_bytes - http_call_with for bytes: @body_len of them (NUL bytes
 * included), and the answer's length in *@out_len (if not NULL; the answer
 * is NUL-terminated as well, and may hold NUL bytes).
 */
int http_call_bytes(const struct pki_identity *id, const char *method, const char *url,
		    const char *type, const void *body, size_t body_len, char **out,
		    size_t *out_len, int timeout_ms, char *err, size_t errlen);

/* http_call_unsent - this thread's last call failed before its request could be sent
 * (no connection): repeating it elsewhere cannot do it twice. */
bool http_call_unsent(void);

/* http_client_identity - who this process calls as (http_identity), or NULL: plain HTTP. */
const struct pki_identity *http_client_identity(void);

/*
 * http_header - a header ("Name: value", at most 127 bytes) sent with every
 * call this process makes from now on, replacing the previous one (the
 * manager's Lego-Term).
 */
void http_header(const char *line);

/*
 * A manager, or several of which one leads. Calls go to the leader: a
 * standby answers a write with 307 and the leader's URL, which is followed;
 * a manager that cannot be reached, or has no leader yet (503), is skipped
 * for the next, round after round until the call's time is up. A write whose
 * manager went away after it was sent is not repeated elsewhere (it may have
 * been done): -1, said so in @err.
 */
#define HTTP_MAX_MANAGERS 8
struct http_managers {
	char url[HTTP_MAX_MANAGERS][256];
	int n, cur;
	char leader[256]; /* learnt from a standby ("": not known) */
};

/* http_managers_parse - "URL[,URL...]". 0, or -1 with a sentence in @err. */
int http_managers_parse(struct http_managers *ms, const char *list, char *err, size_t errlen);

/* http_managers_call - http_call of @method on the leader's @path (with its query). */
int http_managers_call(struct http_managers *ms, const char *method, const char *path, json_t *body,
		       json_t **out, int timeout_ms, char *err, size_t errlen);

/* http_managers_now - the URL calls go to now. */
const char *http_managers_now(const struct http_managers *ms);

/* ---- heartbeats ---- */

/*
 * A heartbeat: every @interval_ms, POST what @fill returns to the leading
 * manager's /v1/heartbeat (@manager_url: one URL, or several separated by
 * commas: struct http_managers). A component is known to the manager by its
 * heartbeats alone, so a restarted or new leader learns it within one beat.
 */
struct beat;
typedef json_t *(*beat_fill)(void *opaque);
struct beat *beat_start(const char *manager_url, int interval_ms, beat_fill fill, void *opaque);
void beat_stop(struct beat *b);
/* beat_answers - @fn is given each answer of the manager (with the same opaque). */
typedef void (*beat_answer)(void *opaque, json_t *answer);
void beat_answers(struct beat *b, beat_answer fn);

#endif
