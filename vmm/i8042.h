/*
 * i8042.h - the part of the PC keyboard controller a vNode needs: its reset
 * line. Writing command 0xfe to port 0x64 resets the machine, which Linux
 * does on reboot (reboot=k, and its default order after ACPI). There is no
 * keyboard: the FADT says so (no IAPC_BOOT_ARCH 8042 flag), so the kernel
 * does not probe one, and the status register always reads "nothing to
 * read, ready for a command", so that a reboot never waits on it.
 */
#ifndef LEGO_VMM_I8042_H
#define LEGO_VMM_I8042_H

#include "vm.h"

#define I8042_DATA_PORT	   0x60
#define I8042_COMMAND_PORT 0x64
#define I8042_CMD_RESET	   0xfe

/* i8042_init - claim ports 0x60 and 0x64 on @vm; a reset command resets the machine (vm_reset). */
int i8042_init(struct vm *vm);

#endif
