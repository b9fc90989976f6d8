/*
 * fuzz_storsrv.c - lego-storsrv whole, as a network peer meets it: the real
 * server (storsrv_run: the io_uring loop of common/srv.c, its framing, the
 * request handlers, block I/O on real files) runs on a thread of this
 * process on a loopback port, and each input is a run of frames sent to it
 * on one connection. A frame is a flag byte and a struct lmp_hdr with its
 * body; the magic and version are set, as a peer that gets past the first
 * check would, and the id is the frame's number. Flag bit 0: wait for every
 * answer so far before sending this frame (so that a read can follow a
 * write). Every frame must be answered exactly once, with a response that
 * is the request's and has the length its type allows; a frame that
 * lmp_hdr_check refuses must be answered -EPROTO, and the connection closed
 * once the frames before it are answered, as srv.h promises. Afterwards
 * every volume the input made is deleted through the protocol (with the
 * token its file holds), so that each input starts from an empty server and
 * a crash replays from its input.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "log.h"
#include "proto.h"
#include "storsrv.h"

#define MAX_FRAMES 64

static struct storsrv server;
static char addr[64];
static char dir[64];
static uint8_t rx[SRV_MSG_MAX];

struct sent {
	uint16_t type;	 /* of the answer: 0 for a frame lmp_hdr_check refuses */
	uint32_t length; /* of a BLK_READ: what a successful answer carries */
	bool malformed, answered;
};

static void *serve(void *arg)
{
	(void)arg;
	storsrv_run(&server, addr);
	return NULL;
}

/* The data directory goes with the process (each input deleted its volumes). */
static void remove_dir(void)
{
	fuzz_remove_tree(dir);
}

static void start_server(void)
{
	pthread_t t;

	log_init("fuzz_storsrv", LOG_NONE); /* the server's refusals are its answers */
	/* in memory where there is a tmpfs: each input makes and syncs files */
	snprintf(dir, sizeof(dir), "%s/fuzz_storsrv.XXXXXX",
		 access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm");
	must(mkdtemp(dir), "cannot make the data directory");
	atexit(remove_dir);
	must(storsrv_open(&server, dir) == 0, "storsrv_open");
	close(fuzz_listen(addr, sizeof(addr))); /* a free port, which the server takes */
	must(pthread_create(&t, NULL, serve, NULL) == 0, "no server thread");
	pthread_detach(t);
}

/* Read one answer and check it against what was sent; false at the end of the stream. */
static bool take_answer(int fd, struct sent *sent, int nr_sent, int *pending)
{
	struct lmp_hdr r;
	struct sent *q;

	if (!fuzz_read_all(fd, &r, sizeof(r)))
		return false;
	must(r.magic == LMP_MAGIC && r.version == LMP_VERSION, "an answer that is not LMP");
	must(r.len <= LMP_MAX_BODY, "an answer longer than the protocol allows");
	must(fuzz_read_all(fd, rx, r.len), "an answer cut short");
	must(r.id >= 1 && r.id <= (uint64_t)nr_sent, "an answer to no request");
	q = &sent[r.id - 1];
	must(!q->answered, "a request answered twice");
	must(r.type == (q->type | LMP_RESPONSE), "an answer of another type");
	must(r.status <= 0 && r.status > -4096, "a status that is not 0 or -errno");
	must(!q->malformed || r.status == -EPROTO, "a malformed frame not answered -EPROTO");
	if (r.status)
		must(r.len == 0, "a refusal with a body");
	else if (q->type == LMP_BLK_READ)
		must(r.len == q->length, "a read answered with another length");
	else if (q->type == LMP_VOL_STAT)
		must(r.len == sizeof(struct lmp_vol_info), "a volume's stat of the wrong size");
	else if (q->type == LMP_VOL_LIST)
		must(r.len == r.arg * sizeof(struct lmp_vol_info), "a list of the wrong size");
	else
		must(r.len == 0, "an answer with a body it should not have");
	q->answered = true;
	(*pending)--;
	return true;
}

/*
 * Send @len bytes, taking answers as they come: the server reads no further
 * request while its answers wait for room, so a client that only sent would
 * wait for it forever. False if the server hung up.
 */
static bool send_all(int fd, const void *buf, size_t len, struct sent *sent, int nr_sent,
		     int *pending)
{
	const uint8_t *p = buf;

	while (len) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN | POLLOUT};
		ssize_t n;

		must(poll(&pfd, 1, 10000) == 1, "the server neither reads nor answers for 10 s");
		if ((pfd.revents & POLLIN) && *pending) {
			if (!take_answer(fd, sent, nr_sent, pending))
				return false;
			continue;
		}
		n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return false;
		p += n, len -= (size_t)n;
	}
	return true;
}

/* Delete every volume in the data directory, as its owner would. */
static void delete_volumes(int fd)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	uint64_t id = 1;

	must(d != NULL, "the data directory is gone");
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);
		struct lmp_hdr h;
		struct lmp_vol v = {0};
		uint8_t req[sizeof(h) + sizeof(v)];
		char path[512], hex[2 * LMP_TOKEN_LEN + 2] = "";
		struct lmp_hdr r;
		FILE *f;

		if (n <= 6 || n - 6 >= LMP_VOL_NAME_LEN || strcmp(e->d_name + n - 6, ".token"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (!fgets(hex, sizeof(hex), f))
			hex[0] = '\0';
		fclose(f);
		hex[strcspn(hex, "\n")] = '\0';
		memcpy(v.name, e->d_name, n - 6);
		must(lmp_token_parse(hex, v.token) == 0, "a volume's token file is malformed");
		lmp_hdr_init(&h, LMP_VOL_DELETE, id++, sizeof(v), 0);
		memcpy(req, &h, sizeof(h));
		memcpy(req + sizeof(h), &v, sizeof(v));
		must(send(fd, &req, sizeof(req), MSG_NOSIGNAL) == sizeof(req),
		     "cannot send a delete");
		must(fuzz_read_all(fd, &r, sizeof(r)) && r.len == 0, "no answer to a delete");
		must(r.status == 0, "a volume its own token cannot delete");
	}
	closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sent sent[MAX_FRAMES];
	static uint8_t frame[SRV_MSG_MAX];
	int fd, nr = 0, pending = 0;
	bool refused = false;

	if (!addr[0])
		start_server();
	fd = fuzz_connect(addr, 10);
	while (nr < MAX_FRAMES && size >= 1 + sizeof(struct lmp_hdr)) {
		uint8_t flags = data[0];
		struct lmp_hdr h;
		const char *why;
		size_t body;

		memcpy(&h, data + 1, sizeof(h));
		data += 1 + sizeof(h), size -= 1 + sizeof(h);
		h.magic = LMP_MAGIC;
		h.version = LMP_VERSION;
		h.id = (uint64_t)nr + 1;
		refused = lmp_hdr_check(&h, &why) != 0;
		body = refused ? 0 : h.len <= size ? h.len : size;
		h.len = refused ? h.len : (uint32_t)body;
		if (flags & 1)
			while (pending)
				must(take_answer(fd, sent, nr, &pending), "the server hung up");
		sent[nr] = (struct sent){.type = refused ? 0 : h.type, .malformed = refused};
		if (h.type == LMP_BLK_READ && body >= sizeof(struct lmp_blk)) {
			struct lmp_blk b;

			memcpy(&b, data, sizeof(b));
			sent[nr].length = b.length;
		}
		memcpy(frame, &h, sizeof(h));
		memcpy(frame + sizeof(h), data, body);
		must(send_all(fd, frame, sizeof(h) + body, sent, nr, &pending),
		     "the server hung up on a well-formed frame");
		data += body, size -= body;
		nr++, pending++;
		if (refused)
			break;
	}
	while (pending)
		if (!take_answer(fd, sent, nr, &pending))
			break;
	/* every frame answered, a malformed last one too */
	must(!pending, "the server hung up with requests unanswered");
	if (refused)
		must(!fuzz_read_all(fd, rx, 1), "the connection went on after a malformed frame");
	close(fd);
	fd = fuzz_connect(addr, 10);
	delete_volumes(fd);
	close(fd);
	return 0;
}
