/*
 * test_vmm_setup.c - lego-vmm is modules set up in order and torn down in
 * reverse on every path: a failure is injected at each setup step (memory
 * server unreachable, disk missing, a volume's wrong token, a payload or
 * kernel that is not one, the control socket's directory missing) with the
 * modules before it active, and nothing may be left behind, seen from the
 * kernel: lego-vmm's --check-leaks lists any descriptor, thread or guest
 * RAM mapping still held after teardown (LEAK lines), the memory server
 * holds no page and no vNode of the run afterwards, and lego-vmm leaves no
 * child process. The same run with nothing failing is checked the same way.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "memclient.h"
#include "test.h"
#include "vm.h"
#include "xport.h"

#define VMM	     test_path("bin/lego-vmm")
#define PAYLOAD(n)   test_path("guest/payloads/" n ".bin")
#define MAX_ARGS     40
#define EXCACHE_SIZE "1M" /* smaller than what the loader writes: pages go to the server */

struct run {
	char *argv[MAX_ARGS];
	int n;
};

static void arg(struct run *r, const char *a)
{
	ASSERT(r->n < MAX_ARGS - 1);
	r->argv[r->n++] = (char *)a;
	r->argv[r->n] = NULL;
}

/* The memory server's view: pages held and vNodes known, besides this probe's own. */
static void memsrv_holds(const char *addr, uint64_t *pages, uint64_t *vnodes)
{
	struct memclient_cred c = {.vnode = 0x7e57 + (uint64_t)rand(), .nr_pages = 16};
	struct memclient mc;
	struct lmp_stat st;
	char err[256];

	for (int i = 0; i < LMP_TOKEN_LEN; i++)
		c.token[i] = (uint8_t)rand();
	ASSERT(memclient_open(&mc, addr, &c, err, sizeof(err)) == 0, "%s", err);
	ASSERT_EQ(memclient_stat(&mc, &st), 0);
	ASSERT_EQ(memclient_release(&mc), 0); /* the probe's own vNode goes too */
	memclient_close(&mc);
	*pages = st.used_pages;
	*vnodes = st.nr_vnodes - 1;
}

/* lego-vmm's children, while it runs: it has none. Read from /proc after it exits: none left. */
static int children_of(pid_t parent)
{
	struct dirent *d;
	DIR *dir = opendir("/proc");
	int n = 0;

	while (dir && (d = readdir(dir))) {
		char path[300], buf[512], *p;
		FILE *f;

		if (d->d_name[0] < '0' || d->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", d->d_name);
		if (!(f = fopen(path, "r")))
			continue;
		if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) &&
		    atoi(p + 4) == (int)parent) /* ") S PPID" */
			n++;
		fclose(f);
	}
	if (dir)
		closedir(dir);
	return n;
}

/*
 * Run @r (lego-vmm with --check-leaks) and check that it ended with @status,
 * said @words on stderr, and left nothing: no LEAK line, nothing on the
 * memory server at @memsrv (NULL: none), no child.
 */
static void expect_clean(struct run *r, int status, const char *words, const char *memsrv)
{
	struct proc_result res;
	pid_t pid;

	arg(r, "--check-leaks");
	pid = proc_spawn(r->argv);
	proc_collect(pid, 60, &res);
	ASSERT(!res.timed_out, "lego-vmm did not end");
	if (res.status != status || (words && !strstr(res.err, words)) || strstr(res.err, "LEAK"))
		test_fail(__FILE__, __LINE__,
			  "status %d (expected %d), expected \"%s\" and no LEAK in:\n%s",
			  res.status, status, words ? words : "", res.err);
	ASSERT_EQ(children_of(pid), 0);
	if (memsrv) {
		uint64_t pages, vnodes;

		memsrv_holds(memsrv, &pages, &vnodes);
		ASSERT(pages == 0 && vnodes == 0,
		       "the memory server still holds %llu pages of %llu vNodes after the run",
		       (unsigned long long)pages, (unsigned long long)vnodes);
	}
	proc_result_free(&res);
}

/* A payload run with the ExCache on @memsrv, a disk, and a control socket: every module but Linux. */
static void base(struct run *r, const char *payload, const char *memsrv, const char *disk,
		 const char *control)
{
	r->n = 0;
	arg(r, VMM);
	arg(r, "-q");
	arg(r, "--payload");
	arg(r, payload);
	arg(r, "--args");
	arg(r, "op=write size=4M passes=1");
	arg(r, "--memory");
	arg(r, "64M");
	arg(r, "--cpus");
	arg(r, "2");
	arg(r, "--excache");
	arg(r, EXCACHE_SIZE);
	arg(r, "--memsrv");
	arg(r, memsrv);
	if (disk) {
		arg(r, "--disk");
		arg(r, disk);
	}
	if (control) {
		arg(r, "--control");
		arg(r, control);
	}
}

static const char *make_disk(void)
{
	static char img[300];
	int fd;

	snprintf(img, sizeof(img), "%s/disk.img", test_tmpdir());
	fd = open(img, O_CREAT | O_RDWR, 0600);
	ASSERT(fd >= 0 && ftruncate(fd, 8 << 20) == 0);
	close(fd);
	return img;
}

TEST_TIMEOUT(a_failure_at_each_setup_step_leaves_nothing_behind, 300)
{
	char addr[64], sock[300], bad[300];
	const char *disk, *touch;
	struct run r;
	pid_t ms;

	test_require_kvm();
	ms = memsrv_spawn("512M", addr);
	disk = make_disk();
	touch = PAYLOAD("touch");
	snprintf(sock, sizeof(sock), "%s/vmm.sock", test_tmpdir());

	/* Nothing fails: the whole teardown, after the guest ran. */
	base(&r, touch, addr, disk, sock);
	expect_clean(&r, 0, NULL, addr);

	/* The ExCache: its memory server is not there. */
	base(&r, touch, "127.0.0.1:1", disk, sock);
	expect_clean(&r, VM_EXIT_VMM_ERROR, "cannot connect to 127.0.0.1:1", NULL);

	/* The disk, after the ExCache registered the vNode on the server. */
	base(&r, touch, addr, "/nonexistent/disk.img", sock);
	expect_clean(&r, VM_EXIT_VMM_ERROR, "cannot open disk image /nonexistent/disk.img", addr);

	/* A volume whose token is wrong: its backend connects, then is refused. */
	{
		struct storsrv_proc sv = {0};
		char url[200], order[PATH_MAX];

		storsrv_start(&sv);
		snprintf(url, sizeof(url), "storsrv://%s/missing", sv.listen);
		snprintf(
			order, sizeof(order), "%s",
			test_order_file(
				"{\"disks\":[{\"url\":\"%s\",\"token\":\"%s\"}]}", url,
				"0101010101010101010101010101010101010101010101010101010101010101"));
		base(&r, touch, addr, NULL, sock);
		arg(&r, "--order");
		arg(&r, order);
		expect_clean(&r, VM_EXIT_VMM_ERROR, "no such volume", addr);
		storsrv_kill(&sv, SIGKILL);
	}

	/* The payload: not one (its start, after every module's setup). */
	snprintf(bad, sizeof(bad), "%s/not-a-payload.bin", test_tmpdir());
	{
		int fd = open(bad, O_CREAT | O_WRONLY, 0600);

		ASSERT(fd >= 0 && write(fd, "hello", 5) == 5);
		close(fd);
	}
	base(&r, bad, addr, disk, sock);
	expect_clean(&r, VM_EXIT_VMM_ERROR, "is not a lego payload", addr);

	/* The control socket, last of all: the image is loaded and the vNode known
	 * to the server when it fails. */
	base(&r, touch, addr, disk, "/nonexistent/dir/vmm.sock");
	expect_clean(&r, VM_EXIT_VMM_ERROR, "/nonexistent/dir/vmm.sock", addr);

	/* The Linux profile: a kernel that is not a bzImage, with the PC devices up. */
	r.n = 0;
	arg(&r, VMM);
	arg(&r, "-q");
	arg(&r, "--kernel");
	arg(&r, bad);
	arg(&r, "--memory");
	arg(&r, "64M");
	arg(&r, "--excache");
	arg(&r, EXCACHE_SIZE);
	arg(&r, "--memsrv");
	arg(&r, addr);
	arg(&r, "--disk");
	arg(&r, disk);
	arg(&r, "--control");
	arg(&r, sock);
	expect_clean(&r, VM_EXIT_VMM_ERROR, "bzImage", addr);

	kill(ms, SIGKILL);
	waitpid(ms, NULL, 0);
}

TEST(an_order_file_others_can_read_is_refused_and_a_private_one_runs)
{
	char path[300];
	struct proc_result res;
	char *argv[] = {(char *)VMM, "--order", path, "--memory", "64M", NULL};
	FILE *f;

	test_require_kvm();
	snprintf(path, sizeof(path), "%s/order.json", test_tmpdir());
	f = fopen(path, "w");
	ASSERT(f);
	fprintf(f,
		"{\"payload\":\"%s\",\"cpus\":2,\"memory\":16777216,\"disks\":[{\"url\":"
		"\"storsrv://127.0.0.1:1/v\",\"token\":"
		"\"0101010101010101010101010101010101010101010101010101010101010101\"}]}",
		PAYLOAD("hello"));
	fclose(f);
	chmod(path, 0644);
	proc_run(argv, 30, &res);
	ASSERT_EQ(res.status, VM_EXIT_USAGE);
	ASSERT_CONTAINS(res.err, "holds credentials and others may read it: chmod 600");
	proc_result_free(&res);

	/* Private, without the disk: it runs, and the options after --order win. */
	f = fopen(path, "w");
	fprintf(f, "{\"payload\":\"%s\",\"cpus\":2,\"memory\":16777216}", PAYLOAD("hello"));
	fclose(f);
	chmod(path, 0600);
	proc_run(argv, 30, &res);
	ASSERT_EQ(res.status, 0);
	ASSERT_CONTAINS(res.out, "hello from vCPU 1 of 2, 64 MiB of memory");
	proc_result_free(&res);
}
