// The statistic PRF and the benches report: the median of paired ratios with a distribution-free
// interval (no assumption about the shape of the noise, which on a shared machine is anything but
// normal: long tails from other processes taking the CPUs).

export interface Interval {
  median: number;
  low: number;
  high: number;
}

/**
 * The median of `xs` and a distribution-free ~95 % interval of it: the k-th smallest and the k-th
 * largest value with k = floor((n - 1.96 sqrt(n)) / 2), at least 1, so with few values (n <= 6) it
 * is their range (for n = 6 the range covers the median with probability 1 - 2^-5 ~ 97 %).
 */
export function medianInterval(xs: readonly number[]): Interval {
  if (xs.length === 0) throw new Error('medianInterval of no values');
  const a = [...xs].sort((x, y) => x - y);
  const n = a.length;
  const median = n % 2 ? a[n >> 1]! : (a[n / 2 - 1]! + a[n / 2]!) / 2;
  const k = Math.max(1, Math.floor((n - 1.96 * Math.sqrt(n)) / 2));
  return { median, low: a[k - 1]!, high: a[n - k]! };
}
