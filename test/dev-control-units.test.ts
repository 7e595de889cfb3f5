// The dev control plane's pure decisions: idf matching, offer eligibility, the no-claim cause,
// origin validation and the applied-seq set.
import { describe, expect, it } from 'vitest';
import {
  canOffer,
  idfMatches,
  SeqSet,
  validateOrigins,
  type AgentRecord,
} from '../src/dev/index.js';
import { noClaimCause } from '../src/dev/match.js';
import { DevControlPlane } from '../src/dev/index.js';
import { createLogger } from '../src/log/index.js';
import { FakeAgent, SECRET } from './helpers/dev.js';

function agent(over: Partial<AgentRecord> = {}): AgentRecord {
  return {
    agent_id: 'a',
    hostname: 'h',
    version: 'v',
    toolchains: [{ id: 't', idf_version: '5.3.1', targets: ['esp32c3'] }],
    capacity: { max_jobs: 1, running: 0 },
    running: 0,
    draining: false,
    connected: true,
    last_seen: 0,
    connected_at: 0,
    labels: {},
    jobs: [],
    origin: 'http://127.0.0.1:1',
    ...over,
  };
}

describe('idfMatches', () => {
  it.each([
    ['5.3.1', undefined, true],
    ['5.3.1', '5', true],
    ['5.3.1', '5.3', true],
    ['5.3.1', 'v5.3', true],
    ['5.3.1', '5.3.1', true],
    ['5.3.1', '5.3.2', false],
    ['5.3.1', '5.2', false],
    ['5.3.1', '4', false],
    ['5.3.10', '5.3.1', false],
    ['5.3.1', 'latest', false],
  ])('%s satisfies %s: %s', (version, spec, expected) => {
    expect(idfMatches(version, spec)).toBe(expected);
  });
});

describe('canOffer and noClaimCause', () => {
  it('needs connected, not draining, a free slot and a matching toolchain', () => {
    expect(canOffer(agent(), 'esp32c3', '5.3')).toBe(true);
    expect(canOffer(agent({ connected: false }), 'esp32c3', undefined)).toBe(false);
    expect(canOffer(agent({ draining: true }), 'esp32c3', undefined)).toBe(false);
    expect(canOffer(agent({ running: 1 }), 'esp32c3', undefined)).toBe(false);
    expect(canOffer(agent(), 'esp32s3', undefined)).toBe(false);
    expect(canOffer(agent(), 'esp32c3', '5.2')).toBe(false);
  });

  it('names the likely cause', () => {
    expect(noClaimCause([], 'esp32c3', undefined, [])).toMatch(/no agent is connected/);
    expect(noClaimCause([agent({ connected: false })], 'esp32c3', undefined, [])).toMatch(
      /no agent is connected/,
    );
    expect(noClaimCause([agent()], 'esp32c3', '5.2', [])).toMatch(
      /none of the 1 connected agents has a toolchain for esp32c3 with ESP-IDF 5.2/,
    );
    expect(noClaimCause([agent({ draining: true })], 'esp32c3', undefined, [])).toMatch(
      /busy or draining: a \(draining\)/,
    );
    expect(noClaimCause([agent()], 'esp32c3', undefined, ['a'])).toMatch(
      /offered to a but none claimed/,
    );
  });
});

describe('validateOrigins', () => {
  it('accepts exact origins', () => {
    expect([...validateOrigins(['https://esphome.cloud', 'http://localhost:5173'])]).toEqual([
      'https://esphome.cloud',
      'http://localhost:5173',
    ]);
  });

  it.each([
    ['esphome.cloud/', /scheme is missing; write https:\/\/esphome.cloud\b/],
    ['https://esphome.cloud/', /remove the trailing slash/],
    ['https://esphome.cloud/app', /path/],
    ['https://esphome.cloud:443', /browsers send this origin as https:\/\/esphome.cloud/],
    ['*', /wildcards/],
  ])('refuses %s', (entry, reason) => {
    expect(() => validateOrigins([entry])).toThrow(reason);
  });
});

describe('SeqSet', () => {
  it('remembers every seq, in or out of order, compactly', () => {
    const s = new SeqSet();
    for (const n of [1, 2, 4, 3, 6]) s.add(n);
    expect([1, 2, 3, 4, 6].every((n) => s.has(n))).toBe(true);
    expect(s.has(5)).toBe(false);
    expect(s.has(7)).toBe(false);
    expect(s.size).toBe(5);
  });
});

describe('liveness', () => {
  it('terminates an agent that answers no ping for two heartbeat intervals', async () => {
    const plane = await DevControlPlane.start({
      agentAuthSecret: SECRET,
      logger: createLogger({ level: 'silent' }),
      heartbeatIntervalMs: 100,
    });
    try {
      const silent = await FakeAgent.open(plane, 'silent', undefined, { autoPong: false });
      const welcome = silent.next('welcome');
      silent.send({
        type: 'hello',
        protocol: 1,
        agent_id: 'silent',
        version: 'v',
        hostname: 'h',
        toolchains: [],
        capacity: { max_jobs: 1, running: 0 },
        jobs: [],
        labels: {},
        draining: false,
      });
      await welcome;
      const gone = plane.waitFor('agent.disconnected', (id) => id === 'silent', 5_000);
      expect((await silent.closed).code).toBe(1006);
      await gone;
    } finally {
      await plane.close();
    }
  });
});
