/* members.c - legoctl token create: how a new host's component joins the cluster. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "legoctl.h"
#include "pki.h"
#include "util.h"

static void token_help(void)
{
	printf("usage: legoctl token create --role agent|memsrv|storsrv [--ttl SECONDS]\n"
	       "\n"
	       "A join token: a new host's component presents it once, within its life\n"
	       "(default 900 s), and gets its certificate in the cluster. Put it in a file\n"
	       "of mode 0600 on that host and start the component with\n"
	       "  --manager URL --identity PREFIX --join FILE\n"
	       "The token names the cluster's CA, so the new host can tell it talks to this\n"
	       "cluster's manager before it trusts it.\n");
}

int cmd_token(struct legoctl *lc, int argc, char **argv)
{
	static const struct option opts[] = {{"role", required_argument, NULL, 'r'},
					     {"ttl", required_argument, NULL, 't'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	const char *role = NULL;
	long ttl = 0;
	char *end;
	json_t *ans, *body;
	int o;

	if (argc < 2 || strcmp(argv[1], "create")) {
		if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))
			return token_help(), 0;
		return usage_fail("token", "%s", "the command is 'token create'");
	}
	argc--, argv++;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (o == 'h')
			return token_help(), 0;
		if (o == 'r') {
			role = optarg;
		} else if (o == 't') {
			ttl = strtol(optarg, &end, 10);
			if (*end || ttl <= 0)
				return usage_fail("token", "--ttl: '%s' is not a number of seconds",
						  optarg);
		} else {
			return usage_fail("token", "%s", "unknown option");
		}
	}
	if (optind < argc)
		return usage_fail("token", "unexpected argument '%s'", argv[optind]);
	if (!(pki_role_parse(role) & PKI_COMPONENT))
		return usage_fail("token", "%s", "--role: agent, memsrv or storsrv");
	body = json_pack("{s:s,s:I}", "role", role, "ttl_s", (json_int_t)ttl);
	ans = api(lc, "POST", "/v1/tokens", body);
	json_decref(body);
	if (!ans)
		return 1;
	if (lc->json) {
		print_json(ans);
	} else {
		time_t exp = (time_t)JI(ans, "expires");
		char when[64];

		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime(&exp));
		printf("%s\n", JS(ans, "token"));
		fprintf(stderr, "a join token for one %s, valid until %s\n", role, when);
	}
	json_decref(ans);
	return 0;
}
