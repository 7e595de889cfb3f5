// Parsing of <build>/flasher_args.json (ESP-IDF v4.4 to v6) into what the agent serves: the chip,
// the flash settings and the flash files at their offsets. The file comes out of a build, so it
// is checked like any other untrusted input; paths are checked against the disk in artifacts.ts.
import { z } from 'zod';
import { AegisError } from '../errors.js';

export interface FlashSettings {
  flash_mode: string;
  flash_size: string;
  flash_freq: string;
}

export interface FlashFile {
  offset: number;
  /** Relative to the build dir, as flasher_args.json writes it. */
  name: string;
}

export interface FlasherArgs {
  chip: string;
  flashSettings: FlashSettings;
  /** Sorted by offset. */
  flashFiles: FlashFile[];
  /** The application image, when a role entry or the caller names it. */
  appFile: string | undefined;
}

/** Flash addresses stop well below this (the largest ESP32 flash maps 256 MiB). */
const MAX_OFFSET = 0x1000_0000;

const Offset = z
  .string()
  .trim()
  .regex(/^(0[xX][0-9a-fA-F]{1,8}|\d{1,10})$/, 'expected a hex offset such as "0x10000"')
  .transform((s) => Number(s))
  .pipe(z.number().int().nonnegative().max(MAX_OFFSET, 'offset beyond any ESP32 flash'));

const RelPath = z.string().min(1).max(512);
const Setting = z
  .string()
  .trim()
  .regex(/^[A-Za-z0-9_.-]{1,32}$/, 'expected a value like "dio"');

const Role = z.object({ offset: Offset.optional(), file: RelPath.optional() });

const FlasherArgsFile = z.object({
  write_flash_args: z.array(z.string().max(256)).max(64).optional(),
  flash_settings: z
    .object({
      flash_mode: Setting.optional(),
      flash_size: Setting.optional(),
      flash_freq: Setting.optional(),
    })
    .optional(),
  flash_files: z.record(z.string(), RelPath).refine((r) => Object.keys(r).length > 0, {
    message: 'expected at least one flash file',
  }),
  extra_esptool_args: z.object({
    chip: z.string().regex(/^[a-z0-9_]{1,32}$/, 'expected a chip such as "esp32c3"'),
  }),
  app: Role.optional(),
  bootloader: Role.optional(),
  'partition-table': Role.optional(),
  partition_table: Role.optional(),
  otadata: Role.optional(),
});

const SETTING_KEYS = ['flash_mode', 'flash_size', 'flash_freq'] as const;

/** esptool v4 spells `--flash_mode`, esptool v5 (ESP-IDF v6) `--flash-mode`: read both. */
function settingsFromArgs(args: readonly string[]): Partial<FlashSettings> {
  const out: Partial<FlashSettings> = {};
  for (let i = 0; i < args.length; i++) {
    const flag = args[i]?.replace(/^--/, '').replace(/-/g, '_');
    const value = args[i + 1];
    const key = SETTING_KEYS.find((k) => k === flag);
    if (key && value !== undefined && Setting.safeParse(value).success) {
      out[key] = value;
      i++;
    }
  }
  return out;
}

function fail(file: string, what: string): AegisError {
  return new AegisError('AEGIS_ERR_BUILD_FAILED', `flasher_args.json ${file}: ${what}`);
}

/**
 * Reads the text of flasher_args.json. Flash settings come from `flash_settings`, else from
 * `write_flash_args`, else "keep" (esptool's own "leave the image header alone").
 */
export function parseFlasherArgs(text: string, file = 'flasher_args.json'): FlasherArgs {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw fail(file, `not JSON (${(err as Error).message})`);
  }
  const result = FlasherArgsFile.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw fail(file, `${issue?.path.join('.') || '(file)'}: ${issue?.message ?? 'invalid'}`);
  }
  const data = result.data;
  const fromArgs = settingsFromArgs(data.write_flash_args ?? []);
  const settings = data.flash_settings ?? {};
  const flashSettings: FlashSettings = {
    flash_mode: settings.flash_mode ?? fromArgs.flash_mode ?? 'keep',
    flash_size: settings.flash_size ?? fromArgs.flash_size ?? 'keep',
    flash_freq: settings.flash_freq ?? fromArgs.flash_freq ?? 'keep',
  };
  const flashFiles: FlashFile[] = [];
  for (const [key, name] of Object.entries(data.flash_files)) {
    const offset = Offset.safeParse(key);
    if (!offset.success) {
      throw fail(file, `flash_files: "${key.slice(0, 32)}": ${offset.error.issues[0]?.message}`);
    }
    flashFiles.push({ offset: offset.data, name });
  }
  flashFiles.sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < flashFiles.length; i++) {
    const prev = flashFiles[i - 1] as FlashFile;
    const cur = flashFiles[i] as FlashFile;
    if (prev.offset === cur.offset) {
      throw fail(file, `${prev.name} and ${cur.name} are both at ${hex(cur.offset)}`);
    }
  }
  return { chip: data.extra_esptool_args.chip, flashSettings, flashFiles, appFile: data.app?.file };
}

export function hex(n: number): string {
  return `0x${n.toString(16)}`;
}
