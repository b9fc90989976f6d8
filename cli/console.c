/* console.c - legoctl console: a vNode's serial console, through its agent. */
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "legoctl.h"
#include "util.h"

static void tty_restore(struct legoctl *lc)
{
	if (lc->tty_raw)
		tcsetattr(0, TCSANOW, &lc->tty_saved);
	lc->tty_raw = false;
}

int cmd_console(struct legoctl *lc, int argc, char **argv)
{
	bool once = false;
	const char *name = NULL;
	char agent[256], url[600], err[512];
	long long off = 0;
	json_t *v;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: legoctl console NAME [--once]\n\nThe vNode's serial console: "
			       "its output, and what you type goes to it.\nCtrl-] leaves. --once "
			       "prints the output so far and returns.\n");
			return 0;
		}
		if (!strcmp(argv[i], "--once"))
			once = true;
		else if (!name && argv[i][0] != '-')
			name = argv[i];
		else
			return usage_fail("console", "unexpected argument '%s'", argv[i]);
	}
	if (!name)
		return usage_fail("console", "%s", "give one vNode NAME");
	v = api(lc, "GET", "/v1/vnodes/%s", NULL, name);
	if (!v)
		return 1;
	snprintf(agent, sizeof(agent), "%s", JS(v, "agent"));
	json_decref(v);
	if (!once && isatty(0) && !tcgetattr(0, &lc->tty_saved)) {
		struct termios t = lc->tty_saved;

		cfmakeraw(&t);
		t.c_oflag |= OPOST | ONLCR;
		lc->tty_raw = !tcsetattr(0, TCSANOW, &t);
		fprintf(stderr, "[console of %s; Ctrl-] leaves]\r\n", name);
	}
	bool input = !once;
	for (int idle = 0;;) {
		size_t n = 0;
		char *data = console_fetch(agent, name, &off, &n);

		if (!data) {
			tty_restore(lc);
			return 1;
		}
		fwrite(data, 1, n, stdout);
		fflush(stdout);
		free(data);
		if (once)
			return 0;
		if (n)
			idle = 0;
		struct pollfd p = {.fd = 0, .events = POLLIN};
		if (input && poll(&p, 1, n ? 0 : 100) > 0) {
			char buf[1024];
			ssize_t r = read(0, buf, sizeof(buf));

			if (r <= 0) {
				input = false;
			} else {
				if (memchr(buf, 0x1d, (size_t)r)) /* Ctrl-] */
					break;
				snprintf(url, sizeof(url), "%s://%s/v1/vnodes/%s/console",
					 http_scheme(), agent, name);
				/* the bytes as typed, r of them: a NUL is a key like any other */
				http_call_bytes(http_client_identity(), "POST", url,
						"application/octet-stream", buf, (size_t)r, NULL,
						NULL, 5000, err, sizeof(err));
			}
		} else if (!input) {
			usleep(100 * 1000);
		}
		/* Every few seconds of silence, check that the vNode still runs. */
		if (!n && ++idle % 30 == 0) {
			v = api(lc, "GET", "/v1/vnodes/%s", NULL, name);
			if (!v || strcmp(JS(v, "state"), "running")) {
				tty_restore(lc);
				fprintf(stderr, "\r\n[%s is %s]\r\n", name,
					v ? JS(v, "state") : "gone");
				json_decref(v);
				return 0;
			}
			json_decref(v);
		}
	}
	tty_restore(lc);
	fprintf(stderr, "\r\n[left the console of %s]\n", name);
	return 0;
}
