/* bus.c - sorted range table and binary search for device dispatch. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "log.h"

void bus_init(struct bus *bus, const char *name)
{
	memset(bus, 0, sizeof(*bus));
	bus->name = name;
}

void bus_exit(struct bus *bus)
{
	free(bus->ranges);
	bus->ranges = NULL;
	bus->nr = bus->cap = 0;
}

int bus_register(struct bus *bus, uint64_t base, uint64_t len, bus_fn fn, void *opaque,
		 const char *name)
{
	int pos = 0;

	if (!len || base + len - 1 < base || !fn)
		return -EINVAL;
	while (pos < bus->nr && bus->ranges[pos].base < base)
		pos++;
	/* Overlap can only be with the neighbours of the insertion point. */
	for (int i = pos - 1; i <= pos; i++) {
		const struct bus_range *r = i >= 0 && i < bus->nr ? &bus->ranges[i] : NULL;

		if (r && base <= r->base + r->len - 1 && r->base <= base + len - 1) {
			log_err("%s range %#llx+%#llx of %s overlaps %s at %#llx+%#llx", bus->name,
				(unsigned long long)base, (unsigned long long)len, name, r->name,
				(unsigned long long)r->base, (unsigned long long)r->len);
			return -EEXIST;
		}
	}
	if (bus->nr == bus->cap) {
		int cap = bus->cap ? bus->cap * 2 : 16;
		struct bus_range *r = realloc(bus->ranges, cap * sizeof(*r));

		if (!r)
			return -ENOMEM;
		bus->ranges = r;
		bus->cap = cap;
	}
	memmove(&bus->ranges[pos + 1], &bus->ranges[pos], (bus->nr - pos) * sizeof(*bus->ranges));
	bus->ranges[pos] = (struct bus_range){base, len, fn, opaque, name};
	bus->nr++;
	return 0;
}

const struct bus_range *bus_find(const struct bus *bus, uint64_t addr, uint32_t len)
{
	int lo = 0, hi = bus->nr - 1;

	if (!len || addr + len - 1 < addr)
		return NULL;
	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2;
		const struct bus_range *r = &bus->ranges[mid];

		if (addr < r->base)
			hi = mid - 1;
		else if (addr - r->base >= r->len)
			lo = mid + 1;
		else
			return addr + len - 1 <= r->base + r->len - 1 ? r : NULL;
	}
	return NULL;
}

int bus_dispatch(const struct bus *bus, struct vcpu *vcpu, uint64_t addr, void *data, uint32_t len,
		 bool is_write)
{
	const struct bus_range *r = bus_find(bus, addr, len);

	if (!r)
		return -ENOENT;
	r->fn(vcpu, r->opaque, addr - r->base, data, len, is_write);
	return 0;
}
