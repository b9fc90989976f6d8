/*
 * member.h - what makes a component (lego-agent, lego-memsrv, lego-storsrv)
 * a member of a cluster: its identity (pki.h), how it gets one on a new host
 * (a join token), and the address it tells the manager others reach it at.
 * The three share these options and their meaning:
 *
 *   --manager URL        the manager (https://HOST:PORT)
 *   --identity PREFIX    PREFIX.pem, PREFIX.key and ca.pem beside them
 *   --join FILE          no identity yet: join with the token in FILE (from
 *                        legoctl token create) and keep the identity under PREFIX
 *   --advertise HOST:PORT  where others reach it (default: --listen; never 0.0.0.0)
 */
#ifndef LEGO_MEMBER_H
#define LEGO_MEMBER_H

#include <getopt.h>
#include <stddef.h>

#include "pki.h"

struct member_opts {
	const char *manager, *identity, *join, *advertise;
};

enum { MEMBER_OPT_IDENTITY = 0x1000, MEMBER_OPT_JOIN, MEMBER_OPT_ADVERTISE };

#define MEMBER_LONGOPTS                                                                            \
	{"identity", required_argument, NULL, MEMBER_OPT_IDENTITY},                                \
		{"join", required_argument, NULL, MEMBER_OPT_JOIN},                                \
	{                                                                                          \
		"advertise", required_argument, NULL, MEMBER_OPT_ADVERTISE                         \
	}

#define MEMBER_USAGE                                                                               \
	"  --identity PREFIX   its certificate in the cluster: PREFIX.pem, PREFIX.key\n"           \
	"                      and the cluster's ca.pem beside them (legoctl up makes\n"           \
	"                      them; needed with --manager)\n"                                     \
	"  --join FILE         no identity yet: join the cluster with the token in FILE\n"         \
	"                      (legoctl token create) and keep it under --identity\n"              \
	"  --advertise HOST:PORT  where others reach it (default: --listen; 0.0.0.0 is\n"          \
	"                      never advertised)\n"

/* member_opt - take option @c (from MEMBER_LONGOPTS) with @arg: 1 if it was one of them. */
int member_opt(struct member_opts *o, int c, const char *arg);

/*
 * member_start - a component listening on @listen becomes a member in
 * @role: joins first if it has a token and no identity, then makes its
 * identity the one of every HTTP call (http_identity) and data-path
 * connection (xport_tls); its server is then to speak TLS (srv_tls). The
 * address to advertise into @addr. 0, or -1 with a sentence in @err.
 */
int member_start(const struct member_opts *o, const char *role, const char *listen, char *addr,
		 size_t addrlen, struct pki_identity *id, char *err, size_t errlen);

/*
 * member_join - join the cluster of the manager at @manager_url as @name in
 * @role, reachable at @hosts, with @token: the key in PREFIX.key, the
 * certificate in PREFIX.pem, the cluster's CA (checked against the token's
 * fingerprint) in ca.pem beside them.
 */
int member_join(const char *manager_url, const char *token, const char *prefix, const char *role,
		const char *name, const char *const *hosts, char *err, size_t errlen);

#endif
