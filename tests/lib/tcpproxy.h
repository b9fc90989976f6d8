/*
 * tcpproxy.h - a TCP proxy on 127.0.0.1 for tests of what a client does when
 * its server goes quiet: it forwards each connection to an upstream address,
 * or, once made silent, accepts new connections and never reads or answers
 * them (a server that hangs, or a listening socket that nobody accepts on).
 */
#ifndef LEGO_TEST_TCPPROXY_H
#define LEGO_TEST_TCPPROXY_H

#include <stdbool.h>

struct tcpproxy;

/* tcpproxy_start - listen on a free port, forwarding to @upstream ("HOST:PORT");
 * "127.0.0.1:PORT" of the proxy goes into @addr (64 bytes). */
struct tcpproxy *tcpproxy_start(const char *upstream, char *addr);

/* tcpproxy_silent - from now on, new connections are accepted and left
 * unserved (@silent), or forwarded again; connections already made keep
 * what they had. */
void tcpproxy_silent(struct tcpproxy *p, bool silent);

/* tcpproxy_cut - close every forwarded connection (the client sees a reset). */
void tcpproxy_cut(struct tcpproxy *p);

/* tcpproxy_counts - connections accepted so far, and how many of them were left silent. */
void tcpproxy_counts(struct tcpproxy *p, int *accepted, int *silenced);

/* tcpproxy_record - from now on, every byte forwarded either way is written to @fd too. */
void tcpproxy_record(struct tcpproxy *p, int fd);

void tcpproxy_stop(struct tcpproxy *p);

#endif
