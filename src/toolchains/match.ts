// The one decision "which toolchain runs this job": pure, so it is tested without processes.
import { AegisError } from '../errors.js';
import { offeredTargets, type Toolchain } from './types.js';
import { compareVersions } from './version.js';

const SPEC = /^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?$/;

/** Does `version` ("5.3.1") satisfy `spec` ("5", "5.3" = any 5.3.x, "5.3.1" exact, "v5.3")? */
export function versionMatches(version: string, spec: string | undefined): boolean {
  if (spec === undefined || spec === '') return true;
  const m = SPEC.exec(spec.trim());
  if (!m) return false;
  const want = [m[1], m[2], m[3]].filter((p): p is string => p !== undefined).map(Number);
  const have = version.split('.').map(Number);
  return want.every((n, i) => have[i] === n);
}

export function isValidIdfSpec(spec: string): boolean {
  return SPEC.test(spec.trim());
}

/** The newest toolchain that offers `target` and satisfies `idf`, or undefined. */
export function findToolchain(
  toolchains: readonly Toolchain[],
  target: string,
  idf: string | undefined,
  preview: boolean,
): Toolchain | undefined {
  return toolchains
    .filter((tc) => offeredTargets(tc, preview).includes(target) && versionMatches(tc.idfVersion, idf))
    .sort((a, b) => compareVersions(b.idfVersion, a.idfVersion))[0];
}

/** Like findToolchain, but says precisely why nothing fits (AEGIS_ERR_NO_TOOLCHAIN). */
export function matchToolchain(
  toolchains: readonly Toolchain[],
  target: string,
  idf: string | undefined,
  preview: boolean,
): Toolchain {
  const found = findToolchain(toolchains, target, idf, preview);
  if (found) return found;
  const want = idf ? `ESP-IDF ${idf}` : 'any ESP-IDF version';
  if (idf !== undefined && !isValidIdfSpec(idf)) {
    throw new AegisError('AEGIS_ERR_NO_TOOLCHAIN', `"${idf}" is not an ESP-IDF version spec: use 5, 5.3 or 5.3.1.`);
  }
  const installed = toolchains.map((tc) => `v${tc.idfVersion} (${offeredTargets(tc, preview).join(' ')})`);
  const previewOnly = toolchains.some((tc) => !preview && tc.previewTargets.includes(target));
  throw new AegisError(
    'AEGIS_ERR_NO_TOOLCHAIN',
    `No installed toolchain builds ${target} with ${want}` +
      (installed.length ? `; installed: ${installed.join(', ')}` : '; no toolchain is installed') +
      (previewOnly ? `; ${target} is a preview target: set TOOLCHAINS_PREVIEW=true to offer it` : '') +
      '. Provision one with scripts/provision-toolchain.sh.',
  );
}
