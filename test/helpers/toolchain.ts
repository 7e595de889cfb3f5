// A Toolchain value for tests of the pure decisions (matching, claiming): no install behind it.
import type { Toolchain } from '../../src/toolchains/index.js';

export const tc = (
  id: string,
  idfVersion: string,
  targets: string[],
  previewTargets: string[] = [],
): Toolchain => ({
  id,
  idfVersion,
  path: `/opt/${id}`,
  targets,
  previewTargets,
  env: {},
});
