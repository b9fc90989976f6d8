#!/bin/sh
# tests/nested/run.sh 'COMMANDS' - run COMMANDS (in this tree) inside a
# QEMU guest with an emulated AMD-V CPU (TCG, no hardware virtualization
# needed), so that they see a real /dev/kvm (kvm_amd) on a machine that has
# none. For developers on such machines (the KVM tests skip there); it is not
# part of `make test` and proves less than a run on a real /dev/kvm:
#
#   - seen here (QEMU 7.2, Debian 12): with one TCG thread for both vCPUs
#     (the default, thread=single) lego-vmm with the ExCache, failover and
#     refill ran clean. With multi-threaded TCG (NESTED_ACCEL=tcg,thread=multi)
#     the emulation is broken for this: the nested guest triple-faults (also
#     with one memory server and no replication) and the QEMU guest's kernel
#     panics ("corrupted stack end detected inside scheduler") in vCPU threads
#     after KVM_RUN, a corruption no user program can cause. A failure seen
#     only here is a lead, not a verdict.
#   - everything runs 5-50x slower than natively.
#
# The host's root file system is the guest's (9p, read-write: build on the
# host first, e.g. `make test`); /tmp, /run and /dev/shm are the guest's own.
# The exit status is the COMMANDS'. Files written to $NESTED_OUT (default
# build/nested/out, seen in the guest as /nested-out) survive the guest.
#
# Environment: NESTED_CPUS (2), NESTED_MEM (12G), NESTED_TIMEOUT (s, 3000),
# NESTED_CPU (QEMU -cpu, "max,+svm"), NESTED_ACCEL (QEMU -accel,
# "tcg,thread=single"), NESTED_KVM_AMD (kvm_amd parameters).
set -eu
here=$(cd "$(dirname "$0")/../.." && pwd)
cmds=${1:?usage: tests/nested/run.sh 'COMMANDS'}
dir=$here/build/nested
out=${NESTED_OUT:-$dir/out}
mkdir -p "$dir" "$out"
"$here/mk/deps.sh" qemu-system-x86 busybox-static cpio

# The kernel: Debian's generic one (the cloud kernel has no kvm_amd; it also
# ships soft-RoCE: rdma_rxe, ib_uverbs and rdma_ucm, loaded for make test-rdma).
if [ ! -f "$dir/vmlinuz" ] || [ ! -d "$dir/k/lib/modules" ]; then
	meta=linux-image-amd64
	kpkg=$(apt-cache depends $meta | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n1)
	[ -n "$kpkg" ] || { echo "nested: cannot resolve $meta (apt-get update?)" >&2; exit 1; }
	rm -rf "$dir/k" && mkdir -p "$dir/k"
	(cd "$dir/k" && apt-get download -q "$kpkg" >/dev/null && dpkg-deb -x ./*.deb . && rm -f ./*.deb)
	cp "$dir/k/boot/vmlinuz-${kpkg#linux-image-}" "$dir/vmlinuz"
fi
kver=$(ls "$dir/k/lib/modules" | head -n1)
# In dependency order (each module's modinfo depends=).
mods="irqbypass kvm ccp kvm-amd 9pnet netfs fscache 9p virtio_ring virtio 9pnet_virtio
      virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci tun veth
      configfs ib_core ib_uverbs iw_cm ib_cm rdma_cm rdma_ucm udp_tunnel ip6_udp_tunnel crc32_generic rdma_rxe"
ir=$dir/ir
rm -rf "$ir" && mkdir -p "$ir/bin" "$ir/mods" "$ir/proc" "$ir/sys" "$ir/dev" "$ir/root"
cp /bin/busybox "$ir/bin/busybox"
for a in sh mount insmod mkdir chroot ip cat poweroff; do ln -s busybox "$ir/bin/$a"; done
i=10
for m in $mods; do
	cp "$(find "$dir/k/lib/modules/$kver" -name "$m.ko" | head -n1)" "$ir/mods/$i-$m.ko"
	i=$((i + 1))
done
cat >"$ir/init" <<'EOF'
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in /mods/*.ko; do
	a=; case $m in *kvm-amd*) a=$(cat /kvm-amd.args 2>/dev/null);; esac
	insmod $m $a || echo "nested: insmod $m failed"
done
mount -t 9p -o trans=virtio,version=9p2000.L,msize=1048576 hostroot /root || poweroff -f
for f in proc sys dev; do mount -o bind /$f /root/$f; done
mkdir -p /root/dev/pts /root/dev/shm; mount -t devpts devpts /root/dev/pts
mount -t tmpfs shm /root/dev/shm; mount -t tmpfs tmp /root/tmp; mount -t tmpfs run /root/run
mkdir -p /root/nested-out; mount -t 9p -o trans=virtio,version=9p2000.L out /root/nested-out
ip link set lo up
exec chroot /root /bin/sh /nested-out/.cmd.sh
EOF
chmod +x "$ir/init"
echo "${NESTED_KVM_AMD:-}" >"$dir/ir/kvm-amd.args"
(cd "$dir/ir" && find . | cpio -o -H newc 2>/dev/null) >"$dir/initrd.cpio"

cat >"$out/.cmd.sh" <<EOF
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
cd "$here"
[ -e /dev/kvm ] || echo "nested: no /dev/kvm in the guest (kvm_amd did not load)"
( $cmds )
echo \$? >/nested-out/.rc
poweroff -f
EOF
rm -f "$out/.rc"
timeout "${NESTED_TIMEOUT:-3000}" qemu-system-x86_64 -accel "${NESTED_ACCEL:-tcg,thread=single}" \
	-cpu "${NESTED_CPU:-max,+svm}" -smp "${NESTED_CPUS:-2}" -m "${NESTED_MEM:-12G}" \
	-nographic -no-reboot -kernel "$dir/vmlinuz" -initrd "$dir/initrd.cpio" \
	-append "console=ttyS0 panic=-1 quiet" \
	-virtfs local,path=/,mount_tag=hostroot,security_model=passthrough,id=r,multidevs=remap \
	-virtfs "local,path=$out,mount_tag=out,security_model=passthrough,id=o" </dev/null |
	sed -e '/SeaBIOS\|iPXE\|Press Ctrl-B\|Booting from/d'
[ -f "$out/.rc" ] || { echo "nested: the guest ended without the commands' status" >&2; exit 1; }
exit "$(cat "$out/.rc")"
