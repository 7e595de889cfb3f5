// The pure parts of src/webrtc: frame parsing, the channel decision, ICE URL conversion, and the
// send queue's room and priority rules against an in-memory channel whose bufferedAmount the
// test drains by hand.
import { describe, expect, it } from 'vitest';
import { parseFrame } from '../src/webrtc/frames.js';
import { iceServerUrls } from '../src/webrtc/ice.js';
import { checkChannel } from '../src/webrtc/router.js';
import { SendQueue, type QueueChannel } from '../src/webrtc/send-queue.js';

describe('parseFrame', () => {
  it('accepts the frames of each channel and nothing else', () => {
    expect(parseFrame('logs', '{"type":"follow","from":5}')).toEqual({
      ok: true,
      frame: { type: 'follow', from: 5 },
    });
    expect(parseFrame('logs', '{"type":"ping"}').ok).toBe(false);
    expect(parseFrame('control', '{"type":"ping","x":1}').ok).toBe(false);
    expect(parseFrame('source', '{"type":"begin","format":"tar","size":1,"sha256":"00"}').ok).toBe(
      false,
    );
    expect(parseFrame('pty', 'nope').ok).toBe(false);
    expect(
      parseFrame(
        'artifacts',
        JSON.stringify({ type: 'get', name: 'a', from: 0, pad: 'x'.repeat(20000) }),
      ),
    ).toMatchObject({
      ok: false,
      reason: expect.stringContaining('larger') as unknown,
    });
  });
});

describe('checkChannel', () => {
  it('names the allowed channels, and refuses a second channel of a label', () => {
    expect(checkChannel('pty', ['control', 'logs', 'artifacts'], [])).toEqual({
      ok: false,
      shown: 'pty',
      message: "Channel pty was rejected: not in this grant's channels (control, logs, artifacts)",
    });
    expect(checkChannel('logs', ['logs'], ['logs']).ok).toBe(false);
    expect(checkChannel('logs', ['logs'], []).ok).toBe(true);
    const odd = checkChannel('x\n"y', ['logs'], []);
    expect(odd.ok).toBe(false);
    if (!odd.ok) expect(odd.shown).toBe(JSON.stringify('x\n"y'));
  });
});

describe('iceServerUrls', () => {
  it('converts STUN and TURN, percent-encoding TURN REST credentials', () => {
    const { urls, skipped } = iceServerUrls([
      { urls: 'stun:stun.example.org:3478' },
      {
        urls: [
          'turn:127.0.0.1:3478?transport=udp',
          'turn:10.0.0.1',
          'turns:t.example.org:5349',
          'turn:h:1?transport=tcp',
        ],
        username: '1700000000:alice',
        credential: 'p@ss/w:rd=',
      },
      { urls: 'turn:third:3478', username: 'u', credential: 'c' },
      { urls: 'http://nope' },
    ]);
    expect(urls).toEqual([
      'stun:stun.example.org:3478',
      'turn:1700000000%3Aalice:p%40ss%2Fw%3Ard%3D@127.0.0.1:3478',
      'turn:1700000000%3Aalice:p%40ss%2Fw%3Ard%3D@10.0.0.1:3478',
    ]);
    expect(skipped).toHaveLength(4);
    expect(skipped.join(' ')).not.toContain('p@ss');
  });
});

class MemChannel implements QueueChannel {
  buffered = 0;
  readonly sent: (string | Buffer)[] = [];
  constructor(readonly label: string) {}
  getLabel() {
    return this.label;
  }
  bufferedAmount() {
    return this.buffered;
  }
  maxMessageSize() {
    return 65536;
  }
  isOpen() {
    return true;
  }
  sendMessage(text: string) {
    this.sent.push(text);
    this.buffered += Buffer.byteLength(text);
    return false;
  }
  sendMessageBinary(data: Buffer) {
    this.sent.push(data);
    this.buffered += data.length;
    return false;
  }
  setBufferedAmountLowThreshold() {}
}

describe('SendQueue', () => {
  it('gives bulk senders the whole budget while no terminal is open', async () => {
    const q = new SendQueue({ budget: 131072, chunkBytes: 16384, pollMs: 1000 });
    const bulk = new MemChannel('artifacts');
    q.attach(bulk);
    const chunk = Buffer.alloc(16384);
    for (let i = 0; i < 8; i++) await q.send(bulk, chunk, 'bulk');
    expect(q.inFlight()).toBe(131072);
    expect(q.stats().waits).toBe(0);
  });

  it('keeps bulk senders below budget − reserve while a terminal is open, interactive first', async () => {
    const q = new SendQueue({ budget: 131072, chunkBytes: 16384, pollMs: 1000 });
    const bulk = new MemChannel('artifacts');
    const pty = new MemChannel('pty');
    q.attach(bulk);
    q.attach(pty, { holdsReserve: true });
    const chunk = Buffer.alloc(16384);
    for (let i = 0; i < 6; i++) await q.send(bulk, chunk, 'bulk');
    expect(q.inFlight()).toBe(98304);
    let bulkDone = false;
    const waiting = q.send(bulk, chunk, 'bulk').then(() => (bulkDone = true));
    // Interactive traffic still finds the reserve.
    await q.send(pty, Buffer.alloc(1000), 'interactive');
    expect(q.inFlight()).toBe(99304);
    expect(bulkDone).toBe(false);
    bulk.buffered = 0;
    q.wake();
    await waiting;
    expect(q.stats()).toMatchObject({ waits: 1, sends: 8 });
    expect(q.stats().maxInFlight).toBeLessThanOrEqual(131072);
  });

  it('refuses oversized binary messages and fails waiters when the channel goes', async () => {
    const q = new SendQueue({ budget: 32768, chunkBytes: 16384, pollMs: 1000 });
    const ch = new MemChannel('logs');
    q.attach(ch);
    await expect(q.send(ch, Buffer.alloc(16385), 'bulk')).rejects.toMatchObject({
      code: 'AEGIS_ERR_INTERNAL',
    });
    ch.buffered = 30000;
    const pending = q.send(ch, Buffer.alloc(16384), 'bulk');
    q.detach(ch);
    await expect(pending).rejects.toMatchObject({ code: 'AEGIS_ERR_CANCELED' });
    q.close();
    await expect(q.send(ch, 'x', 'interactive')).rejects.toMatchObject({
      code: 'AEGIS_ERR_CANCELED',
    });
  });
});
