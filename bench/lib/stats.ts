// Statistics for the benchmarks, pure functions (unit-tested in test/unit/bench-stats.test.ts).
// A shared 2-vCPU VM drifts by more than the effects we measure, so wall-clock figures come
// from interleaved pairs (off, on, off, on ...): each pair's ratio sees the same drift, and the
// ratio is reported only when its confidence interval says which side of 1 it is on.

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/**
 * Distribution-free confidence interval for the median of xs: the order statistics at ranks
 * given by the binomial(n, 1/2) distribution (no normality assumed; a VM's timing noise is
 * skewed). Returns [lo, hi] with coverage at least `level`, or undefined when n is too small
 * for that level (n < 6 for 95 %).
 */
export function medianCI(xs: readonly number[], level = 0.95): [number, number] | undefined {
  const n = xs.length;
  const s = [...xs].sort((a, b) => a - b);
  // smallest k with P(B <= k-1) <= (1-level)/2, B ~ Binomial(n, 1/2): [x_(k), x_(n-k+1)]
  const alpha = (1 - level) / 2;
  let cdf = 0;
  let k = 0;
  let coef = 1; // C(n, i)
  const total = 2 ** n;
  for (let i = 0; i <= n; i++) {
    const p = coef / total;
    if (cdf + p > alpha) break;
    cdf += p;
    k = i + 1;
    coef = (coef * (n - i)) / (i + 1);
  }
  if (k === 0) return undefined;
  return [s[k - 1] as number, s[n - k] as number];
}

export interface PairedRatio {
  pairs: number;
  median: number;
  ci?: [number, number];
  /** "slower", "faster", or "no difference shown" (the interval holds 1) */
  verdict: "slower" | "faster" | "no difference shown" | "too few pairs";
}

/** Ratio on/off from interleaved pairs: off[i] and on[i] were measured back to back. */
export function pairedRatio(off: readonly number[], on: readonly number[]): PairedRatio {
  const n = Math.min(off.length, on.length);
  const r: number[] = [];
  for (let i = 0; i < n; i++) r.push((on[i] as number) / (off[i] as number));
  const ci = medianCI(r);
  const m = median(r);
  let verdict: PairedRatio["verdict"] = "too few pairs";
  if (ci) verdict = ci[0] > 1 ? "slower" : ci[1] < 1 ? "faster" : "no difference shown";
  return ci ? { pairs: n, median: m, ci, verdict } : { pairs: n, median: m, verdict };
}

/** "1.043x [1.021, 1.067]" when the interval excludes 1, else says no difference was shown. */
export function formatRatio(p: PairedRatio): string {
  if (!p.ci) return `${p.median.toFixed(3)}x (${p.pairs} pairs: too few for an interval)`;
  const ci = `[${p.ci[0].toFixed(3)}, ${p.ci[1].toFixed(3)}]`;
  if (p.verdict === "no difference shown")
    return `no difference shown: 95 % CI ${ci} holds 1 (median ${p.median.toFixed(3)}x)`;
  return `${p.median.toFixed(3)}x, 95 % CI ${ci}`;
}
