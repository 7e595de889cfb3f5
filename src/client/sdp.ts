// Splitting the candidates out of a complete offer. The reference client sends its offer
// without them and trickles them once it has applied the answer: libdatachannel starts DTLS
// as soon as ICE connects, and an agent that already had our candidates could connect ICE
// before our answer (and with it the agent's certificate fingerprint) arrived — the handshake
// then fails with "DTLS alert: unknown CA". Without our candidates, the agent's ICE checks
// can only start after we hold its answer.

export interface SplitOffer {
  sdp: string;
  candidates: { candidate: string; mid: string }[];
}

export function splitCandidates(sdp: string): SplitOffer {
  const kept: string[] = [];
  const candidates: { candidate: string; mid: string }[] = [];
  // a=mid may come before or after a section's candidates: resolve it when the section ends.
  let section: string[] = [];
  let mid = '0';
  const endSection = () => {
    for (const candidate of section) candidates.push({ candidate, mid });
    section = [];
    mid = '0';
  };
  for (const line of sdp.split(/\r?\n/)) {
    if (line.startsWith('m=')) endSection();
    const m = /^a=mid:(.+)$/.exec(line);
    if (m?.[1] !== undefined) mid = m[1];
    if (line.startsWith('a=candidate:')) section.push(line.slice(2));
    else if (line !== 'a=end-of-candidates') kept.push(line);
  }
  endSection();
  return { sdp: kept.join('\r\n'), candidates };
}
