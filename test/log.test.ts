import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/log/index.js';
import { syslogPriority, withPriorityPrefix } from '../src/log/journald.js';
import { createLogSink } from './helpers/log-sink.js';

describe('logger', () => {
  it('redacts secrets by field and by value', () => {
    const sink = createLogSink();
    const log = createLogger({ destination: sink, secrets: ['hunter2-secret'] });
    log.info({ token: 'abc', headers: { authorization: 'Bearer xyz' } }, 'connecting');
    log.warn({ detail: 'the secret is hunter2-secret here' }, 'oops hunter2-secret');
    expect(sink.raw.join('\n')).not.toContain('hunter2-secret');
    expect(sink.raw.join('\n')).not.toContain('xyz');
    expect(sink.lines[0]!['token']).toBe('[redacted]');
  });

  it('prefixes lines with the sd-daemon priority under journald', () => {
    const sink = createLogSink();
    const log = createLogger({ destination: sink, journald: true, level: 'debug' });
    log.debug('d');
    log.info('i');
    log.warn('w');
    log.error('e');
    expect(sink.raw.map((l) => l.slice(0, 3))).toEqual(['<7>', '<6>', '<4>', '<3>']);
    expect(syslogPriority(60)).toBe(2);
    expect(withPriorityPrefix('{"level":50,"msg":"x"}')).toBe('<3>{"level":50,"msg":"x"}');
  });

  it('writes plain JSON lines otherwise', () => {
    const sink = createLogSink();
    createLogger({ destination: sink }).info({ code: 'AEGIS_ERR_AUTH' }, 'x');
    expect(sink.raw[0]!.startsWith('{')).toBe(true);
    expect(sink.withCode('AEGIS_ERR_AUTH')).toHaveLength(1);
  });
});
