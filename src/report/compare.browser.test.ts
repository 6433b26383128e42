// Renders the comparison page in Debian's headless Chromium: the page must show both server
// columns, statuses, a reason and a family section, and the screenshot must hold a real picture.
import { received } from '../runenv/index.ts';
import { describe, expect, test } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inflateSync } from 'node:zlib';
import { buildComparison, renderHtml } from './compare.ts';
import { twoRuns } from './compare.testdata.ts';
import { prfRuns } from './chart.testdata.ts';
import { PALETTE } from './chart.ts';

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

/** The pixels of an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium's --screenshot writes), as RGB rows. */
function pngPixels(buf: Buffer): { width: number; height: number; rgb: (x: number, y: number) => string } {
  const { width, height } = pngSize(buf);
  const depth = buf[24];
  const colour = buf[25];
  expect(depth).toBe(8);
  expect([2, 6]).toContain(colour);
  expect(buf[28]).toBe(0); // no interlace
  const bpp = colour === 6 ? 4 : 3;
  const idat: Buffer[] = [];
  for (let o = 8; o < buf.length; ) {
    const len = buf.readUInt32BE(o);
    if (buf.toString('latin1', o + 4, o + 8) === 'IDAT') idat.push(buf.subarray(o + 8, o + 8 + len));
    o += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * bpp;
  const px = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)]!;
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? px[y * stride + i - bpp]! : 0;
      const b = y > 0 ? px[(y - 1) * stride + i]! : 0;
      const c = i >= bpp && y > 0 ? px[(y - 1) * stride + i - bpp]! : 0;
      const p = a + b - c;
      const pred =
        f === 0
          ? 0
          : f === 1
            ? a
            : f === 2
              ? b
              : f === 3
                ? (a + b) >> 1
                : Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c)
                  ? a
                  : Math.abs(p - b) <= Math.abs(p - c)
                    ? b
                    : c;
      px[y * stride + i] = (line[i]! + pred) & 0xff;
    }
  }
  const hex = (v: number) => v.toString(16).padStart(2, '0');
  return { width, height, rgb: (x, y) => `#${hex(px[y * stride + x * bpp]!)}${hex(px[y * stride + x * bpp + 1]!)}${hex(px[y * stride + x * bpp + 2]!)}` };
}

describe('comparison page in headless Chromium', () => {
  test('dump-dom shows both servers, statuses, a reason and the family sections; the screenshot is a real picture', (ctx) => {
    if (!CHROMIUM) {
      // CI that promises a browser must not pass silently without one
      if (received().strictTests) throw new Error(`${MISSING} and FUSECERT_STRICT is set`);
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

  test('the PRF chart: an svg with a bar per server and variant in each figure group, drawn in the screenshot', (ctx) => {
    if (!CHROMIUM) {
      if (received().strictTests) throw new Error(`${MISSING} and FUSECERT_STRICT is set`);
      ctx.skip(MISSING);
    }
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fusecert-browser-'));
    try {
      const cmp = buildComparison(prfRuns());
      const columns = cmp.columns.map((c) => c.label);
      expect(columns).toEqual(['ptfs', 'ptfs@no-passthrough', 'passthrough_hp', 'passthrough_hp@no-passthrough', 'mergerfs']);
      const page = path.join(dir, 'compare.html');
      writeFileSync(page, renderHtml(cmp));
      const url = `file://${page}`;

      // the DOM as Chromium parsed it: the svg is in the page, in the SVG namespace, with its groups
      const dom = chromium(['--dump-dom', url], path.join(dir, 'profile-dom')).replace(/>\s+</g, '><');
      const svg = /<section class="prf"[\s\S]*?<svg class="prf-chart"[\s\S]*?<\/svg>/.exec(dom)?.[0];
      expect(svg, 'the PRF chart is in the DOM').toBeDefined();
      const figures = [...svg!.matchAll(/<g class="figure" id="prf-(PRF-\d+)"[\s\S]*?(?=<g class="figure"|<\/svg>)/g)];
      expect(figures.map((m) => m[1])).toEqual(['PRF-001', 'PRF-002', 'PRF-003', 'PRF-004']);
      for (const [g] of figures) {
        // one bar per column, each with its <title> naming the column and a drawn rect
        const bars = [
          ...g.matchAll(/<g class="bar" role="listitem" data-column="([^"]+)"><title>([^<]+)<\/title>[\s\S]*?<rect class="bar-value"[^>]*width="([\d.]+)"/g),
        ];
        expect(bars.map((b) => b[1])).toEqual(columns);
        for (const b of bars) {
          expect(b[2]!.startsWith(`${b[1]}: `)).toBe(true);
          expect(Number(b[3])).toBeGreaterThan(0);
        }
      }
      expect(svg!.match(/<g class="threshold">/g)).toHaveLength(2); // read and write ratios
      // the table stays: the PRF family section with its figures
      expect(dom).toMatch(/<details class="family" id="family-PRF"/);
      expect(dom).toContain('readRatio=1.01');

      // the screenshot shows the bars: each server's solid colour covers at least one bar's area
      const png = path.join(dir, 'compare.png');
      chromium(['--hide-scrollbars', `--screenshot=${png}`, '--window-size=1400,1600', url], path.join(dir, 'profile-shot'));
      const img = pngPixels(readFileSync(png));
      expect([img.width, img.height]).toEqual([1400, 1600]);
      const count = new Map<string, number>();
      for (let y = 0; y < img.height; y++)
        for (let x = 0; x < img.width; x++) {
          const c = img.rgb(x, y);
          count.set(c, (count.get(c) ?? 0) + 1);
        }
      // ptfs, passthrough_hp, mergerfs: runs 0..2; the narrowest solid bar (mergerfs PRF-003, 0.05
      // on a 0..6 axis) is a sliver, the others are hundreds of pixels wide and 16 tall
      for (const colour of PALETTE.slice(0, 3)) expect(count.get(colour) ?? 0, `pixels of ${colour}`).toBeGreaterThan(3 * 16 * 100);
      expect(count.get(PALETTE[3]!) ?? 0).toBe(0); // no fourth server, no fourth colour
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
