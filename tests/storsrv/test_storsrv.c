/*
 * test_storsrv.c - lego-storsrv as a real process on loopback: volume
 * management, block I/O with many requests in flight, statelessness across
 * a kill -9 and restart, and every kind of bad request answered with a clear
 * error while the server keeps serving.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "xport.h"

static struct xport *dial(const struct storsrv_proc *sv)
{
	struct xport *x;
	char err[256];

	ASSERT(xport_connect(sv->listen, 2000, 10000, &x, err, sizeof(err)) == 0, "%s", err);
	return x;
}

static void token_of(const char *name, uint8_t *token)
{
	for (int i = 0; i < LMP_TOKEN_LEN; i++)
		token[i] = (uint8_t)(name[i % strlen(name)] * 31 + i);
}

static int vol_call(struct xport *x, uint16_t type, const char *name, uint64_t size)
{
	struct lmp_vol v = {.size = size};
	struct iovec iov = {&v, sizeof(v)};
	struct lmp_hdr resp;

	snprintf(v.name, sizeof(v.name), "%s", name);
	token_of(name, v.token);
	ASSERT_EQ(xport_call(x, type, 0, &iov, 1, &resp, NULL, 0), 0);
	return resp.status;
}

/* One block request; @data is written (BLK_WRITE) or filled (BLK_READ). */
static int blk_call(struct xport *x, uint16_t type, const char *name, const uint8_t *token,
		    uint64_t off, uint32_t len, void *data)
{
	struct lmp_blk b = {.offset = off, .length = len};
	struct iovec iov[2] = {{&b, sizeof(b)}, {data, len}};
	struct lmp_hdr resp;

	snprintf(b.volume, sizeof(b.volume), "%s", name);
	memcpy(b.token, token, LMP_TOKEN_LEN);
	ASSERT_EQ(xport_call(x, type, 0, iov, type == LMP_BLK_WRITE ? 2 : 1, &resp,
			     type == LMP_BLK_READ ? data : NULL, type == LMP_BLK_READ ? len : 0),
		  0);
	if (resp.status == 0 && type == LMP_BLK_READ)
		ASSERT_EQ(resp.len, len);
	return resp.status;
}

static void pattern(uint8_t *buf, uint32_t len, uint64_t off, uint32_t version)
{
	for (uint32_t i = 0; i < len; i += 8) {
		uint64_t v = (off + i) * 0x9e3779b97f4a7c15ULL ^ version;

		memcpy(buf + i, &v, 8);
	}
}

TEST(volumes_are_created_listed_resized_and_deleted_durably)
{
	struct storsrv_proc sv = {0};
	struct xport *x;
	struct lmp_hdr resp;
	struct lmp_vol_info list[8];
	uint8_t tok[LMP_TOKEN_LEN], buf[4096];
	struct stat st;
	char path[400];
	int found = 0;

	storsrv_start(&sv);
	x = dial(&sv);
	ASSERT_EQ(vol_call(x, LMP_VOL_CREATE, "root", 8 << 20), 0);
	ASSERT_EQ(vol_call(x, LMP_VOL_CREATE, "data-1", 1 << 20), 0);
	ASSERT_EQ(vol_call(x, LMP_VOL_CREATE, "root", 8 << 20), -EEXIST);
	ASSERT_EQ(vol_call(x, LMP_VOL_CREATE, "../etc", 4096), -EINVAL);
	ASSERT_EQ(vol_call(x, LMP_VOL_CREATE, ".hidden", 4096), -EINVAL);
	ASSERT_EQ(vol_call(x, LMP_VOL_CREATE, "odd", 1000), -EINVAL); /* not 512-aligned */
	ASSERT_EQ(xport_call(x, LMP_VOL_LIST, 0, NULL, 0, &resp, list, sizeof(list)), 0);
	ASSERT_EQ(resp.status, 0);
	ASSERT_EQ(resp.arg, 2u);
	for (unsigned i = 0; i < resp.arg; i++)
		found += (!strcmp(list[i].name, "root") && list[i].size == 8 << 20) +
			 (!strcmp(list[i].name, "data-1") && list[i].size == 1 << 20);
	ASSERT_EQ(found, 2);
	/* a volume is sparse on disk: never-written blocks cost nothing */
	snprintf(path, sizeof(path), "%s/root.vol", sv.dir);
	ASSERT_EQ(stat(path, &st), 0);
	ASSERT(st.st_blocks * 512 < 1 << 20, "a new volume took space");

	ASSERT_EQ(vol_call(x, LMP_VOL_RESIZE, "data-1", 2 << 20), 0);
	token_of("data-1", tok);
	ASSERT_EQ(blk_call(x, LMP_BLK_READ, "data-1", tok, (2 << 20) - 4096, 4096, buf), 0);
	ASSERT_EQ(vol_call(x, LMP_VOL_DELETE, "data-1", 0), 0);
	ASSERT_EQ(blk_call(x, LMP_BLK_READ, "data-1", tok, 0, 4096, buf), -ENOENT);
	ASSERT_EQ(vol_call(x, LMP_VOL_DELETE, "data-1", 0), -ENOENT);
	xport_close(x);
	storsrv_kill(&sv, SIGTERM);
}

TEST(bad_requests_get_clear_errors_and_the_server_serves_on)
{
	struct storsrv_proc sv = {0};
	struct xport *x, *y;
	uint8_t tok[LMP_TOKEN_LEN], wrong[LMP_TOKEN_LEN], buf[8192];
	struct lmp_blk b = {0};
	struct iovec iov = {&b, sizeof(b)};
	struct lmp_hdr resp;

	storsrv_start(&sv);
	x = dial(&sv);
	ASSERT_EQ(vol_call(x, LMP_VOL_CREATE, "disk", 1 << 20), 0);
	token_of("disk", tok);
	memcpy(wrong, tok, sizeof(wrong));
	wrong[7] ^= 1;
	memset(buf, 0x5a, sizeof(buf));
	ASSERT_EQ(blk_call(x, LMP_BLK_WRITE, "disk", wrong, 0, 4096, buf), -EACCES);
	ASSERT_EQ(blk_call(x, LMP_BLK_READ, "nope", tok, 0, 4096, buf), -ENOENT);
	ASSERT_EQ(blk_call(x, LMP_BLK_READ, "disk", tok, 1 << 20, 4096, buf), -ERANGE);
	ASSERT_EQ(blk_call(x, LMP_BLK_READ, "disk", tok, (1 << 20) - 4096, 8192, buf), -ERANGE);
	ASSERT_EQ(blk_call(x, LMP_BLK_READ, "disk", tok, ~0ULL - 511, 512, buf), -ERANGE);
	ASSERT_EQ(blk_call(x, LMP_BLK_READ, "disk", tok, 100, 4096, buf), -EINVAL);
	ASSERT_EQ(blk_call(x, LMP_BLK_READ, "disk", tok, 0, 0, buf), -EINVAL);
	/* a body shorter than it says: truncated */
	snprintf(b.volume, sizeof(b.volume), "disk");
	memcpy(b.token, tok, sizeof(tok));
	b.length = 4096;
	ASSERT_EQ(xport_call(x, LMP_BLK_WRITE, 0, &iov, 1, &resp, NULL, 0), 0);
	ASSERT_EQ(resp.status, -EBADMSG);
	ASSERT_EQ(xport_call(x, LMP_BLK_READ, 0, NULL, 0, &resp, NULL, 0), 0); /* no body */
	ASSERT_EQ(resp.status, -EBADMSG);
	ASSERT_EQ(xport_call(x, 999, 0, NULL, 0, &resp, NULL, 0), 0);
	ASSERT_EQ(resp.status, -EOPNOTSUPP);
	/* nothing was written by any of them */
	ASSERT_EQ(blk_call(x, LMP_BLK_READ, "disk", tok, 0, 4096, buf), 0);
	for (int i = 0; i < 4096; i++)
		ASSERT_EQ(buf[i], 0);
	/* a peer that sends garbage is hung up on; others are not */
	y = dial(&sv);
	{
		struct iovec g = {"this is not a lego header, not at all", 32};

		ASSERT_EQ(xport_sendv(y, &g, 1), 0);
		ASSERT_EQ(xport_recv(y, &resp, sizeof(resp)), 0);
		ASSERT_EQ(resp.status, -EPROTO);
	}
	xport_close(y);
	ASSERT_EQ(blk_call(x, LMP_BLK_FLUSH, "disk", tok, 0, 0, NULL), 0);
	xport_close(x);
	storsrv_kill(&sv, SIGTERM);
}

TEST(many_requests_in_flight_and_a_restart_loses_nothing_acknowledged)
{
	enum { N = 64, LEN = 16384 };
	struct storsrv_proc sv = {0};
	struct xport *x;
	uint8_t tok[LMP_TOKEN_LEN];
	static uint8_t data[N][LEN], got[LEN];
	struct lmp_blk b[N];
	struct lmp_hdr req[N], resp;
	int seen[N] = {0};

	storsrv_start(&sv);
	x = dial(&sv);
	ASSERT_EQ(vol_call(x, LMP_VOL_CREATE, "fast", N * LEN), 0);
	token_of("fast", tok);
	/* N writes pipelined on one connection, then their N responses */
	for (int i = 0; i < N; i++) {
		struct iovec iov[3] = {
			{&req[i], sizeof(req[i])}, {&b[i], sizeof(b[i])}, {data[i], LEN}};

		pattern(data[i], LEN, (uint64_t)i * LEN, 1);
		b[i] = (struct lmp_blk){.offset = (uint64_t)i * LEN,
					.length = LEN,
					.flags = i % 8 ? 0 : LMP_BLK_FUA};
		snprintf(b[i].volume, sizeof(b[i].volume), "fast");
		memcpy(b[i].token, tok, sizeof(tok));
		lmp_hdr_init(&req[i], LMP_BLK_WRITE, 1000 + i, sizeof(b[i]) + LEN, 0);
		ASSERT_EQ(xport_sendv(x, iov, 3), 0);
	}
	for (int i = 0; i < N; i++) {
		ASSERT_EQ(xport_recv(x, &resp, sizeof(resp)), 0);
		ASSERT(resp.id >= 1000 && resp.id < 1000 + N, "unknown response id");
		ASSERT_EQ(resp.status, 0);
		seen[resp.id - 1000]++;
	}
	for (int i = 0; i < N; i++)
		ASSERT_EQ(seen[i], 1);
	ASSERT_EQ(blk_call(x, LMP_BLK_FLUSH, "fast", tok, 0, 0, NULL), 0);
	xport_close(x);

	/* kill -9 and start again on the same directory: the same requests work */
	storsrv_kill(&sv, SIGKILL);
	storsrv_start(&sv);
	x = dial(&sv);
	for (int i = 0; i < N; i++) {
		ASSERT_EQ(blk_call(x, LMP_BLK_READ, "fast", tok, (uint64_t)i * LEN, LEN, got), 0);
		ASSERT(!memcmp(got, data[i], LEN), "block %d differs after the restart", i);
	}
	xport_close(x);
	storsrv_kill(&sv, SIGTERM);
}

TEST(volume_subcommands_import_a_file_that_reads_back_and_delete_it)
{
	static struct storsrv_proc sv;
	char img[400], bin[600], tok[80];
	static uint8_t data[600 * 1024], got[600 * 1024];
	uint8_t token[LMP_TOKEN_LEN];
	struct proc_result r;
	struct xport *x;
	FILE *f;

	storsrv_start(&sv);
	/* 600 KiB + 100 bytes: three requests, a zero hole skipped, a padded tail */
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 3);
	memset(data + 256 * 1024, 0, 256 * 1024);
	snprintf(img, sizeof(img), "%s/img", test_tmpdir());
	f = fopen(img, "w");
	ASSERT(f && fwrite(data, 1, sizeof(data) - 100, f) == sizeof(data) - 100);
	fclose(f);
	snprintf(bin, sizeof(bin), "%s", test_path("bin/lego-storsrv"));
	{
		char *argv[] = {bin,	    "volume", "create", sv.listen,
				"imported", "--from", img,	NULL};

		proc_run(argv, 30, &r);
	}
	ASSERT(r.status == 0, "%s", r.err);
	snprintf(tok, sizeof(tok), "%.64s", r.out);
	proc_result_free(&r);
	ASSERT_EQ(lmp_token_parse(tok, token), 0);
	x = dial(&sv);
	for (uint32_t off = 0; off < sizeof(got); off += LMP_BLK_MAX) {
		uint32_t n = sizeof(got) - off < LMP_BLK_MAX ? sizeof(got) - off : LMP_BLK_MAX;

		ASSERT_EQ(blk_call(x, LMP_BLK_READ, "imported", token, off, n, got + off), 0);
	}
	ASSERT(!memcmp(got, data, sizeof(data) - 100), "the imported volume differs from the file");
	for (size_t i = sizeof(data) - 100; i < sizeof(data); i++)
		ASSERT_EQ(got[i], 0);
	xport_close(x);
	{
		char *argv[] = {bin, "volume", "delete", sv.listen, "imported", tok, NULL};
		char *wrong[] = {bin,
				 "volume",
				 "delete",
				 sv.listen,
				 "imported",
				 "0000000000000000000000000000000000000000000000000000000000000000",
				 NULL};

		proc_run(wrong, 30, &r);
		ASSERT_EQ(r.status, 1);
		ASSERT_CONTAINS(r.err, "wrong token for this volume");
		proc_result_free(&r);
		proc_run(argv, 30, &r);
		ASSERT(r.status == 0, "%s", r.err);
		proc_result_free(&r);
	}
	storsrv_kill(&sv, SIGTERM);
}

/*
 * A discard or write-zeroes names a range (larger than any write may be),
 * checked like any other; done, the range reads as zeros and its space is
 * given back to the file system (a hole in the volume's file).
 */
TEST(discard_and_write_zeroes_punch_holes_and_bad_ranges_are_refused)
{
	struct storsrv_proc sv = {0};
	static uint8_t buf[LMP_BLK_MAX];
	uint8_t tok[LMP_TOKEN_LEN];
	char path[400];
	struct stat st;
	struct xport *x;
	long long full;

	storsrv_start(&sv);
	x = dial(&sv);
	ASSERT_EQ(vol_call(x, LMP_VOL_CREATE, "thin", 4 << 20), 0);
	token_of("thin", tok);
	for (uint64_t off = 0; off < 4 << 20; off += sizeof(buf)) {
		pattern(buf, sizeof(buf), off, 1);
		ASSERT_EQ(blk_call(x, LMP_BLK_WRITE, "thin", tok, off, sizeof(buf), buf), 0);
	}
	ASSERT_EQ(blk_call(x, LMP_BLK_FLUSH, "thin", tok, 0, 0, NULL), 0);
	snprintf(path, sizeof(path), "%s/thin.vol", sv.dir);
	ASSERT_EQ(stat(path, &st), 0);
	full = (long long)st.st_blocks * 512;
	ASSERT_EQ(blk_call(x, LMP_BLK_DISCARD, "thin", tok, 0, 2 << 20, NULL), 0);
	ASSERT_EQ(blk_call(x, LMP_BLK_WRITE_ZEROES, "thin", tok, 2 << 20, 1 << 20, NULL), 0);
	ASSERT_EQ(stat(path, &st), 0);
	ASSERT((long long)st.st_blocks * 512 <= full - (3 << 20) + (256 << 10),
	       "%lld bytes held after 3 MiB were given back, of %lld",
	       (long long)st.st_blocks * 512, full);
	ASSERT_EQ(blk_call(x, LMP_BLK_READ, "thin", tok, 1 << 20, 4096, buf), 0);
	for (int i = 0; i < 4096; i++)
		ASSERT_EQ(buf[i], 0);
	ASSERT_EQ(blk_call(x, LMP_BLK_READ, "thin", tok, 3 << 20, 4096, buf), 0);
	ASSERT(buf[100] || buf[101] || buf[102], "the last MiB was not left alone");
	/* bad ranges: past the end, unaligned, empty, a wrong token */
	ASSERT_EQ(blk_call(x, LMP_BLK_DISCARD, "thin", tok, 3 << 20, 2 << 20, NULL), -ERANGE);
	ASSERT_EQ(blk_call(x, LMP_BLK_DISCARD, "thin", tok, 100, 4096, NULL), -EINVAL);
	ASSERT_EQ(blk_call(x, LMP_BLK_WRITE_ZEROES, "thin", tok, 0, 0, NULL), -EINVAL);
	tok[0] ^= 1;
	ASSERT_EQ(blk_call(x, LMP_BLK_DISCARD, "thin", tok, 0, 4096, NULL), -EACCES);
	xport_close(x);
	storsrv_kill(&sv, SIGTERM);
}

static int clone_call(struct xport *x, const char *src, const uint8_t *src_token, const char *dst)
{
	struct lmp_vol_clone c = {0};
	struct iovec iov = {&c, sizeof(c)};
	struct lmp_hdr resp;

	snprintf(c.src, sizeof(c.src), "%s", src);
	memcpy(c.src_token, src_token, LMP_TOKEN_LEN);
	snprintf(c.dst.name, sizeof(c.dst.name), "%s", dst);
	token_of(dst, c.dst.token);
	ASSERT_EQ(xport_call(x, LMP_VOL_CLONE, 0, &iov, 1, &resp, NULL, 0), 0);
	return resp.status;
}

TEST(a_cloned_volume_reads_as_the_original_and_is_written_apart)
{
	struct storsrv_proc sv = {0};
	static uint8_t a[65536], b[65536], got[65536], zero[65536];
	uint8_t ta[LMP_TOKEN_LEN], tb[LMP_TOKEN_LEN], wrong[LMP_TOKEN_LEN] = {0};
	struct stat st;
	char path[400];
	struct xport *x;

	storsrv_start(&sv);
	x = dial(&sv);
	token_of("web", ta);
	token_of("web2", tb);
	ASSERT_EQ(vol_call(x, LMP_VOL_CREATE, "web", 64 << 20), 0);
	pattern(a, sizeof(a), 0, 1);
	pattern(b, sizeof(b), 1 << 20, 2);
	ASSERT_EQ(blk_call(x, LMP_BLK_WRITE, "web", ta, 0, sizeof(a), a), 0);
	ASSERT_EQ(blk_call(x, LMP_BLK_WRITE, "web", ta, 40 << 20, sizeof(b), b), 0);
	/* refused: the source's wrong token, no source, a name taken, a bad name */
	ASSERT_EQ(clone_call(x, "web", wrong, "web2"), -EACCES);
	ASSERT_EQ(clone_call(x, "nothere", ta, "web2"), -ENOENT);
	ASSERT_EQ(clone_call(x, "web", ta, "web"), -EEXIST);
	ASSERT_EQ(clone_call(x, "web", ta, "../x"), -EINVAL);
	ASSERT_EQ(clone_call(x, "web", ta, "web2"), 0);
	ASSERT_EQ(blk_call(x, LMP_BLK_READ, "web2", tb, 0, sizeof(got), got), 0);
	ASSERT(!memcmp(got, a, sizeof(a)), "the copy's first blocks differ from the original's");
	ASSERT_EQ(blk_call(x, LMP_BLK_READ, "web2", tb, 40 << 20, sizeof(got), got), 0);
	ASSERT(!memcmp(got, b, sizeof(b)), "the copy's blocks at 40 MiB differ");
	ASSERT_EQ(blk_call(x, LMP_BLK_READ, "web2", tb, 20 << 20, sizeof(got), got), 0);
	ASSERT(!memcmp(got, zero, sizeof(got)));
	ASSERT_EQ(blk_call(x, LMP_BLK_READ, "web2", ta, 0, 4096, got), -EACCES);
	/* the copy is its own: sparse as the original, and written apart from it */
	snprintf(path, sizeof(path), "%s/web2.vol", sv.dir);
	ASSERT_EQ(stat(path, &st), 0);
	ASSERT_EQ(st.st_size, 64 << 20);
	ASSERT(st.st_blocks * 512 <= 4 << 20, "the copy of 128 KiB of data took %lld KiB",
	       (long long)st.st_blocks / 2);
	ASSERT_EQ(blk_call(x, LMP_BLK_WRITE, "web2", tb, 0, sizeof(b), b), 0);
	ASSERT_EQ(blk_call(x, LMP_BLK_READ, "web", ta, 0, sizeof(got), got), 0);
	ASSERT(!memcmp(got, a, sizeof(a)), "a write to the copy reached the original");
	xport_close(x);
	storsrv_kill(&sv, SIGTERM);
}
