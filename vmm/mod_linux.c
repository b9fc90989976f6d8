/*
 * mod_linux.c - the Linux profile: a stock bzImage booted through the x86
 * boot protocol (linux.h), its console on this terminal or pipe. On a
 * terminal the terminal is put in raw mode while the guest runs; Ctrl-A x
 * quits, Ctrl-A Ctrl-A sends one Ctrl-A. From a pipe, bytes are passed on
 * as they are, and end of input only stops the forwarding.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <termios.h>
#include <unistd.h>

#include "linux.h"
#include "serial.h"
#include "vmm.h"

#define CONSOLE_ESCAPE 0x01 /* Ctrl-A */

struct console {
	struct termios saved;
	bool raw;    /* the terminal is in raw mode: restore it */
	bool input;  /* stdin still forwarded */
	bool escape; /* the last byte was Ctrl-A */
};

static int opt_kernel(struct vmm *v, const char *arg, char *err, size_t errlen)
{
	(void)err, (void)errlen;
	return order_set(&v->order.kernel, arg);
}

static int opt_initrd(struct vmm *v, const char *arg, char *err, size_t errlen)
{
	(void)err, (void)errlen;
	return order_set(&v->order.initrd, arg);
}

static int opt_append(struct vmm *v, const char *arg, char *err, size_t errlen)
{
	(void)err, (void)errlen;
	return order_set(&v->order.cmdline, arg);
}

static void linux_configure(struct vmm *v, struct vm_config *cfg)
{
	if (!v->order.kernel)
		return;
	v->mode = "linux";
	cfg->irqchip = true;	     /* local APICs, IOAPIC and PIC in the kernel */
	cfg->shutdown_resets = true; /* reboot=t: a triple fault is the guest rebooting */
}

static int linux_setup(struct vmm *v)
{
	struct console *c;

	if (!v->order.kernel)
		return VMM_IDLE;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	vmm_set_priv(v, &mod_linux, c);
	return 0;
}

static int linux_load_kernel(struct vmm *v)
{
	const struct vnode_order *o = &v->order;
	const struct vm_quirks *q = v->vm.quirks;
	char quirks[1024] = "", net[256] = "", *cmdline;
	/* memory plugged live (virtio-mem) comes online by itself, movable so that
	 * it can be unplugged again */
	const char *hotplug = o->max_memory ? "memhp_default_state=online_movable " : "";
	struct linux_boot lb;
	int ret;

	if (q && q->boot_linux && (ret = q->boot_linux(&v->vm, quirks, sizeof(quirks))))
		return ret;
	/* The vNode's name and the first interface's address, for the boot kit's
	 * init (guest/kit/init); names are [A-Za-z0-9_.-], safe on a command line. */
	if (o->nr_nics && o->nics[0].ip)
		snprintf(net, sizeof(net), "lego.ip=%s%s%s%s%s ", o->nics[0].ip,
			 o->nics[0].gateway ? " lego.gw=" : "",
			 o->nics[0].gateway ? o->nics[0].gateway : "", o->name ? " lego.name=" : "",
			 o->name ? o->name : "");
	/* the quirks' options and the address first, so that the user's override
	 * them and a user's "--" (what follows goes to init) stays last */
	if (asprintf(&cmdline, "%s%s%s%s%s", quirks, quirks[0] ? " " : "", hotplug, net,
		     o->cmdline ? o->cmdline : "console=ttyS0") < 0)
		return -ENOMEM;
	ret = linux_load(&v->vm, o->kernel, o->initrd, cmdline, &lb);
	if (!ret)
		log_info("Linux: boot protocol %x.%02x, %s payload decompressed in %.1f ms (%.1f "
			 "MiB), entry %#llx",
			 lb.protocol >> 8, lb.protocol & 0xff, lb.compression, lb.decompress_ms,
			 lb.decompressed_bytes / 1048576.0, (unsigned long long)lb.entry);
	log_debug("kernel command line: %s", cmdline);
	free(cmdline);
	return ret;
}

/* Input only while the guest's receive buffer has room for what is read. */
static bool console_ready(struct vmm *v, void *opaque)
{
	(void)opaque;
	return serial_rx_room(v->serial) >= 256;
}

static bool console_read(struct vmm *v, void *opaque)
{
	struct console *c = opaque;
	uint8_t buf[256];
	ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

	if (n <= 0)
		return false; /* end of input: the guest keeps running */
	for (ssize_t i = 0; i < n; i++) {
		uint8_t b = buf[i];

		if (c->raw && c->escape) {
			c->escape = false;
			if (b == 'x' || b == 'X') {
				log_info("console: Ctrl-A x: stopping the guest");
				vm_stop(&v->vm, 0, "stopped from the console");
				return true;
			}
			if (b != CONSOLE_ESCAPE)
				continue; /* an unknown escape: dropped */
		} else if (c->raw && b == CONSOLE_ESCAPE) {
			c->escape = true;
			continue;
		}
		serial_input(v->serial, &b, 1);
	}
	return true;
}

static void console_restore(struct console *c)
{
	if (c->raw)
		tcsetattr(STDIN_FILENO, TCSANOW, &c->saved);
	c->raw = false;
}

static int linux_start(struct vmm *v)
{
	struct console *c = vmm_priv(v, &mod_linux);
	struct vmm_watch w = {STDIN_FILENO, console_ready, console_read, c};
	struct termios t;
	/* restored: the kernel runs already, from the memory it was saved with */
	int ret = v->restoring ? 0 : linux_load_kernel(v);

	if (ret)
		return ret;
	if (!v->serial)
		return 0; /* no UART: nothing to type into */
	if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &c->saved) == 0) {
		t = c->saved;
		cfmakeraw(&t);
		t.c_oflag |= OPOST | ONLCR; /* the VMM's own messages still start on a fresh line */
		if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0) {
			c->raw = true;
			log_info("console: Ctrl-A x quits");
		}
	}
	return vmm_watch(v, &w);
}

static void linux_stop(struct vmm *v)
{
	console_restore(vmm_priv(v, &mod_linux));
	/* how an OS ended is worth a line: it powered off, or was stopped */
	if (v->vm.exit_status != VM_EXIT_GUEST_FAULT && v->vm.exit_status != VM_EXIT_VMM_ERROR)
		log_info("%s (exit status %d)", v->vm.stop_reason, v->vm.exit_status);
}

static void linux_teardown(struct vmm *v)
{
	struct console *c = vmm_priv(v, &mod_linux);

	console_restore(c);
	free(c);
	vmm_set_priv(v, &mod_linux, NULL);
}

static const struct vmm_option linux_options[] = {
	{"kernel", "BZIMAGE",
	 "boot a stock Linux kernel (decompressed here, entered in 64-bit\n"
	 "                   mode); its console is the serial port, on this terminal",
	 opt_kernel},
	{"initrd", "FILE", "its initramfs", opt_initrd},
	{"append", "TEXT", "its command line (default console=ttyS0)", opt_append},
	{NULL},
};

const struct vmm_module mod_linux = {
	.name = "linux",
	.options = linux_options,
	.configure = linux_configure,
	.setup = linux_setup,
	.start = linux_start,
	.stop = linux_stop,
	.teardown = linux_teardown,
};
