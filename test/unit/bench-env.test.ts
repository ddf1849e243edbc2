// The benchmarks' count knobs: a bad value is an error that names the variable, never a NaN
// that quietly measures nothing.
import { afterEach, describe, expect, it } from "vitest";
import { envCount } from "../../bench/lib/machine.js";

const NAME = "DPNDNCY_TEST_BENCH_KNOB";

describe("bench envCount", () => {
  afterEach(() => {
    delete process.env[NAME];
  });
  it("unset or empty: the default", () => {
    expect(envCount(NAME, 7)).toBe(7);
    process.env[NAME] = "";
    expect(envCount(NAME, 7)).toBe(7);
  });
  it("a whole number at or above the minimum", () => {
    process.env[NAME] = "30";
    expect(envCount(NAME, 7)).toBe(30);
    process.env[NAME] = "0";
    expect(envCount(NAME, 7, 0)).toBe(0);
  });
  it("anything else names the variable and its value", () => {
    for (const bad of ["x", "2.5", "-1", "0", "1e999", " "]) {
      process.env[NAME] = bad;
      expect(() => envCount(NAME, 7), bad).toThrow(
        `${NAME}=${JSON.stringify(bad)}: not a whole number >= 1`,
      );
    }
  });
});
