/* virtio_pci.c - modern virtio-pci transport: capabilities, common config, notify, ISR. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "log.h"
#include "virtio_pci.h"
#include "sandbox.h"

#define VIRTIO_PCI_CAP_COMMON 1
#define VIRTIO_PCI_CAP_NOTIFY 2
#define VIRTIO_PCI_CAP_ISR    3
#define VIRTIO_PCI_CAP_DEVICE 4

struct virtio_pci_cap {
	uint8_t cap_vndr, cap_next, cap_len, cfg_type, bar, id, pad[2];
	uint32_t offset, length;
	uint32_t notify_off_multiplier; /* notify capability only */
};

/* virtio_fail with vd->lock held (from a register access). */
static void virtio_fail_locked(struct virtio_dev *vd, const char *why)
{
	log_warn("%s: the guest's driver broke the device (%s); it needs a reset", vd->ops->name,
		 why);
	vd->status |= VIRTIO_STATUS_NEEDS_RESET;
}

void virtio_fail(struct virtio_dev *vd, const char *why)
{
	pthread_mutex_lock(&vd->lock);
	virtio_fail_locked(vd, why);
	pthread_mutex_unlock(&vd->lock);
}

/*
 * The INTx line follows ISR bit 0; called with vd->lock held, so that the
 * line and the ISR cannot disagree (a stale high line would storm).
 *
 * With an irqfd, raising is a write to an eventfd (no ioctl) and lowering
 * is KVM's, at the guest's EOI: the guest reads the ISR in its handler
 * before it EOIs, and at the EOI KVM lowers the line and signals the
 * resample eventfd, on which the device thread raises it again if the ISR
 * was set meanwhile (virtio_resample).
 */
static void virtio_set_irq(struct virtio_dev *vd, int level)
{
	struct kvm_irq_level irq = {.irq = (uint32_t)vd->irq, .level = level};
	uint64_t one = 1;

	if (vd->irq < 0)
		return;
	if (vd->irq_fd < 0)
		ioctl(vd->vm->vm_fd, KVM_IRQ_LINE, &irq);
	else if (level && write(vd->irq_fd, &one, sizeof(one)) < 0)
		log_warn("%s: cannot raise its interrupt: %s", vd->ops->name, strerror(errno));
}

/* The guest EOI'd the line (irqfd only): raise it again if the ISR is still set. */
static void virtio_resample(struct virtio_dev *vd)
{
	uint64_t cnt;

	if (read(vd->resample_fd, &cnt, sizeof(cnt)) < 0)
		return;
	pthread_mutex_lock(&vd->lock);
	if (vd->isr)
		virtio_set_irq(vd, 1);
	pthread_mutex_unlock(&vd->lock);
}

/* Route the INTx line through a KVM irqfd with resampling if KVM offers it. */
static void virtio_irqfd_setup(struct virtio_dev *vd)
{
	struct kvm_irqfd irqfd = {.gsi = (uint32_t)vd->irq, .flags = KVM_IRQFD_FLAG_RESAMPLE};

	vd->irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vd->resample_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	irqfd.fd = (uint32_t)vd->irq_fd;
	irqfd.resamplefd = (uint32_t)vd->resample_fd;
	if (vd->irq_fd >= 0 && vd->resample_fd >= 0 &&
	    ioctl(vd->vm->vm_fd, KVM_IRQFD, &irqfd) == 0) {
		log_debug("%s: INTx on GSI %d through an irqfd", vd->ops->name, vd->irq);
		return;
	}
	log_debug("%s: no irqfd (%s): INTx through KVM_IRQ_LINE", vd->ops->name, strerror(errno));
	if (vd->irq_fd >= 0)
		close(vd->irq_fd);
	if (vd->resample_fd >= 0)
		close(vd->resample_fd);
	vd->irq_fd = vd->resample_fd = -1;
}

static void virtio_irqfd_release(struct virtio_dev *vd)
{
	struct kvm_irqfd irqfd = {.fd = (uint32_t)vd->irq_fd,
				  .gsi = (uint32_t)vd->irq,
				  .flags = KVM_IRQFD_FLAG_DEASSIGN};

	if (vd->irq_fd < 0)
		return;
	ioctl(vd->vm->vm_fd, KVM_IRQFD, &irqfd);
	close(vd->irq_fd);
	close(vd->resample_fd);
	vd->irq_fd = vd->resample_fd = -1;
}

void virtio_config_changed(struct virtio_dev *vd)
{
	pthread_mutex_lock(&vd->lock);
	vd->generation++;
	if (!vd->isr)
		virtio_set_irq(vd, 1);
	vd->isr |= 2;
	pthread_mutex_unlock(&vd->lock);
}

void virtio_used(struct virtio_dev *vd, int q)
{
	(void)q;
	pthread_mutex_lock(&vd->lock);
	/* already pending: the line is up (or comes up again at the EOI, irqfd) */
	if (!vd->isr)
		virtio_set_irq(vd, 1);
	vd->isr |= 1;
	pthread_mutex_unlock(&vd->lock);
}

/* Bind each queue's notify address to its eventfd in KVM, at the BAR's current address. */
static void virtio_ioeventfds(struct virtio_dev *vd, bool on)
{
	uint64_t base = on ? pci_bar_addr(&vd->pci, 0) : vd->ioeventfd_addr;

	if (on == !!vd->ioeventfd_addr)
		return;
	for (int q = 0; q < vd->ops->nr_queues; q++) {
		struct kvm_ioeventfd io = {
			.addr = base + VIRTIO_BAR_NOTIFY + VIRTIO_NOTIFY_MULT * q,
			.len = 2,
			.fd = vd->kick_fd[q],
			.flags = on ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN,
		};

		if (ioctl(vd->vm->vm_fd, KVM_IOEVENTFD, &io) < 0 && on) {
			log_debug("%s: no ioeventfd (%s); notifications go through the VMM",
				  vd->ops->name, strerror(errno));
			return;
		}
	}
	vd->ioeventfd_addr = on ? base : 0;
}

/*
 * The driver wrote status 0. Called with vd->lock held; the device's reset
 * runs without it, so that completions still landing (virtio_used and
 * virtio_fail take the lock) can finish while the device waits for them.
 */
static void virtio_reset(struct virtio_dev *vd)
{
	virtio_ioeventfds(vd, false);
	pthread_mutex_unlock(&vd->lock);
	if (vd->ops->reset)
		vd->ops->reset(vd);
	pthread_mutex_lock(&vd->lock);
	for (int q = 0; q < vd->ops->nr_queues; q++) {
		struct gmem *mem = vd->vq[q].mem;

		virtq_init(&vd->vq[q], mem);
	}
	vd->driver_features = 0;
	vd->dfselect = vd->gfselect = 0;
	vd->queue_sel = 0;
	vd->status = 0;
	vd->isr = 0;
	virtio_set_irq(vd, 0);
}

static uint64_t virtio_features(struct virtio_dev *vd)
{
	return vd->ops->features(vd) | VIRTIO_F_VERSION_1;
}

static void virtio_common(struct virtio_dev *vd, uint64_t off, void *data, uint32_t len,
			  bool is_write)
{
	struct virtq *vq = vd->queue_sel < vd->ops->nr_queues ? &vd->vq[vd->queue_sel] : NULL;
	uint64_t val = 0;
	const char *why;

	if (is_write)
		memcpy(&val, data, len);
	switch (off) {
	case 0x00: /* device_feature_select */
		if (is_write)
			vd->dfselect = val;
		else
			val = vd->dfselect;
		break;
	case 0x04: /* device_feature */
		val = vd->dfselect < 2 ? (uint32_t)(virtio_features(vd) >> (32 * vd->dfselect)) : 0;
		break;
	case 0x08: /* driver_feature_select */
		if (is_write)
			vd->gfselect = val;
		else
			val = vd->gfselect;
		break;
	case 0x0c: /* driver_feature */
		if (is_write && vd->gfselect < 2 && !(vd->status & VIRTIO_STATUS_FEATURES_OK)) {
			vd->driver_features &= ~(0xffffffffULL << (32 * vd->gfselect));
			vd->driver_features |= (uint64_t)(uint32_t)val << (32 * vd->gfselect);
		} else if (!is_write) {
			val = vd->gfselect < 2
				      ? (uint32_t)(vd->driver_features >> (32 * vd->gfselect))
				      : 0;
		}
		break;
	case 0x10: /* msix_config: no MSI-X */
		val = 0xffff;
		break;
	case 0x12: /* num_queues */
		val = vd->ops->nr_queues;
		break;
	case 0x14: /* device_status */
		if (!is_write) {
			val = vd->status;
			break;
		}
		if (val == 0) {
			virtio_reset(vd);
			break;
		}
		/* FEATURES_OK sticks only for features the device offered. */
		if ((val & VIRTIO_STATUS_FEATURES_OK) &&
		    ((vd->driver_features & ~virtio_features(vd)) ||
		     !(vd->driver_features & VIRTIO_F_VERSION_1)))
			val &= ~VIRTIO_STATUS_FEATURES_OK;
		if ((val & VIRTIO_STATUS_DRIVER_OK) && !(vd->status & VIRTIO_STATUS_DRIVER_OK)) {
			virtio_ioeventfds(vd, true);
			if (vd->ops->driver_ok)
				vd->ops->driver_ok(vd, vd->driver_features);
		}
		vd->status = (uint8_t)val | (vd->status & VIRTIO_STATUS_NEEDS_RESET);
		break;
	case 0x15: /* config_generation */
		val = vd->generation;
		break;
	case 0x16: /* queue_select */
		if (is_write)
			vd->queue_sel = val;
		else
			val = vd->queue_sel;
		break;
	case 0x18: /* queue_size */
		if (vq && is_write && !vq->ready)
			vq->size = val;
		else if (!is_write)
			val = vq ? vq->size : 0;
		break;
	case 0x1a: /* queue_msix_vector */
		val = 0xffff;
		break;
	case 0x1c: /* queue_enable */
		if (vq && is_write && val == 1 && !vq->ready) {
			if (virtq_enable(vq, &why)) /* under vd->lock: was a self-deadlock */
				virtio_fail_locked(vd, why);
		} else if (!is_write) {
			val = vq ? vq->ready : 0;
		}
		break;
	case 0x1e: /* queue_notify_off */
		val = vd->queue_sel;
		break;
	case 0x20:
	case 0x24:
	case 0x28:
	case 0x2c:
	case 0x30:
	case 0x34: {
		uint64_t *ring = !vq	      ? NULL
				 : off < 0x28 ? &vq->desc
				 : off < 0x30 ? &vq->avail
					      : &vq->used;
		unsigned shift = (off & 4) ? 32 : 0;

		if (!ring)
			break;
		if (is_write && !vq->ready) {
			uint64_t mask = len == 8 ? ~0ULL : 0xffffffffULL << shift;

			*ring = (*ring & ~mask) | ((val << shift) & mask);
		} else if (!is_write) {
			val = *ring >> shift;
		}
		break;
	}
	default:
		break;
	}
	if (!is_write)
		memcpy(data, &val, len);
}

static void virtio_bar(struct pci_dev *pci, int bar, uint64_t off, void *data, uint32_t len,
		       bool is_write)
{
	struct virtio_dev *vd = pci->opaque;

	if (bar != 0)
		return;
	if (off < VIRTIO_BAR_ISR) {
		if (len > 8 || off + len > 0x38) {
			if (!is_write)
				memset(data, 0, len);
			return;
		}
		pthread_mutex_lock(&vd->lock);
		virtio_common(vd, off, data, len, is_write);
		pthread_mutex_unlock(&vd->lock);
	} else if (off < VIRTIO_BAR_DEVICE) {
		if (is_write)
			return;
		pthread_mutex_lock(&vd->lock);
		memset(data, 0, len);
		*(uint8_t *)data = vd->isr; /* reading ISR acknowledges it */
		vd->isr = 0;
		virtio_set_irq(vd, 0);
		pthread_mutex_unlock(&vd->lock);
	} else if (off < VIRTIO_BAR_NOTIFY) {
		off -= VIRTIO_BAR_DEVICE;
		if (off + len <= vd->ops->config_len)
			vd->ops->config(vd, off, data, len, is_write);
		else if (!is_write)
			memset(data, 0, len);
	} else if (is_write) {
		/* A notification that KVM did not turn into an eventfd signal itself. */
		uint64_t q = (off - VIRTIO_BAR_NOTIFY) / VIRTIO_NOTIFY_MULT, one = 1;

		if (q < vd->ops->nr_queues && write(vd->kick_fd[q], &one, sizeof(one)) < 0)
			log_warn("%s: lost a notification: %s", vd->ops->name, strerror(errno));
	} else {
		memset(data, 0, len);
	}
}

static void *virtio_thread(void *arg)
{
	struct virtio_dev *vd = arg;
	char name[16];

	snprintf(name, sizeof(name), "virtio-%s", vd->ops->name);
	sandbox_enter(SB_DEVICE, name);
	for (;;) {
		struct pollfd pfd[VIRTIO_MAX_QUEUES + 2];
		int n = vd->ops->nr_queues;

		for (int q = 0; q < n; q++)
			pfd[q] = (struct pollfd){.fd = vd->kick_fd[q], .events = POLLIN};
		pfd[n] = (struct pollfd){.fd = vd->stop_fd, .events = POLLIN};
		/* a negative fd is skipped by poll: no irqfd, no resampling */
		pfd[n + 1] = (struct pollfd){.fd = vd->resample_fd, .events = POLLIN};
		if (poll(pfd, n + 2, -1) < 0)
			continue;
		if (pfd[n].revents)
			return NULL;
		if (pfd[n + 1].revents)
			virtio_resample(vd);
		for (int q = 0; q < n; q++) {
			uint64_t cnt;

			if (!pfd[q].revents || read(vd->kick_fd[q], &cnt, sizeof(cnt)) < 0)
				continue;
			pthread_mutex_lock(&vd->notify_lock);
			if (vd->quiesced)
				vd->held[q] = true;
			else if (vd->status & VIRTIO_STATUS_DRIVER_OK &&
				 !(vd->status & VIRTIO_STATUS_NEEDS_RESET))
				vd->ops->notify(vd, q);
			pthread_mutex_unlock(&vd->notify_lock);
		}
	}
}

int virtio_pci_init(struct virtio_dev *vd, struct vm *vm, struct pci *pci,
		    const struct virtio_dev_ops *ops)
{
	const struct virtio_pci_cap caps[] = {
		{0x09, 0, 16, VIRTIO_PCI_CAP_COMMON, 0, 0, {0}, VIRTIO_BAR_COMMON, 0x38, 0},
		{0x09, 0, 16, VIRTIO_PCI_CAP_ISR, 0, 0, {0}, VIRTIO_BAR_ISR, 4, 0},
		{0x09,
		 0,
		 16,
		 VIRTIO_PCI_CAP_DEVICE,
		 0,
		 0,
		 {0},
		 VIRTIO_BAR_DEVICE,
		 ops->config_len,
		 0},
		{0x09,
		 0,
		 20,
		 VIRTIO_PCI_CAP_NOTIFY,
		 0,
		 0,
		 {0},
		 VIRTIO_BAR_NOTIFY,
		 VIRTIO_NOTIFY_MULT * ops->nr_queues,
		 VIRTIO_NOTIFY_MULT},
	};
	int ret;

	memset(vd, 0, sizeof(*vd));
	vd->ops = ops;
	vd->vm = vm;
	vd->irq = -1;
	vd->irq_fd = vd->resample_fd = -1;
	vd->stop_fd = eventfd(0, EFD_CLOEXEC);
	pthread_mutex_init(&vd->lock, NULL);
	pthread_mutex_init(&vd->notify_lock, NULL);
	for (int q = 0; q < ops->nr_queues; q++) {
		virtq_init(&vd->vq[q], &vm->mem);
		vd->kick_fd[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	}
	pci_dev_init(&vd->pci, 0x1af4, 0x1040 + ops->device_type, ops->pci_class, 1, 0x1af4,
		     0x40 + ops->device_type);
	vd->pci.cfg[0x3d] = 1; /* interrupt pin A */
	pci_dev_add_bar(&vd->pci, 0, VIRTIO_BAR_SIZE);
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		pci_dev_add_cap(&vd->pci, &caps[i], caps[i].cap_len);
	vd->pci.bar_fn = virtio_bar;
	vd->pci.opaque = vd;
	ret = pci_register(pci, &vd->pci);
	if (ret)
		return ret;
	if (vm->irqchip) {
		vd->irq = pci_intx_gsi(vd->pci.slot, 0);
		vd->pci.cfg[0x3c] = (uint8_t)vd->irq;
		virtio_irqfd_setup(vd);
	}
	ret = -pthread_create(&vd->thread, NULL, virtio_thread, vd);
	vd->thread_started = !ret;
	return ret;
}

/* ---- at rest ---- */

void virtio_pci_quiesce(struct virtio_dev *vd)
{
	pthread_mutex_lock(&vd->notify_lock); /* a notification being handed over lands first */
	vd->quiesced = true;
	pthread_mutex_unlock(&vd->notify_lock);
	if (vd->ops->quiesce)
		vd->ops->quiesce(vd);
}

static void kick(struct virtio_dev *vd, int q)
{
	uint64_t one = 1;

	if (write(vd->kick_fd[q], &one, sizeof(one)) < 0)
		log_warn("%s: lost a notification: %s", vd->ops->name, strerror(errno));
}

void virtio_pci_unquiesce(struct virtio_dev *vd)
{
	pthread_mutex_lock(&vd->notify_lock);
	vd->quiesced = false;
	for (int q = 0; q < vd->ops->nr_queues; q++) {
		if (vd->held[q])
			kick(vd, q);
		vd->held[q] = false;
	}
	pthread_mutex_unlock(&vd->notify_lock);
	if (vd->ops->unquiesce)
		vd->ops->unquiesce(vd);
}

struct virtio_saved {
	uint64_t driver_features;
	uint32_t dfselect, gfselect;
	uint16_t queue_sel, nr_queues;
	uint8_t status, isr, generation, device_type;
	struct {
		uint64_t desc, avail, used;
		uint16_t size, last_avail, used_idx;
		uint8_t ready, broken;
	} q[VIRTIO_MAX_QUEUES];
	uint8_t cfg[256];
};

size_t virtio_pci_save(struct virtio_dev *vd, void *buf)
{
	struct virtio_saved sv = {0};

	_Static_assert(sizeof(sv) <= VIRTIO_PCI_STATE_MAX, "VIRTIO_PCI_STATE_MAX");
	pthread_mutex_lock(&vd->lock);
	sv.driver_features = vd->driver_features;
	sv.dfselect = vd->dfselect, sv.gfselect = vd->gfselect;
	sv.queue_sel = vd->queue_sel;
	sv.nr_queues = vd->ops->nr_queues;
	sv.status = vd->status, sv.isr = vd->isr, sv.generation = vd->generation;
	sv.device_type = (uint8_t)vd->ops->device_type;
	for (int q = 0; q < vd->ops->nr_queues; q++) {
		struct virtq *vq = &vd->vq[q];

		pthread_mutex_lock(&vq->lock);
		sv.q[q].desc = vq->desc, sv.q[q].avail = vq->avail, sv.q[q].used = vq->used;
		sv.q[q].size = vq->size, sv.q[q].last_avail = vq->last_avail;
		sv.q[q].used_idx = vq->used_idx;
		sv.q[q].ready = vq->ready, sv.q[q].broken = vq->broken;
		pthread_mutex_unlock(&vq->lock);
	}
	memcpy(sv.cfg, vd->pci.cfg, sizeof(sv.cfg));
	pthread_mutex_unlock(&vd->lock);
	memcpy(buf, &sv, sizeof(sv));
	return sizeof(sv);
}

int virtio_pci_restore(struct virtio_dev *vd, const void *buf, size_t len)
{
	struct virtio_saved sv;
	const char *why = NULL;

	if (len != sizeof(sv))
		return -EINVAL;
	memcpy(&sv, buf, sizeof(sv));
	if (sv.nr_queues != vd->ops->nr_queues || sv.device_type != vd->ops->device_type ||
	    (sv.driver_features & ~virtio_features(vd)))
		return -EINVAL;
	pthread_mutex_lock(&vd->lock);
	vd->driver_features = sv.driver_features;
	vd->dfselect = sv.dfselect, vd->gfselect = sv.gfselect;
	vd->queue_sel = sv.queue_sel;
	vd->status = sv.status, vd->generation = sv.generation;
	/* the configuration space as the guest left it (its BAR where it put it),
	 * with what this device is: IDs, BAR sizes and capabilities stay its own */
	memcpy(vd->pci.cfg + 0x04, sv.cfg + 0x04, 4); /* command, status */
	memcpy(vd->pci.cfg + 0x0c, sv.cfg + 0x0c, 4); /* cache line, latency, ... */
	memcpy(vd->pci.cfg + 0x10, sv.cfg + 0x10, 4 * PCI_MAX_BARS);
	vd->pci.cfg[0x3c] = sv.cfg[0x3c];
	for (int q = 0; q < vd->ops->nr_queues && !why; q++) {
		struct virtq *vq = &vd->vq[q];

		vq->desc = sv.q[q].desc, vq->avail = sv.q[q].avail, vq->used = sv.q[q].used;
		vq->size = sv.q[q].size;
		vq->last_avail = sv.q[q].last_avail, vq->used_idx = sv.q[q].used_idx;
		if (sv.q[q].ready && virtq_enable(vq, &why))
			break; /* a ring outside RAM: not a state this device was ever in */
		vq->broken = sv.q[q].broken;
	}
	if (!why && (vd->status & VIRTIO_STATUS_DRIVER_OK)) {
		virtio_ioeventfds(vd, true);
		if (vd->ops->driver_ok)
			vd->ops->driver_ok(vd, vd->driver_features);
	}
	if (!why && (sv.isr & 3)) {
		vd->isr = sv.isr;
		virtio_set_irq(vd, 1);
	}
	pthread_mutex_unlock(&vd->lock);
	if (why) {
		log_err("%s: the saved state is not one it could have been in: %s", vd->ops->name,
			why);
		return -EINVAL;
	}
	for (int q = 0; q < vd->ops->nr_queues; q++) /* what the driver queued meanwhile */
		if (vd->vq[q].ready)
			kick(vd, q);
	return 0;
}

void virtio_pci_exit(struct virtio_dev *vd)
{
	uint64_t one = 1;

	if (vd->thread_started) {
		if (write(vd->stop_fd, &one, sizeof(one)) < 0)
			log_warn("%s: cannot stop its thread", vd->ops->name);
		pthread_join(vd->thread, NULL);
	}
	virtio_ioeventfds(vd, false);
	virtio_irqfd_release(vd);
	for (int q = 0; q < vd->ops->nr_queues; q++)
		close(vd->kick_fd[q]);
	close(vd->stop_fd);
}
