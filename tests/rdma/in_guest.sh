#!/bin/sh
# tests/rdma/in_guest.sh BUILD COMMAND... - inside the nested guest of
# tests/nested/run.sh: a soft-RoCE device (rdma_rxe, loaded by the guest's
# init) on one end of a veth pair, its address in LEGO_RDMA_IP, then COMMAND.
# Prints how long COMMAND took.
set -eu
build=$1
shift
ip link add rv0 type veth peer name rv1
ip addr add 10.77.0.1/24 dev rv0
ip addr add 10.77.0.2/24 dev rv1
ip link set rv0 up
ip link set rv1 up
rdma link add rxe0 type rxe netdev rv0
echo "rdma: $(rdma link show | head -n1)"
export LEGO_RDMA_IP=10.77.0.1
start=$(date +%s)
rc=0
"$@" || rc=$?
echo "test-rdma: $(($(date +%s) - start)) s in the nested guest (soft-RoCE; status $rc)"
[ -n "$build" ]
exit $rc
