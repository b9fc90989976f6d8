/* i8042.c - keyboard controller ports: the reset command, nothing else. */
#include <string.h>

#include "bus.h"
#include "i8042.h"

/* Both ports read 0: no data to read, the controller ready for a command. */
static void i8042_read(void *data, uint32_t len)
{
	memset(data, 0, len);
}

static void i8042_data(struct vcpu *vcpu, void *opaque, uint64_t off, void *data, uint32_t len,
		       bool is_write)
{
	(void)vcpu, (void)opaque, (void)off;
	if (!is_write)
		i8042_read(data, len); /* writes (keyboard commands) are dropped */
}

static void i8042_command(struct vcpu *vcpu, void *opaque, uint64_t off, void *data, uint32_t len,
			  bool is_write)
{
	struct vm *vm = opaque;

	(void)vcpu, (void)off;
	if (!is_write)
		i8042_read(data, len);
	else if (len == 1 && *(uint8_t *)data == I8042_CMD_RESET)
		vm_reset(vm, "the guest reset itself through the i8042: booting again");
}

int i8042_init(struct vm *vm)
{
	int ret = bus_register(&vm->pio, I8042_DATA_PORT, 1, i8042_data, NULL, "i8042-data");

	return ret ? ret
		   : bus_register(&vm->pio, I8042_COMMAND_PORT, 1, i8042_command, vm, "i8042");
}
