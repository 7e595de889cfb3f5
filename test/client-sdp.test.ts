import { describe, expect, it } from 'vitest';
import { splitCandidates } from '../src/client/sdp.js';

describe('splitCandidates', () => {
  it('takes every candidate out of the offer with its section mid, wherever a=mid stands', () => {
    const sdp = [
      'v=0',
      'm=application 9 UDP/DTLS/SCTP webrtc-datachannel',
      'a=candidate:1 1 UDP 2122317823 127.0.0.1 50000 typ host',
      'a=mid:0',
      'a=candidate:2 1 UDP 2122317822 10.0.0.2 50001 typ host',
      'a=end-of-candidates',
      'm=application 9 UDP/DTLS/SCTP webrtc-datachannel',
      'a=mid:data2',
      'a=candidate:3 1 UDP 1 192.0.2.1 3478 typ relay raddr 0.0.0.0 rport 0',
      '',
    ].join('\r\n');
    const split = splitCandidates(sdp);
    expect(split.sdp).not.toContain('candidate');
    expect(split.sdp).toContain('a=mid:data2');
    expect(split.candidates).toEqual([
      { candidate: 'candidate:1 1 UDP 2122317823 127.0.0.1 50000 typ host', mid: '0' },
      { candidate: 'candidate:2 1 UDP 2122317822 10.0.0.2 50001 typ host', mid: '0' },
      {
        candidate: 'candidate:3 1 UDP 1 192.0.2.1 3478 typ relay raddr 0.0.0.0 rport 0',
        mid: 'data2',
      },
    ]);
  });
});

describe('relayCandidatesOnly', () => {
  it("keeps only the agent's relay candidates, so a relay-only client cannot go direct", async () => {
    const { relayCandidatesOnly } = await import('../src/client/connection.js');
    const answer = [
      'a=candidate:1 1 UDP 2122317823 127.0.0.1 50000 typ host',
      'a=candidate:2 1 UDP 1686052607 203.0.113.7 50000 typ srflx raddr 10.0.0.2 rport 50000',
      'a=candidate:3 1 UDP 16777215 127.0.0.2 21305 typ relay raddr 0.0.0.0 rport 0',
      'a=mid:0',
    ].join('\r\n');
    expect(relayCandidatesOnly(answer).split('\r\n')).toEqual([
      'a=candidate:3 1 UDP 16777215 127.0.0.2 21305 typ relay raddr 0.0.0.0 rport 0',
      'a=mid:0',
    ]);
  });
});
