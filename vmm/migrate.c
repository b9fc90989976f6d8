/*
 * migrate.c - live migration of a vNode's processor component to another
 * VMM, the memory staying on the memory servers.
 *
 * The source pauses, writes its ExCache's dirty pages back and sends a
 * snapshot without memory (vCPUs, devices, which pages the servers hold:
 * kilobytes, whatever the memory size) to the target, which was started with
 * the same order and --incoming. The handshake, on one TCP connection:
 *
 *   source -> target  header (magic, the order's migrate token, the source's
 *                     epoch, the snapshot's length), the snapshot
 *   target -> source  'Y': loaded, ready to run
 *   source -> target  'G': go
 *   target            takes the vNode over at epoch E+1 on the memory servers
 *                     (LMP_HELLO_TAKEOVER), which fences the source
 *   target -> source  'R': running; the source exits, leaving the memory
 *
 * Which VMM runs afterwards is decided by the memory servers alone: once the
 * snapshot has left the source, neither side runs again without winning the
 * takeover of epoch E+1 on the route's first server, and only one can. So a
 * failure or a kill at any step leaves exactly one VMM running the vNode:
 * the source resumes (it takes E+1 itself) when the target never got that
 * far, the target runs when the source vanished after sending its state,
 * and the loser of a race stops. Nothing guest-visible is lost: the source
 * is paused from its snapshot on, and its dirty pages are on the servers.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "excache.h"
#include "util.h"
#include "vmm.h"

#define MIG_MAGIC	 0x3147494d4f47454cULL /* "LEGOMIG1" */
#define MIG_MAX_SNAPSHOT (64u << 20)	       /* no memory in it: kilobytes, in fact */
#define MIG_ACCEPT_MS	 (10 * 60 * 1000)      /* the source may come much later */
#define MIG_STEP_MS	 30000		       /* each step of the handshake, at most */
#define MIG_READY	 'Y'
#define MIG_GO		 'G'
#define MIG_RUNNING	 'R'

struct mig_header {
	uint64_t magic;
	uint8_t token[LMP_TOKEN_LEN];
	uint64_t epoch; /* the source's, now: the vNode is taken over at epoch + 1 */
	uint64_t len;	/* of the snapshot that follows */
	uint64_t memory;
	uint32_t cpus, reserved;
};

struct migrate {
	int listen_fd; /* --incoming: listening from setup on */
};

/* ---- bytes with a deadline ---- */

static int wait_fd(int fd, short events, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = events};
	int n;

	do
		n = poll(&p, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n ? 0 : -ETIMEDOUT;
}

static int recv_all(int fd, void *buf, size_t len, int timeout_ms)
{
	uint8_t *b = buf;

	while (len) {
		int ret = wait_fd(fd, POLLIN, timeout_ms);
		ssize_t n;

		if (ret)
			return ret;
		n = recv(fd, b, len, 0);
		if (n == 0)
			return -ECONNRESET;
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			return -errno;
		if (n > 0)
			b += n, len -= (size_t)n;
	}
	return 0;
}

static int send_all(int fd, const void *buf, size_t len, int timeout_ms)
{
	const uint8_t *b = buf;

	while (len) {
		int ret = wait_fd(fd, POLLOUT, timeout_ms);
		ssize_t n;

		if (ret)
			return ret;
		n = send(fd, b, len, MSG_NOSIGNAL);
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			return -errno;
		if (n > 0)
			b += n, len -= (size_t)n;
	}
	return 0;
}

/* One byte of the handshake: @want, or -EPROTO / the error. */
static int recv_step(int fd, char want)
{
	char c;
	int ret = recv_all(fd, &c, 1, MIG_STEP_MS);

	return ret ? ret : c == want ? 0 : -EPROTO;
}

/*
 * Fault injection for tests: with LEGO_MIGRATE_STALL=<step> in its
 * environment, a VMM says so on stderr and holds for 3 s at that step of the
 * handshake, so that a test can kill it exactly there. Source steps: "sent"
 * (its state sent), "go" (its go sent); target steps: "received" (the state
 * loaded), "ready" (its ready sent), "taken" (the vNode taken over).
 */
static void stall_at(const char *step)
{
	const char *s = getenv("LEGO_MIGRATE_STALL");

	if (s && !strcmp(s, step)) {
		fprintf(stderr, "lego-vmm: migrate: stalled at %s\n", step);
		fflush(stderr);
		sleep(3);
	}
}

/* Constant time: how much of a token matches says nothing. */
static bool token_equal(const uint8_t *a, const uint8_t *b)
{
	uint8_t d = 0;

	for (int i = 0; i < LMP_TOKEN_LEN; i++)
		d |= a[i] ^ b[i];
	return d == 0;
}

/* ---- the source: {"cmd":"migrate","to":"HOST:PORT","token":HEX} ---- */

/* The snapshot made into @fd, read back whole. */
static uint8_t *slurp(int fd, uint64_t *len)
{
	struct stat st;
	uint8_t *buf;

	if (fstat(fd, &st) || st.st_size <= 0 || (uint64_t)st.st_size > MIG_MAX_SNAPSHOT)
		return NULL;
	buf = malloc((size_t)st.st_size);
	if (buf && pread(fd, buf, (size_t)st.st_size, 0) != st.st_size) {
		free(buf);
		return NULL;
	}
	*len = (uint64_t)st.st_size;
	return buf;
}

/*
 * After the snapshot left: the source runs again only if it wins epoch E+1
 * on the memory servers. Returns true when it does (it resumes), false when
 * the target took the vNode (the source stops, its memory left there).
 */
static bool source_takes_back(struct vmm *v, uint64_t epoch, const char *why, char *err,
			      size_t errlen)
{
	char terr[256];
	int ret = memroute_takeover(&v->xc->route, epoch, terr, sizeof(terr));

	if (ret == 0) {
		snprintf(err, errlen,
			 "migration failed (%s): the vNode runs on here, at epoch %llu", why,
			 (unsigned long long)epoch);
		return true;
	}
	log_warn("migration: %s, and the target has the vNode (%s): stopping here", why, terr);
	return false;
}

static json_t *cmd_migrate(struct vmm *v, json_t *req, char *err, size_t errlen)
{
	const char *to = json_string_value(json_object_get(req, "to"));
	const char *token = json_string_value(json_object_get(req, "token"));
	struct mig_header h = {
		.magic = MIG_MAGIC, .memory = v->vm.mem.size, .cpus = (uint32_t)v->vm.nr_vcpus};
	uint64_t t0 = now_ns(), t_sent = 0, len = 0, epoch;
	uint8_t *snap = NULL;
	bool sent = false, done = false, resume = true;
	int fd = -1, sock = -1, ret;
	const char *why = NULL;
	char buf[256];

	if (!to || !token || lmp_token_parse(token, h.token)) {
		snprintf(err, errlen,
			 "give \"to\": the target's HOST:PORT, and \"token\": its "
			 "migrate token (64 hex digits)");
		return NULL;
	}
	if (!v->xc) {
		snprintf(err, errlen,
			 "this vNode's memory is all here (no ExCache): migration "
			 "moves vNodes whose memory is on memory servers");
		return NULL;
	}
	pthread_mutex_lock(&v->life_lock);
	if (v->paused) {
		pthread_mutex_unlock(&v->life_lock);
		snprintf(err, errlen, "the vNode is paused: resume it first");
		return NULL;
	}
	sock = tcp_connect(to, 5000, buf, sizeof(buf));
	if (sock < 0) {
		pthread_mutex_unlock(&v->life_lock);
		snprintf(err, errlen, "migration to %s: %s", to, buf);
		return NULL;
	}
	/* The dirty pages go back while the guest runs: the pause then writes back
	 * only what it dirtied since, and does not grow with the ExCache. */
	ret = excache_flush(v->xc);
	if (ret)
		log_warn("migration: the pre-copy of dirty pages failed (%s); the pause "
			 "writes them all",
			 memclient_strerror(ret));
	/* From here the guest is paused; it runs again here or there. */
	t0 = now_ns();
	ret = vmm_pause(v);
	epoch = memroute_epoch(&v->xc->route);
	h.epoch = epoch;
	fd = memfd_create("lego-migration", MFD_CLOEXEC);
	if (ret || fd < 0 || vmm_save(v, fd, buf, sizeof(buf)) || !(snap = slurp(fd, &len))) {
		why = ret ? "the guest is stopping" : fd < 0 ? strerror(errno) : buf;
		goto failed;
	}
	h.len = len;
	if ((ret = send_all(sock, &h, sizeof(h), MIG_STEP_MS)) ||
	    (ret = send_all(sock, snap, len, MIG_STEP_MS))) {
		why = "sending the state";
		goto failed;
	}
	sent = true;
	t_sent = now_ns();
	stall_at("sent");
	if ((ret = recv_step(sock, MIG_READY))) {
		why = ret == -EPROTO ? "the target refused the state"
				     : "the target never got ready";
		goto failed;
	}
	if (!(ret = send_all(sock, &(char){MIG_GO}, 1, MIG_STEP_MS)))
		stall_at("go");
	if (ret || (ret = recv_step(sock, MIG_RUNNING))) {
		why = "the target did not say it runs";
		goto failed;
	}
	done = true;
failed:
	if (!done && sent) /* it may run there: only the memory servers can say */
		resume = source_takes_back(v, epoch + 1, why, err, errlen);
	else if (!done)
		snprintf(err, errlen, "migration to %s failed: %s: the vNode runs on here", to,
			 why ? why : "?");
	if (done || !resume) {
		v->keep_memory = true;
		vm_stop(&v->vm, 0, "migrated to %s", to);
	} else {
		vmm_resume(v);
	}
	pthread_mutex_unlock(&v->life_lock);
	free(snap);
	if (fd >= 0)
		close(fd);
	close(sock);
	if (done || !resume) {
		double pause_ms = (now_ns() - t0) / 1e6;

		log_info("migrated to %s: paused %.1f ms, %llu bytes of state", to, pause_ms,
			 (unsigned long long)len);
		return json_pack("{s:s,s:f,s:f,s:I}", "to", to, "pause_ms", pause_ms, "send_ms",
				 t_sent ? (t_sent - t0) / 1e6 : 0.0, "state_bytes",
				 (json_int_t)len);
	}
	return NULL;
}

/* ---- the target: --incoming HOST:PORT ---- */

static int opt_incoming(struct vmm *v, const char *arg, char *err, size_t errlen)
{
	(void)err, (void)errlen;
	return order_set(&v->order.incoming, arg);
}

static void migrate_configure(struct vmm *v, struct vm_config *cfg)
{
	(void)cfg;
	if (v->order.incoming)
		v->incoming = true; /* the ExCache connects only once the vNode is ours */
}

/* Active wherever the memory is on memory servers: such a vNode can move. */
static int migrate_setup(struct vmm *v)
{
	struct migrate *m;
	char err[256];

	if (!v->order.excache)
		return VMM_IDLE;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->listen_fd = -1;
	vmm_set_priv(v, &mod_migrate, m);
	if (!v->order.incoming)
		return 0;
	m->listen_fd = tcp_listen(v->order.incoming, 2000, err, sizeof(err));
	if (m->listen_fd < 0) {
		log_err("--incoming %s: %s", v->order.incoming, err);
		free(m);
		vmm_set_priv(v, &mod_migrate, NULL);
		return -EADDRINUSE;
	}
	return 0;
}

static void migrate_teardown(struct vmm *v)
{
	struct migrate *m = vmm_priv(v, &mod_migrate);

	if (m->listen_fd >= 0)
		close(m->listen_fd);
	if (v->migrate_sock >= 0) { /* set up failed between the state and the commit */
		close(v->migrate_sock);
		v->migrate_sock = -1;
	}
	free(m);
	vmm_set_priv(v, &mod_migrate, NULL);
}

/* The source's snapshot, checked: into a memfd, opened as v->restoring. */
static int receive_state(struct vmm *v, int sock, struct mig_header *h)
{
	struct snap *sn = calloc(1, sizeof(*sn));
	uint8_t *buf = NULL;
	int fd = -1, ret;
	char err[256];

	ret = recv_all(sock, h, sizeof(*h), MIG_STEP_MS);
	if (ret) {
		free(sn);
		return -EAGAIN; /* a probe of the port, or a client that gave up: not the source */
	}
	if (h->magic != MIG_MAGIC || !token_equal(h->token, v->order.migrate_token)) {
		log_warn("incoming: a connection without this vNode's migrate token: refused");
		ret = -EACCES;
	} else if (!ret && (h->len > MIG_MAX_SNAPSHOT || h->memory != v->vm.mem.size ||
			    h->cpus != (uint32_t)v->vm.nr_vcpus)) {
		log_err("incoming: a vNode of %u vCPUs and %llu MiB (%llu bytes of state): this "
			"one has %d and %llu MiB",
			h->cpus, (unsigned long long)(h->memory >> 20), (unsigned long long)h->len,
			v->vm.nr_vcpus, (unsigned long long)(v->vm.mem.size >> 20));
		ret = -EINVAL;
	}
	explicit_bzero(h->token, sizeof(h->token));
	if (!ret && !(buf = malloc(h->len ? h->len : 1)))
		ret = -ENOMEM;
	if (!ret)
		ret = recv_all(sock, buf, h->len, MIG_STEP_MS);
	if (!ret && ((fd = memfd_create("lego-incoming", MFD_CLOEXEC)) < 0 ||
		     pwrite(fd, buf, h->len, 0) != (ssize_t)h->len))
		ret = -errno;
	if (!ret && (!sn || snap_open(sn, fd, err, sizeof(err)))) {
		log_err("incoming: the source's state: %s", sn ? err : "out of memory");
		ret = -EINVAL;
	}
	free(buf);
	if (fd >= 0)
		close(fd);
	if (ret) {
		free(sn);
		return ret;
	}
	v->restoring = sn;
	return 0;
}

int migrate_incoming(struct vmm *v)
{
	struct migrate *m = vmm_priv(v, &mod_migrate);
	struct mig_header h;
	int sock, ret;

	log_info("incoming: waiting for the vNode's state on %s", v->order.incoming);
	for (;;) {
		ret = wait_fd(m->listen_fd, POLLIN, MIG_ACCEPT_MS);
		if (ret) {
			log_err("incoming: no source came: %s", strerror(-ret));
			return ret;
		}
		sock = accept4(m->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (sock < 0)
			continue;
		ret = receive_state(v, sock, &h);
		if (ret != -EACCES && ret != -EAGAIN)
			break;
		close(sock); /* not the source: wait on for it */
	}
	close(m->listen_fd);
	m->listen_fd = -1;
	if (ret) {
		close(sock);
		return ret;
	}
	v->migrate_sock = sock; /* the rest of the handshake after the restore */
	v->migrate_epoch = h.epoch + 1 > v->order.epoch ? h.epoch + 1 : v->order.epoch;
	return 0;
}

int migrate_commit(struct vmm *v)
{
	int sock = v->migrate_sock, ret;
	char err[256];

	v->migrate_sock = -1;
	stall_at("received");
	ret = send_all(sock, &(char){MIG_READY}, 1, MIG_STEP_MS);
	if (!ret)
		stall_at("ready");
	/* 'G', or the source gone after sending its state: either way the memory
	 * servers decide; anything else is not a source of this protocol */
	if (!ret) {
		ret = recv_step(sock, MIG_GO);
		if (ret && ret != -EPROTO)
			log_warn("incoming: the source went away before its go (%s): taking the "
				 "vNode if it is still to be taken",
				 strerror(-ret));
		ret = ret == -EPROTO ? ret : 0;
	}
	if (!ret && (ret = memroute_takeover(&v->xc->route, v->migrate_epoch, err, sizeof(err))))
		log_err("incoming: the vNode stays with the source: %s", err);
	if (!ret)
		stall_at("taken");
	if (!ret && (ret = excache_connect(v->xc)))
		log_err("incoming: cannot connect to the memory servers: %s", strerror(-ret));
	if (!ret) {
		send_all(sock, &(char){MIG_RUNNING}, 1, MIG_STEP_MS); /* the source may be gone */
		log_info("incoming: the vNode runs here now, at epoch %llu",
			 (unsigned long long)v->migrate_epoch);
	}
	close(sock);
	return ret;
}

static const struct vmm_option migrate_options[] = {
	{"incoming", "HOST:PORT",
	 "a migration's target: wait there for the running vNode's\n"
	 "                   state from its source VMM (control command migrate),\n"
	 "                   which must present the order's migrate_token",
	 opt_incoming},
	{NULL},
};

static const struct vmm_cmd migrate_cmds[] = {
	{"migrate",
	 "move the running vNode to the VMM waiting with --incoming: "
	 "{\"to\":\"HOST:PORT\",\"token\":HEX}",
	 0, cmd_migrate},
	{NULL},
};

const struct vmm_module mod_migrate = {
	.name = "migrate",
	.options = migrate_options,
	.configure = migrate_configure,
	.setup = migrate_setup,
	.teardown = migrate_teardown,
	.cmds = migrate_cmds,
};
