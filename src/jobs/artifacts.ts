// A succeeded build's artifacts: the flash files named by flasher_args.json (each checked to lie
// inside the build dir), the app .elf, merged.bin and build.log, with size and sha256. The
// manifest maps names to paths privately: the `artifacts` channel looks names up, never joins them.
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { WireArtifact } from '../control/messages.js';
import { AegisError } from '../errors.js';
import { hex, parseFlasherArgs, type FlashSettings } from './flasher-args.js';
import { hashFile, writeMerged, type MergeInput } from './merge.js';

export type { FlashSettings } from './flasher-args.js';

export const MERGED_NAME = 'merged.bin';
export const LOG_NAME = 'build.log';
/** flasher_args.json and project_description.json are a few KiB; anything near this is not ours. */
const DESCRIPTION_MAX_BYTES = 1024 * 1024;

export interface ArtifactFile {
  name: string;
  size: number;
  sha256: string;
  flash_offset?: number;
}

/** The body of the `artifacts` channel's `manifest` frame (PROTOCOL §4). */
export interface ManifestBody {
  chip: string;
  flash_settings: FlashSettings;
  files: ArtifactFile[];
}

type Entry = ArtifactFile & { path: string };

export class ArtifactManifest {
  readonly chip: string;
  readonly flashSettings: Readonly<FlashSettings>;
  readonly files: readonly Readonly<ArtifactFile>[];
  readonly #entries: ReadonlyMap<string, Entry>;

  constructor(chip: string, flashSettings: FlashSettings, entries: readonly Entry[]) {
    const map = new Map<string, Entry>();
    for (const e of entries) {
      if (map.has(e.name)) {
        throw new AegisError('AEGIS_ERR_BUILD_FAILED', `Two artifacts are named ${e.name}.`);
      }
      map.set(e.name, e);
    }
    this.chip = chip;
    this.flashSettings = Object.freeze({ ...flashSettings });
    this.files = Object.freeze(entries.map(({ path: _p, ...file }) => Object.freeze(file)));
    this.#entries = map;
  }

  /** The absolute path of artifact `name`; anything not in the manifest is not found. */
  resolve(name: string): string {
    return this.#entry(name).path;
  }

  /** The manifest record of artifact `name` (size and sha256 for the `file` frame). */
  file(name: string): Readonly<ArtifactFile> {
    const { path: _p, ...file } = this.#entry(name);
    return file;
  }

  /** PROTOCOL §1 Artifact list (job.update). */
  toWire(): WireArtifact[] {
    return this.files.map((f) => ({ ...f }));
  }

  /** PROTOCOL §4 manifest body. */
  toBody(): ManifestBody {
    return {
      chip: this.chip,
      flash_settings: { ...this.flashSettings },
      files: this.files.map((f) => ({ ...f })),
    };
  }

  /** Name → path included: for the agent's own state dir only, never for the wire. */
  toPersisted(): PersistedManifest {
    return { version: 1, ...this.toBody(), paths: [...this.#entries.values()].map((e) => e.path) };
  }

  #entry(name: string): Entry {
    const entry = this.#entries.get(name);
    if (!entry) {
      throw new AegisError(
        'AEGIS_ERR_ARTIFACT_NOT_FOUND',
        `No artifact named ${JSON.stringify(name.slice(0, 256))}; ask for a name from the manifest.`,
      );
    }
    return entry;
  }
}

export interface CollectOptions {
  /** The build dir (`idf.py -B`), holding flasher_args.json. */
  buildDir: string;
  /** Where merged.bin is written (created if missing). */
  artifactsDir: string;
  /** The job's build.log (the spool's file). */
  logFile: string;
}

/** Reads flasher_args.json, checks every path, hashes every file and writes merged.bin. */
export async function collectArtifacts(opts: CollectOptions): Promise<ArtifactManifest> {
  const root = await fs.promises.realpath(opts.buildDir);
  const argsFile = path.join(root, 'flasher_args.json');
  const argsText = await readSmall(argsFile);
  if (argsText === undefined) {
    throw new AegisError(
      'AEGIS_ERR_BUILD_FAILED',
      `The build wrote no flasher_args.json in ${root}.`,
    );
  }
  const args = parseFlasherArgs(argsText, argsFile);

  const inputs: MergeInput[] = [];
  for (const f of args.flashFiles) {
    const found = await insideBuildDir(root, f.name, `flash file at ${hex(f.offset)}`);
    if (!found) {
      throw new AegisError(
        'AEGIS_ERR_BUILD_FAILED',
        `Flash file ${f.name} (${hex(f.offset)}) named in flasher_args.json does not exist.`,
      );
    }
    inputs.push({ name: f.name, path: found.real, offset: f.offset, size: found.size });
  }

  await fs.promises.mkdir(opts.artifactsDir, { recursive: true });
  const mergedPath = path.join(opts.artifactsDir, MERGED_NAME);
  const { merged, inputs: digests } = await writeMerged(inputs, mergedPath);

  const entries: Entry[] = inputs.map((f) => {
    const d = digests.get(f.name) as { size: number; sha256: string };
    return { name: f.name, path: f.path, flash_offset: f.offset, ...d };
  });
  const elf = await findElf(
    root,
    args.appFile,
    args.flashFiles.map((f) => f.name),
  );
  if (elf) entries.push({ name: elf.name, path: elf.real, ...(await hashFile(elf.real)) });
  entries.push({ name: MERGED_NAME, path: mergedPath, flash_offset: 0, ...merged });
  entries.push({ name: LOG_NAME, path: opts.logFile, ...(await hashFile(opts.logFile)) });
  return new ArtifactManifest(args.chip, args.flashSettings, entries);
}

interface Found {
  name: string;
  real: string;
  size: number;
}

/**
 * Resolves `rel` inside `root` (a realpath): no absolute paths, no `..`, no symlink leading out.
 * Undefined when nothing is there; AEGIS_ERR_BUILD_FAILED when it escapes or is not a file.
 */
async function insideBuildDir(root: string, rel: string, what: string): Promise<Found | undefined> {
  const escape = (why: string) =>
    new AegisError('AEGIS_ERR_BUILD_FAILED', `The ${what}, ${JSON.stringify(rel)}, ${why}.`);
  if (path.isAbsolute(rel) || rel.includes('\0'))
    throw escape('is not a path relative to the build dir');
  if (rel.split(/[\\/]/).includes('..')) throw escape('leaves the build dir');
  let real: string;
  try {
    real = await fs.promises.realpath(path.join(root, rel));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw escape(`cannot be read (${(err as Error).message})`);
  }
  if (!real.startsWith(root + path.sep)) throw escape('resolves outside the build dir');
  const stat = await fs.promises.stat(real);
  if (!stat.isFile()) throw escape('is not a regular file');
  return { name: rel, real, size: stat.size };
}

const ProjectDescription = z.object({
  app_elf: z.string().min(1).max(512).optional(),
  project_name: z.string().min(1).max(256).optional(),
  app_bin: z.string().min(1).max(512).optional(),
});

/**
 * The app .elf: project_description's app_elf, else <project_name>.elf, else <app bin>.elf, else
 * an .elf named like a flash image (flasher_args.json without role entries names no app).
 */
async function findElf(
  root: string,
  appFile: string | undefined,
  flashFiles: readonly string[],
): Promise<Found | undefined> {
  let desc: z.infer<typeof ProjectDescription> = {};
  const text = await readSmall(path.join(root, 'project_description.json'));
  if (text !== undefined) {
    // Only a hint for finding the .elf: a description we cannot read means "look elsewhere".
    try {
      desc = ProjectDescription.catch({}).parse(JSON.parse(text));
    } catch {
      desc = {};
    }
  }
  const elfOf = (bin: string) => bin.replace(/\.bin$/, '') + '.elf';
  const bins = [appFile, desc.app_bin].filter((b) => b !== undefined);
  const candidates = [
    desc.app_elf,
    desc.project_name === undefined ? undefined : `${desc.project_name}.elf`,
    ...bins.map(elfOf),
    ...flashFiles.filter((f) => f.endsWith('.bin')).map(elfOf),
  ];
  for (const c of candidates) {
    if (c === undefined) continue;
    // project_description may hold an absolute app_elf; it is fine when it lies in the build dir.
    const rel = path.isAbsolute(c) ? path.relative(root, c) : c;
    const found = await insideBuildDir(root, rel, 'app .elf');
    if (found) return found;
  }
  return undefined;
}

/** The file's text, or undefined when it does not exist. */
async function readSmall(file: string): Promise<string | undefined> {
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new AegisError(
      'AEGIS_ERR_BUILD_FAILED',
      `Cannot read ${file}: ${(err as Error).message}`,
    );
  }
  try {
    const { size } = await handle.stat();
    if (size > DESCRIPTION_MAX_BYTES) {
      throw new AegisError(
        'AEGIS_ERR_BUILD_FAILED',
        `${file} is ${size} bytes, too large to be ours.`,
      );
    }
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

// ── Persistence (serving a finished job's artifacts after an agent restart) ─────────────────

const Setting = z.string().regex(/^[A-Za-z0-9_.-]{1,32}$/);
const PersistedManifest = z
  .object({
    version: z.literal(1),
    chip: z.string().regex(/^[a-z0-9_]{1,32}$/),
    flash_settings: z.object({ flash_mode: Setting, flash_size: Setting, flash_freq: Setting }),
    files: z
      .array(
        z.object({
          name: z.string().min(1).max(512),
          size: z.number().int().nonnegative(),
          sha256: z.string().regex(/^[0-9a-f]{64}$/),
          flash_offset: z.number().int().nonnegative().optional(),
        }),
      )
      .min(1)
      .max(1024),
    paths: z.array(z.string().refine((p) => path.isAbsolute(p), 'expected an absolute path')),
  })
  .refine((m) => m.paths.length === m.files.length, 'expected one path per file');
export type PersistedManifest = z.input<typeof PersistedManifest>;

/** Writes the manifest (with its paths) to `file` atomically. */
export async function writeManifest(manifest: ArtifactManifest, file: string): Promise<void> {
  const tmp = `${file}.tmp`;
  await fs.promises.writeFile(tmp, JSON.stringify(manifest.toPersisted(), null, 2) + '\n', {
    mode: 0o640,
  });
  await fs.promises.rename(tmp, file);
}

/** Reads a manifest writeManifest wrote, checking its structure again. */
export async function readManifest(file: string): Promise<ArtifactManifest> {
  let json: unknown;
  try {
    json = JSON.parse(await fs.promises.readFile(file, 'utf8'));
  } catch (err) {
    throw new AegisError(
      'AEGIS_ERR_INTERNAL',
      `Cannot read the artifact manifest ${file}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  const result = PersistedManifest.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new AegisError(
      'AEGIS_ERR_INTERNAL',
      `The artifact manifest ${file} is malformed: ${issue?.path.join('.') || '(file)'}: ${issue?.message ?? 'invalid'}.`,
    );
  }
  const m = result.data;
  const entries = m.files.map((f, i): Entry => {
    const { flash_offset, ...rest } = f;
    return {
      ...rest,
      ...(flash_offset === undefined ? {} : { flash_offset }),
      path: m.paths[i] as string,
    };
  });
  return new ArtifactManifest(m.chip, m.flash_settings, entries);
}

// ── The flashing command the reference client prints ───────────────────────────────────────
