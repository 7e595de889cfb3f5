// What the agent knows about one ESP-IDF install.

export interface Toolchain {
  /** Stable id (the install directory's name, made unique across roots). */
  id: string;
  /** "5.3.1", from tools/cmake/version.cmake. */
  idfVersion: string;
  path: string;
  /** `idf.py --list-targets`. */
  targets: string[];
  /** `idf.py --preview --list-targets` minus the supported ones. */
  previewTargets: string[];
  /** The environment export.sh produces, captured once (cached on disk). */
  env: Readonly<Record<string, string>>;
}

export interface BrokenInstall {
  id: string;
  path: string;
  reason: string;
}

export interface ToolchainScan {
  toolchains: Toolchain[];
  broken: BrokenInstall[];
}

/** Toolchain as sent to the control plane (PROTOCOL §1). */
export interface WireToolchain {
  id: string;
  idf_version: string;
  targets: string[];
}

/** The targets a toolchain offers: supported ones, plus preview ones when config allows. */
export function offeredTargets(tc: Toolchain, preview: boolean): string[] {
  return preview ? [...tc.targets, ...tc.previewTargets] : [...tc.targets];
}

export function toWire(tc: Toolchain, preview: boolean): WireToolchain {
  return { id: tc.id, idf_version: tc.idfVersion, targets: offeredTargets(tc, preview) };
}
