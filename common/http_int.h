/* http_int.h - what the HTTP server (http.c) and client (http_client.c) share. */
#ifndef LEGO_COMMON_HTTP_INT_H
#define LEGO_COMMON_HTTP_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "pki.h"

/* A body being received (a request here, an answer in the client). */
struct body {
	char *buf; /* NUL-terminated */
	size_t len, cap;
	bool too_big;
	struct pki_peer peer; /* the caller, verified (a request here) */
};

/* body_append - @n bytes more, growing geometrically (answers can be megabytes). -1: no memory. */
int body_append(struct body *b, const void *data, size_t n);

#endif
