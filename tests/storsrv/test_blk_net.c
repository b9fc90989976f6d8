/*
 * test_blk_net.c - lego-vmm's network block backend (blk_net.c) in this
 * process against a real lego-storsrv that is killed (-9) and restarted
 * several times while writes are in flight: every write completes without
 * an error, and what is read back at the end is the last version written
 * of every block (nothing lost, no old write replayed over a newer one);
 * no request fails before its deadline; and a server that stops answering
 * (a connection accepted and never served) is left for one that answers.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "blk.h"
#include "tcpproxy.h"
#include "test.h"
#include "srv.h"
#include "util.h"
#include "xport.h"

#define BLOCKS	  64
#define BLOCK	  (64 * 1024)
#define ROUNDS	  16
#define IN_FLIGHT 8
#define RESTARTS  4

/* The submitter's view of what is in flight. */
struct tracker {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int in_flight, errors, completed;
};

struct op {
	struct blk_io io;
	struct iovec iov;
	struct tracker *t;
};

static void op_done(struct blk_io *io, int result)
{
	struct op *o = (struct op *)io;
	struct tracker *t = o->t;

	pthread_mutex_lock(&t->lock);
	t->in_flight--;
	t->completed++;
	t->errors += result != 0;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

static void wait_below(struct tracker *t, int n)
{
	pthread_mutex_lock(&t->lock);
	while (t->in_flight > n)
		pthread_cond_wait(&t->cond, &t->lock);
	pthread_mutex_unlock(&t->lock);
}

static void fill(uint8_t *buf, int block, int version)
{
	for (int i = 0; i < BLOCK; i += 8) {
		uint64_t v = ((uint64_t)block << 40 | (uint64_t)version << 24 | (uint64_t)i) *
			     0x9e3779b97f4a7c15ULL;

		memcpy(buf + i, &v, 8);
	}
}

static void submit(struct blk_backend *be, struct tracker *t, struct op *o, enum blk_op op,
		   uint64_t off, void *buf, size_t len)
{
	wait_below(t, IN_FLIGHT - 1);
	o->t = t;
	o->iov = (struct iovec){buf, len};
	o->io = (struct blk_io){.op = op,
				.offset = off,
				.iov = &o->iov,
				.iovcnt = op != BLK_FLUSH,
				.done = op_done};
	pthread_mutex_lock(&t->lock);
	t->in_flight++;
	pthread_mutex_unlock(&t->lock);
	ASSERT_EQ(be->ops->submit(be, &o->io), 0);
}

/* Create volume "disk" of @size bytes on @sv with a fixed token (into @token). */
static void create_disk(struct storsrv_proc *sv, uint64_t size, uint8_t token[LMP_TOKEN_LEN])
{
	struct lmp_vol v = {.name = "disk", .size = size};
	struct iovec iov = {&v, sizeof(v)};
	struct lmp_hdr resp;
	struct xport *x;
	char err[256];

	for (int i = 0; i < LMP_TOKEN_LEN; i++)
		v.token[i] = (uint8_t)(i * 7 + 1);
	memcpy(token, v.token, LMP_TOKEN_LEN);
	ASSERT_EQ(xport_connect(sv->listen, 2000, 5000, &x, err, sizeof(err)), 0);
	ASSERT_EQ(xport_call(x, LMP_VOL_CREATE, 0, &iov, 1, &resp, NULL, 0), 0);
	ASSERT_EQ(resp.status, 0);
	xport_close(x);
}

/* A storage server started in @sv with volume "disk" of @size bytes, and the disk opened on it. */
static struct blk_backend *served_disk(struct storsrv_proc *sv, uint64_t size)
{
	uint8_t token[LMP_TOKEN_LEN];
	struct blk_backend *be;
	char url[128];

	storsrv_start(sv);
	create_disk(sv, size, token);
	snprintf(url, sizeof(url), "storsrv://%s/disk", sv->listen);
	ASSERT_EQ(blk_net_open(url, token, 60000, &be), 0);
	return be;
}

struct killer {
	struct storsrv_proc *sv;
	volatile int stop;
	int restarts;
};

static void *kill_and_restart(void *arg)
{
	struct killer *k = arg;

	while (!k->stop && k->restarts < RESTARTS) {
		usleep(150000 + rand() % 200000);
		storsrv_kill(k->sv, SIGKILL);
		usleep(rand() % 100000); /* the server is down a while */
		storsrv_start(k->sv);
		k->restarts++;
	}
	return NULL;
}

TEST_TIMEOUT(writes_survive_storage_server_restarts_in_order, 300)
{
	struct storsrv_proc sv = {0};
	static uint8_t bufs[IN_FLIGHT][BLOCK], got[BLOCK], want[BLOCK];
	static struct op ops[IN_FLIGHT + 1];
	struct tracker t = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
	struct killer k = {.sv = &sv};
	struct blk_backend *be;
	pthread_t killer;
	struct blk_net_stats st;
	int rounds;

	be = served_disk(&sv, (uint64_t)BLOCKS * BLOCK);
	ASSERT_EQ(be->size, (uint64_t)BLOCKS * BLOCK);

	pthread_create(&killer, NULL, kill_and_restart, &k);
	/* rounds go on until the server was restarted RESTARTS times under them */
	for (rounds = 0; rounds < ROUNDS || k.restarts < RESTARTS; rounds++) {
		int r = rounds;

		/* IN_FLIGHT writes at once, each with its own buffer, then the next
		 * batch; every other batch plugged, as a virtio queue's notify sends */
		for (int b = 0; b < BLOCKS; b += IN_FLIGHT) {
			bool plug = (b / IN_FLIGHT) % 2;

			if (plug)
				blk_plug(be);
			for (int j = 0; j < IN_FLIGHT; j++) {
				fill(bufs[j], b + j, r);
				submit(be, &t, &ops[j], BLK_WRITE, (uint64_t)(b + j) * BLOCK,
				       bufs[j], BLOCK);
			}
			if (plug)
				blk_unplug(be);
			wait_below(&t, 0);
		}
		submit(be, &t, &ops[IN_FLIGHT], BLK_FLUSH, 0, NULL, 0);
		wait_below(&t, 0);
	}
	k.stop = 1;
	pthread_join(killer, NULL);
	blk_net_stats(be, &st);
	printf("  %d writes and flushes in %d rounds, %d restarts of the server, %d errors; "
	       "%llu reconnects, %llu requests sent again\n",
	       t.completed, rounds, k.restarts, t.errors, (unsigned long long)st.reconnects,
	       (unsigned long long)st.resent);
	ASSERT_EQ(t.errors, 0);
	ASSERT_EQ(st.failed, 0);
	ASSERT(st.reconnects >= (uint64_t)RESTARTS, "fewer reconnections than restarts");
	ASSERT(st.resent > 0, "no restart ever caught a request in flight");
	ASSERT(k.restarts >= 1, "the server was never restarted during the writes");
	for (int b = 0; b < BLOCKS; b++) {
		submit(be, &t, &ops[0], BLK_READ, (uint64_t)b * BLOCK, got, BLOCK);
		wait_below(&t, 0);
		fill(want, b, rounds - 1);
		ASSERT(!memcmp(got, want, BLOCK), "block %d is not its last version", b);
	}
	ASSERT_EQ(t.errors, 0);
	be->ops->close(be);
	storsrv_kill(&sv, SIGKILL);
}

/* Split @len bytes at @buf into iovecs of the sizes in @cuts (0-terminated), the rest last. */
static int cut(struct iovec *iov, uint8_t *buf, size_t len, const size_t *cuts)
{
	int n = 0;

	for (; *cuts && *cuts < len; cuts++, n++) {
		iov[n] = (struct iovec){buf, *cuts};
		buf += *cuts;
		len -= *cuts;
	}
	iov[n++] = (struct iovec){buf, len};
	return n;
}

/*
 * Between blk_plug and blk_unplug nothing leaves; at the unplug, 16 writes
 * and one write longer than three wire requests leave in one sendmsg, their
 * bytes taken from iovecs cut in odd places (a wire request's end inside an
 * iovec); read back into iovecs cut elsewhere, every byte is where it belongs.
 */
TEST(a_plugged_queue_leaves_in_one_send_into_odd_iovecs)
{
	enum { SMALL = 16, SMALL_LEN = 8192, BIG_LEN = 3 * LMP_BLK_MAX + 64 * 1024 };
	static const size_t wcuts_small[] = {1024, 5120, 0}, rcuts_small[] = {4096, 512, 0};
	static const size_t wcuts_big[] = {300 * 1024, 200 * 1024, 4096, 0},
			    rcuts_big[] = {512, LMP_BLK_MAX, 100 * 1024, 0};
	struct storsrv_proc sv = {0};
	static uint8_t wsmall[SMALL][SMALL_LEN], rsmall[SMALL][SMALL_LEN], wbig[BIG_LEN],
		rbig[BIG_LEN];
	static struct op ops[SMALL + 1];
	static struct iovec iovs[SMALL + 1][8];
	struct tracker t = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
	struct blk_net_stats before, after;
	struct blk_backend *be;

	be = served_disk(&sv, 16 * MiB);
	for (int i = 0; i < SMALL; i++)
		for (int k = 0; k < SMALL_LEN; k++)
			wsmall[i][k] = (uint8_t)(i * 31 + k * 7 + 1);
	for (int k = 0; k < BIG_LEN; k++)
		wbig[k] = (uint8_t)(k * 13 + k / 4096);

	for (int pass = 0; pass < 2; pass++) { /* the writes, then the reads */
		enum blk_op op = pass ? BLK_READ : BLK_WRITE;

		blk_net_stats(be, &before);
		blk_plug(be);
		for (int i = 0; i <= SMALL; i++) {
			struct op *o = &ops[i];
			bool big = i == SMALL;

			o->t = &t;
			o->io = (struct blk_io){
				.op = op,
				.offset = big ? 8 * MiB : (uint64_t)i * SMALL_LEN,
				.iov = iovs[i],
				.iovcnt = cut(iovs[i],
					      big ? (pass ? rbig : wbig)
						  : (pass ? rsmall[i] : wsmall[i]),
					      big ? BIG_LEN : SMALL_LEN,
					      big ? (pass ? rcuts_big : wcuts_big)
						  : (pass ? rcuts_small : wcuts_small)),
				.done = op_done};
			pthread_mutex_lock(&t.lock);
			t.in_flight++;
			pthread_mutex_unlock(&t.lock);
			ASSERT_EQ(be->ops->submit(be, &o->io), 0);
		}
		usleep(200 * 1000);
		ASSERT_EQ(t.completed, pass * (SMALL + 1)); /* nothing left while plugged */
		blk_net_stats(be, &after);
		ASSERT_EQ(after.sends, before.sends);
		blk_unplug(be);
		wait_below(&t, 0);
		blk_net_stats(be, &after);
		printf("  %s: %d I/Os (one of %d bytes) in %llu sendmsg\n",
		       pass ? "reads" : "writes", SMALL + 1, BIG_LEN,
		       (unsigned long long)(after.sends - before.sends));
		ASSERT_EQ(t.errors, 0);
		ASSERT_EQ(after.sends - before.sends, 1);
	}
	for (int i = 0; i < SMALL; i++)
		ASSERT(!memcmp(rsmall[i], wsmall[i], SMALL_LEN), "write %d read back differs", i);
	ASSERT(!memcmp(rbig, wbig, BIG_LEN), "the long write read back differs");
	be->ops->close(be);
	storsrv_kill(&sv, SIGKILL);
}

/*
 * Many small requests at depth: the receiver checks deadlines while the
 * submitter adds requests, and a request added between the two must not be
 * taken for one that waited past its deadline (it once was: an I/O error to
 * the guest within microseconds, logged as "unanswered for 60000 ms").
 */
TEST(no_request_fails_before_its_deadline)
{
	enum { N = 20000 };
	struct storsrv_proc sv = {0};
	static uint8_t bufs[IN_FLIGHT][4096];
	static struct op ops[IN_FLIGHT];
	struct tracker t = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
	struct blk_net_stats st;
	struct blk_backend *be;

	be = served_disk(&sv, 16 * MiB);
	for (int i = 0; i < N; i += IN_FLIGHT) { /* batches, so that a buffer is free when reused */
		for (int j = 0; j < IN_FLIGHT; j++)
			submit(be, &t, &ops[j], BLK_WRITE, (uint64_t)((i + j) % 4096) * 4096,
			       bufs[j], 4096);
		wait_below(&t, 0);
	}
	blk_net_stats(be, &st);
	printf("  %d requests at depth %d: %d errors, %llu failed by deadline\n", t.completed,
	       IN_FLIGHT, t.errors, (unsigned long long)st.failed);
	ASSERT_EQ(t.completed, N);
	ASSERT_EQ(t.errors, 0);
	ASSERT_EQ(st.failed, 0);
	be->ops->close(be);
	storsrv_kill(&sv, SIGKILL);
}

/*
 * After a restart of the storage server the disk connects again, and may
 * then have nothing to ask for a long while (an idle guest). The server
 * closes a connection that sends no request within SRV_FIRST_REQUEST_MS:
 * the reconnection's PING is its first request, so the connection stays and
 * no reconnection loop starts.
 */
TEST_TIMEOUT(an_idle_disk_keeps_its_connection_after_a_restart, 60)
{
	struct storsrv_proc sv = {0};
	static uint8_t buf[4096];
	static struct op op;
	struct tracker t = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
	struct blk_net_stats st;
	uint64_t reconnects;
	struct blk_backend *be;

	be = served_disk(&sv, 16 * MiB);
	storsrv_kill(&sv, SIGKILL);
	storsrv_start(&sv);
	for (int ms = 0;; ms += 50) { /* connected again, with nothing to send */
		blk_net_stats(be, &st);
		reconnects = st.reconnects;
		if (reconnects)
			break;
		ASSERT(ms < 20000, "the disk never connected again");
		usleep(50 * 1000);
	}
	sleep(SRV_FIRST_REQUEST_MS / 1000 + 2);
	blk_net_stats(be, &st);
	ASSERT(st.reconnects == reconnects,
	       "the idle connection was lost and made again %llu times",
	       (unsigned long long)(st.reconnects - reconnects));
	submit(be, &t, &op, BLK_WRITE, 0, buf, 4096);
	wait_below(&t, 0);
	ASSERT_EQ(t.errors, 0);
	be->ops->close(be);
	storsrv_kill(&sv, SIGKILL);
}

/*
 * The server stops answering: the client's connection is cut, and the
 * reconnection lands on a connection that is accepted and never served (a
 * hung server, or a killed server's listening socket that lingers). With
 * requests outstanding and nothing heard, the client must give that
 * connection up within seconds and send them again on a new one, long
 * before the deadline that fails them to the guest.
 */
TEST(a_silent_connection_is_left_and_every_request_completes)
{
	struct storsrv_proc sv = {0};
	static uint8_t bufs[IN_FLIGHT][BLOCK], got[BLOCK], want[BLOCK];
	static struct op ops[IN_FLIGHT];
	struct tracker t = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
	uint8_t token[LMP_TOKEN_LEN];
	struct blk_net_stats st;
	struct blk_backend *be;
	struct tcpproxy *px;
	char url[128], addr[64];
	int accepted, silenced;
	double waited;
	uint64_t t0;

	storsrv_start(&sv);
	create_disk(&sv, (uint64_t)BLOCKS * BLOCK, token);
	px = tcpproxy_start(sv.listen, addr);
	snprintf(url, sizeof(url), "storsrv://%s/disk", addr);
	ASSERT_EQ(blk_net_open(url, token, 30000, &be), 0);
	for (int j = 0; j < IN_FLIGHT; j++) { /* version 0, through the proxy */
		fill(bufs[j], j, 0);
		submit(be, &t, &ops[j], BLK_WRITE, (uint64_t)j * BLOCK, bufs[j], BLOCK);
	}
	wait_below(&t, 0);
	ASSERT_EQ(t.errors, 0);

	tcpproxy_silent(px, true);
	tcpproxy_cut(px);
	for (int i = 0; i < 200; i++) { /* until the client has reconnected into the silence */
		tcpproxy_counts(px, &accepted, &silenced);
		if (silenced)
			break;
		usleep(10000);
	}
	ASSERT(silenced == 1, "the client did not reconnect after the cut");
	t0 = now_ns();
	for (int j = 0; j < IN_FLIGHT; j++) { /* version 1, sent into the silence */
		fill(bufs[j], j, 1);
		submit(be, &t, &ops[j], BLK_WRITE, (uint64_t)j * BLOCK, bufs[j], BLOCK);
	}
	usleep(300000);
	tcpproxy_silent(px, false); /* the next connection is served again */
	wait_below(&t, 0);
	waited = (now_ns() - t0) / 1e9;
	blk_net_stats(be, &st);
	tcpproxy_counts(px, &accepted, &silenced);
	printf("  completed %.2f s after they were sent into the silence; %llu reconnects, "
	       "%llu requests sent again, %d of %d connections silent\n",
	       waited, (unsigned long long)st.reconnects, (unsigned long long)st.resent, silenced,
	       accepted);
	ASSERT_EQ(t.errors, 0);
	ASSERT_EQ(st.failed, 0);
	ASSERT(waited < 10, "the client sat %.1f s on a silent connection", waited);
	ASSERT(st.resent >= IN_FLIGHT, "the requests were not sent again");
	for (int j = 0; j < IN_FLIGHT; j++) {
		submit(be, &t, &ops[0], BLK_READ, (uint64_t)j * BLOCK, got, BLOCK);
		wait_below(&t, 0);
		fill(want, j, 1);
		ASSERT(!memcmp(got, want, BLOCK), "block %d is not its last version", j);
	}
	ASSERT_EQ(t.errors, 0);
	be->ops->close(be);
	tcpproxy_stop(px);
	storsrv_kill(&sv, SIGKILL);
}

TEST(a_volume_that_is_not_there_or_a_wrong_token_is_a_clear_error)
{
	struct storsrv_proc sv = {0};
	uint8_t tok[LMP_TOKEN_LEN] = {1, 2, 3};
	struct blk_backend *be;
	char url[128];

	storsrv_start(&sv);
	snprintf(url, sizeof(url), "storsrv://%s/nothing", sv.listen);
	ASSERT_EQ(blk_net_open(url, tok, 1000, &be), -ENOENT);
	ASSERT_EQ(blk_net_open("storsrv://127.0.0.1:1/x", tok, 1000, &be) < 0, 1);
	ASSERT_EQ(blk_net_open("storsrv://noslash", tok, 1000, &be), -EINVAL);
	ASSERT_EQ(blk_net_open("storsrv://h:1/../x", tok, 1000, &be), -EINVAL);
	storsrv_kill(&sv, SIGKILL);
}
