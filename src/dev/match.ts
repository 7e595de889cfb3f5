// Which agents get a job offer, and why none did: pure decisions, tested without sockets.
import type { AgentRecord } from './types.js';

const SPEC = /^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?$/;

/** Does `version` ("5.3.1") satisfy `spec`? "5" any 5.x, "5.3" any 5.3.x, "5.3.1" exact, absent any. */
export function idfMatches(version: string, spec: string | undefined): boolean {
  if (spec === undefined) return true;
  const m = SPEC.exec(spec);
  if (!m) return false;
  const have = version.split('.');
  return [m[1], m[2], m[3]].every(
    (part, i) => part === undefined || Number(part) === Number(have[i]),
  );
}

export function hasToolchain(agent: AgentRecord, target: string, idf: string | undefined): boolean {
  return agent.toolchains.some(
    (tc) => tc.targets.includes(target) && idfMatches(tc.idf_version, idf),
  );
}

export function hasCapacity(agent: AgentRecord): boolean {
  return agent.running < agent.capacity.max_jobs;
}

/** Offer the job to this agent? Connected, not draining, a matching toolchain, a free slot. */
export function canOffer(agent: AgentRecord, target: string, idf: string | undefined): boolean {
  return (
    agent.connected && !agent.draining && hasCapacity(agent) && hasToolchain(agent, target, idf)
  );
}

/** "10 s", "0.25 s": how a wait reads in a message. */
export function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}

/** The likely reason nobody claimed: what an operator checks first. */
export function noClaimCause(
  agents: readonly AgentRecord[],
  target: string,
  idf: string | undefined,
  offeredTo: readonly string[],
): string {
  const connected = agents.filter((a) => a.connected);
  const want = `${target} with ${idf === undefined ? 'any ESP-IDF version' : `ESP-IDF ${idf}`}`;
  if (connected.length === 0) {
    return 'no agent is connected to this control plane; start one with CONTROL_BASE_URL pointing here.';
  }
  const fitting = connected.filter((a) => hasToolchain(a, target, idf));
  if (fitting.length === 0) {
    const have = connected
      .map(
        (a) =>
          `${a.agent_id} (${a.toolchains.map((tc) => `v${tc.idf_version}: ${tc.targets.join(' ')}`).join('; ') || 'no toolchain'})`,
      )
      .join(', ');
    return `none of the ${connected.length} connected agents has a toolchain for ${want}; they offer ${have}.`;
  }
  if (offeredTo.length === 0) {
    const why = fitting.map(
      (a) =>
        `${a.agent_id} (${a.draining ? 'draining' : `busy, ${a.running}/${a.capacity.max_jobs} running`})`,
    );
    return `every agent with a toolchain for ${want} is busy or draining: ${why.join(', ')}.`;
  }
  return (
    `it was offered to ${offeredTo.join(', ')} but none claimed it; an agent stays silent when ` +
    'its disk is low, it is full or draining, or its own toolchain check disagrees; see its log.'
  );
}
