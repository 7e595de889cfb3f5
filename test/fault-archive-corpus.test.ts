// Fault: a generated corpus of hostile source archives, beyond the hand-written cases of
// intake-unsafe.test.ts. A seeded generator mutates and combines path tricks, link and device
// entries, entry counts and sizes over small caps, gzip bombs, truncations, checksum flips and
// lying declarations, and says for each which code the intake must refuse it with. Benign
// archives that only look hostile (unicode lookalikes of "..", "..x", backslashes inside a name)
// are in the mix and must be accepted, so refusing everything cannot pass.
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ErrorCode } from '../src/errors.js';
import type { DeclaredSource, SourceFormat, SourceLimits } from '../src/jobs/intake.js';
import {
  entry,
  feedArchive,
  gnuLongName,
  gz,
  leftovers,
  paxHeader,
  randomChunks,
  sha256,
  tarOf,
  ustarHeader,
} from './helpers/archives.js';
import { KiB, seededRandom } from './helpers/fault.js';

const SEED = 20_241_126;
const COUNT = 200;
const LIMITS: SourceLimits = { maxBytes: 256 * KiB, maxEntries: 32 };

type Outcome = 'accepted' | ErrorCode;

interface Case {
  kind: string;
  archive: Buffer;
  format: SourceFormat;
  expected: Outcome;
  limits?: Partial<SourceLimits>;
  declared?: Partial<DeclaredSource>;
  /** For accepted archives: the files (path → content) and the entry count the intake reports. */
  files?: Map<string, Buffer>;
  entries?: number;
  /** Feed in random chunks instead of one. */
  chunked?: boolean;
}

type Rand = () => number;
const int = (r: Rand, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

/** Names that look like ".." or a separator but are not: one path segment each on Linux. */
const LOOKALIKES = [
  '\u2024\u2024', // ONE DOT LEADER ×2
  '\u2025', // TWO DOT LEADER
  '\uff0e\uff0e', // FULLWIDTH FULL STOP ×2
  '.\u200b.', // dots around a zero-width space
  '..x',
  'x..',
  '...',
  '. .',
  'a\u2215..\u2215b', // DIVISION SLASH around ".."
  'a\u2044..\u2044b', // FRACTION SLASH around ".."
  '\uff0f..\uff0f', // FULLWIDTH SOLIDUS around ".."
];

function plainSegment(r: Rand): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789_-';
  let s = pick(r, [...'abcdefghijklmnopqrstuvwxyz']);
  for (let n = int(r, 0, 7); n > 0; n--) s += pick(r, [...alphabet]);
  return s;
}

const body = (r: Rand, max = 3000) =>
  Buffer.from(Array.from({ length: int(r, 0, max) }, () => int(r, 32, 126)));

/** A benign archive: unique file paths under plain or lookalike directories. */
function benignTree(
  r: Rand,
  count = int(r, 1, 8),
): {
  entries: Buffer[];
  files: Map<string, Buffer>;
  count: number;
} {
  const entries: Buffer[] = [];
  const files = new Map<string, Buffer>();
  let n = 0;
  if (r() < 0.3) {
    entries.push(entry({ name: './', type: '5', mode: 0o755 }));
    n++;
  }
  for (let i = 0; i < count; i++) {
    const dirs = Array.from({ length: int(r, 0, 2) }, () =>
      r() < 0.4 ? pick(r, LOOKALIKES) : plainSegment(r),
    );
    const leaf = `${r() < 0.25 ? pick(r, LOOKALIKES) : plainSegment(r)}-f${i}${r() < 0.2 ? '\\x' : ''}.c`;
    const name = [...dirs, leaf].join('/');
    const data = body(r);
    if (dirs.length > 0 && r() < 0.5) {
      entries.push(entry({ name: `${dirs.join('/')}/`, type: '5', mode: 0o755 }));
      n++;
    }
    if (Buffer.byteLength(name) > 100 || r() < 0.1) {
      // Long (or just pax-named) benign paths through a pax header or a GNU long name.
      entries.push(r() < 0.5 ? paxHeader({ path: name }) : gnuLongName(name));
      entries.push(entry({ name: 'placeholder', type: r() < 0.2 ? '7' : '0' }, data));
    } else {
      entries.push(entry({ name, type: r() < 0.1 ? '7' : '0' }, data));
    }
    files.set(name, data);
    n++;
  }
  return { entries, files, count: n };
}

/** A path with ".." somewhere, joined by / or \ (both separate segments). */
function dotdotPath(r: Rand): string {
  const segs = Array.from({ length: int(r, 0, 4) }, () => plainSegment(r));
  const depth = int(r, 1, 3);
  segs.splice(int(r, 0, segs.length), 0, ...Array.from({ length: depth }, () => '..'));
  if (segs.at(-1) === '..' && r() < 0.7) segs.push(plainSegment(r));
  return segs.map((s, i) => (i === 0 ? s : `${pick(r, ['/', '\\'])}${s}`)).join('');
}

function absolutePath(r: Rand): string {
  const rest = Array.from({ length: int(r, 1, 3) }, () => plainSegment(r)).join('/');
  return `${pick(r, ['/', '//', '\\', 'C:\\', 'c:/', 'Z:'])}${rest}`;
}

const hostilePath = (r: Rand) => (r() < 0.6 ? dotdotPath(r) : absolutePath(r));

/** Benign entries with one hostile entry placed among them. */
function withHostile(r: Rand, hostile: Buffer[]): Buffer {
  const { entries } = benignTree(r, int(r, 0, 4));
  entries.splice(int(r, 0, entries.length), 0, ...hostile);
  return tarOf(...entries);
}

const asFormat = (r: Rand, tar: Buffer): { archive: Buffer; format: SourceFormat } =>
  r() < 0.4 ? { archive: gz(tar), format: 'tar.gz' } : { archive: tar, format: 'tar' };

/** Offsets strictly inside an entry's data (never in padding or at a boundary) of a plain tar. */
function bodyCutPoints(tar: Buffer): number[] {
  return entrySpans(tar).flatMap(({ data, size }) =>
    size > 1 ? [data + 1, data + Math.floor(size / 2), data + size - 1] : [],
  );
}

/** Offsets strictly inside an entry's 512-byte header. */
function headerCutPoints(tar: Buffer): number[] {
  return entrySpans(tar).flatMap(({ header }) => [header + 1, header + 256, header + 511]);
}

/** Where each entry's header and data start in a plain tar, and its size. */
function entrySpans(tar: Buffer): { header: number; data: number; size: number }[] {
  const out: { header: number; data: number; size: number }[] = [];
  for (let at = 0; at + 512 <= tar.length;) {
    const header = tar.subarray(at, at + 512);
    if (header.every((b) => b === 0)) break;
    const size = parseInt(header.subarray(124, 136).toString('latin1').replace(/\0.*$/, ''), 8);
    out.push({ header: at, data: at + 512, size });
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

/** Header offsets of a plain tar's entries. */
const headerOffsets = (tar: Buffer): number[] => entrySpans(tar).map((e) => e.header);

const UNSAFE: ErrorCode = 'AEGIS_ERR_SOURCE_UNSAFE';
const TOO_LARGE: ErrorCode = 'AEGIS_ERR_SOURCE_TOO_LARGE';
const CHECKSUM: ErrorCode = 'AEGIS_ERR_SOURCE_CHECKSUM';

const GENERATORS: Record<string, (r: Rand) => Omit<Case, 'kind'>> = {
  benign(r) {
    const tree = benignTree(r);
    return {
      ...asFormat(r, tarOf(...tree.entries)),
      expected: 'accepted',
      files: tree.files,
      entries: tree.count,
      chunked: r() < 0.5,
    };
  },
  dotdot(r) {
    const type = pick(r, ['0', '5']);
    return {
      ...asFormat(
        r,
        withHostile(r, [entry({ name: dotdotPath(r), type }, type === '0' ? 'x' : '')]),
      ),
      expected: UNSAFE,
    };
  },
  absolute(r) {
    return {
      ...asFormat(r, withHostile(r, [entry({ name: absolutePath(r) }, 'x')])),
      expected: UNSAFE,
    };
  },
  'pax path'(r) {
    return {
      ...asFormat(
        r,
        withHostile(r, [paxHeader({ path: hostilePath(r) }), entry({ name: 'ok.c' }, 'x')]),
      ),
      expected: UNSAFE,
    };
  },
  'gnu long name'(r) {
    // Long: a ".." deep down, or an absolute path of 100+ bytes.
    const name =
      r() < 0.6
        ? `${'deep/'.repeat(int(r, 0, 30))}${dotdotPath(r)}`
        : `${absolutePath(r)}/${'long/'.repeat(int(r, 0, 30))}x.c`;
    return {
      ...asFormat(r, withHostile(r, [gnuLongName(name), entry({ name: 'ok.c' }, 'x')])),
      expected: UNSAFE,
    };
  },
  link(r) {
    const linkname = r() < 0.5 ? plainSegment(r) : hostilePath(r);
    const e = entry({ name: plainSegment(r), type: pick(r, ['1', '2']), linkname });
    return { ...asFormat(r, withHostile(r, [e])), expected: UNSAFE };
  },
  device(r) {
    const e = entry({
      name: plainSegment(r),
      type: pick(r, ['3', '4', '6']),
      devmajor: int(r, 0, 255),
      devminor: int(r, 0, 255),
    });
    return { ...asFormat(r, withHostile(r, [e])), expected: UNSAFE };
  },
  'odd type'(r) {
    // Sparse, GNU dump dir, vendor and unknown types: nothing tar would write as a plain file.
    const e = entry({ name: plainSegment(r), type: pick(r, ['S', 'D', 'Q', 'Z', 'J', '9']) }, 'x');
    return { ...asFormat(r, withHostile(r, [e])), expected: UNSAFE };
  },
  'too many entries'(r) {
    const cap = int(r, 2, 12);
    const n = cap + int(r, 1, 4);
    const entries = Array.from({ length: n }, (_, i) =>
      r() < 0.2 ? entry({ name: `d${i}/`, type: '5' }) : entry({ name: `f${i}.c` }, body(r, 100)),
    );
    return { ...asFormat(r, tarOf(...entries)), expected: TOO_LARGE, limits: { maxEntries: cap } };
  },
  'entries at the cap'(r) {
    const cap = int(r, 2, 12);
    const files = new Map<string, Buffer>();
    const entries = Array.from({ length: cap }, (_, i) => {
      const data = body(r, 100);
      files.set(`f${i}.c`, data);
      return entry({ name: `f${i}.c` }, data);
    });
    return {
      ...asFormat(r, tarOf(...entries)),
      expected: 'accepted',
      limits: { maxEntries: cap },
      files,
      entries: cap,
    };
  },
  'size in a header'(r) {
    // Only the header of a file larger than the cap, and a little of its body.
    const header = ustarHeader({
      name: plainSegment(r),
      size: LIMITS.maxBytes + int(r, 1, 1 << 30),
    });
    const tar = Buffer.concat([
      ...benignTree(r, int(r, 0, 2)).entries,
      header,
      Buffer.alloc(int(r, 0, 8) * 512),
    ]);
    return { ...asFormat(r, tar), expected: TOO_LARGE };
  },
  'sizes add up'(r) {
    // Files of zeros, each under the cap, together over it; gzip keeps the upload small.
    const each = int(r, 16, 96) * KiB;
    const n = Math.floor(LIMITS.maxBytes / each) + int(r, 1, 2);
    const entries = Array.from({ length: n }, (_, i) =>
      entry({ name: `f${i}` }, Buffer.alloc(each)),
    );
    return { archive: gz(tarOf(...entries)), format: 'tar.gz', expected: TOO_LARGE };
  },
  'upload over the cap'(r) {
    const tar = tarOf(
      entry({ name: 'big.bin' }, Buffer.alloc(LIMITS.maxBytes + int(r, 1, 8 * KiB))),
    );
    return { archive: tar, format: 'tar', expected: TOO_LARGE, chunked: r() < 0.5 };
  },
  'more than declared'(r) {
    const tar = tarOf(...benignTree(r).entries);
    return {
      archive: tar,
      format: 'tar',
      expected: TOO_LARGE,
      declared: { size: int(r, 0, tar.length - 1) },
      chunked: true,
    };
  },
  'gzip bomb'(r) {
    // A valid tar, then zeros: the decompressed stream passes the cap at a random ratio.
    const zeros = LIMITS.maxBytes * int(r, 2, 32) + int(r, 0, 4096);
    const prefix =
      r() < 0.5 ? tarOf(...benignTree(r, 2).entries) : ustarHeader({ name: 'z', size: zeros });
    return {
      archive: gzipSync(Buffer.concat([prefix, Buffer.alloc(zeros)]), { level: int(r, 1, 9) }),
      format: 'tar.gz',
      expected: TOO_LARGE,
    };
  },
  'truncated tar'(r) {
    // Inside a file's data; cuts inside a header are the known gap tested below.
    const tar = tarOf(
      ...benignTree(r, int(r, 0, 4)).entries,
      entry({ name: 'last.c' }, Buffer.concat([Buffer.from('int x;\n'), body(r)])),
    );
    return {
      archive: tar.subarray(0, pick(r, bodyCutPoints(tar))),
      format: 'tar',
      expected: UNSAFE,
    };
  },
  'truncated gzip'(r) {
    const archive = gz(tarOf(...benignTree(r, int(r, 1, 5)).entries));
    return {
      archive: archive.subarray(0, int(r, 3, archive.length - 1)),
      format: 'tar.gz',
      expected: UNSAFE,
    };
  },
  'header checksum flip'(r) {
    const tar = Buffer.from(tarOf(...benignTree(r, int(r, 1, 5)).entries));
    const at = pick(r, headerOffsets(tar));
    // Any byte of the header but the checksum field: the stored sum no longer matches.
    const offset = pick(r, [int(r, 0, 147), int(r, 156, 499)]);
    tar[at + offset] = tar[at + offset]! ^ (1 << int(r, 0, 7));
    return { ...asFormat(r, tar), expected: UNSAFE };
  },
  'sha256 flip'(r) {
    const { archive, format } = asFormat(r, tarOf(...benignTree(r).entries));
    const digest = sha256(archive).split('');
    const i = int(r, 0, 63);
    digest[i] = digest[i] === '0' ? '1' : '0';
    return { archive, format, expected: CHECKSUM, declared: { sha256: digest.join('') } };
  },
  'shorter than declared'(r) {
    const { archive, format } = asFormat(r, tarOf(...benignTree(r).entries));
    return {
      archive,
      format,
      expected: CHECKSUM,
      declared: { size: archive.length + int(r, 1, 4096) },
    };
  },
  'wrong format'(r) {
    const tar = tarOf(...benignTree(r).entries);
    return pick(r, [
      { archive: tar, format: 'tar.gz' as const, expected: UNSAFE },
      { archive: gz(tar), format: 'tar' as const, expected: UNSAFE },
      { archive: gz(gz(tar)), format: 'tar.gz' as const, expected: UNSAFE },
    ]);
  },
};

/** The corpus: every kind in turn (benign three times as often), each drawn from the seed. */
function corpus(seed: number, count: number): Case[] {
  const r = seededRandom(seed);
  const kinds = [...Object.keys(GENERATORS), 'benign', 'benign'];
  return Array.from({ length: count }, (_, i) => {
    const kind = kinds[i % kinds.length]!;
    return { kind, ...GENERATORS[kind]!(r) };
  });
}

let tmp: string;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'aegis-fault-archives-'));
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

it(`a generated corpus of ${COUNT} hostile and benign archives: each gets exactly the expected outcome`, async () => {
  const t0 = Date.now();
  const cases = corpus(SEED, COUNT);
  const chunker = seededRandom(SEED + 1);
  const wrong: string[] = [];
  let refused = 0;
  let accepted = 0;
  const byKind = new Map<string, { ok: number; n: number }>();
  for (const [i, c] of cases.entries()) {
    const fed = await feedArchive(path.join(tmp, 'work'), c.archive, {
      format: c.format,
      jobId: `job-${i}`,
      limits: { ...LIMITS, ...c.limits },
      ...(c.declared ? { declared: c.declared } : {}),
      ...(c.chunked ? { chunks: randomChunks(c.archive, chunker, 8 * KiB) } : {}),
    });
    const got: Outcome = fed.result ? 'accepted' : (fed.error?.code ?? 'AEGIS_ERR_INTERNAL');
    let ok = got === c.expected;
    if (ok && got === 'accepted') {
      // Everything it holds landed inside src/, byte for byte.
      ok = fed.result!.entries === c.entries;
      for (const [name, data] of c.files ?? []) {
        const file = path.join(fed.paths.src, name);
        ok &&= (await stat(file)).isFile() && (await readFile(file)).equals(data);
      }
      accepted++;
    } else if (ok) {
      // A refusal leaves nothing: no file in src/, no staging dir, no partial upload.
      ok = (await leftovers(fed.paths)).length === 0;
      refused++;
    }
    const k = byKind.get(c.kind) ?? { ok: 0, n: 0 };
    byKind.set(c.kind, { ok: k.ok + (ok ? 1 : 0), n: k.n + 1 });
    if (!ok)
      wrong.push(
        `#${i} ${c.kind} (${c.format}): expected ${c.expected}, got ${got}${fed.error ? `: ${fed.error.message}` : ''}`,
      );
  }
  const hostile = cases.filter((c) => c.expected !== 'accepted').length;
  console.log(
    `corpus: ${COUNT} archives (seed ${SEED}), ${hostile} hostile: ${refused}/${hostile} refused with the expected code and nothing left behind; ` +
      `${COUNT - hostile} benign: ${accepted}/${COUNT - hostile} accepted whole; ${Date.now() - t0} ms\n  ` +
      [...byKind].map(([k, v]) => `${k} ${v.ok}/${v.n}`).join(', '),
  );
  expect(wrong).toEqual([]);
  expect(refused).toBe(hostile);
  expect(accepted).toBe(COUNT - hostile);
  // Both sides are really exercised.
  expect(hostile).toBeGreaterThanOrEqual(150);
  expect(COUNT - hostile).toBeGreaterThanOrEqual(20);
});

// A plain tar cut inside a 512-byte header (any but the first): tar drops a partial trailing
// block without a warning, so the entries from that header on would be silently missing from
// src/ (the declared sha256 covers the cut bytes, so the checksum cannot catch it). The intake
// refuses an archive that ends before tar's end-of-archive blocks.
it('a plain tar cut inside a header is refused as unsafe', async () => {
  const r = seededRandom(SEED + 2);
  let accepted = 0;
  let n = 0;
  const outcomes: string[] = [];
  for (let i = 0; i < 12; i++) {
    const tar = tarOf(...benignTree(r, int(r, 2, 5)).entries);
    // Inside any header but the first (a cut first header is refused as no tar at all).
    const cut = pick(r, headerCutPoints(tar).slice(3));
    const fed = await feedArchive(path.join(tmp, 'work-cut'), tar.subarray(0, cut), {
      format: 'tar',
      jobId: `job-cut-${i}`,
      limits: LIMITS,
    });
    n++;
    if (fed.result) accepted++;
    outcomes.push(fed.result ? 'accepted' : (fed.error?.code ?? '?'));
  }
  console.log(
    `corpus: ${n} plain tars cut inside a header: ${accepted}/${n} accepted, ${n - accepted}/${n} refused`,
  );
  expect(outcomes).toEqual(Array.from({ length: n }, () => UNSAFE));
});
