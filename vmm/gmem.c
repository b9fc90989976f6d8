/* gmem.c - the checked accessor for guest physical memory. */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "vm.h"

bool gmem_block_plugged(const struct gmem *mem, uint64_t b)
{
	return b < mem->hp.nr_blocks &&
	       (atomic_load(&mem->hp.plugged[b / 64]) & (1ULL << (b % 64)));
}

void *gmem_ptr(const struct gmem *mem, uint64_t gpa, uint64_t len)
{
	const struct gmem_hotplug *hp = &mem->hp;

	for (int i = 0; i < mem->nr; i++) {
		const struct gmem_region *r = &mem->regions[i];

		/* Written so that no sum can wrap: gpa and len come from the guest. */
		if (gpa >= r->gpa && gpa - r->gpa < r->size && len <= r->size - (gpa - r->gpa))
			return r->hva + (gpa - r->gpa);
	}
	/* Hotpluggable memory: only where every block it touches is plugged. */
	if (hp->size && gpa >= hp->gpa && gpa - hp->gpa < hp->size &&
	    len <= hp->size - (gpa - hp->gpa)) {
		uint64_t off = gpa - hp->gpa, last = len ? off + len - 1 : off;

		for (uint64_t b = off / hp->block_size; b <= last / hp->block_size; b++)
			if (!gmem_block_plugged(mem, b))
				return NULL;
		return hp->hva + off;
	}
	return NULL;
}

uint64_t gmem_ram_bytes(const struct gmem *mem)
{
	return mem->size + atomic_load(&mem->hp.nr_plugged) * mem->hp.block_size;
}

int64_t gmem_hotplug_block(const struct gmem *mem, uint64_t off)
{
	if (off < mem->size || off - mem->size >= mem->hp.size)
		return -1;
	return (int64_t)((off - mem->size) / mem->hp.block_size);
}

int gmem_hotplug_unprotect(struct gmem *mem)
{
	struct gmem_hotplug *hp = &mem->hp;

	if (!hp->size || !hp->protect)
		return 0;
	if (mprotect(hp->hva, hp->size, PROT_READ | PROT_WRITE))
		return -errno;
	hp->protect = false;
	return 0;
}

int gmem_plug(struct gmem *mem, uint64_t first, uint64_t n, bool plug)
{
	struct gmem_hotplug *hp = &mem->hp;
	uint8_t *addr = hp->hva + first * hp->block_size;
	size_t len = n * hp->block_size;

	if (first > hp->nr_blocks || n > hp->nr_blocks - first)
		return -EINVAL;
	if (plug) {
		if (hp->protect && mprotect(addr, len, PROT_READ | PROT_WRITE))
			return -errno;
	} else {
		/* Out of the bitmap first: the VMM stops reaching it before it goes.
		 * (Under an ExCache the pages are its to drop: excache_discard.) */
		for (uint64_t b = first; b < first + n; b++)
			atomic_fetch_and(&hp->plugged[b / 64], ~(1ULL << (b % 64)));
		hp->nr_plugged -= n;
		if (hp->protect &&
		    (mprotect(addr, len, PROT_NONE) || madvise(addr, len, MADV_DONTNEED)))
			return -errno;
		return 0;
	}
	for (uint64_t b = first; b < first + n; b++)
		atomic_fetch_or(&hp->plugged[b / 64], 1ULL << (b % 64));
	hp->nr_plugged += n;
	return 0;
}

int gmem_read(const struct gmem *mem, uint64_t gpa, void *dst, uint64_t len)
{
	const void *p = gmem_ptr(mem, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(dst, p, len);
	return 0;
}

int gmem_write(struct gmem *mem, uint64_t gpa, const void *src, uint64_t len)
{
	void *p = gmem_ptr(mem, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(p, src, len);
	return 0;
}

int gmem_read_str(const struct gmem *mem, uint64_t gpa, char *buf, uint64_t size)
{
	for (uint64_t i = 0; i < size; i++) {
		const char *p = gmem_ptr(mem, gpa + i, 1);

		if (!p || gpa + i < gpa)
			return -EFAULT;
		buf[i] = *p;
		if (!*p)
			return (int)i;
	}
	if (size)
		buf[size - 1] = '\0';
	return -E2BIG;
}
