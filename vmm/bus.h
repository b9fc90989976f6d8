/*
 * bus.h - address-range dispatch for port I/O and MMIO. Devices claim ranges;
 * the vCPU loop calls bus_dispatch without knowing which devices exist.
 * Ranges are registered before the vCPUs start and never change after, so
 * dispatch takes no lock.
 */
#ifndef LEGO_VMM_BUS_H
#define LEGO_VMM_BUS_H

#include <stdbool.h>
#include <stdint.h>

struct vcpu;

/*
 * bus_fn - a device access: @offset from the start of the claimed range,
 * @len bytes at @data (filled by the device on a read), @is_write direction,
 * @vcpu the vCPU that made it.
 */
typedef void (*bus_fn)(struct vcpu *vcpu, void *opaque, uint64_t offset, void *data, uint32_t len,
		       bool is_write);

struct bus_range {
	uint64_t base, len;
	bus_fn fn;
	void *opaque;
	const char *name;
};

struct bus {
	const char *name;	  /* "pio" or "mmio", for messages */
	struct bus_range *ranges; /* sorted by base, non-overlapping */
	int nr, cap;
};

/* bus_init - an empty bus called @name. */
void bus_init(struct bus *bus, const char *name);

/* bus_exit - free the ranges. */
void bus_exit(struct bus *bus);

/*
 * bus_register - claim [@base, @base + @len) for device @name; accesses call
 * @fn(vcpu, @opaque, ...). Returns 0, -EINVAL for an empty or wrapping
 * range, -EEXIST if it overlaps a claimed one (logged with both names).
 */
int bus_register(struct bus *bus, uint64_t base, uint64_t len, bus_fn fn, void *opaque,
		 const char *name);

/* bus_find - the range holding all of [@addr, @addr + @len), or NULL. */
const struct bus_range *bus_find(const struct bus *bus, uint64_t addr, uint32_t len);

/* bus_dispatch - deliver one access; -ENOENT when no device claims it. */
int bus_dispatch(const struct bus *bus, struct vcpu *vcpu, uint64_t addr, void *data, uint32_t len,
		 bool is_write);

#endif
