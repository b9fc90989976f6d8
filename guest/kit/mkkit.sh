#!/bin/sh
# mkkit.sh OUTDIR [PROGRAM...] - build the stock Linux boot kit from Debian's packages,
# as shipped, with PROGRAMs (static binaries, e.g. lego-verify) in the initramfs's /bin.
#
#   OUTDIR/vmlinuz      the kernel of linux-image-cloud-amd64 (not rebuilt, not patched)
#   OUTDIR/initrd.img   busybox-static, the virtio and ACPI button modules, init (guest/kit/init)
#                       and the power button's handler (guest/kit/power-button)
#   OUTDIR/rootfs.img   an ext4 image the init mounts at /mnt when a virtio disk is there
#   OUTDIR/kit.txt      what went in (package versions), for the record
#
# Packages are fetched with `apt-get download` (no installation on the host) and
# unpacked with dpkg-deb. The newc initramfs is left uncompressed: the kernel would
# otherwise decompress it in emulated ring 0 on kvm_pvm hosts.
set -eu

out=${1:?usage: mkkit.sh OUTDIR [PROGRAM...]}
shift
here=$(cd "$(dirname "$0")" && pwd)
kernel_meta=${LEGO_KERNEL_PACKAGE:-linux-image-cloud-amd64}
modules="virtio virtio_ring virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk virtio_net virtio_mem button evdev"
rootfs_size=${LEGO_ROOTFS_SIZE:-64M}

need() {
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || {
			echo "mkkit: '$t' is missing (make deps installs it)" >&2
			exit 1
		}
	done
}
need apt-get apt-cache dpkg-deb cpio mkfs.ext4 objcopy

mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/lego-kit.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

# The metapackage names the current kernel package; take that one.
resolve() {
	apt-cache depends "$kernel_meta" 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n1
}
kpkg=$(resolve)
if [ -z "$kpkg" ] && [ "$(id -u)" = 0 ]; then
	apt-get update -q >/dev/null # a fresh machine has no package lists yet
	kpkg=$(resolve)
fi
if [ -z "$kpkg" ]; then
	echo "mkkit: cannot resolve $kernel_meta (run apt-get update?)" >&2
	exit 1
fi
echo "  KIT     downloading $kpkg busybox-static"
(cd "$work" && apt-get download -q "$kpkg" busybox-static >/dev/null 2>"$work/apt.err") || {
	cat "$work/apt.err" >&2
	echo "mkkit: apt-get download failed" >&2
	exit 1
}
dpkg-deb -x "$work/$kpkg"_*.deb "$work/k"
dpkg-deb -x "$work"/busybox-static_*.deb "$work/bb"
kver=${kpkg#linux-image-}
moddir="$work/k/lib/modules/$kver/kernel"

# --- initramfs ---
ir="$work/initramfs"
mkdir -p "$ir/bin" "$ir/sbin" "$ir/proc" "$ir/sys" "$ir/dev" "$ir/mnt" "$ir/tmp" "$ir/lib/modules"
cp "$work/bb/bin/busybox" "$ir/bin/busybox"
# Links made here, not with `busybox --install` at boot: every system call costs
# milliseconds on kvm_pvm hosts.
for applet in $("$ir/bin/busybox" --list); do
	[ "$applet" = busybox ] || ln -s busybox "$ir/bin/$applet"
done
# Modules in dependency order (from each module's own modinfo "depends="; no
# modules.dep ships in the package), numbered so that init loads them in order.
modpath() { find "$moddir" -name "$1.ko*" | head -n1; }
moddeps() {
	f=$(modpath "$1")
	case "$f" in
	*.xz) xz -dc "$f" >"$work/mod.ko" ;;
	*.zst) zstd -qdc "$f" >"$work/mod.ko" ;;
	*) cp "$f" "$work/mod.ko" ;;
	esac
	objcopy -O binary --only-section=.modinfo "$work/mod.ko" "$work/modinfo"
	tr '\0' '\n' <"$work/modinfo" | sed -n 's/^depends=//p' | tr ',' ' '
}
ordered=""
add_module() {
	case " $ordered " in *" $1 "*) return ;; esac
	if [ -z "$(modpath "$1")" ]; then
		# built into this kernel: nothing to load
		grep -q "/$1.ko" "$work/k/lib/modules/$kver/modules.builtin" && return
		echo "mkkit: module $1 is neither in $kpkg nor built in" >&2
		exit 1
	fi
	for d in $(moddeps "$1"); do
		add_module "$d"
	done
	ordered="$ordered $1"
}
for m in $modules; do
	add_module "$m"
done
n=0
for m in $ordered; do
	n=$((n + 1))
	f=$(modpath "$m")
	dst="$ir/lib/modules/$(printf %02d $n)-$m.ko"
	case "$f" in
	*.xz) xz -dc "$f" >"$dst" ;;
	*.zst) zstd -qdc "$f" >"$dst" ;;
	*) cp "$f" "$dst" ;;
	esac
	# Without its signature and BTF: rewriting the ELF drops the signature
	# appended to it. The kernel has no key to check it against here
	# (load_system_certificate_list is skipped) and taints the module either
	# way, but still works on it: on kvm_pvm, 16 of virtio_ring's 20 s passed
	# before the kernel's "module verification failed" line (0.6 s without
	# the signature), and the 11 modules took 144 s of each boot (31 s without).
	objcopy --remove-section=.BTF "$dst"
done
cp "$here/init" "$ir/init"
chmod 755 "$ir/init"
# busybox acpid runs /etc/acpi/PWRF/00000080 when the power button is pressed
mkdir -p "$ir/etc/acpi/PWRF"
cp "$here/power-button" "$ir/etc/acpi/PWRF/00000080"
chmod 755 "$ir/etc/acpi/PWRF/00000080"
for p in "$@"; do
	cp "$p" "$ir/bin/$(basename "$p")"
	chmod 755 "$ir/bin/$(basename "$p")"
done
(cd "$ir" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) >"$work/initrd.img"

# --- root disk ---
rf="$work/rootfs"
mkdir -p "$rf/etc"
echo "lego rootfs, kernel $kver" >"$rf/etc/lego-rootfs"
truncate -s "$rootfs_size" "$work/rootfs.img"
mkfs.ext4 -q -F -L lego-root -d "$rf" "$work/rootfs.img" "$rootfs_size"

cp "$work/k/boot/vmlinuz-$kver" "$work/vmlinuz"
{
	echo "kernel=$kpkg $(dpkg-deb -f "$work/$kpkg"_*.deb Version)"
	echo "busybox-static $(dpkg-deb -f "$work"/busybox-static_*.deb Version)"
	echo "modules=$ordered"
	for p in "$@"; do echo "program=$(basename "$p")"; done
} >"$work/kit.txt"
for f in vmlinuz initrd.img rootfs.img kit.txt; do
	mv "$work/$f" "$out/$f"
done
echo "  KIT     $out: vmlinuz initrd.img rootfs.img ($kver)"
