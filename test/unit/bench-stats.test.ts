// The benchmarks' statistics: the median interval's coverage and the paired-ratio verdict.
import { describe, expect, it } from "vitest";
import { formatRatio, median, medianCI, pairedRatio } from "../../bench/lib/stats.js";

describe("bench statistics", () => {
  it("median of odd and even counts", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
  });

  it("median CI: binomial order statistics (n=10 gives ranks 2 and 9, coverage 97.9 %)", () => {
    const xs = [10, 1, 9, 2, 8, 3, 7, 4, 6, 5];
    expect(medianCI(xs)).toEqual([2, 9]);
    expect(medianCI([1, 2, 3, 4, 5])).toBeUndefined(); // 2/32 > 5 %: no 95 % interval from 5
    expect(medianCI([1, 2, 3, 4, 5, 6])).toEqual([1, 6]);
  });

  it("covers the true median about as often as it says (simulated, skewed noise)", () => {
    let seed = 42;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    let covered = 0;
    const trials = 2000;
    const trueMedian = Math.log(2); // exponential(1)
    for (let t = 0; t < trials; t++) {
      const xs = Array.from({ length: 12 }, () => -Math.log(1 - rnd()));
      const ci = medianCI(xs);
      if (ci && ci[0] <= trueMedian && trueMedian <= ci[1]) covered++;
    }
    expect(covered / trials).toBeGreaterThan(0.94);
  });

  it("paired ratio: a real 5 % slowdown under drift is 'slower'; pure drift is not", () => {
    const drift = [1, 1.3, 0.8, 1.1, 0.9, 1.25, 0.85, 1.05, 0.95, 1.2];
    const off = drift.map((d) => 100 * d);
    const on = drift.map((d, i) => 105 * d * (1 + (i % 3) * 0.002));
    const slow = pairedRatio(off, on);
    expect(slow.verdict).toBe("slower");
    expect(slow.median).toBeGreaterThan(1.04);
    expect(formatRatio(slow)).toMatch(/^1\.05\dx, 95 % CI \[1\.0/);
    const same = pairedRatio(
      off,
      off.map((x, i) => x * (i % 2 ? 1.01 : 0.99)),
    );
    expect(same.verdict).toBe("no difference shown");
    expect(formatRatio(same)).toMatch(/^no difference shown/);
    expect(pairedRatio([1, 2], [1, 2]).verdict).toBe("too few pairs");
  });
});
