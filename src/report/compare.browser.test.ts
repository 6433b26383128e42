// Renders the comparison page in Debian's headless Chromium: the page must show both server
// columns, statuses, a reason and a family section, and the screenshot must hold a real picture.
import { describe, expect, test } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildComparison, renderHtml } from './compare.ts';
import { twoRuns } from './compare.testdata.ts';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p)) ?? null;
const MISSING = 'chromium not installed (apt-get install chromium)';

function chromium(args: string[], profile: string): string {
  return execFileSync(
    CHROMIUM!,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--user-data-dir=${profile}`,
      ...args,
    ],
    { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 32 << 20 },
  );
}

/** Width and height from a PNG's IHDR chunk. */
function pngSize(buf: Buffer): { width: number; height: number } {
  expect(buf.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
}

describe('comparison page in headless Chromium', () => {
  test('dump-dom shows both servers, statuses, a reason and the family sections; the screenshot is a real picture', (ctx) => {
    if (!CHROMIUM) {
      // CI that promises a browser must not pass silently without one
      if (process.env.FUSECERT_STRICT) throw new Error(`${MISSING} and FUSECERT_STRICT is set`);
      ctx.skip(MISSING);
    }
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fusecert-browser-'));
    try {
      const page = path.join(dir, 'compare.html');
      writeFileSync(page, renderHtml(buildComparison(twoRuns())));
      const url = `file://${page}`;

      // the serialised DOM keeps the page's line breaks between tags: drop them before matching
      const dom = chromium(['--dump-dom', url], path.join(dir, 'profile-dom')).replace(/>\s+</g, '><');
      const header = /<thead><tr><th>clause<\/th><th>level<\/th><th>title<\/th><th>ptfs<\/th><th>ptfs@no-passthrough<\/th><th>bindfs<\/th><\/tr><\/thead>/;
      expect(dom).toMatch(header);
      expect(dom).toContain('<span class="st st-pass">pass</span>');
      expect(dom).toContain('<span class="st st-fail">fail</span>');
      expect(dom).toContain('<span class="st st-none">-</span>');
      // the hostile reason arrives as text, not as a script element
      expect(dom).toContain('byte 17 is 0x00, expected 0x5a &lt;script&gt;alert(1)&lt;/script&gt;');
      expect(dom).not.toMatch(/<script>alert/);
      expect(dom).toMatch(/<details class="family" id="family-RW" open="">/);
      expect(dom).toContain('IOM-001[O_RDONLY+O_DIRECT]');

      const png = path.join(dir, 'compare.png');
      chromium(['--hide-scrollbars', `--screenshot=${png}`, '--window-size=1400,900', url], path.join(dir, 'profile-shot'));
      expect(existsSync(png)).toBe(true);
      const buf = readFileSync(png);
      expect(pngSize(buf)).toEqual({ width: 1400, height: 900 });
      // a blank 1400x900 PNG compresses to a few KB; a rendered table with text is far larger
      expect(statSync(png).size).toBeGreaterThan(30_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
