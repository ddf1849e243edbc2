#!/usr/bin/env node
// A stand-in for `dpndncy-agent daemon` in unit tests of the supervisor (src/daemon/): it
// prints the control lines a scenario file names, on the signals the real agent reacts to.
// It records its argv, its --config file and the signals it got, so tests can check what the
// supervisor handed it. Usage: node daemon-agent-stand-in.mjs SCENARIO.json daemon --jobs-dir …
// or, as an executable, DPNDNCY_STAND_IN_SCENARIO=SCENARIO.json daemon-agent-stand-in.mjs daemon …
//
// Scenario: { "record": PATH, "steps": [STEP…], "onTerm": [STEP…], "onHup": [STEP…] }
// STEP: {"print": object|string} | {"sleep": ms} | {"wait": "SIGTERM"|"SIGHUP"} | {"exit": code}
//       | {"kill": signal} | {"copy": [from, to]} | {"leaveBehind": seconds}
// Default onTerm: print daemon-stop, exit 0. Default onHup: print policy-reload ok.
import { spawn } from "node:child_process";
import { copyFileSync, readFileSync, renameSync, writeFileSync } from "node:fs";

// The scenario comes first, or from DPNDNCY_STAND_IN_SCENARIO when the supervisor runs us as
// the agent binary itself (`dpndncy daemon --agent stand-in`).
const given = process.argv.slice(2);
const fromEnv = given[0] === "daemon";
const scenarioPath = fromEnv ? process.env.DPNDNCY_STAND_IN_SCENARIO : given[0];
const args = fromEnv ? given : given.slice(1);
const scenario = JSON.parse(readFileSync(scenarioPath, "utf8"));
const ts = () => new Date().toISOString();
const record = { argv: args, config: null, signals: [], pid: process.pid };
const configAt = args.indexOf("--config");
if (configAt >= 0) record.config = readFileSync(args[configAt + 1], "utf8");
// write then rename, so a test never reads half a record
const save = () => {
  writeFileSync(`${scenario.record}.tmp`, JSON.stringify(record));
  renameSync(`${scenario.record}.tmp`, scenario.record);
};
save();

const waiters = { SIGTERM: [], SIGHUP: [] };

async function run(steps) {
  for (const s of steps) {
    if ("print" in s) {
      const line = typeof s.print === "string" ? s.print : JSON.stringify({ ts: ts(), ...s.print });
      process.stdout.write(`${line}\n`);
    } else if ("sleep" in s) await new Promise((r) => setTimeout(r, s.sleep));
    else if ("wait" in s) await new Promise((r) => waiters[s.wait].push(r));
    else if ("exit" in s) {
      await new Promise((r) => process.stdout.write("", r));
      process.exit(s.exit);
    } else if ("kill" in s) process.kill(process.pid, s.kill);
    else if ("copy" in s) copyFileSync(s.copy[0], s.copy[1]);
    else if ("leaveBehind" in s) {
      // a process that keeps our stdout open after we are gone
      const c = spawn("sleep", [String(s.leaveBehind)], { stdio: ["ignore", "inherit", "ignore"] });
      c.unref();
      record.leftBehind = c.pid;
      save();
    }
  }
}

for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"]) {
  process.on(sig, () => {
    record.signals.push(sig);
    save();
    const key = sig === "SIGINT" ? "SIGTERM" : sig;
    const w = waiters[key].splice(0);
    if (w.length) {
      for (const r of w) r();
      return;
    }
    if (key === "SIGHUP") {
      void run(scenario.onHup ?? [{ print: { type: "policy-reload", ok: true, policies: 1 } }]);
    } else {
      void run(
        scenario.onTerm ?? [
          { print: { type: "daemon-stop", jobs_closed: 0, events: {}, lost: 0 } },
          { exit: 0 },
        ],
      );
    }
  });
}

setInterval(() => {}, 1 << 30); // stay alive until told
await run(scenario.steps ?? []);
