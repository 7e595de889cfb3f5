// Toolchains: discover ESP-IDF installs, read version + targets, capture the export environment
// once per install, and match a job's needs (target, idf spec) to one of them.
export { discoverToolchains, type DiscoverOptions } from './discover.js';
export { baseEnvironment, captureInstall, type CaptureOptions } from './capture.js';
export { findToolchain, isValidIdfSpec, matchToolchain, versionMatches } from './match.js';
export { offeredTargets, toWire, type BrokenInstall, type Toolchain, type ToolchainScan, type WireToolchain } from './types.js';
export { compareVersions, parseVersionCmake } from './version.js';
