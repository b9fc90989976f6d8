/*
 * virtio_pci.h - the modern virtio-pci transport (virtio 1.x): one memory
 * BAR holding the common configuration, ISR, device configuration and
 * notification areas. Queue notifications arrive on eventfds (KVM ioeventfd
 * once the driver is up, so a kick does not even exit to the VMM) and are
 * handed to the device model on a thread of the transport's own.
 */
#ifndef LEGO_VMM_VIRTIO_PCI_H
#define LEGO_VMM_VIRTIO_PCI_H

#include <pthread.h>

#include "pci.h"
#include "virtio.h"

#define VIRTIO_MAX_QUEUES  4
#define VIRTIO_F_VERSION_1 (1ULL << 32)

#define VIRTIO_STATUS_ACK	  1
#define VIRTIO_STATUS_DRIVER	  2
#define VIRTIO_STATUS_DRIVER_OK	  4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED	  128

/* BAR 0 layout */
#define VIRTIO_BAR_COMMON  0x0000
#define VIRTIO_BAR_ISR	   0x1000
#define VIRTIO_BAR_DEVICE  0x2000
#define VIRTIO_BAR_NOTIFY  0x3000
#define VIRTIO_BAR_SIZE	   0x4000
#define VIRTIO_NOTIFY_MULT 4

struct virtio_dev;

struct virtio_dev_ops {
	const char *name;
	uint16_t device_type; /* virtio device ID: 2 for a block device */
	uint32_t pci_class;
	uint16_t nr_queues;
	uint32_t config_len;
	/* features - what the device offers (VIRTIO_F_VERSION_1 is added). */
	uint64_t (*features)(struct virtio_dev *vd);
	/* config - device configuration access at @off (checked to be inside config_len). */
	void (*config)(struct virtio_dev *vd, uint32_t off, void *data, uint32_t len,
		       bool is_write);
	/* notify - queue @q has new buffers; called on the transport's thread. */
	void (*notify)(struct virtio_dev *vd, int q);
	/* driver_ok - the driver is ready with @features (may be NULL); vd->lock held. */
	void (*driver_ok)(struct virtio_dev *vd, uint64_t features);
	/* reset - the driver reset the device: forget everything in flight (may be NULL)
	 * (called without vd->lock: completions may land meanwhile). */
	void (*reset)(struct virtio_dev *vd);
	/* quiesce - no notification reaches the device any more: let what is in
	 * flight land and start nothing until unquiesce (both may be NULL) */
	void (*quiesce)(struct virtio_dev *vd);
	void (*unquiesce)(struct virtio_dev *vd);
};

struct virtio_dev {
	const struct virtio_dev_ops *ops;
	struct vm *vm;
	struct pci_dev pci;
	struct virtq vq[VIRTIO_MAX_QUEUES];
	pthread_mutex_t lock; /* the registers below */
	uint64_t driver_features;
	uint32_t dfselect, gfselect;
	uint16_t queue_sel;
	uint8_t status, isr, generation;
	int kick_fd[VIRTIO_MAX_QUEUES];
	/* Quiesced (a snapshot): notifications are held back, and handed to the
	 * device at unquiesce. notify_lock is held around each one handed over. */
	pthread_mutex_t notify_lock;
	bool quiesced;
	bool held[VIRTIO_MAX_QUEUES];
	uint64_t ioeventfd_addr; /* BAR address the ioeventfds are bound to, 0 if none */
	int stop_fd;
	pthread_t thread;
	bool thread_started;
	int irq; /* INTx line, or -1 when the VM has no interrupt controller */
	/* The line through KVM irqfd: irq_fd raises it, KVM lowers it at the guest's
	 * EOI and signals resample_fd (-1 both when KVM_IRQ_LINE is used instead). */
	int irq_fd, resample_fd;
};

/* virtio_pci_init - @vd as a PCI device on @pci, driven by @ops. -errno. */
int virtio_pci_init(struct virtio_dev *vd, struct vm *vm, struct pci *pci,
		    const struct virtio_dev_ops *ops);

/* virtio_pci_exit - stop the notification thread and release the eventfds. */
void virtio_pci_exit(struct virtio_dev *vd);

/* virtio_used - tell the driver that queue @q has used buffers (interrupt). */
void virtio_used(struct virtio_dev *vd, int q);

/* virtio_config_changed - the device configuration changed (interrupt, ISR bit 1). */
void virtio_config_changed(struct virtio_dev *vd);

/* virtio_fail - the guest broke the device's rules: say @why and ask for a reset. */
void virtio_fail(struct virtio_dev *vd, const char *why);

/*
 * virtio_pci_quiesce - hold every notification back and let the device finish
 * what is in flight (ops->quiesce): its state is then still. unquiesce hands
 * the held notifications over and lets it go on.
 */
void virtio_pci_quiesce(struct virtio_dev *vd);
void virtio_pci_unquiesce(struct virtio_dev *vd);

/*
 * virtio_pci_save - the quiesced device's transport state (registers, queues,
 * PCI configuration space) into @buf, VIRTIO_PCI_STATE_MAX bytes: its length.
 * virtio_pci_restore - into a fresh device of the same kind, before the
 * guest runs: checked (a queue outside RAM is refused), then what the driver
 * had set up is set up again and the queues looked at. 0 or -EINVAL.
 */
#define VIRTIO_PCI_STATE_MAX 512
size_t virtio_pci_save(struct virtio_dev *vd, void *buf);
int virtio_pci_restore(struct virtio_dev *vd, const void *buf, size_t len);

#endif
