/*
 * bench_storsrv.c - 4 KiB random reads and writes on a lego-storsrv volume
 * through lego-vmm's network block backend (blk_net.c: the client a vNode's
 * disk uses), at queue depth 1 and 32, next to fio (io_uring engine) on the
 * volume's very file in the same run, both through the page cache:
 *   storsrv_randread_qd32_iops, fio_randread_qd32_iops, randread_qd32_ratio
 *   (and the same for randwrite, and for QD1).
 * The ratio is what the network path (loopback TCP, the server's io_uring)
 * costs next to the local file. Its floor pays the same crossing: the same
 * 4 KiB random reads of the same file at QD32 as 32-byte requests and
 * 32-byte + 4 KiB answers over a bare TCP connection on loopback between
 * two processes, each end batching what has arrived (recv, pread, one send):
 *   floor_randread_qd32_iops, randread_qd32_floor_ratio (storsrv over it)
 * Then QD32 reads again from a storage server
 * of a cluster (TLS, the VMM's credential): storsrv_randread_qd32_iops_tls,
 * randread_qd32_ratio_tls (over fio), tls_randread_ratio (over plain TCP).
 */
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "blk.h"
#include "pki.h"
#include "test.h"
#include "util.h"
#include "xport.h"

#define VOL_SIZE (256ULL << 20)
#define SECONDS	 3

struct op;

struct load {
	struct blk_backend *be;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int in_flight, errors;
	uint64_t done, seed;
	struct op *free[32]; /* ops not in flight */
	int nr_free;
};

struct op {
	struct blk_io io;
	struct iovec iov;
	struct load *l;
	uint8_t buf[4096];
};

static void op_done(struct blk_io *io, int result)
{
	struct load *l = ((struct op *)io)->l;

	pthread_mutex_lock(&l->lock);
	if (l->nr_free < 32)
		l->free[l->nr_free++] = (struct op *)io;
	l->in_flight--;
	l->done++;
	l->errors += result != 0;
	pthread_cond_signal(&l->cond);
	pthread_mutex_unlock(&l->lock);
}

static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* IOPS of 4 KiB random @op at depth @qd for SECONDS through the backend. */
static double client_iops(struct blk_backend *be, enum blk_op op, int qd)
{
	static struct op ops[32];
	struct load l = {.be = be,
			 .lock = PTHREAD_MUTEX_INITIALIZER,
			 .cond = PTHREAD_COND_INITIALIZER,
			 .seed = 88172645463325252ULL};
	uint64_t t0 = now_ns(), end = t0 + SECONDS * 1000000000ULL, n0;

	for (int i = 0; i < qd; i++)
		l.free[l.nr_free++] = &ops[i];
	pthread_mutex_lock(&l.lock);
	while (now_ns() < end) {
		struct op *batch[32];
		int k = 0;

		while (l.in_flight >= qd || !l.nr_free)
			pthread_cond_wait(&l.cond, &l.lock);
		/* every op that is free goes, in one plug: as a virtio queue's notify does */
		while (l.in_flight < qd && l.nr_free) {
			struct op *o = l.free[--l.nr_free];

			o->l = &l;
			o->iov = (struct iovec){o->buf, sizeof(o->buf)};
			o->io = (struct blk_io){.op = op,
						.offset = (next_rand(&l.seed) % (VOL_SIZE / 4096)) *
							  4096,
						.iov = &o->iov,
						.iovcnt = 1,
						.done = op_done};
			l.in_flight++;
			batch[k++] = o;
		}
		pthread_mutex_unlock(&l.lock);
		blk_plug(be);
		for (int i = 0; i < k; i++)
			if (be->ops->submit(be, &batch[i]->io))
				exit(1);
		blk_unplug(be);
		pthread_mutex_lock(&l.lock);
	}
	n0 = l.done;
	while (l.in_flight)
		pthread_cond_wait(&l.cond, &l.lock);
	pthread_mutex_unlock(&l.lock);
	if (l.errors)
		fprintf(stderr, "bench_storsrv: %d errors\n", l.errors);
	return (double)n0 / ((now_ns() - t0) / 1e9);
}

/* ---- the floor: bare sockets between two processes ---- */

#define REQ   32
#define ANSW  (32 + 4096)
#define BATCH 64

/* Answer every request on @fd: pread 4 KiB of @file at its offset, send a header and the page. */
static void floor_server(int lfd, const char *file)
{
	static uint8_t in[BATCH * REQ], out[BATCH * ANSW];
	int fd = accept(lfd, NULL, NULL), f = open(file, O_RDONLY), one = 1;
	size_t have = 0;

	if (fd < 0 || f < 0)
		_exit(1);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	for (;;) {
		ssize_t n = recv(fd, in + have, sizeof(in) - have, 0);
		size_t k = 0, len = 0;

		if (n <= 0)
			_exit(0);
		have += (size_t)n;
		for (; (k + 1) * REQ <= have; k++) {
			uint64_t off;

			memcpy(&off, in + k * REQ, sizeof(off));
			memcpy(out + len, in + k * REQ, REQ); /* the header: the request echoed */
			if (pread(f, out + len + REQ, 4096, (off_t)off) != 4096)
				_exit(2);
			len += ANSW;
		}
		memmove(in, in + k * REQ, have - k * REQ);
		have -= k * REQ;
		if (len && send(fd, out, len, MSG_NOSIGNAL) != (ssize_t)len)
			_exit(0);
	}
}

/* @n requests for random 4 KiB-aligned offsets, in one send. */
static bool send_reqs(int fd, int n, uint64_t *seed)
{
	static uint8_t req[BATCH * REQ];

	for (int i = 0; i < n; i++) {
		uint64_t off = (next_rand(seed) % (VOL_SIZE / 4096)) * 4096;

		memcpy(req + i * REQ, &off, sizeof(off));
	}
	return send(fd, req, (size_t)n * REQ, MSG_NOSIGNAL) == (ssize_t)n * REQ;
}

/* IOPS of 4 KiB random reads of @file at depth @qd through the bare floor server. */
static double floor_iops(const char *file, int qd)
{
	static uint8_t in[1 << 18];
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t salen = sizeof(sa);
	int lfd = socket(AF_INET, SOCK_STREAM, 0), fd, one = 1, status;
	uint64_t seed = 88172645463325252ULL, done = 0, bytes = 0, t0, end;
	pid_t pid;

	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 1) ||
	    getsockname(lfd, (struct sockaddr *)&sa, &salen))
		return 0;
	pid = fork();
	if (pid == 0)
		floor_server(lfd, file);
	close(lfd);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		return 0;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	t0 = now_ns();
	end = t0 + SECONDS * 1000000000ULL;
	if (!send_reqs(fd, qd, &seed))
		return 0;
	while (now_ns() < end) {
		ssize_t n = recv(fd, in, sizeof(in), 0);
		uint64_t answered;

		if (n <= 0)
			return 0;
		bytes += (uint64_t)n;
		answered = bytes / ANSW - done;
		done += answered;
		while (answered) {
			int k = answered > BATCH ? BATCH : (int)answered;

			if (!send_reqs(fd, k, &seed))
				return 0;
			answered -= (uint64_t)k;
		}
	}
	t0 = now_ns() - t0;
	close(fd);
	waitpid(pid, &status, 0);
	return (double)done / (t0 / 1e9);
}

/* IOPS fio measures with the io_uring engine on @file. */
static double fio_iops(const char *file, const char *rw, int qd)
{
	char cmd[1024];
	static char out[1 << 20];
	size_t n;
	FILE *f;
	json_t *j, *job;
	double iops = 0;

	snprintf(cmd, sizeof(cmd),
		 "fio --name=b --filename=%s --ioengine=io_uring --rw=%s --bs=4k --iodepth=%d "
		 "--size=%llu --time_based --runtime=%d --randrepeat=0 --norandommap "
		 "--output-format=json 2>/dev/null",
		 file, rw, qd, VOL_SIZE, SECONDS);
	f = popen(cmd, "r");
	if (!f)
		return 0;
	n = fread(out, 1, sizeof(out) - 1, f);
	pclose(f);
	out[n] = 0;
	j = json_loads(strchr(out, '{') ? strchr(out, '{') : out, 0, NULL);
	job = j ? json_array_get(json_object_get(j, "jobs"), 0) : NULL;
	if (job)
		iops = json_real_value(json_object_get(
			json_object_get(job, strstr(rw, "read") ? "read" : "write"), "iops"));
	json_decref(j);
	return iops;
}

/*
 * A lego-storsrv on a free port with its data in @dir (TLS as @identity, a
 * member certificate's prefix, if not NULL), a volume "bench" on it written
 * once all over (so that reads find data), and lego-vmm's backend on it.
 * The volume is made by whoever this process is to the server (an admin on
 * a TLS one); the backend connects as this process then is.
 */
static pid_t served_volume(const char *dir, const char *identity, struct blk_backend **be,
			   char *listen)
{
	static uint8_t chunk[256 * 1024];
	char url[128], err[256];
	char *srv_argv[] = {(char *)test_path("bin/lego-storsrv"),
			    "-q",
			    "--listen",
			    listen,
			    "--data",
			    (char *)dir,
			    identity ? "--identity" : NULL,
			    (char *)identity,
			    NULL};
	struct lmp_vol v = {.name = "bench", .size = VOL_SIZE};
	struct iovec iov = {&v, sizeof(v)};
	struct lmp_hdr resp;
	struct xport *x;
	pid_t srv;

	snprintf(listen, 64, "127.0.0.1:%d", test_free_port());
	srv = proc_spawn(srv_argv);
	if (!wait_for_port(atoi(strrchr(listen, ':') + 1), 10000))
		exit(1);
	for (int i = 0; i < LMP_TOKEN_LEN; i++)
		v.token[i] = (uint8_t)i;
	if (xport_connect(listen, 2000, 10000, &x, err, sizeof(err)) ||
	    xport_call(x, LMP_VOL_CREATE, 0, &iov, 1, &resp, NULL, 0) || resp.status) {
		fprintf(stderr, "bench_storsrv: cannot create the volume\n");
		exit(1);
	}
	xport_close(x);
	snprintf(url, sizeof(url), "storsrv://%s/bench", listen);
	if (blk_net_open(url, v.token, 30000, be))
		exit(1);
	memset(chunk, 0x5a, sizeof(chunk));
	for (uint64_t off = 0; off < VOL_SIZE; off += sizeof(chunk)) {
		struct op o = {0};
		struct load l = {.be = *be,
				 .lock = PTHREAD_MUTEX_INITIALIZER,
				 .cond = PTHREAD_COND_INITIALIZER,
				 .in_flight = 1};

		o.l = &l;
		o.iov = (struct iovec){chunk, sizeof(chunk)};
		o.io = (struct blk_io){.op = BLK_WRITE,
				       .offset = off,
				       .iov = &o.iov,
				       .iovcnt = 1,
				       .done = op_done};
		(*be)->ops->submit(*be, &o.io);
		pthread_mutex_lock(&l.lock);
		while (l.in_flight)
			pthread_cond_wait(&l.cond, &l.lock);
		pthread_mutex_unlock(&l.lock);
	}
	return srv;
}

/* The cluster of the bench's own: a CA, the server's certificate, an admin's, and a
 * VMM's for the volume "bench"; the prefix of the server's into @prefix. */
static void bench_cluster(const char *dir, char *prefix, size_t len, char **vmm_cert,
			  char **vmm_key)
{
	static const char *const local[] = {"127.0.0.1", NULL};
	struct pki_cert_req srv = {.name = "storsrv", .role = PKI_STORSRV, .hosts = local};
	struct pki_cert_req vmm = {.name = "bench", .role = PKI_VMM, .vnode = 1};
	char err[1024];

	if (pki_init_cluster(dir, "bench", NULL, err, sizeof(err)) ||
	    pki_issue(dir, &srv, err, sizeof(err)) ||
	    pki_issue_pem(dir, &vmm, vmm_cert, vmm_key, err, sizeof(err))) {
		fprintf(stderr, "bench_storsrv: %s\n", err);
		exit(1);
	}
	snprintf(prefix, len, "%s/storsrv", dir);
}

int main(int argc, char **argv)
{
	char dir[300], file[400], tlsdir[400], pki[420], prefix[480], admin[480], err[1024];
	char listen[64];
	struct pki_identity id;
	struct blk_backend *be;
	char *cert, *key, *ca;
	double plain32 = 0, fio32 = 0;
	pid_t srv;
	int status;

	test_set_build_dir(argc > 1 ? argv[1] : "build");
	if (system("command -v fio >/dev/null 2>&1")) {
		fprintf(stderr, "bench_storsrv: fio is not installed (make deps installs it)\n");
		return 1;
	}
	snprintf(dir, sizeof(dir), "%s", test_tmpdir());
	snprintf(file, sizeof(file), "%s/bench.vol", dir);
	srv = served_volume(dir, NULL, &be, listen);
	{
		static const struct {
			const char *name, *fio;
			enum blk_op op;
		} kinds[] = {{"randread", "randread", BLK_READ},
			     {"randwrite", "randwrite", BLK_WRITE}};

		for (int k = 0; k < 2; k++) {
			for (int qd = 1; qd <= 32; qd *= 32) {
				double ours = client_iops(be, kinds[k].op, qd);
				double fio = fio_iops(file, kinds[k].fio, qd);

				printf("BENCH storsrv_%s_qd%d_iops=%.0f fio_%s_qd%d_iops=%.0f "
				       "%s_qd%d_ratio=%.2f\n",
				       kinds[k].name, qd, ours, kinds[k].name, qd, fio,
				       kinds[k].name, qd, fio > 0 ? ours / fio : 0);
				fflush(stdout);
				if (k == 0 && qd == 32)
					plain32 = ours, fio32 = fio;
			}
		}
	}
	{
		double floor32 = floor_iops(file, 32);

		printf("BENCH storsrv_randread_qd32_iops=%.0f floor_randread_qd32_iops=%.0f "
		       "randread_qd32_floor_ratio=%.2f randread_qd32_floor_goal=0.8\n",
		       plain32, floor32, floor32 > 0 ? plain32 / floor32 : 0);
		fflush(stdout);
	}
	be->ops->close(be);
	kill(srv, SIGTERM);
	waitpid(srv, &status, 0);

	/* The same reads from a storage server of a cluster: TLS, the VMM's credential. */
	snprintf(tlsdir, sizeof(tlsdir), "%s/tls", dir);
	snprintf(pki, sizeof(pki), "%s/pki", dir);
	bench_cluster(pki, prefix, sizeof(prefix), &cert, &key);
	snprintf(admin, sizeof(admin), "%s/admin", pki);
	if (pki_identity(admin, &id, err, sizeof(err)) || xport_tls_files(&id, err, sizeof(err)) ||
	    !(ca = pki_read(id.ca))) {
		fprintf(stderr, "bench_storsrv: %s\n", err);
		return 1;
	}
	srv = served_volume(tlsdir, prefix, &be, listen); /* made and written by the admin */
	be->ops->close(be);
	if (xport_tls(ca, cert, key, err, sizeof(err))) { /* read by the vNode's VMM */
		fprintf(stderr, "bench_storsrv: %s\n", err);
		return 1;
	}
	{
		char url[128];
		uint8_t token[LMP_TOKEN_LEN];
		for (int i = 0; i < LMP_TOKEN_LEN; i++)
			token[i] = (uint8_t)i;
		snprintf(url, sizeof(url), "storsrv://%s/bench", listen);
		if (blk_net_open(url, token, 30000, &be))
			return 1;
	}
	double tls32 = client_iops(be, BLK_READ, 32);
	printf("BENCH storsrv_randread_qd32_iops_tls=%.0f storsrv_randread_qd32_iops_plain=%.0f "
	       "randread_qd32_ratio_tls=%.2f tls_randread_ratio=%.2f\n",
	       tls32, plain32, fio32 > 0 ? tls32 / fio32 : 0, plain32 > 0 ? tls32 / plain32 : 0);
	be->ops->close(be);
	kill(srv, SIGTERM);
	waitpid(srv, &status, 0);
	free(ca);
	free(cert);
	free(key);
	return 0;
}
