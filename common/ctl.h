/*
 * ctl.h - a JSON control socket: newline-delimited JSON requests on a Unix
 * socket, one response line per request. A request is an object with a "cmd"
 * member; a response is {"ok":true,...} or {"ok":false,"error":"..."}.
 * Components register commands; the built-in "help" lists them.
 */
#ifndef LEGO_CTL_H
#define LEGO_CTL_H

#include <jansson.h>
#include <stddef.h>

struct ctl;

/*
 * ctl_handler - serve one request. @req is the whole request object. Return
 * a new object whose members are merged into the response, or NULL after
 * writing a message for the client into @err (@errlen bytes).
 */
typedef json_t *(*ctl_handler)(void *opaque, json_t *req, char *err, size_t errlen);

/* ctl_create - bind and listen on @path (replacing a stale socket). NULL on error (logged). */
struct ctl *ctl_create(const char *path);

/* ctl_register - add command @cmd served by @fn(@opaque, ...); @help is one line. */
int ctl_register(struct ctl *ctl, const char *cmd, ctl_handler fn, void *opaque, const char *help);

/* ctl_start - serve requests on a thread of its own until ctl_destroy. */
int ctl_start(struct ctl *ctl);

/* ctl_destroy - stop serving, close every connection and remove the socket. */
void ctl_destroy(struct ctl *ctl);

/*
 * ctl_call - client side: send @req to the socket at @path and return the
 * parsed response (caller decrefs), or NULL with a reason in @err.
 * Waits at most @timeout_ms for the answer.
 */
json_t *ctl_call(const char *path, json_t *req, int timeout_ms, char *err, size_t errlen);

#endif
