// The esptool command a user runs to flash what the client downloaded (paths relative to --out).
import type { ManifestFrame } from '../webrtc/frames.js';
import type { z } from 'zod';

type ManifestBody = Omit<z.infer<typeof ManifestFrame>, 'type'>;
type ArtifactFile = ManifestBody['files'][number];

export const MERGED_NAME = 'merged.bin';

const hex = (n: number) => `0x${n.toString(16)}`;
/** Shell-safe as typed: quotes anything outside a conservative alphabet. */
function shellWord(s: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The esptool line that flashes the manifest's files (run from the build dir / download dir). */
export function esptoolCommand(
  manifest: Pick<ManifestBody, 'chip' | 'flash_settings'> & {
    files: readonly Pick<ArtifactFile, 'name' | 'flash_offset'>[];
  },
  port?: string,
): string {
  const fs_ = manifest.flash_settings;
  const flash = manifest.files
    .filter((f) => f.flash_offset !== undefined && f.name !== MERGED_NAME)
    .sort((a, b) => (a.flash_offset ?? 0) - (b.flash_offset ?? 0))
    .flatMap((f) => [hex(f.flash_offset ?? 0), shellWord(f.name)]);
  return [
    'python -m esptool',
    `--chip ${shellWord(manifest.chip)}`,
    ...(port === undefined ? [] : [`-p ${shellWord(port)}`]),
    '-b 460800 --before default_reset --after hard_reset write_flash',
    `--flash_mode ${shellWord(fs_.flash_mode)}`,
    `--flash_size ${shellWord(fs_.flash_size)}`,
    `--flash_freq ${shellWord(fs_.flash_freq)}`,
    ...flash,
  ].join(' ');
}
