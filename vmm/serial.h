/*
 * serial.h - a 16550A UART at COM1 (0x3f8, IRQ 4): the guest's console.
 * Output goes to a file descriptor (the terminal); input comes from another
 * and raises the receive interrupt.
 */
#ifndef LEGO_VMM_SERIAL_H
#define LEGO_VMM_SERIAL_H

#include <pthread.h>
#include <stdint.h>

#include "vm.h"

#define SERIAL_COM1   0x3f8
#define SERIAL_IRQ    4
#define SERIAL_RX_MAX 1024

struct serial {
	struct vm *vm;
	int out_fd;
	pthread_mutex_t lock;
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
	uint8_t rx[SERIAL_RX_MAX];
	unsigned rx_head, rx_len;
	bool thr_int; /* THR-empty interrupt pending (cleared by reading IIR) */
	int irq;      /* -1 without an interrupt controller */
	uint64_t tx_bytes, rx_bytes;
	uint64_t irqs; /* interrupt line raised (0 -> 1) */
	bool irq_level;
};

/* serial_init - COM1 on @vm's port bus, writing to @out_fd; @irq or -1. */
int serial_init(struct serial *s, struct vm *vm, int out_fd, int irq);

/* serial_input - bytes typed by the user: queued for the guest, interrupt raised
 * (what does not fit in SERIAL_RX_MAX is dropped: check serial_rx_room first). */
void serial_input(struct serial *s, const uint8_t *buf, size_t len);

/*
 * serial_save - the UART's registers and unread input into @buf
 * (SERIAL_STATE_MAX bytes): its length. serial_load - back into a fresh
 * UART, its interrupt line raised again if it was. 0 or -EINVAL.
 */
#define SERIAL_STATE_MAX (16 + SERIAL_RX_MAX)
size_t serial_save(struct serial *s, void *buf);
int serial_load(struct serial *s, const void *buf, size_t len);

/* serial_rx_room - how many more input bytes the receive buffer takes now. */
size_t serial_rx_room(struct serial *s);

#endif
