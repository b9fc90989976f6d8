/*
 * test_linux.c - the x86 boot protocol as lego-vmm speaks it, against a
 * bzImage built here (a real setup header, a gzip payload holding an ELF):
 * where the kernel lands, boot_params, the command line, the initramfs, the
 * e820 map, the boot vCPU's registers, and the loader's refusals.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <zlib.h>

#include "acpi.h"
#include "linux.h"
#include "log.h"
#include "pvm_compat.h"
#include "test.h"

#define KERNEL_PADDR  0x1000000ULL
#define KERNEL_FILESZ 4096
#define KERNEL_MEMSZ  (3 * 4096)

static uint8_t kpattern(size_t i)
{
	return (uint8_t)(i * 7 + 3);
}

/* A bzImage: 4 setup sectors with a protocol-@proto header, then a gzip'd ELF. */
static size_t make_bzimage(uint8_t *img, size_t cap, uint16_t proto)
{
	uint8_t elf[sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr) + KERNEL_FILESZ];
	Elf64_Ehdr *eh = (Elf64_Ehdr *)elf;
	Elf64_Phdr *ph = (Elf64_Phdr *)(elf + sizeof(*eh));
	size_t setup = 4 * 512, off = sizeof(*eh) + sizeof(*ph);
	z_stream z = {0};
	uint32_t v;

	memset(img, 0, cap);
	memset(elf, 0, sizeof(elf));
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_type = ET_EXEC;
	eh->e_machine = EM_X86_64;
	eh->e_entry = KERNEL_PADDR + 0x200;
	eh->e_phoff = sizeof(*eh);
	eh->e_phentsize = sizeof(*ph);
	eh->e_phnum = 1;
	ph->p_type = PT_LOAD;
	ph->p_offset = off;
	ph->p_vaddr = 0xffffffff81000000ULL;
	ph->p_paddr = KERNEL_PADDR;
	ph->p_filesz = KERNEL_FILESZ;
	ph->p_memsz = KERNEL_MEMSZ;
	for (size_t i = 0; i < KERNEL_FILESZ; i++)
		elf[off + i] = kpattern(i);

	img[0x1f1] = 3;	   /* setup_sects: 1 + 3 sectors of setup */
	img[0x201] = 0x6a; /* the jump over the header: it ends at 0x26c */
	memcpy(img + 0x202, "HdrS", 4);
	memcpy(img + 0x206, &proto, 2);
	v = 0x7fffffff;
	memcpy(img + 0x22c, &v, 4); /* initrd_addr_max */
	v = 255;
	memcpy(img + 0x238, &v, 4); /* cmdline_size */
	ASSERT_EQ(deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = elf;
	z.avail_in = sizeof(elf);
	z.next_out = img + setup;
	z.avail_out = (uInt)(cap - setup);
	ASSERT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
	deflateEnd(&z);
	v = 0;
	memcpy(img + 0x248, &v, 4); /* payload_offset, from the end of setup */
	v = (uint32_t)z.total_out;
	memcpy(img + 0x24c, &v, 4);
	return setup + z.total_out + 8192; /* a trailer, as real images have */
}

static const char *write_file(const char *name, const void *data, size_t len)
{
	static char path[4][300];
	static int next;
	char *p = path[next++ % 4];
	int fd;

	snprintf(p, 300, "%s/%s", test_tmpdir(), name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ASSERT(fd >= 0);
	ASSERT_EQ(write(fd, data, len), (ssize_t)len);
	close(fd);
	return p;
}

static void make_vm(struct vm *vm, uint64_t mem)
{
	struct vm_config cfg = {.mem_size = mem,
				.nr_vcpus = 2,
				.irqchip = true,
				.quirks = pvm_compat_quirks(),
				.shutdown_resets = true};

	test_require_kvm();
	log_init("test", LOG_ERR);
	ASSERT_EQ(vm_create(vm, &cfg), 0);
}

static uint32_t g32(struct vm *vm, uint64_t gpa)
{
	uint32_t v = 0;

	ASSERT_EQ(gmem_read(&vm->mem, gpa, &v, 4), 0);
	return v;
}

TEST(linux_load_boot_params_initrd_and_entry)
{
	static uint8_t img[64 << 10], rd[100000];
	const char *cmdline = "console=ttyS0 lego.run=\"echo hi\" root=/dev/vda";
	struct linux_boot lb;
	struct linux_e820 e820[8];
	uint8_t got[KERNEL_MEMSZ], bp[4096];
	char cl[256];
	struct kvm_regs r;
	struct kvm_sregs s;
	size_t len = make_bzimage(img, sizeof(img), 0x20f);
	const char *kernel = write_file("bzImage", img, len), *initrd;
	struct vm vm;
	int n;

	for (size_t i = 0; i < sizeof(rd); i++)
		rd[i] = (uint8_t)(i ^ (i >> 8));
	initrd = write_file("initrd", rd, sizeof(rd));
	make_vm(&vm, 256 << 20);
	ASSERT_EQ(linux_load(&vm, kernel, initrd, cmdline, &lb), 0);
	ASSERT_EQ(lb.protocol, 0x20f);
	ASSERT(!strcmp(lb.compression, "gzip"));
	ASSERT_EQ(lb.entry, KERNEL_PADDR + 0x200);
	ASSERT_EQ(lb.kernel_start, KERNEL_PADDR);
	ASSERT_EQ(lb.kernel_end, KERNEL_PADDR + KERNEL_MEMSZ);

	/* the kernel at its physical address, its bss zeroed */
	ASSERT_EQ(gmem_read(&vm.mem, KERNEL_PADDR, got, sizeof(got)), 0);
	for (size_t i = 0; i < KERNEL_MEMSZ; i++)
		ASSERT_EQ(got[i], i < KERNEL_FILESZ ? kpattern(i) : 0);

	/* boot_params: the header copied, the loader's fields filled in */
	ASSERT_EQ(gmem_read(&vm.mem, LINUX_BOOT_PARAMS, bp, sizeof(bp)), 0);
	ASSERT(!memcmp(bp + 0x202, "HdrS", 4));
	ASSERT_EQ(bp[0x210], 0xff);	   /* type_of_loader: undefined boot loader */
	ASSERT_EQ(bp[0x211] & 0x01, 0x01); /* LOADED_HIGH */
	ASSERT_EQ(g32(&vm, LINUX_BOOT_PARAMS + 0x228), LINUX_CMDLINE);
	ASSERT_EQ(gmem_read_str(&vm.mem, LINUX_CMDLINE, cl, sizeof(cl)), (int)strlen(cmdline));
	ASSERT(!strcmp(cl, cmdline));
	ASSERT_EQ(g32(&vm, LINUX_BOOT_PARAMS + 0x218), lb.initrd_addr);
	ASSERT_EQ(g32(&vm, LINUX_BOOT_PARAMS + 0x21c), sizeof(rd));
	ASSERT_EQ(lb.initrd_addr % 4096, 0);
	ASSERT(lb.initrd_addr >= lb.kernel_end);
	ASSERT(lb.initrd_addr + sizeof(rd) <= 256 << 20);
	{
		static uint8_t back[sizeof(rd)];

		ASSERT_EQ(gmem_read(&vm.mem, lb.initrd_addr, back, sizeof(back)), 0);
		ASSERT(!memcmp(back, rd, sizeof(rd)), "initrd bytes in guest memory");
	}
	ASSERT_EQ(*(uint64_t *)(bp + 0x070), ACPI_RSDP_ADDR);

	/* e820: sorted, no overlaps, low RAM / BIOS hole / RAM to the end */
	n = bp[0x1e8];
	ASSERT_EQ(n, 3);
	memcpy(e820, bp + 0x2d0, n * sizeof(e820[0]));
	ASSERT(e820[0].addr == 0 && e820[0].type == 1 && e820[0].size == LINUX_BIOS_START);
	ASSERT(e820[1].addr == LINUX_BIOS_START && e820[1].type == 2 &&
	       e820[1].addr + e820[1].size == 0x100000);
	ASSERT(e820[2].addr == 0x100000 && e820[2].type == 1 &&
	       e820[2].addr + e820[2].size == 256 << 20);

	/* the boot vCPU: long mode, at the entry, boot_params in RSI */
	ASSERT_EQ(ioctl(vm.vcpus[0].fd, KVM_GET_REGS, &r), 0);
	ASSERT_EQ(ioctl(vm.vcpus[0].fd, KVM_GET_SREGS, &s), 0);
	ASSERT_EQ(r.rip, lb.entry);
	ASSERT_EQ(r.rsi, LINUX_BOOT_PARAMS);
	ASSERT_EQ(s.efer & 0x500, 0x500);
	ASSERT(s.cr0 & 0x80000000ULL, "paging on");
	ASSERT(s.cs.l && s.cs.dpl == 0);
	vm_destroy(&vm);
}

TEST(linux_e820_splits_around_the_pci_hole)
{
	struct linux_e820 e[8];
	struct vm vm;
	int n;

	make_vm(&vm, 5ULL << 30); /* 3 GiB below the hole, 2 GiB from 4 GiB */
	n = linux_e820(&vm, e, 8);
	ASSERT_EQ(n, 4);
	ASSERT_EQ(e[2].addr + e[2].size, GMEM_LOW_LIMIT);
	ASSERT_EQ(e[3].addr, GMEM_HIGH_BASE);
	ASSERT_EQ(e[3].size, 2ULL << 30);
	ASSERT_EQ(e[3].type, 1);
	for (int i = 1; i < n; i++)
		ASSERT(e[i].addr >= e[i - 1].addr + e[i - 1].size, "sorted, no overlap");
	ASSERT_EQ(linux_e820(&vm, e, 2), 0); /* no room: nothing, not half a map */
	vm_destroy(&vm);
}

TEST(linux_load_refuses_bad_images)
{
	static uint8_t img[64 << 10];
	char longcl[600];
	struct linux_boot lb;
	struct vm vm;
	size_t len;
	uint32_t v;

	make_vm(&vm, 64 << 20);
	/* not a bzImage at all */
	memset(img, 0x90, sizeof(img));
	ASSERT_EQ(linux_load(&vm, write_file("junk", img, sizeof(img)), NULL, "", &lb), -ENOEXEC);
	/* a protocol older than 2.12 */
	len = make_bzimage(img, sizeof(img), 0x20a);
	ASSERT_EQ(linux_load(&vm, write_file("old", img, len), NULL, "", &lb), -ENOEXEC);
	/* a payload that claims to run past the file */
	len = make_bzimage(img, sizeof(img), 0x20f);
	v = 1 << 30;
	memcpy(img + 0x24c, &v, 4);
	ASSERT_EQ(linux_load(&vm, write_file("trunc", img, len), NULL, "", &lb), -ENOEXEC);
	/* a command line longer than the kernel takes */
	len = make_bzimage(img, sizeof(img), 0x20f);
	memset(longcl, 'x', sizeof(longcl) - 1);
	longcl[sizeof(longcl) - 1] = 0;
	ASSERT_EQ(linux_load(&vm, write_file("ok", img, len), NULL, longcl, &lb), -E2BIG);
	/* an initramfs that does not fit in guest RAM */
	{
		char *big = calloc(1, 80 << 20);

		ASSERT_EQ(linux_load(&vm, write_file("ok2", img, len),
				     write_file("bigrd", big, 80 << 20), "", &lb),
			  -ENOMEM);
		free(big);
	}
	/* a missing file */
	ASSERT(linux_load(&vm, "/nonexistent/bzImage", NULL, "", &lb) < 0);
	vm_destroy(&vm);
}
