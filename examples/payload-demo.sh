#!/bin/sh
# payload-demo.sh - what `make demo` runs today: lego-vmm running test payloads.
# (The full demo, a local cluster with a vNode booting stock Debian Linux,
# arrives with the stock-kernel, memory-server and manager work.)
set -eu
build=${1:-build}
vmm="$build/bin/lego-vmm"
p="$build/guest/payloads"

echo "== hello on 2 vCPUs"
"$vmm" --payload "$p/hello.bin" --memory 64M --cpus 2

echo
echo "== write-then-verify 256 MiB on 2 vCPUs, random order, two passes"
"$vmm" -q --payload "$p/touch.bin" --memory 320M --cpus 2 \
	--args "op=verify mode=rand size=256M passes=2"
echo
echo "lego-vmm exited 0: every page read back what was written."
