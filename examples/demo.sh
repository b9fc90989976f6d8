#!/bin/sh
# payload-demo.sh - what `make demo` runs today: lego-vmm running test payloads,
# first with all its memory local, then with most of it on a memory server.
# (The full demo, a local cluster with a vNode booting stock Debian Linux,
# arrives with the stock-kernel, storage and manager work.)
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
