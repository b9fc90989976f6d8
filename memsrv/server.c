/*
 * server.c - lego-memsrv on the common data-path server (srv.h): a session
 * per connection, every request answered at once from memory.
 */
#include <stdlib.h>
#include <unistd.h>

#include "memsrv.h"

static void *memsrv_conn_open(void *app)
{
	(void)app;
	return calloc(1, sizeof(struct memsrv_session));
}

static void memsrv_conn_close(void *app, void *session)
{
	memsrv_session_end(app, session);
	free(session);
}

static size_t memsrv_request(void *app, struct srv_conn *c, void *session, const struct lmp_hdr *h,
			     const uint8_t *body, uint8_t *out)
{
	((struct memsrv_session *)session)->peer = srv_conn_peer(c);
	return memsrv_handle(app, session, h, body, out);
}

/* Spare: no vNode said HELLO on it (closing one that did would look like a lost server). */
static bool memsrv_spare(void *app, void *session)
{
	(void)app;
	return ((struct memsrv_session *)session)->vn == NULL;
}

static const struct srv_ops memsrv_ops = {
	.conn_open = memsrv_conn_open,
	.conn_close = memsrv_conn_close,
	.request = memsrv_request,
	.spare = memsrv_spare,
};

int memsrv_listen(struct memsrv *m, const char *addr)
{
	return srv_listen(&m->srv, addr);
}

int memsrv_run(struct memsrv *m)
{
	int ret = srv_run(&m->srv, &memsrv_ops, m);

	close(m->srv.listen_fd);
	return ret;
}
