// Test-side checks of ESP firmware files, written from the format descriptions (no esptool):
// the application/bootloader image format (header, extended header, segments, checksum,
// appended SHA-256) and the partition table binary (32-byte entries, MD5 entry, 0xFF fill).
import crypto from 'node:crypto';

export const ESP_IMAGE_MAGIC = 0xe9;
const CHECKSUM_SEED = 0xef;
const HEADER_LEN = 8;
const EXT_HEADER_LEN = 16;
const SEGMENT_HEADER_LEN = 8;
const MAX_SEGMENTS = 16;

/** esptool's chip ids, as written in the extended header. */
export const CHIP_IDS: Readonly<Record<string, number>> = {
  esp32: 0,
  esp32s2: 2,
  esp32c3: 5,
  esp32s3: 9,
  esp32c2: 12,
  esp32c6: 13,
  esp32h2: 16,
  esp32p4: 18,
  esp32c61: 20,
  esp32c5: 23,
};

export function chipNameOf(chipId: number): string | undefined {
  return Object.keys(CHIP_IDS).find((name) => CHIP_IDS[name] === chipId);
}

export interface EspSegment {
  loadAddr: number;
  length: number;
  /** Offset of the segment's data in the file. */
  offset: number;
}

export interface EspImage {
  chipId: number;
  chipName: string | undefined;
  entry: number;
  flashMode: number;
  flashSizeFreq: number;
  minChipRevFull: number;
  maxChipRevFull: number;
  hashAppended: boolean;
  segments: EspSegment[];
  /** Offset of the checksum byte. */
  checksumOffset: number;
  checksumOk: boolean;
  sha256Ok: boolean;
  /** Bytes after the image (and its hash): a valid image has none. */
  trailingBytes: number;
}

/** Parse an image; throws on structural problems that stop parsing (bad magic, truncation). */
export function parseEspImage(buf: Buffer): EspImage {
  if (buf.length < HEADER_LEN + EXT_HEADER_LEN)
    throw new Error(`image too short (${buf.length} bytes)`);
  const magic = buf.readUInt8(0);
  if (magic !== ESP_IMAGE_MAGIC) {
    throw new Error(`bad magic 0x${magic.toString(16)} (expected 0xe9)`);
  }
  const segmentCount = buf.readUInt8(1);
  if (segmentCount === 0 || segmentCount > MAX_SEGMENTS)
    throw new Error(`implausible segment count ${segmentCount}`);
  const flashMode = buf.readUInt8(2);
  const flashSizeFreq = buf.readUInt8(3);
  const entry = buf.readUInt32LE(4);
  // Extended header: wp_pin u8, spi drive u8[3], chip_id u16, min_chip_rev u8,
  // min_chip_rev_full u16, max_chip_rev_full u16, reserved u8[4], hash_appended u8.
  const chipId = buf.readUInt16LE(12);
  const minChipRevFull = buf.readUInt16LE(15);
  const maxChipRevFull = buf.readUInt16LE(17);
  const hashAppended = buf.readUInt8(23) === 1;

  const segments: EspSegment[] = [];
  let pos = HEADER_LEN + EXT_HEADER_LEN;
  let checksum = CHECKSUM_SEED;
  for (let i = 0; i < segmentCount; i++) {
    if (pos + SEGMENT_HEADER_LEN > buf.length)
      throw new Error(`segment ${i} header runs past the end of the file`);
    const loadAddr = buf.readUInt32LE(pos);
    const length = buf.readUInt32LE(pos + 4);
    const offset = pos + SEGMENT_HEADER_LEN;
    if (offset + length > buf.length) {
      throw new Error(
        `segment ${i} (${length} bytes at 0x${offset.toString(16)}) runs past the end of the file`,
      );
    }
    for (let j = offset; j < offset + length; j++) checksum ^= buf[j]!;
    segments.push({ loadAddr, length, offset });
    pos = offset + length;
  }
  // Zero padding so that the checksum byte is the last byte of a 16-byte block.
  const checksumOffset = pos + (15 - (pos % 16));
  if (checksumOffset >= buf.length) throw new Error('image truncated before its checksum byte');
  const checksumOk = buf.readUInt8(checksumOffset) === (checksum & 0xff);
  let end = checksumOffset + 1;
  let sha256Ok = false;
  if (hashAppended) {
    if (end + 32 > buf.length) throw new Error('image truncated inside its appended SHA-256');
    const digest = crypto.createHash('sha256').update(buf.subarray(0, end)).digest();
    sha256Ok = digest.equals(buf.subarray(end, end + 32));
    end += 32;
  }
  return {
    chipId,
    chipName: chipNameOf(chipId),
    entry,
    flashMode,
    flashSizeFreq,
    minChipRevFull,
    maxChipRevFull,
    hashAppended,
    segments,
    checksumOffset,
    checksumOk,
    sha256Ok,
    trailingBytes: buf.length - end,
  };
}

/** Problems found in an image (empty list: valid). */
export function validateEspImage(buf: Buffer, expectedChip?: string): string[] {
  let img: EspImage;
  try {
    img = parseEspImage(buf);
  } catch (err) {
    return [err instanceof Error ? err.message : String(err)];
  }
  const problems: string[] = [];
  if (expectedChip !== undefined) {
    const want = CHIP_IDS[expectedChip];
    if (want === undefined) problems.push(`unknown expected chip ${expectedChip}`);
    else if (img.chipId !== want) {
      problems.push(
        `chip id ${img.chipId} (${img.chipName ?? 'unknown'}) but expected ${want} (${expectedChip})`,
      );
    }
  } else if (img.chipName === undefined) {
    problems.push(`unknown chip id ${img.chipId}`);
  }
  img.segments.forEach((s, i) => {
    if (s.length % 4 !== 0) problems.push(`segment ${i} length ${s.length} is not a multiple of 4`);
  });
  for (
    let j = img.segments.at(-1)!.offset + img.segments.at(-1)!.length;
    j < img.checksumOffset;
    j++
  ) {
    if (buf[j] !== 0) {
      problems.push(`non-zero padding byte at 0x${j.toString(16)}`);
      break;
    }
  }
  if (img.flashMode > 5) problems.push(`implausible flash mode ${img.flashMode}`);
  if (img.minChipRevFull > img.maxChipRevFull) {
    problems.push(`min chip revision ${img.minChipRevFull} above max ${img.maxChipRevFull}`);
  }
  if (!img.checksumOk) problems.push('checksum mismatch');
  if (!img.hashAppended) problems.push('no SHA-256 appended (hash_appended is 0)');
  else if (!img.sha256Ok) problems.push('appended SHA-256 mismatch');
  if (img.trailingBytes !== 0)
    problems.push(`${img.trailingBytes} unexpected bytes after the image`);
  if (img.entry === 0) problems.push('entry point is 0');
  return problems;
}

export interface PartitionEntry {
  name: string;
  type: number;
  subtype: number;
  offset: number;
  size: number;
  flags: number;
}

export interface PartitionTable {
  entries: PartitionEntry[];
  /** An MD5 entry was present. */
  hasMd5: boolean;
  md5Ok: boolean;
  /** Everything after the MD5 entry is 0xFF. */
  fillOk: boolean;
}

const ENTRY_LEN = 32;
export const PARTITION_TABLE_LEN = 0xc00;

export function parsePartitionTable(buf: Buffer): PartitionTable {
  const entries: PartitionEntry[] = [];
  let pos = 0;
  let hasMd5 = false;
  let md5Ok = false;
  while (pos + ENTRY_LEN <= buf.length) {
    const m0 = buf[pos];
    const m1 = buf[pos + 1];
    if (m0 === 0xaa && m1 === 0x50) {
      const rawName = buf.subarray(pos + 12, pos + 28);
      const nul = rawName.indexOf(0);
      entries.push({
        type: buf.readUInt8(pos + 2),
        subtype: buf.readUInt8(pos + 3),
        offset: buf.readUInt32LE(pos + 4),
        size: buf.readUInt32LE(pos + 8),
        name: rawName.subarray(0, nul === -1 ? rawName.length : nul).toString('utf8'),
        flags: buf.readUInt32LE(pos + 28),
      });
      pos += ENTRY_LEN;
      continue;
    }
    if (m0 === 0xeb && m1 === 0xeb) {
      hasMd5 = true;
      const digest = crypto.createHash('md5').update(buf.subarray(0, pos)).digest();
      md5Ok = digest.equals(buf.subarray(pos + 16, pos + 32));
      pos += ENTRY_LEN;
    }
    break;
  }
  let fillOk = true;
  for (let i = pos; i < buf.length; i++) {
    if (buf[i] !== 0xff) {
      fillOk = false;
      break;
    }
  }
  return { entries, hasMd5, md5Ok, fillOk };
}
