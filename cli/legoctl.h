/* legoctl.h - what legoctl's commands share (legoctl.c); demo.c is one of them. */
#ifndef LEGO_LEGOCTL_H
#define LEGO_LEGOCTL_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#define JS(o, k) (json_string_value(json_object_get(o, k)) ?: "")
#define JI(o, k) ((long long)json_integer_value(json_object_get(o, k)))

extern bool json_out;	/* --json */
extern bool up_quietly; /* cmd_up as a step of another command: only what it starts */
extern char home[PATH_MAX - 64], manager[256]; /* $LEGO_HOME, the manager's URL */

/* fail - "legoctl: " and the message on stderr; returns 1. */
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* usage_fail - a wrong command line: the message and a pointer to --help; returns 2. */
int usage_fail(const char *cmd, const char *fmt, const char *arg);
/* find_manager - the manager's URL into `manager`; 1 (said why) if there is none. */
int find_manager(void);
/* api - call the manager; the answer, or NULL after saying why. */
json_t *api(const char *method, const char *fmt, json_t *body, ...);
void print_json(json_t *j);
const char *size_str(json_int_t bytes, char *buf, size_t len);
/* console_fetch - a vNode's console output from byte *@off (advanced), or NULL. */
char *console_fetch(const char *agent, const char *name, long long *off);
/* alive - @pid runs (not a zombie); read_pid - a local daemon's pid, 0 if it is not running. */
bool alive(pid_t pid);
pid_t read_pid(const char *name);
/* The commands that demo.c uses as steps. */
int cmd_up(int argc, char **argv);
int wait_ready(const char *name, const char *agent);
/* wait_console - watch @name's console until @marker appears (0) or the vNode
 * stops (1), every 10 s a line "  @doing NAME: SECONDS  LAST-LINE", then
 * "NAME @done after SECONDS". */
int wait_console(const char *name, const char *agent, const char *marker, const char *doing,
		 const char *done);
int cmd_demo(int argc, char **argv);

#endif
