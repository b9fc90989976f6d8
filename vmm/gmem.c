/* gmem.c - the checked accessor for guest physical memory. */
#include <errno.h>
#include <string.h>

#include "vm.h"

void *gmem_ptr(const struct gmem *mem, uint64_t gpa, uint64_t len)
{
	for (int i = 0; i < mem->nr; i++) {
		const struct gmem_region *r = &mem->regions[i];

		/* Written so that no sum can wrap: gpa and len come from the guest. */
		if (gpa >= r->gpa && gpa - r->gpa < r->size && len <= r->size - (gpa - r->gpa))
			return r->hva + (gpa - r->gpa);
	}
	return NULL;
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
