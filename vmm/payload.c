/*
 * payload.c - loading a payload image and entering it in 64-bit ring 3.
 *
 * Why ring 3: on KVM without hardware virtualisation (kvm_pvm) guest ring-0
 * code is emulated instruction by instruction, while ring-3 code runs natively.
 * A payload is the guest's user program, so its loads, stores and page faults
 * are real guest accesses at native speed. The few ring-0 instructions that
 * exist are the exception stubs, which only report to the VMM.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "abi.h"
#include "log.h"
#include "payload.h"
#include "util.h"

#define PTE_P  (1ULL << 0)
#define PTE_RW (1ULL << 1)
#define PTE_US (1ULL << 2)
#define PTE_PS (1ULL << 7)

#define CR0_PE	       (1ULL << 0)
#define CR0_MP	       (1ULL << 1)
#define CR0_ET	       (1ULL << 4)
#define CR0_NE	       (1ULL << 5)
#define CR0_WP	       (1ULL << 16)
#define CR0_PG	       (1ULL << 31)
#define CR4_PAE	       (1ULL << 5)
#define CR4_OSFXSR     (1ULL << 9)
#define CR4_OSXMMEXCPT (1ULL << 10)
#define EFER_LME       (1ULL << 8)
#define EFER_LMA       (1ULL << 10)
#define RFLAGS_IOPL3   (3ULL << 12)
#define RFLAGS_FIXED   (1ULL << 1)

#define LP_NR_VECTORS 32
#define LP_STUB_SIZE  16

static int payload_read_file(const char *path, uint8_t **data, size_t *len)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t off = 0;

	if (fd < 0 || fstat(fd, &st) < 0) {
		log_err("cannot read payload %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	*len = st.st_size;
	*data = malloc(*len ? *len : 1);
	if (!*data) {
		close(fd);
		return -ENOMEM;
	}
	while (off < *len) {
		ssize_t n = read(fd, *data + off, *len - off);

		if (n <= 0) {
			log_err("cannot read payload %s: %s", path,
				n ? strerror(errno) : "short read");
			free(*data);
			close(fd);
			return -EIO;
		}
		off += n;
	}
	close(fd);
	return 0;
}

static uint64_t payload_low_ram_end(const struct vm *vm)
{
	return vm->mem.regions[0].size;
}

/* The image header, checked against what this VMM and this VM can hold. */
static int payload_check(const struct vm *vm, const char *path, const uint8_t *img, size_t len,
			 struct lp_header *h)
{
	char size[32];

	if (len < sizeof(*h)) {
		log_err("%s is not a lego payload: %zu bytes, shorter than the header", path, len);
		return -ENOEXEC;
	}
	memcpy(h, img, sizeof(*h));
	if (h->magic != LP_MAGIC) {
		log_err("%s is not a lego payload (no LEGOPAY1 header; build payloads with make)",
			path);
		return -ENOEXEC;
	}
	if (h->abi_version != LP_ABI_VERSION || h->load_addr != LP_LOAD_ADDR) {
		log_err("%s: payload ABI %u at %#llx, this lego-vmm runs ABI %u at %#llx: rebuild "
			"it",
			path, h->abi_version, (unsigned long long)h->load_addr, LP_ABI_VERSION,
			LP_LOAD_ADDR);
		return -ENOEXEC;
	}
	if (h->end < h->load_addr + len || h->entry < h->load_addr ||
	    h->entry >= h->load_addr + len) {
		log_err("%s: inconsistent header (end %#llx, entry %#llx for %zu bytes)", path,
			(unsigned long long)h->end, (unsigned long long)h->entry, len);
		return -ENOEXEC;
	}
	if (h->end > payload_low_ram_end(vm)) {
		log_err("payload %s needs %llu KiB of guest memory above %#llx; --memory %s is too "
			"small",
			path, (unsigned long long)(h->end - h->load_addr) / 1024, LP_LOAD_ADDR,
			format_size(vm->mem.size, size, sizeof(size)));
		return -ENOMEM;
	}
	return 0;
}

static void payload_gdt_entry(uint64_t *gdt, int idx, uint32_t type, uint32_t dpl, bool code64)
{
	/* base 0, limit 0xfffff, G=1; L for 64-bit code, D/B for data. */
	uint64_t d = 0xffffULL | (0xfULL << 48);

	d |= (uint64_t)(type | 0x10) << 40; /* S=1: code or data */
	d |= (uint64_t)dpl << 45;
	d |= 1ULL << 47; /* present */
	d |= code64 ? 1ULL << 53 : 1ULL << 54;
	d |= 1ULL << 55; /* 4 KiB granularity */
	gdt[idx] = d;
}

static void payload_tss_entry(uint64_t *gdt, int idx, uint64_t base)
{
	uint64_t limit = 103;

	gdt[idx] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0xbULL << 40) | (1ULL << 47) |
		   (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
	gdt[idx + 1] = base >> 32;
}

/*
 * The system area: GDT with a TSS per vCPU (its RSP0 is the vCPU's exception
 * stack), an IDT whose 32 exception vectors point at stubs that report the
 * vector on LP_PORT_EXCEPTION, and the page tables.
 */
static int payload_build_system(struct vm *vm)
{
	uint64_t gdt[6 + 2 * LP_MAX_VCPUS] = {0};
	uint64_t idt[2 * LP_NR_VECTORS];
	uint8_t stubs[LP_NR_VECTORS * LP_STUB_SIZE];
	int ret = 0;

	payload_gdt_entry(gdt, 1, 0xb, 0, true);  /* 0x08 kernel code */
	payload_gdt_entry(gdt, 2, 0x3, 0, false); /* 0x10 kernel data */
	payload_gdt_entry(gdt, 4, 0x3, 3, false); /* 0x20 user data */
	payload_gdt_entry(gdt, 5, 0xb, 3, true);  /* 0x28 user code */
	for (int i = 0; i < vm->nr_vcpus; i++) {
		uint8_t tss[104] = {0};
		uint64_t rsp0 = LP_KSTACK_ADDR + (i + 1) * LP_KSTACK_SIZE;

		memcpy(tss + 4, &rsp0, 8);
		tss[102] = 104; /* I/O bitmap base past the limit: IOPL alone decides */
		ret |= gmem_write(&vm->mem, LP_TSS_ADDR + 128 * i, tss, sizeof(tss));
		payload_tss_entry(gdt, 6 + 2 * i, LP_TSS_ADDR + 128 * i);
	}
	for (int v = 0; v < LP_NR_VECTORS; v++) {
		uint64_t h = LP_STUBS_ADDR + v * LP_STUB_SIZE;
		/* push %rax; push %rdx; mov $v,%al; mov $port,%dx; out %al,(%dx);
		 * 1: hlt; jmp 1b. The VMM restores %rax/%rdx from the stack. */
		uint8_t stub[LP_STUB_SIZE] = {0x50,
					      0x52,
					      0xb0,
					      (uint8_t)v,
					      0x66,
					      0xba,
					      LP_PORT_EXCEPTION & 0xff,
					      LP_PORT_EXCEPTION >> 8,
					      0xee,
					      0xf4,
					      0xeb,
					      0xfd};

		memcpy(stubs + v * LP_STUB_SIZE, stub, LP_STUB_SIZE);
		/* 64-bit interrupt gate, DPL 0, present, selector kernel code. */
		idt[2 * v] = (h & 0xffff) | ((uint64_t)LP_SEL_KCODE << 16) | (0x8eULL << 40) |
			     ((h >> 16 & 0xffff) << 48);
		idt[2 * v + 1] = h >> 32;
	}
	ret |= gmem_write(&vm->mem, LP_GDT_ADDR, gdt, sizeof(gdt));
	ret |= gmem_write(&vm->mem, LP_IDT_ADDR, idt, sizeof(idt));
	ret |= gmem_write(&vm->mem, LP_STUBS_ADDR, stubs, sizeof(stubs));
	return ret ? -EFAULT : 0;
}

/*
 * Identity page tables: 4 KiB pages for the first 2 MiB (page 0 absent,
 * system pages supervisor-only, the info page read-only), 2 MiB pages for the
 * rest of the low 4 GiB and for RAM above it, hotpluggable memory included.
 */
static int payload_build_page_tables(struct vm *vm)
{
	uint64_t top = GMEM_HIGH_BASE;
	uint64_t pml4 = LP_PT_ADDR, pdpt = pml4 + 4096, pt0 = pdpt + 4096, pd = pt0 + 4096;
	uint64_t nr_pd, e;
	int ret = 0;

	if (vm->mem.nr > 1)
		top = vm->mem.regions[1].gpa + vm->mem.regions[1].size;
	if (vm->mem.hp.size) /* hotpluggable memory: mapped, reachable once plugged */
		top = vm->mem.hp.gpa + vm->mem.hp.size;
	nr_pd = ALIGN_UP(top, GiB) / GiB;
	if (nr_pd > 512 || pd + nr_pd * 4096 > LP_PT_END) {
		log_err("payload mode maps at most %llu GiB of guest memory",
			(unsigned long long)(LP_PT_END - pd) / 4096);
		return -E2BIG;
	}
	e = pdpt | PTE_P | PTE_RW | PTE_US;
	ret |= gmem_write(&vm->mem, pml4, &e, 8);
	for (uint64_t g = 0; g < nr_pd; g++) {
		e = (pd + g * 4096) | PTE_P | PTE_RW | PTE_US;
		ret |= gmem_write(&vm->mem, pdpt + 8 * g, &e, 8);
		for (uint64_t m = 0; m < 512; m++) {
			uint64_t addr = g * GiB + m * 2 * MiB;

			if (addr == 0)
				e = pt0 | PTE_P | PTE_RW | PTE_US;
			else
				e = addr | PTE_P | PTE_RW | PTE_US | PTE_PS;
			ret |= gmem_write(&vm->mem, pd + g * 4096 + 8 * m, &e, 8);
		}
	}
	for (uint64_t p = 1; p < 512; p++) {
		uint64_t addr = p * 4096;

		e = addr | PTE_P;
		if (addr == LP_INFO_ADDR || addr >= LP_USTACK_ADDR)
			e |= PTE_US;
		if (addr != LP_INFO_ADDR)
			e |= PTE_RW;
		ret |= gmem_write(&vm->mem, pt0 + 8 * p, &e, 8);
	}
	return ret ? -EFAULT : 0;
}

static int payload_write_info(struct vm *vm, const struct lp_header *h, const char *args)
{
	struct lp_info *info = calloc(1, sizeof(*info));
	int ret;

	if (!info)
		return -ENOMEM;
	if (args && strlen(args) >= sizeof(info->args)) {
		log_err("--args is %zu bytes; payloads take at most %zu", strlen(args),
			sizeof(info->args) - 1);
		free(info);
		return -E2BIG;
	}
	info->magic = LP_MAGIC;
	info->abi_version = LP_ABI_VERSION;
	info->nr_vcpus = vm->nr_vcpus;
	info->mem_size = vm->mem.size;
	info->tsc_khz = vm->tsc_khz;
	info->free_base = ALIGN_UP(h->end, 4096ULL);
	info->free_end = payload_low_ram_end(vm);
	info->nr_ram_ranges = vm->mem.nr;
	for (int i = 0; i < vm->mem.nr; i++) {
		info->ram[i].base = vm->mem.regions[i].gpa;
		info->ram[i].size = vm->mem.regions[i].size;
	}
	snprintf(info->args, sizeof(info->args), "%s", args ? args : "");
	ret = gmem_write(&vm->mem, LP_INFO_ADDR, info, sizeof(*info));
	free(info);
	return ret;
}

static void payload_seg(struct kvm_segment *s, uint16_t sel, uint8_t type, uint8_t dpl, bool code64)
{
	*s = (struct kvm_segment){
		.base = 0,
		.limit = 0xffffffff,
		.selector = sel,
		.type = type,
		.present = 1,
		.dpl = dpl,
		.db = !code64,
		.s = 1,
		.l = code64,
		.g = 1,
	};
}

void payload_user_segments(struct kvm_sregs *s)
{
	payload_seg(&s->cs, LP_SEL_UCODE, 0xb, 3, true);
	payload_seg(&s->ss, LP_SEL_UDATA, 0x3, 3, false);
	s->ds = s->es = s->fs = s->gs = s->ss;
}

static int payload_setup_vcpu(struct vcpu *vcpu, const struct lp_header *h)
{
	struct kvm_sregs s;
	struct kvm_regs r = {0};
	struct kvm_fpu fpu = {0};

	if (ioctl(vcpu->fd, KVM_GET_SREGS, &s) < 0)
		return -errno;
	payload_user_segments(&s);
	s.tr = (struct kvm_segment){
		.base = LP_TSS_ADDR + 128 * vcpu->index,
		.limit = 103,
		.selector = LP_SEL_TSS0 + 16 * vcpu->index,
		.type = 0xb, /* busy 64-bit TSS */
		.present = 1,
	};
	s.ldt = (struct kvm_segment){.type = 0x2, .present = 1, .unusable = 1};
	s.gdt.base = LP_GDT_ADDR;
	s.gdt.limit = (6 + 2 * LP_MAX_VCPUS) * 8 - 1;
	s.idt.base = LP_IDT_ADDR;
	s.idt.limit = LP_NR_VECTORS * 16 - 1;
	s.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
	s.cr3 = LP_PT_ADDR;
	s.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
	s.efer = EFER_LME | EFER_LMA;
	if (ioctl(vcpu->fd, KVM_SET_SREGS, &s) < 0)
		return -errno;

	r.rip = h->entry;
	r.rsp = LP_USTACK_ADDR + (vcpu->index + 1) * LP_USTACK_SIZE;
	r.rflags = RFLAGS_FIXED | RFLAGS_IOPL3;
	if (ioctl(vcpu->fd, KVM_SET_REGS, &r) < 0)
		return -errno;

	fpu.fcw = 0x37f;
	fpu.mxcsr = 0x1f80;
	if (ioctl(vcpu->fd, KVM_SET_FPU, &fpu) < 0)
		return -errno;
	return 0;
}

int payload_load(struct vm *vm, const char *path, const char *args)
{
	struct lp_header h;
	uint8_t *img = NULL;
	size_t len = 0;
	int ret;

	if (vm->nr_vcpus > LP_MAX_VCPUS) {
		log_err("payload mode runs at most %d vCPUs", LP_MAX_VCPUS);
		return -EINVAL;
	}
	ret = payload_read_file(path, &img, &len);
	if (ret)
		return ret;
	ret = payload_check(vm, path, img, len, &h);
	if (!ret && gmem_write(&vm->mem, LP_LOAD_ADDR, img, len))
		ret = -EFAULT;
	free(img);
	if (ret)
		return ret;
	ret = payload_write_info(vm, &h, args);
	if (!ret)
		ret = payload_build_system(vm);
	if (!ret)
		ret = payload_build_page_tables(vm);
	for (int i = 0; !ret && i < vm->nr_vcpus; i++) {
		ret = payload_setup_vcpu(&vm->vcpus[i], &h);
		if (ret)
			log_err("cannot set vCPU %d's registers: %s", i, strerror(-ret));
	}
	return ret;
}
