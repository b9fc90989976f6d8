/* linux.c - the x86 Linux boot protocol for a bzImage, entered in 64-bit mode. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acpi.h"
#include "decompress.h"
#include "linux.h"
#include "log.h"
#include "util.h"

/* boot_params offsets (Documentation/arch/x86/zero-page.rst, boot.rst) */
#define BP_ACPI_RSDP	     0x070
#define BP_E820_ENTRIES	     0x1e8
#define BP_HDR		     0x1f1
#define BP_E820_TABLE	     0x2d0
#define BP_E820_MAX	     128
#define HDR_SETUP_SECTS	     0x1f1
#define HDR_MAGIC	     0x202 /* "HdrS" */
#define HDR_VERSION	     0x206
#define HDR_TYPE_OF_LOADER   0x210
#define HDR_LOADFLAGS	     0x211
#define HDR_RAMDISK_IMAGE    0x218
#define HDR_RAMDISK_SIZE     0x21c
#define HDR_HEAP_END_PTR     0x224
#define HDR_CMD_LINE_PTR     0x228
#define HDR_INITRD_MAX	     0x22c
#define HDR_CMDLINE_SIZE     0x238
#define HDR_XLOADFLAGS	     0x236
#define HDR_PAYLOAD_OFFSET   0x248
#define HDR_PAYLOAD_LENGTH   0x24c
#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE  0x0c4
#define BP_EXT_CMD_LINE_PTR  0x0c8

#define E820_RAM      1
#define E820_RESERVED 2

static int read_file(const char *what, const char *path, uint8_t **data, size_t *len)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t off = 0;

	if (fd < 0 || fstat(fd, &st) < 0) {
		log_err("cannot read %s %s: %s", what, path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -ENOENT;
	}
	*len = st.st_size;
	*data = malloc(*len + 1);
	while (*data && off < *len) {
		ssize_t n = read(fd, *data + off, *len - off);

		if (n <= 0)
			break;
		off += n;
	}
	close(fd);
	if (!*data || off != *len) {
		log_err("cannot read %s %s", what, path);
		free(*data);
		return -EIO;
	}
	return 0;
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

int linux_e820(const struct vm *vm, struct linux_e820 *t, int max)
{
	int n = 0;
	uint64_t low = vm->mem.regions[0].size;

	if (max < 5)
		return 0;
	t[n++] = (struct linux_e820){0, LINUX_BIOS_START, E820_RAM};
	t[n++] = (struct linux_e820){LINUX_BIOS_START, 0x100000 - LINUX_BIOS_START, E820_RESERVED};
	t[n++] = (struct linux_e820){0x100000, low - 0x100000, E820_RAM};
	if (vm->mem.nr > 1)
		t[n++] = (struct linux_e820){vm->mem.regions[1].gpa, vm->mem.regions[1].size,
					     E820_RAM};
	return n;
}

/* Load the ELF vmlinux's segments where they ask to be, physically. */
static int load_elf(struct gmem *mem, const uint8_t *img, size_t len, struct linux_boot *lb)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)img;

	if (len < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_machine != EM_X86_64 ||
	    eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phoff > len ||
	    eh->e_phnum > (len - eh->e_phoff) / sizeof(Elf64_Phdr)) {
		log_err("the decompressed kernel is not a 64-bit x86 ELF image");
		return -ENOEXEC;
	}
	lb->kernel_start = UINT64_MAX;
	lb->kernel_end = 0;
	for (int i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr phdr, *ph = &phdr; /* copied: the image may place it unaligned */
		uint8_t *dst;

		memcpy(&phdr, img + eh->e_phoff + i * sizeof(phdr), sizeof(phdr));

		if (ph->p_type != PT_LOAD)
			continue;
		if (ph->p_offset > len || ph->p_filesz > len - ph->p_offset ||
		    ph->p_filesz > ph->p_memsz) {
			log_err("kernel ELF segment %d is truncated", i);
			return -ENOEXEC;
		}
		dst = gmem_ptr(mem, ph->p_paddr, ph->p_memsz);
		if (!dst) {
			log_err("the kernel wants %#llx-%#llx; guest RAM is too small for it",
				(unsigned long long)ph->p_paddr,
				(unsigned long long)(ph->p_paddr + ph->p_memsz));
			return -ENOMEM;
		}
		memcpy(dst, img + ph->p_offset, ph->p_filesz);
		memset(dst + ph->p_filesz, 0, ph->p_memsz - ph->p_filesz);
		if (ph->p_paddr < lb->kernel_start)
			lb->kernel_start = ph->p_paddr;
		if (ph->p_paddr + ph->p_memsz > lb->kernel_end)
			lb->kernel_end = ph->p_paddr + ph->p_memsz;
	}
	lb->entry = eh->e_entry;
	if (lb->entry < lb->kernel_start || lb->entry >= lb->kernel_end) {
		log_err("the kernel's entry point %#llx is outside its image",
			(unsigned long long)lb->entry);
		return -ENOEXEC;
	}
	return 0;
}

/* The boot vCPU: flat 64-bit segments 0x10/0x18 and identity page tables for 4 GiB. */
static int linux_setup_bsp(struct vm *vm, const struct linux_boot *lb)
{
	struct vcpu *vcpu = &vm->vcpus[0];
	uint64_t gdt[4] = {0, 0, 0x00af9b000000ffffULL, 0x00cf93000000ffffULL};
	uint64_t pml4 = LINUX_BOOT_PT, pdpt = pml4 + 0x1000, pd = pdpt + 0x1000, e;
	struct kvm_segment cs = {.base = 0,
				 .limit = 0xffffffff,
				 .selector = 0x10,
				 .type = 0xb,
				 .present = 1,
				 .s = 1,
				 .l = 1,
				 .g = 1};
	struct kvm_segment ds = {.base = 0,
				 .limit = 0xffffffff,
				 .selector = 0x18,
				 .type = 0x3,
				 .present = 1,
				 .s = 1,
				 .db = 1,
				 .g = 1};
	struct kvm_sregs s;
	struct kvm_regs r = {.rflags = 2, .rip = lb->entry, .rsi = LINUX_BOOT_PARAMS};
	int ret = 0;

	ret |= gmem_write(&vm->mem, LINUX_BOOT_GDT, gdt, sizeof(gdt));
	e = pdpt | 3;
	ret |= gmem_write(&vm->mem, pml4, &e, 8);
	for (uint64_t g = 0; g < 4; g++) {
		e = (pd + g * 0x1000) | 3;
		ret |= gmem_write(&vm->mem, pdpt + 8 * g, &e, 8);
		for (uint64_t m = 0; m < 512; m++) {
			e = (g << 30) + (m << 21) + 0x83; /* present, writable, 2 MiB */
			ret |= gmem_write(&vm->mem, pd + g * 0x1000 + 8 * m, &e, 8);
		}
	}
	if (ret)
		return -EFAULT;
	if (ioctl(vcpu->fd, KVM_GET_SREGS, &s) < 0)
		return -errno;
	s.cs = cs;
	s.ds = s.es = s.fs = s.gs = s.ss = ds;
	s.gdt.base = LINUX_BOOT_GDT;
	s.gdt.limit = sizeof(gdt) - 1;
	s.cr0 = 0x80050033; /* PG WP NE ET MP PE */
	s.cr3 = pml4;
	s.cr4 = 0x20;	/* PAE */
	s.efer = 0x500; /* LMA LME */
	if (ioctl(vcpu->fd, KVM_SET_SREGS, &s) < 0 || ioctl(vcpu->fd, KVM_SET_REGS, &r) < 0)
		return -errno;
	return 0;
}

int linux_image_load(struct gmem *mem, const uint8_t *img, size_t len, const char *name,
		     uint8_t bp[4096], struct linux_boot *lb)
{
	uint8_t *elf = NULL;
	size_t elf_len = 0, setup_len;
	uint32_t poff, plen;
	uint64_t t0;
	int ret;

	if (len < 0x1000 || rd32(img + HDR_MAGIC) != 0x53726448) {
		log_err("%s is not a Linux bzImage (no HdrS header)", name);
		return -ENOEXEC;
	}
	lb->protocol = img[HDR_VERSION] | img[HDR_VERSION + 1] << 8;
	if (lb->protocol < 0x20c) {
		log_err("%s speaks boot protocol %x.%02x; lego-vmm needs 2.12 or later", name,
			lb->protocol >> 8, lb->protocol & 0xff);
		return -ENOEXEC;
	}
	setup_len = ((img[HDR_SETUP_SECTS] ? img[HDR_SETUP_SECTS] : 4) + 1) * 512;
	poff = rd32(img + HDR_PAYLOAD_OFFSET);
	plen = rd32(img + HDR_PAYLOAD_LENGTH);
	if (setup_len > len || poff > len - setup_len || plen > len - setup_len - poff) {
		log_err("%s: the payload lies outside the file", name);
		return -ENOEXEC;
	}
	lb->compression = decomp_name(decomp_detect(img + setup_len + poff, plen));
	t0 = now_ns();
	ret = decompress(img + setup_len + poff, plen, mem->regions[0].size, &elf, &elf_len);
	lb->decompress_ms = (now_ns() - t0) / 1e6;
	lb->decompressed_bytes = elf_len;
	if (ret) {
		log_err("%s: cannot decompress its %s payload: %s", name, lb->compression,
			ret == -ENOEXEC ? "unsupported format (gzip, xz, lz4 and zstd are)"
					: strerror(-ret));
		return ret;
	}
	ret = load_elf(mem, elf, elf_len, lb);
	free(elf);
	if (ret)
		return ret;
	/* boot_params: the setup header as the kernel shipped it (its length is
	 * in the header's own jump, at 0x201: at most 0x110 bytes from 0x1f1) */
	memcpy(bp + BP_HDR, img + BP_HDR, 0x202 + img[0x201] - BP_HDR);
	return 0;
}

int linux_load(struct vm *vm, const char *kernel, const char *initrd, const char *cmdline,
	       struct linux_boot *lb)
{
	uint8_t *img = NULL, *rd = NULL, bp[4096] = {0};
	size_t len, rd_len = 0, cmd_len = strlen(cmdline) + 1;
	uint32_t cmdline_max;
	struct linux_e820 e820[BP_E820_MAX];
	int ret, n;

	memset(lb, 0, sizeof(*lb));
	ret = read_file("kernel", kernel, &img, &len);
	if (ret)
		return ret;
	ret = linux_image_load(&vm->mem, img, len, kernel, bp, lb);
	if (ret)
		goto out;
	bp[HDR_TYPE_OF_LOADER] = 0xff;
	bp[HDR_LOADFLAGS] |= 0x01 | 0x80; /* LOADED_HIGH, CAN_USE_HEAP */
	put_le16(bp + HDR_HEAP_END_PTR, 0xfe00);
	cmdline_max = rd32(img + HDR_CMDLINE_SIZE);
	if (cmd_len > LINUX_CMDLINE_MAX || (cmdline_max && cmd_len > cmdline_max + 1)) {
		log_err("the kernel command line is %zu bytes; this kernel takes %u", cmd_len - 1,
			cmdline_max);
		ret = -E2BIG;
		goto out;
	}
	if (gmem_write(&vm->mem, LINUX_CMDLINE, cmdline, cmd_len)) {
		ret = -EFAULT;
		goto out;
	}
	put_le32(bp + HDR_CMD_LINE_PTR, (uint32_t)LINUX_CMDLINE);
	if (initrd) {
		uint64_t max = rd32(img + HDR_INITRD_MAX), top = vm->mem.regions[0].size;

		ret = read_file("initrd", initrd, &rd, &rd_len);
		if (ret)
			goto out;
		if (max && top > max + 1)
			top = max + 1;
		lb->initrd_addr = ALIGN_DOWN(top - rd_len, 4096ULL);
		if (rd_len > top || lb->initrd_addr < lb->kernel_end) {
			log_err("initrd %s (%zu bytes) does not fit above the kernel: give more "
				"--memory",
				initrd, rd_len);
			ret = -ENOMEM;
			goto out;
		}
		gmem_write(&vm->mem, lb->initrd_addr, rd, rd_len);
		lb->initrd_size = rd_len;
		put_le32(bp + HDR_RAMDISK_IMAGE, (uint32_t)lb->initrd_addr);
		put_le32(bp + HDR_RAMDISK_SIZE, (uint32_t)rd_len);
		put_le32(bp + BP_EXT_RAMDISK_IMAGE, (uint32_t)(lb->initrd_addr >> 32));
		put_le32(bp + BP_EXT_RAMDISK_SIZE, (uint32_t)(rd_len >> 32));
	}
	if (lb->protocol >= 0x20e) /* tell it where the RSDP is; older ones scan for it */
		put_le64(bp + BP_ACPI_RSDP, acpi_build(vm, vm->nr_vcpus));
	else
		acpi_build(vm, vm->nr_vcpus);
	n = linux_e820(vm, e820, BP_E820_MAX);
	bp[BP_E820_ENTRIES] = (uint8_t)n;
	memcpy(bp + BP_E820_TABLE, e820, n * sizeof(e820[0]));
	ret = gmem_write(&vm->mem, LINUX_BOOT_PARAMS, bp, sizeof(bp));
	if (!ret)
		ret = linux_setup_bsp(vm, lb);
	if (ret)
		log_err("cannot set up the boot vCPU: %s", strerror(-ret));
out:
	free(img);
	free(rd);
	return ret;
}
