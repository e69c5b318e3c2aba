/**
 * pixel-v1 (SPEC §8): a 1x1 transparent PNG that counts documentation views.
 */
import { crc32, deflateSync } from 'node:zlib';
import type { PixelCapture } from '../analytics/capture.ts';
import type { Answer } from '../http/answer.ts';
import type { PixelRule } from '../manifest/types.ts';

export interface CompiledPixel {
  readonly packageId: string;
  readonly path: string;
}

/** A 1x1 fully transparent RGBA PNG, built once at start-up. */
export const TRANSPARENT_PNG = buildPng();

function buildPng(): Buffer {
  const chunk = (type: string, data: Buffer): Buffer => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, 'latin1');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
    return Buffer.concat([head, data, crc]);
  };
  // width 1, height 1, bit depth 8, colour type 6 (RGBA), no interlace
  const ihdr = Buffer.from([0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0]);
  // one scanline: filter 0, then R G B A all zero (transparent)
  const idat = deflateSync(Buffer.from([0, 0, 0, 0, 0]));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', idat),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

const HEADERS = Object.freeze({
  'content-type': 'image/png',
  'cache-control': 'no-cache, no-store, must-revalidate',
});

export function compilePixel(rule: PixelRule): CompiledPixel {
  return { packageId: rule['package-id'], path: rule.path ?? '/a.png' };
}

/** Reads `x-pxid` from the raw query; empty string when absent. */
function pixelId(query: string): string {
  if (query === '') return '';
  const params = new URLSearchParams(query);
  return params.get('x-pxid') ?? '';
}

/** The PNG's bytes as a latin1 string: one write with the head (see `Answer.body`). */
const BODY = TRANSPARENT_PNG.toString('latin1');
const LENGTH = String(TRANSPARENT_PNG.length);

export function answerPixel(rule: CompiledPixel, query: string): Answer {
  const capture: PixelCapture = { type: 'pixel', package: rule.packageId, pixel: pixelId(query) };
  return { status: 200, outcome: 'respond', capture, headers: HEADERS, body: BODY, bodyEncoding: 'latin1', contentLength: LENGTH };
}
