#!/usr/bin/env bash
# Enforce-mode benchmark. Prints figures; never fails (always exits 0). Needs root.
#   bench/enforce/run.sh                 BENCH_CONNECTS=20000 BENCH_LOOKUPS=200 BENCH_ROUNDS=3
# Same run, three ways: no agent, agent in observe mode, agent in enforce mode (CMD in the
# agent's cgroup). Figures:
#   - allowed loopback connects (bench/agent/connect_loop.c): ns per connect, ratio to no agent,
#     added ns per connect;
#   - cold DNS lookups through the sanctioned resolver, each answer learned in the kernel and
#     connected to at once (test/support/kernel/fixtures/dns_race.c, distinct names every run):
#     us per lookup+connect, added us per lookup.
# The DNS server and the TCP servers live in a namespace of their own ("internet", documentation
# addresses); nothing leaves the machine.
cd "$(dirname "$0")/../.." || exit 0
A=$PWD/build/dpndncy-agent
[ -x "$A" ] || make -s agent >/dev/null 2>&1 || { echo "bench/enforce: no agent"; exit 0; }
N=${BENCH_CONNECTS:-20000}
L=${BENCH_LOOKUPS:-200}   # the zone goes on the DNS server's command line (128 KiB per argument)
R=${BENCH_ROUNDS:-3}
PY=$(command -v python3)
T=$(mktemp -d /tmp/dpndncy-bench-enforce-XXXXXX)
I=dpbench-i-$$
W=dpbench-w-$$
cleanup() {
  for p in $(ip netns pids "$I" 2>/dev/null) $(ip netns pids "$W" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
  ip netns del "$I" 2>/dev/null
  ip netns del "$W" 2>/dev/null
  rm -rf "/etc/netns/$W" "$T"
  rmdir /etc/netns 2>/dev/null
}
trap cleanup EXIT
gcc -O2 bench/agent/connect_loop.c -o "$T/connect_loop" || exit 0
gcc -O2 test/support/kernel/fixtures/dns_race.c -o "$T/dns_race" || exit 0

ip netns add "$I" && ip netns add "$W" || exit 0
ip -n "$I" link set lo up
ip -n "$W" link set lo up
ip link add "dpb$$a" netns "$W" type veth peer name "dpb$$b" netns "$I"
ip -n "$W" addr add 192.0.2.2/24 dev "dpb$$a"
ip -n "$W" addr add 2001:db8::2/64 dev "dpb$$a" nodad
ip -n "$I" addr add 192.0.2.53/24 dev "dpb$$b"
ip -n "$I" addr add 2001:db8::1/64 dev "dpb$$b" nodad
ip -n "$W" link set "dpb$$a" up
ip -n "$I" link set "dpb$$b" up
ip -n "$I" -6 route add local 2001:db8:1::/64 dev lo
ip -n "$W" -6 route add 2001:db8:1::/64 via 2001:db8::1
TOTAL=$((L * R * 3))
"$PY" - "$TOTAL" > "$T/zone.json" <<'PY'
import json, sys
n = int(sys.argv[1])
print(json.dumps({f"r{i}.bench.example.test": {"AAAA": [f"2001:db8:1::{i:x}"]} for i in range(n)}))
PY
ip netns exec "$I" "$PY" test/support/kernel/fixtures/dns_server.py --listen 192.0.2.53 --port 53 \
  --zone "$(cat "$T/zone.json")" > "$T/dns.out" 2>&1 &
ip netns exec "$I" "$PY" test/support/kernel/fixtures/servers.py "tcp:[::]:80" > "$T/srv.out" 2>&1 &
for _ in $(seq 50); do grep -qs READY "$T/dns.out" && grep -qs READY "$T/srv.out" && break; sleep 0.1; done
grep -qs READY "$T/dns.out" || { echo "bench/enforce: the DNS server did not start: $(head -c 300 "$T/dns.out")"; exit 0; }
printf 'mode enforce\ndns-resolver 192.0.2.53\nallow-host *.bench.example.test:80\n' > "$T/enforce.conf"

next=0
# mode -> command prefix
wrap() {
  case $1 in
    off) ;;
    observe) echo "$A run --log $T/obs.ndjson --" ;;
    enforce) echo "$A run --mode enforce --config $T/enforce.conf --log $T/enf.ndjson --" ;;
  esac
}
declare -A CON DNS
for mode in off observe enforce; do
  best_c=""
  best_d=""
  for _ in $(seq "$R"); do
    out=$($(wrap $mode) ip netns exec "$W" "$T/connect_loop" "$N" 2>/dev/null | awk '/ ns / {print $4}')
    [ -n "$out" ] && { [ -z "$best_c" ] || [ "$out" -lt "$best_c" ]; } && best_c=$out
    # timed inside the workload: the agent's own start and stop are not part of it
    res=$($(wrap $mode) ip netns exec "$W" /bin/sh -c \
      't0=$(date +%s%N); "$@" | tail -1; t1=$(date +%s%N); echo "TIME $((t1 - t0))"' sh \
      "$T/dns_race" 192.0.2.53 bench.example.test AAAA "$next" "$L" 80 2>/dev/null)
    next=$((next + L))
    case $res in "DONE ok=$L fail=0"*) ;; *) echo "bench/enforce: $mode lookups: $res" ;; esac
    d=$(echo "$res" | awk '/^TIME/ {print $2}')
    { [ -z "$best_d" ] || [ "$d" -lt "$best_d" ]; } && best_d=$d
  done
  CON[$mode]=$best_c
  DNS[$mode]=$best_d
done
awk -v n="$N" -v l="$L" -v c0="${CON[off]}" -v c1="${CON[observe]}" -v c2="${CON[enforce]}" \
    -v d0="${DNS[off]}" -v d1="${DNS[observe]}" -v d2="${DNS[enforce]}" 'BEGIN {
  if (c0 == "" || c2 == "") { print "bench/enforce: connect loop failed"; exit }
  printf "enforce bench: %d allowed loopback connects (best of rounds)\n", n
  printf "  no agent   %8.0f ns/connect\n", c0 / n
  printf "  observe    %8.0f ns/connect  ratio %.3f  (+%.0f ns)\n", c1 / n, c1 / c0, (c1 - c0) / n
  printf "  enforce    %8.0f ns/connect  ratio %.3f  (+%.0f ns vs none, +%.0f ns vs observe)\n", c2 / n, c2 / c0, (c2 - c0) / n, (c2 - c1) / n
  printf "enforce bench: %d cold DNS lookups (AAAA, sanctioned resolver) + connect to the answer\n", l
  printf "  no agent   %8.1f us/lookup\n", d0 / l / 1000
  printf "  observe    %8.1f us/lookup  (+%.1f us)\n", d1 / l / 1000, (d1 - d0) / l / 1000
  printf "  enforce    %8.1f us/lookup  (+%.1f us vs none, +%.1f us vs observe; learned in the kernel)\n", d2 / l / 1000, (d2 - d0) / l / 1000, (d2 - d1) / l / 1000
}'
exit 0
