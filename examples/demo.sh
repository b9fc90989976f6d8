#!/bin/sh
# demo.sh - what `make demo` runs: lego-vmm running test payloads, first with
# all their memory local, then with most of it on a memory server; then a whole
# cluster (legoctl up: manager, two memory servers, a storage server, a host
# agent) and a vNode in it booting Debian's stock kernel, its memory in slabs
# on the memory servers, its disk a volume on the storage server, and an
# address on the cluster's network, where it serves a page this script
# fetches with curl.
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
ctl="$build/bin/legoctl"
# A cluster of its own, thrown away at the end: the user's $LEGO_HOME is left alone.
LEGO_HOME=$(mktemp -d /tmp/lego-demo-XXXXXX)
export LEGO_HOME
trap '"$ctl" down >/dev/null 2>&1; rm -rf "$LEGO_HOME"; kill $memsrv 2>/dev/null; rm -f "$out"' EXIT
echo "== a cluster on this machine: legoctl up (LEGO_HOME=$LEGO_HOME)"
"$ctl" up
"$ctl" nodes
echo
echo "== a vNode booting Debian's stock kernel on 2 vCPUs: 512 MiB of RAM, of which 32 MiB"
echo "   stay in lego-vmm, the rest on the memory servers; a 256 MiB disk on the storage"
echo "   server; an address on the cluster's network, where its guest serves a page"
if [ -e /sys/module/kvm_pvm ]; then
	echo "   (this host has no hardware virtualisation: the kernel's code is emulated, minutes)"
fi
"$ctl" create web --cpus 2 --memory 512M --excache 32M --disk 256M \
	--append 'console=ttyS0 lego.run="uname -r; nproc; grep MemTotal /proc/meminfo; echo disk vda: $(cat /sys/block/vda/size) sectors; echo lego-demo: waiting for the host to fetch my page; read -r line; echo the host says: $line"'
"$ctl" list
echo "== its console, until its network is up"
for i in $(seq 1 1800); do
	"$ctl" console web --once >"$out" 2>/dev/null || true
	grep -q "^lego-demo: waiting" "$out" && break
	grep -q "^lego-guest: power off" "$out" && break
	sleep 1
done
cat "$out"
ip=$("$ctl" --json list | sed -n 's/.*"ip": "\([0-9.]*\)".*/\1/p' | head -n 1)
echo
echo "== the page web serves, fetched from this host: curl http://$ip/"
curl -sS --max-time 120 "http://$ip/" || echo "(curl could not fetch it)"
echo "== its console, until it powers off"
echo "I fetched your page" | "$ctl" console web
"$ctl" list
state=$("$ctl" --json list | grep -o '"state": "[a-z]*"' | head -1)
"$ctl" destroy web
"$ctl" down
case "$state" in
*exited*) echo "The stock kernel booted in a vNode of the cluster, ran its command and powered off." ;;
*)
	echo "the vNode ended as $state: see above" >&2
	exit 1
	;;
esac
