#!/bin/sh
# demo.sh - what `make demo` runs until the cluster (manager, legoctl) exists:
# lego-vmm running test payloads, first with all their memory local, then with
# most of it on a memory server; then a vNode booting Debian's stock kernel
# with its memory on the memory server and a virtio disk.
# Usage: examples/demo.sh [BUILD_DIR]   (make demo builds everything first)
set -eu
build=${1:-build}
vmm="$build/bin/lego-vmm"
p="$build/guest/payloads"

echo "== hello on 2 vCPUs"
"$vmm" --payload "$p/hello.bin" --memory 64M --cpus 2

echo
echo "== a memory server, and a vNode with 512 MiB of RAM of which 32 MiB stay in lego-vmm"
port=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 20000))
"$build/bin/lego-memsrv" --listen "127.0.0.1:$port" --capacity 1G &
memsrv=$!
trap 'kill $memsrv 2>/dev/null' EXIT
sleep 0.2
echo "== write-then-verify 448 MiB on 2 vCPUs, random order, two passes"
out=$(mktemp)
trap 'kill $memsrv 2>/dev/null; rm -f "$out"' EXIT
status=0
"$vmm" -q --stats --payload "$p/touch.bin" --memory 512M --cpus 2 \
	--excache 32M --memsrv "127.0.0.1:$port" \
	--args "op=verify mode=rand size=448M passes=2" >"$out" 2>&1 || status=$?
grep -E "mismatches|^EXCACHE|error" "$out" | sed 's/"miss_latency_log2_us".*//'
echo
if [ "$status" -ne 0 ]; then
	echo "lego-vmm exited $status: see above." >&2
	exit "$status"
fi
echo "lego-vmm exited 0: every page read back what was written, through the memory server."

echo
echo "== Debian's stock kernel on 2 vCPUs: 512 MiB of RAM, of which 32 MiB stay in lego-vmm,"
echo "   the rest on the memory server; a virtio disk (a copy of the kit's rootfs)"
if [ -e /sys/module/kvm_pvm ]; then
	echo "   (this host has no hardware virtualisation: the kernel's code is emulated, ~4 minutes)"
fi
disk=$(mktemp)
trap 'kill $memsrv 2>/dev/null; rm -f "$out" "$disk"' EXIT
cp --sparse=always "$build/guest/rootfs.img" "$disk"
"$vmm" --kernel "$build/guest/vmlinuz" --initrd "$build/guest/initrd.img" \
	--memory 512M --cpus 2 --excache 32M --memsrv "127.0.0.1:$port" --disk "$disk" --stats \
	--append 'console=ttyS0 lego.run="uname -r; nproc; grep MemTotal /proc/meminfo; echo hello from a vNode > /mnt/hello; cat /mnt/hello"' \
	2>"$out" || status=$?
grep -E "^lego-vmm|^EXCACHE" "$out" | sed 's/"miss_latency_log2_us".*//'
if [ "$status" -ne 0 ]; then
	echo "lego-vmm exited $status: see above." >&2
	exit "$status"
fi
echo "The stock kernel booted, ran its command and powered off; the pages it did not keep in"
echo "its 32 MiB ExCache went to the memory server and came back (fetches, dirty_writebacks above)."
