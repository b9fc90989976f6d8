/*
 * test_datapath.c - the data path of a cluster: memory and storage servers
 * speak TLS only, and a VMM reaches a vNode's pages and volumes only with
 * the credential the manager signed for it. A memory server is reached
 * through a relay that records every byte while a vNode verifies its
 * memory: no page and no token can be read there. Then the servers are
 * tried as a plain-TCP client, a member that is no VMM, another vNode's
 * VMM, a deposed VMM and a forger of another CA.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster.h"
#include "pki.h"
#include "storclient.h"
#include "tcpproxy.h"
#include "util.h"
#include "xport.h"

/* This process's data-path connections are made as a VMM of @vnode (@name) from @epoch. */
static void as_vmm(const char *name, uint64_t vnode, uint64_t epoch)
{
	struct pki_cert_req req = {.name = name, .role = PKI_VMM, .vnode = vnode, .epoch = epoch};
	char dir[700], cap[720], err[1024], *cert, *key, *ca;

	snprintf(dir, sizeof(dir), "%s/pki", home);
	snprintf(cap, sizeof(cap), "%s/ca.pem", dir);
	ASSERT(pki_issue_pem(dir, &req, &cert, &key, err, sizeof(err)) == 0, "%s", err);
	ca = pki_read(cap);
	ASSERT(ca && xport_tls(ca, cert, key, err, sizeof(err)) == 0, "%s", err);
	free(ca);
	free(cert);
	free(key);
}

/* HELLO for @vnode with @token_hex and @pages at @epoch: the server's status, or -errno. */
static int hello(const char *addr, uint64_t vnode, const char *token_hex, uint64_t pages,
		 uint64_t epoch)
{
	/* (since 0: the client has had this server in its placement all along) */
	struct lmp_hello h = {.vnode = vnode, .nr_pages = pages, .epoch = epoch};
	struct iovec iov = {&h, sizeof(h)};
	struct lmp_hdr resp;
	struct xport *x;
	char err[512];
	int r;

	lmp_token_parse(token_hex, h.token);
	r = xport_connect(addr, 2000, 5000, &x, err, sizeof(err));
	if (r)
		return r;
	r = xport_call(x, LMP_HELLO, 0, &iov, 1, &resp, NULL, 0);
	xport_close(x);
	return r ? r : resp.status;
}

/* Does @buf hold a page the touch payload wrote (words stepping by its constant)? */
static bool holds_a_page(const uint8_t *buf, size_t len)
{
	for (size_t o = 0; o + 24 <= len; o++) {
		uint64_t w[3];

		memcpy(w, buf + o, sizeof(w));
		if (w[1] - w[0] == 0x100000001b3ULL && w[2] - w[1] == 0x100000001b3ULL)
			return true;
	}
	return false;
}

TEST_TIMEOUT(data_path_tls_and_credentials, 300)
{
	char tokfile[600], prefix[700], listen[64], proxied[64], cap_path[600], *argv[16];
	char vtok[128], voltok[128], id[32], epoch[32], mem1[128], mem2[128], storsrv[128];
	char err[1024];
	struct proc_result r;
	struct tcpproxy *px;
	int cap_fd;

	cluster_home();
	up("256M");

	/* a third memory server, on a new host, reached through a relay that records the wire */
	snprintf(tokfile, sizeof(tokfile), "%s/token", test_tmpdir());
	join_token_file("memsrv", tokfile);
	snprintf(prefix, sizeof(prefix), "%s/memsrv-3", test_tmpdir());
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", test_free_port());
	px = tcpproxy_start(listen, proxied);
	snprintf(cap_path, sizeof(cap_path), "%s/wire", test_tmpdir());
	cap_fd = open(cap_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ASSERT(cap_fd >= 0);
	tcpproxy_record(px, cap_fd);
	memsrv_join_argv(argv, listen, proxied, prefix, tokfile);
	pid_t m3 = proc_spawn(argv);
	ASSERT(wait_health("memsrv", proxied, "up", 15000) >= 0, "memsrv-3 did not join");
	/* memsrv-1 goes: the vNode's slab lands on memsrv-2 and memsrv-3 (through the relay) */
	memsrv_addr(1, mem1, sizeof(mem1));
	memsrv_addr(2, mem2, sizeof(mem2));
	kill_and_wait(pid_of("memsrv-1"));
	ASSERT(wait_health("memsrv", mem1, "down", 8000) >= 0);

	/* a vNode that writes and verifies its memory, with a disk */
	struct proc_result c;
	legoctl(&c, "create", "p1", "--memory", "64M", "--excache", "8M", "--payload", "touch",
		"--args", "op=verify mode=rand size=40M passes=4", "--disk", "16M", NULL);
	ASSERT(c.status == 0, "create: %s%s", c.out, c.err);
	ASSERT_CONTAINS(c.out, proxied);
	proc_result_free(&c);
	json_decref(wait_vnode_for("p1", "exited", 0, 240));
	no_mismatches("p1", 1);

	/* what crossed the wire: pages went by, and neither a page nor a token can be read */
	vnode_field("p1", "token", vtok, sizeof(vtok));
	ASSERT(strlen(vtok) == 64);
	tcpproxy_record(px, -1);
	close(cap_fd);
	uint8_t bin[LMP_TOKEN_LEN], *wire;
	struct stat st;
	ASSERT(stat(cap_path, &st) == 0);
	size_t len = (size_t)st.st_size;
	FILE *wf = fopen(cap_path, "r");
	wire = malloc(len + 1);
	ASSERT(wf && wire && fread(wire, 1, len, wf) == len);
	fclose(wf);
	printf("  %zu bytes crossed the relay to memsrv-3\n", len);
	ASSERT(len > (1u << 20), "only %zu bytes went through memsrv-3's relay", len);
	ASSERT(!holds_a_page(wire, len), "a guest page crossed the wire in plain text");
	lmp_token_parse(vtok, bin);
	ASSERT(!memmem(wire, len, bin, sizeof(bin)), "the vNode's token crossed in plain text");
	ASSERT(!memmem(wire, len, vtok, 64));
	/* the detector works: a page as the payload writes it is found */
	uint64_t page[512];
	for (int w = 0; w < 512; w++)
		page[w] = 12345 + w * 0x100000001b3ULL;
	ASSERT(holds_a_page((uint8_t *)page, sizeof(page)));
	free(wire);
	tcpproxy_stop(px);

	/* the memory server: only p1's own VMM, of the newest start */
	vnode_field("p1", "id", id, sizeof(id));
	vnode_field("p1", "epoch", epoch, sizeof(epoch));
	uint64_t vid = strtoull(id, NULL, 10), e = strtoull(epoch, NULL, 10);
	uint64_t pages = 64 * MiB / 4096;
	/* plain TCP to a TLS port: refused, nothing answered */
	ASSERT(hello(mem2, vid, vtok, pages, e) < 0, "plain TCP was answered");
	/* a member that is no VMM, even with the token */
	struct pki_identity admin = member_identity("admin");
	ASSERT(xport_tls_files(&admin, err, sizeof(err)) == 0, "%s", err);
	ASSERT_EQ(hello(mem2, vid, vtok, pages, e), -EACCES);
	/* vNode q's VMM on p1's pages, with p1's token */
	as_vmm("q1", vid + 1000, e);
	ASSERT_EQ(hello(mem2, vid, vtok, pages, e), -EACCES);
	/* p1's own VMM (the control case), then a deposed one: started before one that came */
	as_vmm("p1", vid, e);
	ASSERT_EQ(hello(mem2, vid, vtok, pages, e), 0);
	as_vmm("p1", vid, e + 5);
	ASSERT_EQ(hello(mem2, vid, vtok, pages, e + 5), 0);
	as_vmm("p1", vid, e);
	ASSERT_EQ(hello(mem2, vid, vtok, pages, e + 9), -ESTALE);
	/* and a VMM never names an epoch before the one it was started at */
	as_vmm("p1", vid, e + 20);
	ASSERT_EQ(hello(mem2, vid, vtok, pages, e + 19), -EINVAL);
	/* a credential signed by another cluster, claiming any epoch: the client does not
	 * even present it (it is not of a CA the server names), so it is no one: refused */
	{
		char other[600], ocap[700], *ca, *cert, *key;
		struct pki_cert_req req = {
			.name = "p1", .role = PKI_VMM, .vnode = vid, .epoch = 99};

		snprintf(other, sizeof(other), "%s/other", test_tmpdir());
		ASSERT(pki_init(other, "forger", err, sizeof(err)) == 0, "%s", err);
		ASSERT(pki_issue_pem(other, &req, &cert, &key, err, sizeof(err)) == 0, "%s", err);
		snprintf(ocap, sizeof(ocap), "%s/pki/ca.pem", home);
		ca = pki_read(ocap);
		ASSERT(xport_tls(ca, cert, key, err, sizeof(err)) == 0, "%s", err);
		ASSERT_EQ(hello(mem2, vid, vtok, pages, 99), -EACCES);
		free(ca);
		free(cert);
		free(key);
	}

	/* the storage server: p1's volume for p1's VMM only; administration for the manager */
	cluster_cfg("storsrv", storsrv, sizeof(storsrv));
	vnode_field("p1", "vol_token", voltok, sizeof(voltok));
	uint8_t vt[LMP_TOKEN_LEN], block[4096];
	struct xport *x;
	lmp_token_parse(voltok, vt);
	as_vmm("q1", vid + 1000, e);
	ASSERT(xport_connect(storsrv, 2000, 5000, &x, err, sizeof(err)) == 0, "%s", err);
	ASSERT_EQ(stor_blk(x, LMP_BLK_READ, "p1", vt, 0, block, sizeof(block), 0), -EACCES);
	struct lmp_vol vol = {.size = 1 << 20};
	snprintf(vol.name, sizeof(vol.name), "q1.d7");
	ASSERT_EQ(stor_vol(x, LMP_VOL_CREATE, &vol), -EACCES);
	xport_close(x);
	as_vmm("p1", vid, e);
	ASSERT(xport_connect(storsrv, 2000, 5000, &x, err, sizeof(err)) == 0, "%s", err);
	ASSERT_EQ(stor_blk(x, LMP_BLK_READ, "p1", vt, 0, block, sizeof(block), 0), 0);
	ASSERT_EQ(stor_vol(x, LMP_VOL_CREATE, &vol), -EACCES); /* a VMM administers nothing */
	xport_close(x);
	ASSERT(xport_tls_files(&admin, err, sizeof(err)) == 0, "%s", err);
	ASSERT(xport_connect(storsrv, 2000, 5000, &x, err, sizeof(err)) == 0, "%s", err);
	ASSERT_EQ(stor_vol(x, LMP_VOL_CREATE, &vol), 0);
	ASSERT_EQ(stor_vol(x, LMP_VOL_DELETE, &vol), 0);
	xport_close(x);
	/* a volume list over TLS without a certificate, then as lego-storsrv volume would:
	 * without --identity it cannot even speak to the server, with the admin's it lists */
	char *ca = pki_read(admin.ca);
	struct lmp_hdr resp;
	ASSERT(ca && xport_tls(ca, NULL, NULL, err, sizeof(err)) == 0, "%s", err);
	free(ca);
	ASSERT(xport_connect(storsrv, 2000, 5000, &x, err, sizeof(err)) == 0, "%s", err);
	ASSERT_EQ(xport_call(x, LMP_VOL_LIST, 0, NULL, 0, &resp, block, sizeof(block)), 0);
	ASSERT_EQ(resp.status, -EACCES);
	xport_close(x);
	char *list[] = {(char *)test_path("bin/lego-storsrv"), "volume", "list", storsrv, NULL};
	proc_run(list, 30, &r);
	ASSERT(r.status != 0, "a volume list in plain TCP: %s", r.out);
	proc_result_free(&r);
	snprintf(prefix, sizeof(prefix), "%s/pki/admin", home);
	char *list2[] = {(char *)test_path("bin/lego-storsrv"),
			 "volume",
			 "--identity",
			 prefix,
			 "list",
			 storsrv,
			 NULL};
	proc_run(list2, 30, &r);
	ASSERT(r.status == 0, "volume list as admin: %s", r.err);
	ASSERT_CONTAINS(r.out, "p1");
	proc_result_free(&r);

	kill(m3, SIGTERM);
	proc_collect(m3, 10, &r);
	proc_result_free(&r);
	down_leaves_nothing(NULL, 0);
}
