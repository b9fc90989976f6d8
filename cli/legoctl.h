/*
 * legoctl.h - what legoctl's commands share. Every command but `up` and
 * `down` is a client of lego-manager's HTTP API (client.c); `up` starts a
 * whole cluster on this machine and `down` stops it (local.c); vnodes.c has
 * the vNode commands, console.c the console, demo.c the failover demo, and
 * main.c dispatches. The local cluster lives under $LEGO_HOME (default
 * ~/.local/share/lego): cluster.json (its addresses), manager.db, logs/, run/
 * (pid files), volumes/, vnodes/ (consoles).
 */
#ifndef LEGO_LEGOCTL_H
#define LEGO_LEGOCTL_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <termios.h>

#include "http.h"

#define JS(o, k) (json_string_value(json_object_get(o, k)) ?: "")
#define JI(o, k) ((long long)json_integer_value(json_object_get(o, k)))

#define MAX_AGENTS	   4	  /* legoctl up --agents */
#define MAX_MANAGERS	   3	  /* legoctl up --managers */
#define LEGOCTL_TIMEOUT_MS 240000 /* a call to the manager: creates, migrations wait for VMMs */

/* One run of legoctl: its global options and where things are. */
struct legoctl {
	bool json;		    /* --json */
	bool up_quietly;	    /* `up` as a step of another command: say only what it starts */
	char home[PATH_MAX - 64];   /* $LEGO_HOME */
	char manager[1024];	    /* the managers' URLs, by commas ("": not found yet) */
	struct http_managers ms;    /* ... and which one leads, as far as known */
	char as[PATH_MAX - 64];	    /* --as: whose identity ("": $LEGO_HOME/pki/admin) */
	bool id_loaded;		    /* http_identity is set */
	char bindir[PATH_MAX - 64]; /* where legoctl and lego's daemons are */
	struct termios tty_saved;   /* the terminal before the console made it raw */
	bool tty_raw;
};

/* ---- client.c ---- */

/* fail - "legoctl: " and the message on stderr; returns 1. */
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* usage_fail - a wrong command line: the message and a pointer to --help; returns 2. */
int usage_fail(const char *cmd, const char *fmt, const char *arg);
/*
 * help_or_args - a command's --help (@fmt printed with @arg), or a wrong
 * number of arguments (@nargs is how many it takes): the exit status to
 * end with, or -1 to go on.
 */
int help_or_args(int argc, char **argv, int nargs, const char *fmt, const char *arg);
/* home_path - $LEGO_HOME/@rel into @buf. */
void home_path(const struct legoctl *lc, char *buf, size_t len, const char *rel);
/* load_identity - who legoctl is to the cluster (--as, else admin); 1 (said why) if unknown. */
int load_identity(struct legoctl *lc);
/* managers_of - the managers' URLs in cluster.json @cfg, by commas ("managers", or "manager"). */
void managers_of(json_t *cfg, char *out, size_t len);
/* find_manager - the manager's URL into lc->manager, and the identity; 1 (said why) if none. */
int find_manager(struct legoctl *lc);
/* api - call the manager; the answer, or NULL after saying why. */
json_t *api(struct legoctl *lc, const char *method, const char *fmt, json_t *body, ...);
/* api_leader - the URL of the leading manager (for calls that are not JSON), or NULL. */
const char *api_leader(struct legoctl *lc);
/* api_call - call the leading manager's @path, saying nothing: the HTTP status, or -1 (@err). */
int api_call(struct legoctl *lc, const char *method, const char *path, json_t *body, json_t **out,
	     int timeout_ms, char *err, size_t errlen);
void print_json(json_t *j);
const char *size_str(json_int_t bytes, char *buf, size_t len);
/*
 * console_fetch - a vNode's console output from byte *@off (advanced past
 * all of it), NUL-terminated, its length in *@len (if not NULL: it may hold
 * NUL bytes), or NULL.
 */
char *console_fetch(const char *agent, const char *name, long long *off, size_t *len);

/* ---- local.c ---- */

/* ---- local.c: legoctl up and down ---- */

/* A daemon of the local cluster: its name (also its log and pid file's) and command. */
struct daemon {
	const char *name; /* also its log and pid file's name */
	char *argv[40];
};

/* free_port - a TCP port on 127.0.0.1 that nothing listens on now (0: none). */
int free_port(void);

/* ---- ha.c: several managers (legoctl up --managers N) ---- */

/* etcd's members and the managers after the first, as daemons (none with one manager). */
struct ha {
	int nr, nr_etcd;
	struct daemon d[3 + MAX_MANAGERS];
	char names[3 + MAX_MANAGERS][24], addr[3 + MAX_MANAGERS][64];
	char store[512], etcd_bin[PATH_MAX], mgr_bin[PATH_MAX], pki[PATH_MAX];
	char client_url[3][80], peer_url[3][80], data[3][PATH_MAX], cluster[512];
	char cert[PATH_MAX + 16], key[PATH_MAX + 16], ca[PATH_MAX + 16], subnet[32];
};

/* etcd_identity - etcd's own identity under @pki, made once. 0, or 1 (said why). */
int etcd_identity(struct legoctl *lc, const char *pki);
/* managers_config - cluster.json @c with @nr_managers managers and @nr_etcd etcd members
 * (0: as it is); 1 if the cluster's state cannot move between SQLite and etcd. */
int managers_config(struct legoctl *lc, json_t *c, int nr_managers, int nr_etcd);
/* ha_daemons - etcd's members and the managers after the first, as daemons (none with one
 * manager); 0, or 1 (said why). */
int ha_daemons(struct legoctl *lc, json_t *c, const char *subnet, struct ha *ha);

/* alive - @pid runs (not a zombie); read_pid - a local daemon's pid, 0 if it is not running. */
bool alive(pid_t pid);
pid_t read_pid(struct legoctl *lc, const char *name);
int cmd_up(struct legoctl *lc, int argc, char **argv);
int cmd_down(struct legoctl *lc, int argc, char **argv);

/* ---- vnodes.c ---- */

int cmd_create(struct legoctl *lc, int argc, char **argv);
int cmd_list(struct legoctl *lc, int argc, char **argv);
int cmd_nodes(struct legoctl *lc, int argc, char **argv);
int cmd_simple(struct legoctl *lc, int argc, char **argv); /* start, stop, destroy */
int cmd_resize(struct legoctl *lc, int argc, char **argv);
int cmd_dumpxml(struct legoctl *lc, int argc, char **argv);
int cmd_token(struct legoctl *lc, int argc, char **argv);
/* wait_ready - follow @name's console until the kit's init says it is ready (0), or it stops (1). */
int wait_ready(struct legoctl *lc, const char *name, const char *agent);
/* wait_console - watch @name's console until @marker appears (0) or the vNode
 * stops (1), every 10 s a line "  @doing NAME: SECONDS  LAST-LINE", then
 * "NAME @done after SECONDS". */
int wait_console(struct legoctl *lc, const char *name, const char *agent, const char *marker,
		 const char *doing, const char *done);

/* ---- console.c, demo.c ---- */

int cmd_power(struct legoctl *lc, int argc, char **argv);
int cmd_pause(struct legoctl *lc, int argc, char **argv);
int cmd_migrate(struct legoctl *lc, int argc, char **argv);
int cmd_snapshot(struct legoctl *lc, int argc, char **argv);
int cmd_restore(struct legoctl *lc, int argc, char **argv);
int cmd_console(struct legoctl *lc, int argc, char **argv);
int cmd_demo(struct legoctl *lc, int argc, char **argv);

#endif
