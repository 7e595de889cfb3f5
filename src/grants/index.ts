// Grants (PROTOCOL §2): the verifier the session layer calls before it creates any peer
// connection, and the channel labels a grant may name.
export {
  CHANNEL_LABELS,
  checkChannels,
  isChannelLabel,
  type ChannelCheck,
  type ChannelLabel,
} from './channels.js';
export type { LookupJob } from './claims.js';
export { JWKS_CACHE_MAX_AGE_MS, JWKS_COOLDOWN_MS, JWKS_TIMEOUT_MS, jwksUrl } from './keys.js';
export {
  createGrantVerifier,
  defaultIssuer,
  GRANT_ALGORITHMS,
  GRANT_TYP,
  replayFile,
  type GrantConfig,
  type GrantVerifier,
  type GrantVerifierOptions,
  type VerifiedGrant,
} from './verify.js';
