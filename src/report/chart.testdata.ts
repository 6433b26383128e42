// Synthetic results with PRF figures for the chart tests (unit and browser): three servers, two of
// them with a variant, figures of the size a real run on 6.18 gives; built in code, no recorded run.
import type { Results } from './results.ts';
import { clauseResult, results } from './compare.testdata.ts';

function prf(suffix: string, f: { read: number; write: number; rpm: number; us: number; nativeUs: number; skip?: boolean; writeWarn?: boolean }) {
  const skip = f.skip ? { status: 'skip' as const, reason: 'server does not claim passthrough; figures only' } : null;
  return [
    clauseResult(`PRF-001${suffix}`, skip?.status ?? 'pass', {
      level: 'SHOULD',
      reason: skip?.reason ?? '',
      evidence: { readRatio: f.read, mountMBs: 6000 * f.read, nativeMBs: 6000, rounds: 3, threshold: 0.8 },
    }),
    clauseResult(`PRF-002${suffix}`, skip?.status ?? (f.writeWarn ? 'fail' : 'pass'), {
      level: 'SHOULD',
      reason: skip?.reason ?? (f.writeWarn ? `passthrough sequential write ${f.write} x native is below the threshold 0.8` : ''),
      evidence: { writeRatio: f.write, mountMBs: 2500 * f.write, nativeMBs: 2500, rounds: 3, threshold: 0.8 },
    }),
    clauseResult(`PRF-003${suffix}`, 'pass', {
      level: 'INFO',
      evidence: { requestsPerMiB: f.rpm, requests: Math.round(f.rpm * 128), ioMiB: 128, top: 'FUSE_GETXATTR' },
    }),
    clauseResult(`PRF-004${suffix}`, 'pass', {
      level: 'INFO',
      evidence: { openCloseUs: f.us, nativeUs: f.nativeUs, overheadUs: f.us - f.nativeUs, cycles: 2000 },
    }),
  ];
}

/** ptfs (+ no-passthrough), passthrough_hp (+ no-passthrough), mergerfs: 5 columns with figures. */
export function prfRuns(): Results[] {
  return [
    results('ptfs', [
      clauseResult('RW-001', 'pass'),
      ...prf('', { read: 1.01, write: 0.63, rpm: 0.57, us: 202.6, nativeUs: 49.7, writeWarn: true }),
      ...prf('@no-passthrough', { read: 0.19, write: 0.36, rpm: 5.08, us: 216, nativeUs: 67.1, skip: true }),
    ]),
    results('passthrough_hp', [
      clauseResult('RW-001', 'pass'),
      ...prf('', { read: 1.03, write: 0.61, rpm: 0.59, us: 217.1, nativeUs: 56.2, writeWarn: true }),
      ...prf('@no-passthrough', { read: 0.12, write: 0.34, rpm: 5.6, us: 221.9, nativeUs: 73.2, skip: true }),
    ]),
    results('mergerfs', [clauseResult('RW-001', 'pass'), ...prf('', { read: 0.97, write: 0.84, rpm: 0.05, us: 240.5, nativeUs: 112.1 })]),
  ];
}
