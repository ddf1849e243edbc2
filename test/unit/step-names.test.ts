import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { fetchJobSteps, matchStepNames } from "../../src/report/step-names.js";

const steps = [
  {
    name: "Set up job",
    number: 1,
    started_at: "2026-11-23T10:00:00Z",
    completed_at: "2026-11-23T10:00:02Z",
  },
  {
    name: "Install",
    number: 2,
    started_at: "2026-11-23T10:00:03Z",
    completed_at: "2026-11-23T10:00:09Z",
  },
  {
    name: "Test",
    number: 3,
    started_at: "2026-11-23T10:00:10Z",
    completed_at: "2026-11-23T10:00:10Z",
  },
  { name: "Post dpndncy", number: 4, started_at: "2026-11-23T10:00:11Z", completed_at: null },
  { name: "Queued", number: 5, started_at: null, completed_at: null },
];

describe("matchStepNames", () => {
  it("maps each id to the step whose window holds its first event (whole-second ends)", () => {
    const first = new Map([
      ["install", "2026-11-23T10:00:05.123456789Z"],
      ["__run_2", "2026-11-23T10:00:10.900000000Z"], // completed_at is 10:00:10, i.e. up to .999
      ["__dpndncy", "2026-11-23T10:00:42.000000000Z"], // still running
    ]);
    expect(matchStepNames(first, steps)).toEqual({
      install: "Install",
      __run_2: "Test",
      __dpndncy: "Post dpndncy",
    });
  });

  it("leaves out ids outside every window rather than guessing", () => {
    expect(matchStepNames(new Map([["early", "2026-11-23T09:59:59.000000000Z"]]), steps)).toEqual(
      {},
    );
  });
});

describe("the jobs API without actions: read", () => {
  it("says which permission is missing", async () => {
    const server = createServer((_req, res) =>
      res.writeHead(403).end('{"message":"Resource not accessible by integration"}'),
    );
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      await expect(
        fetchJobSteps({ apiUrl, repository: "a/b", runId: "1", attempt: "1", token: "t" }),
      ).rejects.toThrow(
        "jobs API 403: the token cannot read this run's jobs; give the job `permissions: actions: read`",
      );
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
