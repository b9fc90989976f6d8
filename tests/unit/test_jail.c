/*
 * test_jail.c - agent/jail.c: a process that entered a VMM's jail runs as a
 * user of its own with no capability left, sees only the files its order
 * names (read-only but for its home and local disks), KVM and userfaultfd
 * through device nodes that are its alone, and /proc of its own processes;
 * and nothing of the jail is left in the host's mounts.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/userfaultfd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jail.h"
#include "order.h"
#include "test.h"

static int report_fd = -1;

/* In the jailed child: say what went wrong on the pipe and exit 1. */
__attribute__((format(printf, 1, 2))) static void child_fail(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (write(report_fd, buf, n > 0 ? (size_t)n : 0) < 0)
		_exit(2);
	_exit(1);
}

#define CHECK(cond, fmt, ...)                                                                      \
	do {                                                                                       \
		if (!(cond))                                                                       \
			child_fail("line %d: %s: " fmt, __LINE__, #cond, ##__VA_ARGS__);           \
	} while (0)

static void write_file(const char *path, const char *text, unsigned mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	ASSERT(fd >= 0, "%s: %s", path, strerror(errno));
	ASSERT(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	ASSERT(fchmod(fd, mode) == 0);
	close(fd);
}

/* The value of @key in /proc/self/status, as text. */
static void status_field(const char *key, char *out, size_t len)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");

	out[0] = '\0';
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)) && line[strlen(key)] == ':') {
			snprintf(out, len, "%s", line + strlen(key) + 1);
			out[strcspn(out, "\n")] = '\0';
			break;
		}
	if (f)
		fclose(f);
}

static void in_the_jail(const char *dir, const char *payload, const char *disk, const char *home)
{
	static const char *const caps[] = {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"};
	unsigned id = jail_id(getpid());
	char path[PATH_MAX + 64], text[128];
	struct stat st;
	int fd;

	/* a user and group of its own, no capability, no way to get one back */
	CHECK(getuid() == id && geteuid() == id && getgid() == id && getegid() == id, "");
	CHECK(getgroups(0, NULL) == 0, "");
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		status_field(caps[i], text, sizeof(text));
		CHECK(!strcmp(text, "\t0000000000000000"), "%s:%s", caps[i], text);
	}
	status_field("NoNewPrivs", text, sizeof(text));
	CHECK(!strcmp(text, "\t1"), "NoNewPrivs:%s", text);
	CHECK(kill(getppid(), 0) < 0 && errno == EPERM, "it may signal its (root) parent");

	/* only its files: the payload read-only, its disk and home writable */
	fd = open(payload, O_RDONLY);
	CHECK(fd >= 0 && read(fd, text, 7) == 7 && !memcmp(text, "payload", 7), "%s",
	      strerror(errno));
	close(fd);
	CHECK(open(payload, O_WRONLY) < 0 && (errno == EROFS || errno == EACCES),
	      "the payload is writable (%s)", strerror(errno));
	fd = open(disk, O_RDWR);
	CHECK(fd >= 0 && pwrite(fd, "written", 7, 0) == 7, "its disk: %s", strerror(errno));
	close(fd);
	snprintf(path, sizeof(path), "%s/control.sock", home);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	CHECK(fd >= 0, "%s: %s", path, strerror(errno));
	close(fd);
	snprintf(path, sizeof(path), "%s/secret", dir);
	CHECK(stat(path, &st) < 0 && errno == ENOENT, "%s is visible", path);
	CHECK(stat("/etc/shadow", &st) < 0 && errno == ENOENT, "/etc/shadow is visible");
	CHECK(stat("/root", &st) < 0 && errno == ENOENT, "/root is visible");
	CHECK(open("/lego-probe", O_WRONLY | O_CREAT, 0600) < 0 && errno == EROFS,
	      "its root is writable (%s)", strerror(errno));
	CHECK(stat("/usr/bin", &st) == 0, "no libraries");
	/* /proc: its own processes only, nothing of the host's */
	CHECK(stat("/proc/self/status", &st) == 0, "");
	CHECK(stat("/proc/1", &st) < 0, "it sees pid 1");
	CHECK(stat("/proc/sys", &st) < 0, "it sees /proc/sys");
	/* KVM and userfaultfd through nodes of its own */
	if (access("/dev/kvm", F_OK) == 0) {
		fd = open("/dev/kvm", O_RDWR);
		CHECK(fd >= 0 && ioctl(fd, KVM_GET_API_VERSION, 0) == KVM_API_VERSION, "%s",
		      strerror(errno));
		close(fd);
	}
	if (access("/dev/userfaultfd", F_OK) == 0) {
		int dev = open("/dev/userfaultfd", O_RDWR);

		CHECK(dev >= 0 && ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC) >= 0, "%s",
		      strerror(errno));
	}
}

TEST(a_jailed_vmm_has_its_own_user_no_capabilities_and_only_its_files)
{
	const char *dir = test_tmpdir();
	char root[512], home[512], kit[512], disk[512], secret[600], payload[600], crooked[600],
		err[512], msg[512] = "";
	struct vnode_order o;
	struct jail *j = calloc(1, sizeof(*j));
	int pipefd[2], status;
	struct stat st;
	ssize_t n;
	pid_t pid;
	DIR *d;

	if (geteuid())
		test_skip("jailing a process needs root");
	snprintf(root, sizeof(root), "%s/.jail", dir);
	snprintf(home, sizeof(home), "%s/vnode", dir);
	snprintf(kit, sizeof(kit), "%s/kit", dir);
	snprintf(disk, sizeof(disk), "%s/disk.img", dir);
	snprintf(secret, sizeof(secret), "%s/secret", dir);
	snprintf(payload, sizeof(payload), "%s/payload.bin", kit);
	snprintf(crooked, sizeof(crooked), "%s/../kit/./payload.bin", kit);
	ASSERT(mkdir(root, 0700) == 0 && mkdir(home, 0700) == 0 && mkdir(kit, 0755) == 0);
	chmod(dir, 0755);
	write_file(payload, "payload", 0644);
	write_file(disk, "0123456789", 0666); /* the VMM's user may write it */
	write_file(secret, "secret", 0644);

	order_init(&o);
	ASSERT(order_set(&o.payload, crooked) == 0);
	ASSERT(order_add_disk(&o, disk) == 0);
	ASSERT(jail_plan(j, root, home, test_path("bin/lego-vmm"), &o, NULL, err, sizeof(err)) == 0,
	       "%s", err);
	ASSERT(!strcmp(o.payload, payload), "the order keeps '%s'", o.payload);

	ASSERT(pipe(pipefd) == 0);
	pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		close(pipefd[0]);
		report_fd = pipefd[1];
		umask(077); /* as lego-agent's */
		if (jail_enter(j, err, sizeof(err)))
			child_fail("jail_enter: %s", err);
		in_the_jail(dir, payload, disk, home);
		_exit(0);
	}
	close(pipefd[1]);
	n = read(pipefd[0], msg, sizeof(msg) - 1);
	msg[n > 0 ? n : 0] = '\0';
	close(pipefd[0]);
	ASSERT(waitpid(pid, &status, 0) == pid);
	ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0, "in the jail: %s", msg);

	/* the home is the VMM's; what it wrote there is in the host's directory */
	ASSERT(stat(home, &st) == 0 && st.st_uid == jail_id(pid) && st.st_gid == jail_id(pid));
	snprintf(secret, sizeof(secret), "%s/control.sock", home);
	ASSERT(stat(secret, &st) == 0 && st.st_uid == jail_id(pid));
	/* and nothing of the jail stays mounted here */
	d = opendir(root);
	ASSERT(d);
	for (struct dirent *e; (e = readdir(d));)
		ASSERT(!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."), "%s/%s left behind",
		       root, e->d_name);
	closedir(d);
	order_free(&o);
	free(j);
}

TEST(a_jail_that_cannot_be_built_says_why)
{
	const char *dir = test_tmpdir();
	char root[512], home[512], payload[512], err[512] = "";
	struct vnode_order o;
	struct jail *j = calloc(1, sizeof(*j));
	int status;
	pid_t pid;

	if (geteuid())
		test_skip("jailing a process needs root");
	snprintf(root, sizeof(root), "%s/.jail", dir);
	snprintf(home, sizeof(home), "%s/vnode", dir);
	snprintf(payload, sizeof(payload), "%s/payload.bin", dir);
	ASSERT(mkdir(root, 0700) == 0 && mkdir(home, 0700) == 0);
	write_file(payload, "payload", 0644);
	order_init(&o);
	ASSERT(order_set(&o.payload, payload) == 0);
	ASSERT(jail_plan(j, root, home, test_path("bin/lego-vmm"), &o, NULL, err, sizeof(err)) ==
	       0);
	ASSERT(unlink(payload) == 0); /* gone between the plan and the jail */
	pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		int r = jail_enter(j, err, sizeof(err));

		_exit(r == -ENOENT && strstr(err, payload) && strstr(err, "No such file") ? 0 : 1);
	}
	ASSERT(waitpid(pid, &status, 0) == pid);
	ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	       "jail_enter did not name the missing file");
	order_free(&o);
	free(j);
}
