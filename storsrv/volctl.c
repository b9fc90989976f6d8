/*
 * volctl.c - `lego-storsrv volume ...`: manage the volumes of a running
 * storage server over the wire protocol, as any client would.
 *
 *   lego-storsrv volume create ADDR NAME SIZE|--from FILE   (prints the token)
 *   lego-storsrv volume list ADDR
 *   lego-storsrv volume resize ADDR NAME SIZE TOKEN
 *   lego-storsrv volume delete ADDR NAME TOKEN
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storclient.h"
#include "storsrv.h"
#include "util.h"
#include "xport.h"

static int fail(const char *what, int err)
{
	fprintf(stderr, "lego-storsrv volume: %s: %s\n", what, stor_strerror(err));
	return 1;
}

int volctl_main(int argc, char **argv)
{
	struct lmp_vol v = {0};
	struct xport *x;
	char err[1024];
	int ret = 0, fd = -1;

	if (argc >= 2 && !strcmp(argv[0], "--identity")) { /* a TLS server of a cluster */
		struct pki_identity id;

		if (pki_identity(argv[1], &id, err, sizeof(err)) ||
		    xport_tls_files(&id, err, sizeof(err))) {
			fprintf(stderr, "lego-storsrv volume: %s\n", err);
			return 1;
		}
		argc -= 2, argv += 2;
	}
	if (argc < 2 || (strcmp(argv[0], "list") && argc < 3)) {
		fprintf(stderr, "usage: lego-storsrv volume [--identity PREFIX] create ADDR NAME "
				"SIZE|--from FILE\n"
				"       lego-storsrv volume list ADDR\n"
				"       lego-storsrv volume resize ADDR NAME SIZE TOKEN\n"
				"       lego-storsrv volume delete ADDR NAME TOKEN\n");
		return 2;
	}
	if (argc > 2)
		snprintf(v.name, sizeof(v.name), "%s", argv[2]);
	if (!strcmp(argv[0], "create")) {
		struct stat st;

		if (argc != 4 && !(argc == 5 && !strcmp(argv[3], "--from"))) {
			fprintf(stderr, "lego-storsrv volume create ADDR NAME SIZE|--from FILE\n");
			return 2;
		}
		if (argc == 5) {
			fd = open(argv[4], O_RDONLY | O_CLOEXEC);
			if (fd < 0 || fstat(fd, &st) < 0) {
				fprintf(stderr, "lego-storsrv volume: %s: %s\n", argv[4],
					strerror(errno));
				return 1;
			}
			v.size = ((uint64_t)st.st_size + 511) & ~511ULL;
		} else if (parse_size(argv[3], &v.size)) {
			fprintf(stderr, "lego-storsrv volume: '%s' is not a size (e.g. 4G)\n",
				argv[3]);
			return 2;
		}
		if (getrandom(v.token, sizeof(v.token), 0) != sizeof(v.token))
			return fail("random token", -errno);
	} else if (!strcmp(argv[0], "resize") || !strcmp(argv[0], "delete")) {
		const char *tok = argv[argc - 1];

		if (argc != (!strcmp(argv[0], "resize") ? 5 : 4) || lmp_token_parse(tok, v.token) ||
		    (!strcmp(argv[0], "resize") && parse_size(argv[3], &v.size))) {
			fprintf(stderr, "lego-storsrv volume %s: see --help for the arguments\n",
				argv[0]);
			return 2;
		}
	} else if (strcmp(argv[0], "list")) {
		fprintf(stderr, "lego-storsrv volume: unknown command '%s'\n", argv[0]);
		return 2;
	}
	if (xport_connect(argv[1], 2000, 30000, &x, err, sizeof(err))) {
		fprintf(stderr, "lego-storsrv volume: %s\n", err);
		return 1;
	}
	if (!strcmp(argv[0], "list")) {
		static struct lmp_vol_info info[LMP_MAX_BODY / sizeof(struct lmp_vol_info)];
		struct lmp_hdr resp;
		char size[32];

		ret = xport_call(x, LMP_VOL_LIST, 0, NULL, 0, &resp, info, sizeof(info));
		if (ret || resp.status)
			ret = fail("list", ret ? ret : resp.status);
		else
			for (uint64_t i = 0; i < resp.arg && i < resp.len / sizeof(info[0]); i++)
				printf("%-32s %s\n", info[i].name,
				       format_size(info[i].size, size, sizeof(size)));
	} else if (!strcmp(argv[0], "create")) {
		ret = stor_vol(x, LMP_VOL_CREATE, &v);
		if (!ret && fd >= 0)
			ret = stor_import(x, v.name, v.token, fd, v.size, NULL, NULL);
		if (ret) {
			ret = fail(v.name, ret);
		} else {
			char hex[2 * LMP_TOKEN_LEN + 1];

			util_hex(v.token, sizeof(v.token), hex);
			printf("%s\n", hex);
		}
	} else {
		ret = stor_vol(x, !strcmp(argv[0], "resize") ? LMP_VOL_RESIZE : LMP_VOL_DELETE, &v);
		ret = ret ? fail(v.name, ret) : 0;
	}
	if (fd >= 0)
		close(fd);
	xport_close(x);
	return ret;
}
