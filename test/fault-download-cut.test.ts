// Fault: the client's connection is cut in the middle of an artifact download, 20 times: builds
// of blink, each cut once in each large artifact at a seeded random fraction. The reference
// client resumes with a new grant from the bytes on disk; every resumed file's sha256 matches
// the manifest and its bytes are the agent's.
//
// A cut closes the peer connection, but messages the client had already received are still
// written: a cut close to a file's end can leave nothing to resume (the file completes on the
// old connection). Those cuts are counted apart; builds go on until 20 cuts were resumed mid-file.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { RemoteBuild, type RemoteBuildResult } from '../src/client/build.js';
import type { DevControlPlane } from '../src/dev/index.js';
import { cleanupNodeDataChannel } from '../src/webrtc/ndc.js';
import { tmpDir } from './helpers/agent-env.js';
import { EXAMPLES, startAgent, type TestAgent } from './helpers/agent.js';
import { seededRandom, startPlane } from './helpers/fault.js';

/** Cuts that must be resumed mid-file. */
const CUTS = 20;
/** Builds at most, in case many cuts land on bytes already received. */
const MAX_BUILDS = 20;
const PARALLEL = 5;
const SEED = 0xc0ffee;
/** Cut within the first half: the agent keeps at most SEND_QUEUE_BYTES (128 KiB) in flight. */
const MAX_FRACTION = 0.5;

let plane: DevControlPlane;
let agent: TestAgent;
const builds = new Set<RemoteBuild>();

beforeAll(async () => {
  plane = await startPlane();
  let ready!: () => void;
  const up = new Promise<void>((r) => (ready = r));
  agent = await startAgent(plane, { MAX_JOBS: '8' }, ready);
  await up;
});

afterAll(async () => {
  for (const b of builds) b.cut();
  await agent.daemon.stop({ releaseNative: false });
  await plane.close();
  cleanupNodeDataChannel();
});

const sha = (buf: Buffer) => crypto.createHash('sha256').update(buf).digest('hex');

function remoteBuild(out: string): RemoteBuild {
  const b = new RemoteBuild({
    api: { baseUrl: plane.url },
    projectDir: path.join(EXAMPLES, 'blink'),
    target: 'esp32c3',
    outDir: out,
    writeLog: () => undefined,
    maxReconnects: 4,
  });
  builds.add(b);
  return b;
}

interface CutPlan {
  name: string;
  fraction: number;
}

interface Cut {
  name: string;
  total: number;
  /** Bytes of the file the client had when the connection was cut. */
  at: number;
}

/** One build whose connection is cut once each planned file is past its fraction (never at its end). */
async function cutBuild(
  plan: readonly CutPlan[],
  chunk: number,
): Promise<{ result: RemoteBuildResult; cuts: Cut[]; out: string }> {
  const out = tmpDir('aegis-fault-out-');
  const b = remoteBuild(out);
  const cuts: Cut[] = [];
  b.on('downloading', ({ name, bytes, total }) => {
    const p = plan.find((x) => x.name === name);
    // The last message before the end is at most one chunk short of the total: aiming below
    // total − chunk guarantees a cut with bytes left to fetch.
    if (!p || cuts.some((c) => c.name === name) || bytes >= total) return;
    if (bytes < Math.max(1, p.fraction * (total - chunk))) return;
    cuts.push({ name, total, at: bytes });
    b.cut();
  });
  try {
    return { result: await b.run(), cuts, out };
  } finally {
    builds.delete(b);
  }
}

it(`client connection cut mid-download ${CUTS}×: each resumes with a new grant, sha256 equal`, async () => {
  const t0 = Date.now();
  const chunk = agent.config.chunkBytes;
  // A reference build: which artifacts take more than one message.
  const ref = await remoteBuild(tmpDir('aegis-fault-out-')).run();
  expect(ref.state).toBe('succeeded');
  // The large artifacts: four messages and more.
  const large = ref.manifest!.files.filter((f) => f.size >= 4 * chunk).map((f) => f.name);
  expect(large.length).toBeGreaterThan(0);

  const random = seededRandom(SEED);
  const plan = () => large.map((name) => ({ name, fraction: 0.05 + random() * MAX_FRACTION }));
  const done: Awaited<ReturnType<typeof cutBuild>>[] = [];
  let resumedMid = 0;
  let cuts = 0;
  let verified = 0;
  let resumedBytes = 0;
  while (resumedMid < CUTS && done.length < MAX_BUILDS) {
    const wave = await Promise.all(Array.from({ length: PARALLEL }, () => cutBuild(plan(), chunk)));
    for (const { result, cuts: made, out } of wave) {
      done.push({ result, cuts: made, out });
      expect(result.state).toBe('succeeded');
      expect(made.map((c) => c.name).sort(), `cuts of ${result.jobId}`).toEqual([...large].sort());
      expect(result.reconnects).toBeGreaterThanOrEqual(1);
      expect(result.reconnects).toBeLessThanOrEqual(made.length);
      cuts += made.length;
      const manifest = agent.daemon.controllers.get(result.jobId)!.manifest()!;
      for (const cut of made) {
        const got = result.files.find((f) => f.name === cut.name)!;
        const bytes = fs.readFileSync(path.join(out, cut.name));
        expect(sha(bytes), cut.name).toBe(manifest.file(cut.name).sha256);
        expect(got.sha256).toBe(manifest.file(cut.name).sha256);
        expect(bytes.equals(fs.readFileSync(manifest.resolve(cut.name))), cut.name).toBe(true);
        verified++;
        // resumedFrom 0: the rest had arrived before the close, the file completed on the old
        // connection. Otherwise it went on from the bytes on disk: at least those it had at the
        // cut, nothing fetched twice.
        if (got.resumedFrom === 0) continue;
        expect(got.resumedFrom).toBeGreaterThanOrEqual(cut.at);
        expect(got.resumedFrom).toBeLessThanOrEqual(got.size);
        if (got.resumedFrom < got.size) {
          resumedMid++;
          resumedBytes += got.size - got.resumedFrom;
        }
      }
      // The files that were not cut are whole too.
      for (const f of result.files) {
        expect(sha(fs.readFileSync(path.join(out, f.name))), f.name).toBe(
          manifest.file(f.name).sha256,
        );
      }
      expect(result.files.map((f) => f.name).sort()).toEqual(
        ref.manifest!.files.map((f) => f.name).sort(),
      );
    }
  }
  console.log(
    `fault: client connection cut mid-download ${cuts}× over ${done.length} builds (in ${large.join(', ')}): ` +
      `${resumedMid} resumed mid-file with a new grant, ${cuts - resumedMid} landed after the file had fully arrived; ` +
      `${verified}/${cuts} cut files' sha256 equal to the manifest and bytes equal to the agent's ` +
      `(${resumedBytes} bytes fetched after the cuts); total ${Date.now() - t0} ms`,
  );
  expect(resumedMid).toBeGreaterThanOrEqual(CUTS);
  expect(verified).toBe(cuts);
}, 120_000);
