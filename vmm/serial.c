/* serial.c - 16550A UART registers, FIFO-less transmit, a receive queue, IRQ 4. */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "serial.h"

#define UART_RBR 0 /* DLAB=0, read */
#define UART_THR 0 /* DLAB=0, write */
#define UART_IER 1
#define UART_IIR 2 /* read */
#define UART_FCR 2 /* write */
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7

#define LSR_DR	 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define IER_RDI	 0x01
#define IER_THRI 0x02
#define LCR_DLAB 0x80
#define MCR_LOOP 0x10

/* The interrupt line follows the pending causes, as a level. Called locked. */
static void serial_update_irq(struct serial *s)
{
	int level = ((s->ier & IER_RDI) && s->rx_len) || ((s->ier & IER_THRI) && s->thr_int);
	struct kvm_irq_level irq = {.irq = (uint32_t)s->irq, .level = level};

	if (s->irq < 0 || level == s->irq_level)
		return;
	s->irqs += level;
	s->irq_level = level;
	ioctl(s->vm->vm_fd, KVM_IRQ_LINE, &irq);
}

static void serial_io(struct vcpu *vcpu, void *opaque, uint64_t off, void *data, uint32_t len,
		      bool is_write)
{
	struct serial *s = opaque;
	uint8_t v = is_write ? *(uint8_t *)data : 0;
	bool dlab;

	(void)vcpu;
	if (len != 1) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&s->lock);
	dlab = s->lcr & LCR_DLAB;
	if (is_write) {
		switch (off) {
		case UART_THR:
			if (dlab) {
				s->dll = v;
			} else if (!(s->mcr & MCR_LOOP)) {
				if (write(s->out_fd, &v, 1) == 1)
					s->tx_bytes++;
				s->thr_int =
					true; /* sent at once: the holding register is empty again */
			}
			break;
		case UART_IER:
			if (dlab) {
				s->dlm = v;
			} else {
				/* enabling THRI with an empty THR raises it at once */
				if ((v & IER_THRI) && !(s->ier & IER_THRI))
					s->thr_int = true;
				s->ier = v & 0x0f;
			}
			break;
		case UART_FCR:
			s->fcr = v;
			if (v & 2) /* clear the receive FIFO */
				s->rx_len = 0;
			break;
		case UART_LCR:
			s->lcr = v;
			break;
		case UART_MCR:
			s->mcr = v;
			break;
		case UART_SCR:
			s->scr = v;
			break;
		}
	} else {
		switch (off) {
		case UART_RBR:
			if (dlab) {
				v = s->dll;
			} else if (s->rx_len) {
				v = s->rx[s->rx_head];
				s->rx_head = (s->rx_head + 1) % SERIAL_RX_MAX;
				s->rx_len--;
				s->rx_bytes++;
			}
			break;
		case UART_IER:
			v = dlab ? s->dlm : s->ier;
			break;
		case UART_IIR:
			if ((s->ier & IER_RDI) && s->rx_len) {
				v = 0x04;
			} else if ((s->ier & IER_THRI) && s->thr_int) {
				v = 0x02;
				s->thr_int =
					false; /* reading IIR with THRE as the cause clears it */
			} else {
				v = 0x01; /* nothing pending */
			}
			if (s->fcr & 1)
				v |= 0xc0;
			break;
		case UART_LCR:
			v = s->lcr;
			break;
		case UART_MCR:
			v = s->mcr;
			break;
		case UART_LSR:
			v = LSR_THRE | LSR_TEMT | (s->rx_len ? LSR_DR : 0);
			break;
		case UART_MSR:
			v = 0xb0; /* DCD, DSR, CTS */
			break;
		case UART_SCR:
			v = s->scr;
			break;
		}
		*(uint8_t *)data = v;
	}
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

void serial_input(struct serial *s, const uint8_t *buf, size_t len)
{
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < len && s->rx_len < SERIAL_RX_MAX; i++) {
		s->rx[(s->rx_head + s->rx_len) % SERIAL_RX_MAX] = buf[i];
		s->rx_len++;
	}
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

struct serial_saved {
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr, thr_int;
	uint32_t rx_len, reserved;
	uint8_t rx[SERIAL_RX_MAX];
};

size_t serial_save(struct serial *s, void *buf)
{
	struct serial_saved sv = {0};

	_Static_assert(sizeof(sv) <= SERIAL_STATE_MAX, "SERIAL_STATE_MAX");
	pthread_mutex_lock(&s->lock);
	sv.ier = s->ier, sv.lcr = s->lcr, sv.mcr = s->mcr, sv.scr = s->scr;
	sv.dll = s->dll, sv.dlm = s->dlm, sv.fcr = s->fcr, sv.thr_int = s->thr_int;
	sv.rx_len = s->rx_len;
	for (unsigned i = 0; i < s->rx_len; i++)
		sv.rx[i] = s->rx[(s->rx_head + i) % SERIAL_RX_MAX];
	pthread_mutex_unlock(&s->lock);
	memcpy(buf, &sv, sizeof(sv));
	return sizeof(sv);
}

int serial_load(struct serial *s, const void *buf, size_t len)
{
	struct serial_saved sv;

	if (len != sizeof(sv))
		return -EINVAL;
	memcpy(&sv, buf, sizeof(sv));
	if (sv.rx_len > SERIAL_RX_MAX)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	s->ier = sv.ier, s->lcr = sv.lcr, s->mcr = sv.mcr, s->scr = sv.scr;
	s->dll = sv.dll, s->dlm = sv.dlm, s->fcr = sv.fcr, s->thr_int = sv.thr_int;
	memcpy(s->rx, sv.rx, sv.rx_len);
	s->rx_head = 0;
	s->rx_len = sv.rx_len;
	s->irq_level = false; /* raised again below if a cause is pending */
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

size_t serial_rx_room(struct serial *s)
{
	size_t room;

	pthread_mutex_lock(&s->lock);
	room = SERIAL_RX_MAX - s->rx_len;
	pthread_mutex_unlock(&s->lock);
	return room;
}

int serial_init(struct serial *s, struct vm *vm, int out_fd, int irq)
{
	memset(s, 0, sizeof(*s));
	s->vm = vm;
	s->out_fd = out_fd;
	s->irq = irq;
	pthread_mutex_init(&s->lock, NULL);
	return bus_register(&vm->pio, SERIAL_COM1, 8, serial_io, s, "serial");
}
