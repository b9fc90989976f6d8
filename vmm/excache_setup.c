/*
 * excache_setup.c - the ExCache set up and torn down: userfaultfd over guest
 * RAM, the route to the memory servers, the fault, evictor and warm-up
 * threads; and its size and latency figures.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "excache.h"
#include "excache_int.h"
#include "log.h"
#include "util.h"

/* ---- setup and teardown ---- */

/*
 * A userfaultfd for this process: the system call where it may handle faults
 * the kernel takes (root, or vm.unprivileged_userfaultfd=1), else through
 * /dev/userfaultfd, which the host agent's jail gives an unprivileged lego-vmm.
 */
static int uffd_new(int flags)
{
	int fd = (int)syscall(SYS_userfaultfd, flags), dev, e;

	if (fd >= 0 || errno != EPERM)
		return fd >= 0 ? fd : -errno;
	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -EPERM;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
	e = errno;
	close(dev);
	return fd >= 0 ? fd : -e;
}

static int xc_uffd_open(struct excache *xc)
{
	struct uffdio_api api = {.api = UFFD_API};
	struct uffdio_register reg = {
		.range = {(uint64_t)(uintptr_t)xc->base, xc->nr_pages * PAGE},
		.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
	};

	xc->uffd = uffd_new(O_CLOEXEC | O_NONBLOCK);
	if (xc->uffd < 0) {
		log_err("userfaultfd: %s (the ExCache needs it: run as root, give this user "
			"/dev/userfaultfd, or set vm.unprivileged_userfaultfd=1)",
			strerror(-xc->uffd));
		return xc->uffd;
	}
	if (ioctl(xc->uffd, UFFDIO_API, &api) < 0) {
		log_err("UFFDIO_API: %s", strerror(errno));
		return -errno;
	}
	if (!(api.features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
		log_err("this kernel's userfaultfd cannot write-protect anonymous memory (needs "
			"Linux 5.7 or later)");
		return -EOPNOTSUPP;
	}
	/* Nothing the guest needs is in RAM yet; whatever KVM or the kernel may
	 * have populated would be resident without the ExCache knowing. */
	madvise(xc->base, xc->nr_pages * PAGE, MADV_DONTNEED);
	if (ioctl(xc->uffd, UFFDIO_REGISTER, &reg) < 0) {
		log_err("UFFDIO_REGISTER of guest RAM: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

int xc_thread_init(struct excache *xc, struct excache_thread *t, int index)
{
	char err[256];
	int ret;

	t->xc = xc;
	t->index = index;
	t->buf = aligned_alloc(PAGE, LMP_MAX_PAGES * PAGE);
	if (!t->buf)
		return -ENOMEM;
	ret = memroute_open(&t->rc, &xc->route, err, sizeof(err));
	if (ret)
		log_err("%s", err);
	return ret;
}

int excache_init(struct excache *xc, struct vm *vm, const struct excache_config *cfg)
{
	char a[32], b[32];
	int ret;

	memset(xc, 0, sizeof(*xc));
	xc->vm = vm;
	xc->cfg = *cfg;
	xc->uffd = xc->stop_fd = -1;
	xc->base = vm->mem.base;
	xc->nr_pages = vm->mem.map_size / PAGE; /* the hotpluggable region too */
	xc->limit = cfg->size / PAGE;
	if (xc->cfg.prefetch_max > LMP_MAX_PAGES)
		xc->cfg.prefetch_max = LMP_MAX_PAGES;
	if (xc->cfg.nr_fault_threads < 1)
		xc->cfg.nr_fault_threads = 1;
	pthread_mutex_init(&xc->lock, NULL);
	pthread_mutex_init(&xc->evict_lock, NULL);
	pthread_cond_init(&xc->room, NULL);
	pthread_cond_init(&xc->need_room, NULL);
	if (xc->limit < 64) {
		log_err("--excache %s is too small: at least 256K", format_size(cfg->size, a, 32));
		return -EINVAL;
	}
	xc->state = mmap(NULL, xc->nr_pages, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (xc->state == MAP_FAILED) {
		xc->state = NULL;
		return -ENOMEM;
	}
	/* 8 bytes a page, taken only where pages were fetched for a read */
	xc->sum = mmap(NULL, xc->nr_pages * sizeof(*xc->sum), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (xc->sum == MAP_FAILED) {
		xc->sum = NULL;
		return -ENOMEM;
	}
	ret = xc_policy_init(&xc->policy, xc->nr_pages, xc->limit);
	if (ret)
		return ret;
	xc->stop_fd = eventfd(0, EFD_CLOEXEC);
	ret = xc_uffd_open(xc);
	if (ret)
		return ret;
	{
		char err[256];

		ret = memroute_init(&xc->route, cfg->memsrv, cfg->memsrv_secondary,
				    cfg->slab_size / PAGE, &cfg->cred, err, sizeof(err));
		if (ret) {
			log_err("%s", err);
			return ret;
		}
		/* Losing every copy of a slab then pauses its accesses for at most
		 * two minutes, until the manager has a restore made. */
		if (cfg->backup_storsrv)
			memroute_set_backup(&xc->route, cfg->backup_storsrv, cfg->backup_volume,
					    cfg->backup_token, cfg->backup_interval_ms, 120000);
	}
	xc->faulters = calloc(xc->cfg.nr_fault_threads, sizeof(*xc->faulters));
	if (!xc->faulters)
		return -ENOMEM;
	log_info("ExCache: %s of %s resident at most, the rest on memory server %s",
		 format_size(cfg->size, a, sizeof(a)), format_size(vm->mem.size, b, sizeof(b)),
		 cfg->memsrv);
	return cfg->defer_connect ? 0 : excache_connect(xc);
}

int excache_connect(struct excache *xc)
{
	int ret;

	for (int i = xc->nr_threads; i < xc->cfg.nr_fault_threads; i++) {
		ret = xc_thread_init(xc, &xc->faulters[i], i);
		if (ret)
			return ret;
		xc->nr_threads++;
	}
	ret = xc_thread_init(xc, &xc->evictor, -1);
	if (ret)
		return ret;
	for (int i = 0; i < xc->nr_threads; i++)
		pthread_create(&xc->faulters[i].thread, NULL, xc_fault_thread, &xc->faulters[i]);
	pthread_create(&xc->evictor.thread, NULL, xc_evictor_thread, &xc->evictor);
	xc->started = true;
	if (xc->warm) /* a restore's warm-up, waiting for the connections */
		xc_warm_start(xc);
	return 0;
}

void excache_stop(struct excache *xc)
{
	uint64_t one = 1;

	if (xc->started) {
		atomic_store(&xc->stop, true);
		if (write(xc->stop_fd, &one, sizeof(one)) < 0)
			log_warn("cannot wake the fault threads: %s", strerror(errno));
		pthread_mutex_lock(&xc->lock);
		pthread_cond_broadcast(&xc->room);
		pthread_cond_broadcast(&xc->need_room);
		pthread_mutex_unlock(&xc->lock);
		for (int i = 0; i < xc->nr_threads; i++)
			pthread_join(xc->faulters[i].thread, NULL);
		pthread_join(xc->evictor.thread, NULL);
		if (xc->warming)
			pthread_join(xc->warmer.thread, NULL);
		xc->warming = false;
		xc->started = false;
	}
	/* Closing the userfaultfd wakes any access still waiting: it then proceeds
	 * as on ordinary memory, which only matters to a VM that is going away. */
	if (xc->uffd >= 0)
		close(xc->uffd);
	xc->uffd = -1;
}

void excache_exit(struct excache *xc)
{
	excache_stop(xc);
	if (xc->evictor.rc.open && !xc->keep_memory) {
		int ret = memroute_release(&xc->evictor.rc);

		if (ret)
			log_warn("memory server %s did not release the vNode's pages: %s",
				 xc->cfg.memsrv, memclient_strerror(ret));
	}
	for (int i = 0; i < xc->nr_threads; i++) {
		memroute_close(&xc->faulters[i].rc);
		free(xc->faulters[i].buf);
	}
	memroute_close(&xc->evictor.rc);
	if (xc->warmer.buf) {
		memroute_close(&xc->warmer.rc);
		free(xc->warmer.buf);
	}
	free(xc->warm);
	memroute_exit(&xc->route);
	free(xc->evictor.buf);
	free(xc->faulters);
	xc_policy_exit(&xc->policy);
	if (xc->state)
		munmap((void *)xc->state, xc->nr_pages);
	if (xc->sum)
		munmap(xc->sum, xc->nr_pages * sizeof(*xc->sum));
	if (xc->stop_fd >= 0)
		close(xc->stop_fd);
	memset(xc, 0, sizeof(*xc));
	xc->uffd = xc->stop_fd = -1;
}

int excache_resize(struct excache *xc, uint64_t size)
{
	if (size / PAGE < 64)
		return -EINVAL;
	pthread_mutex_lock(&xc->lock);
	xc->limit = size / PAGE;
	xc_policy_resize(&xc->policy, xc->limit);
	xc->cfg.size = size;
	pthread_cond_broadcast(&xc->room);
	pthread_cond_signal(&xc->need_room);
	pthread_mutex_unlock(&xc->lock);
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t ring_percentile(const uint32_t *ring, uint64_t next, uint64_t cap, double pct)
{
	uint64_t n = next < cap ? next : cap;
	uint32_t *v;
	uint64_t r;

	if (!n)
		return 0;
	v = malloc(n * sizeof(*v));
	if (!v)
		return 0;
	memcpy(v, ring, n * sizeof(*v));
	qsort(v, n, sizeof(*v), cmp_u32);
	r = v[(uint64_t)(pct / 100 * (n - 1))];
	free(v);
	return r;
}

uint64_t excache_percentile(struct excache *xc, double pct)
{
	return ring_percentile(xc->stats.lat_ns, xc->stats.lat_next, XC_LAT_SAMPLES, pct);
}

uint64_t excache_step_percentile(struct excache *xc, int step, double pct)
{
	return ring_percentile(xc->stats.steps.ns[step], xc->stats.steps.next, XC_STEP_SAMPLES,
			       pct);
}
