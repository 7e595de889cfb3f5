#!/usr/bin/env python3
# The stand-in's image tools, run by ninja as build steps:
#   elf2image        <project>.elf -> <project>.bin (esptool firmware image format)
#   bootloader-step  the always-run "build step for 'bootloader'": bootloader.elf -> bootloader.bin,
#                    size check, and the IDF_SIM_EXTRA_* test knobs
#   partition-table  partitions CSV -> partition-table.bin (ESP partition table binary format)
#   check-size       app size against the smallest app partition
import argparse
import hashlib
import os
import struct
import sys
import time

# The install may be read-only (and is part of a repository): never write __pycache__.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import simcommon  # noqa: E402
from simcommon import CHIPS, FLASH_MODES, FLASH_SIZES  # noqa: E402

ESP_IMAGE_MAGIC = 0xE9
ESP_CHECKSUM_MAGIC = 0xEF
APP_DESC_MAGIC = 0xABCD5432
DEFAULT_APP_SIZE = 160 * 1024
DEFAULT_BOOTLOADER_SIZE = 20 * 1024


def esptool_version(idf_path):
    try:
        minor = simcommon.read_version(idf_path)[1]
    except Exception:
        minor = 3
    return '4.8.1' if minor >= 3 else '4.7.0'


# ---------------------------------------------------------------- ELF
def elf_sections(data):
    """{name: (addr, bytes)} for the allocated sections of an ELF32/ELF64 little-endian file."""
    if data[:4] != b'\x7fELF':
        raise ValueError('not an ELF file')
    is64 = data[4] == 2
    if is64:
        e_shoff, = struct.unpack_from('<Q', data, 0x28)
        e_shentsize, e_shnum, e_shstrndx = struct.unpack_from('<HHH', data, 0x3A)
        entry, = struct.unpack_from('<Q', data, 0x18)
    else:
        e_shoff, = struct.unpack_from('<I', data, 0x20)
        e_shentsize, e_shnum, e_shstrndx = struct.unpack_from('<HHH', data, 0x2E)
        entry, = struct.unpack_from('<I', data, 0x18)
    heads = []
    for i in range(e_shnum):
        off = e_shoff + i * e_shentsize
        if is64:
            name, typ, _flags, addr, offset, size = struct.unpack_from('<IIQQQQ', data, off)
        else:
            name, typ, _flags, addr, offset, size = struct.unpack_from('<IIIIII', data, off)
        heads.append((name, typ, addr, offset, size))
    strtab = heads[e_shstrndx] if e_shstrndx < len(heads) else None
    out = {}
    for name, typ, addr, offset, size in heads:
        if strtab is None:
            break
        s = strtab[3] + name
        end = data.index(b'\0', s)
        sname = data[s:end].decode('ascii', 'replace')
        body = b'' if typ == 8 else data[offset:offset + size]  # SHT_NOBITS
        out[sname] = (addr, body)
    return out, entry


def _pad4(b):
    return b + b'\0' * (-len(b) % 4)


def _fill(seed, size):
    """Deterministic filler of `size` bytes: the seed repeated (real images are mostly code)."""
    if size <= 0:
        return b''
    if not seed:
        seed = b'\0'
    reps = size // len(seed) + 1
    return (seed * reps)[:size]


def app_desc(project_name, project_ver, idf_ver, elf_sha):
    def s(text, n):
        return text.encode('utf-8')[:n - 1].ljust(n, b'\0')
    desc = struct.pack('<II8x', APP_DESC_MAGIC, 0)
    desc += s(project_ver, 32) + s(project_name, 32) + s('00:00:00', 16) + s('Jan  1 2024', 16)
    desc += s(idf_ver, 32) + elf_sha
    desc += struct.pack('<HHB3x', 0, 0, 16)
    return desc.ljust(256, b'\0')


def _xor_all(data):
    # XOR of all bytes, fast: fold as big integers of 8-byte words.
    acc = 0
    n = len(data) - len(data) % 8
    if n:
        for w in struct.unpack('<%dQ' % (n // 8), data[:n]):
            acc ^= w
    x = 0
    for i in range(8):
        x ^= (acc >> (8 * i)) & 0xFF
    for b in data[n:]:
        x ^= b
    return x


def build_image_fast(chip_name, segments, entry, flash_mode, flash_freq, flash_size):
    chip = CHIPS[chip_name]
    freq = chip['freq_codes'].get(flash_freq.lower(), 0)
    size_code = FLASH_SIZES.get(flash_size.upper(), 1)
    out = bytearray(struct.pack('<BBBBI', ESP_IMAGE_MAGIC, len(segments), FLASH_MODES.get(flash_mode, 2),
                                (size_code << 4) | freq, entry))
    out += struct.pack('<BBBBHBHH4xB', 0xEE, 0, 0, 0, chip['chip_id'], chip['min_rev'] // 100,
                       chip['min_rev'], chip['max_rev'], 1)
    checksum = ESP_CHECKSUM_MAGIC
    for addr, body in segments:
        body = _pad4(body)
        out += struct.pack('<II', addr, len(body))
        out += body
        checksum ^= _xor_all(body)
    out += b'\0' * (15 - len(out) % 16)
    out.append(checksum & 0xFF)
    out += hashlib.sha256(out).digest()
    return bytes(out)


def app_segments(chip_name, elf, project_name, project_ver, idf_ver, total):
    data = open(elf, 'rb').read()
    secs, e_entry = elf_sections(data)
    chip = CHIPS[chip_name]
    text_addr, text = secs.get('.text', (0, data))
    rodata = secs.get('.rodata', (0, b''))[1]
    dat = secs.get('.data', (0, b''))[1] + secs.get('.init_array', (0, b''))[1]
    desc = app_desc(project_name, project_ver, idf_ver, hashlib.sha256(data).digest())
    drom = _pad4(desc + rodata)
    dram = _pad4(dat or b'\0' * 4)
    iram = _pad4(text[:0x1000] or b'\0' * 4)
    fixed = len(drom) + len(dram) + len(iram) + 4 * 8 + 24 + 16 + 32
    irom = _pad4(_fill(text, max(len(text), total - fixed)))
    entry = chip['iram'] + ((e_entry - text_addr) % len(iram) & ~3 if text_addr else 0)
    segs = [(chip['drom'], drom), (chip['dram'], dram), (chip['iram'], iram), (chip['irom'], irom)]
    return segs, entry


def bootloader_segments(chip_name, elf, total):
    data = open(elf, 'rb').read()
    secs, _ = elf_sections(data)
    chip = CHIPS[chip_name]
    text = secs.get('.text', (0, data))[1]
    dram = _pad4(secs.get('.rodata', (0, b''))[1] + secs.get('.data', (0, b''))[1] or b'\0' * 4)
    fixed = len(dram) + 2 * 8 + 24 + 16 + 32
    iram = _pad4(_fill(text, max(len(text), total - fixed)))
    iram_addr = chip['iram'] + 0x4E000
    return [(chip['dram'] + 0x4B000, dram), (iram_addr, iram)], iram_addr + 0x40


def cmd_elf2image(a):
    print('esptool.py v%s' % esptool_version(a.idf_path))
    print('Creating %s image...' % a.chip)
    total = int(os.environ.get('IDF_SIM_APP_SIZE', '') or DEFAULT_APP_SIZE)
    segs, entry = app_segments(a.chip, a.elf, a.project_name, a.project_ver, a.idf_ver, total)
    img = build_image_fast(a.chip, segs, entry, a.flash_mode, a.flash_freq, a.flash_size)
    print('Merged 2 ELF sections')
    simcommon.write_if_changed(a.output, img)
    print('Successfully created %s image.' % a.chip)
    print('Generated %s' % os.path.abspath(a.output))
    return 0


# ---------------------------------------------------------------- partition table
TYPES = {'app': 0x00, 'data': 0x01}
SUBTYPES = {
    0x00: {'factory': 0x00, 'test': 0x20, **{'ota_%d' % i: 0x10 + i for i in range(16)}},
    0x01: {'ota': 0x00, 'phy': 0x01, 'nvs': 0x02, 'coredump': 0x03, 'nvs_keys': 0x04, 'efuse': 0x05,
           'undefined': 0x06, 'esphttpd': 0x80, 'fat': 0x81, 'spiffs': 0x82, 'littlefs': 0x83},
}
FLAGS = {'encrypted': 1, 'readonly': 2}
TABLE_SIZE = 0xC00


def parse_size(text):
    t = text.strip().upper()
    if not t:
        return None
    mult = 1
    if t.endswith('K'):
        mult, t = 1024, t[:-1]
    elif t.endswith('M'):
        mult, t = 1024 * 1024, t[:-1]
    return int(t, 0) * mult


def fmt_size(n):
    if n % (1024 * 1024) == 0:
        return '%dM' % (n // (1024 * 1024))
    if n % 1024 == 0:
        return '%dK' % (n // 1024)
    return '0x%x' % n


def read_partitions(csv_path, table_offset):
    parts = []
    offset = table_offset + 0x1000
    with open(csv_path, encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if not line:
                continue
            cols = [c.strip() for c in line.split(',')] + [''] * 6
            name, ptype, subtype, off, size, flags = cols[:6]
            t = TYPES[ptype] if ptype in TYPES else int(ptype, 0)
            st = SUBTYPES.get(t, {}).get(subtype)
            if st is None:
                st = int(subtype, 0) if subtype else 0
            align = 0x10000 if t == 0 else 0x1000
            o = parse_size(off)
            if o is None:
                o = (offset + align - 1) // align * align
            sz = parse_size(size)
            fl = 0
            for flag in filter(None, (x.strip() for x in flags.split(':'))):
                fl |= FLAGS.get(flag, 0)
            parts.append({'name': name, 'type': t, 'subtype': st, 'offset': o, 'size': sz, 'flags': fl,
                          'type_s': ptype, 'subtype_s': subtype, 'flags_s': flags})
            offset = o + sz
    return parts


def partition_table_bin(parts):
    body = b''
    for p in parts:
        body += struct.pack('<2sBBII16sI', b'\xAA\x50', p['type'], p['subtype'], p['offset'], p['size'],
                            p['name'].encode('utf-8')[:16], p['flags'])
    body += b'\xEB\xEB' + b'\xFF' * 14 + hashlib.md5(body).digest()
    return body + b'\xFF' * (TABLE_SIZE - len(body))


def cmd_partition_table(a):
    offset = int(a.offset, 0)
    parts = read_partitions(a.csv, offset)
    flash = parse_size(a.flash_size.upper().replace('B', ''))
    for p in parts:
        if flash and p['offset'] + p['size'] > flash:
            print('Partitions tables occupies %.1fMB of flash (%d bytes) which does not fit in configured '
                  'flash size %s. Change the flash size in menuconfig under the \'Serial Flasher Config\' menu.'
                  % ((p['offset'] + p['size']) / 1048576.0, p['offset'] + p['size'], a.flash_size), file=sys.stderr)
            return 2
    simcommon.write_if_changed(a.output, partition_table_bin(parts))
    print('Partition table binary generated. Contents:')
    print('*' * 79)
    print('# ESP-IDF Partition Table')
    print('# Name, Type, SubType, Offset, Size, Flags')
    for p in parts:
        print('%s,%s,%s,0x%x,%s,%s' % (p['name'], p['type_s'], p['subtype_s'], p['offset'], fmt_size(p['size']),
                                       p['flags_s']))
    print('*' * 79)
    return 0


def smallest_app_partition(table):
    sizes = []
    for i in range(0, len(table) - 31, 32):
        e = table[i:i + 32]
        if e[:2] != b'\xAA\x50':
            break
        _m, t, _st, _o, size, _n, _f = struct.unpack('<2sBBII16sI', e)
        if t == 0:
            sizes.append(size)
    return min(sizes) if sizes else 0


def cmd_check_size(a):
    table = open(a.partition_table, 'rb').read()
    size = os.path.getsize(a.binary)
    name = os.path.basename(a.binary)
    part = smallest_app_partition(table)
    if size > part:
        print('Error: app partition is too small for binary %s size 0x%x:' % (name, size), file=sys.stderr)
        print("  - Part 'factory' 0/0 @ 0x10000 size 0x%x (overflow 0x%x)" % (part, size - part), file=sys.stderr)
        return 2
    free = part - size
    print('%s binary size 0x%x bytes. Smallest app partition is 0x%x bytes. 0x%x bytes (%d%%) free.'
          % (name, size, part, free, round(100.0 * free / part)))
    return 0


# ---------------------------------------------------------------- bootloader step and knobs
def extra_seconds(seconds):
    """IDF_SIM_EXTRA_SECONDS: keep this build step (a child of ninja) busy, reporting progress."""
    start = time.monotonic()
    n = 0
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= seconds:
            break
        n += 1
        print('idf_sim: extra build work %.1f/%g s' % (elapsed, seconds), flush=True)
        time.sleep(min(0.5, max(0.0, seconds - elapsed)))
    print('idf_sim: extra build work done (%g s)' % seconds, flush=True)


def extra_output(mib, source_file):
    """IDF_SIM_EXTRA_OUTPUT_MB: write that many MiB of warning-like lines, in large blocks."""
    total = int(mib * 1024 * 1024)
    written = 0
    line_no = 0
    fd = sys.stdout.fileno()
    sys.stdout.flush()
    while written < total:
        lines = []
        size = 0
        while size < 256 * 1024 and written + size < total:
            line_no += 1
            s = ("%s:%d:5: warning: unused variable 'sim_extra_%d' [-Wunused-variable]\n"
                 % (source_file, line_no, line_no))
            lines.append(s)
            size += len(s)
        block = ''.join(lines).encode('utf-8')
        view = memoryview(block)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        written += len(block)


def cmd_bootloader_step(a):
    boot_dir = os.path.dirname(os.path.abspath(a.output))
    total = DEFAULT_BOOTLOADER_SIZE
    segs, entry = bootloader_segments(a.chip, a.elf, total)
    img = build_image_fast(a.chip, segs, entry, a.flash_mode, a.flash_freq, a.flash_size)
    steps = []
    try:
        same = open(a.output, 'rb').read() == img
    except OSError:
        same = False
    check = ('cd %s/esp-idf/esptool_py && %s %s/components/partition_table/check_sizes.py --offset %s bootloader '
             '%s %s' % (boot_dir, sys.executable, a.idf_path, a.partition_offset, a.bootloader_offset,
                        os.path.abspath(a.output)))
    if not same:
        steps.append('Generating binary image from built executable')
    steps.append(check)
    for i, s in enumerate(steps, 1):
        print('[%d/%d] %s' % (i, len(steps), s))
        if s is not check:
            print('esptool.py v%s' % esptool_version(a.idf_path))
            print('Creating %s image...' % a.chip)
            print('Merged 1 ELF section')
            simcommon.write_if_changed(a.output, img)
            print('Successfully created %s image.' % a.chip)
            print('Generated %s' % os.path.abspath(a.output))
    avail = int(a.partition_offset, 0) - int(a.bootloader_offset, 0)
    free = avail - len(img)
    print('Bootloader binary size 0x%x bytes. 0x%x bytes (%d%%) free.' % (len(img), free, round(100.0 * free / avail)))
    sys.stdout.flush()
    secs = os.environ.get('IDF_SIM_EXTRA_SECONDS', '').strip()
    if secs:
        extra_seconds(float(secs))
    mib = os.environ.get('IDF_SIM_EXTRA_OUTPUT_MB', '').strip()
    if mib:
        extra_output(float(mib), a.source_file or 'main/main.c')
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog='esptool_sim.py')
    sub = ap.add_subparsers(dest='cmd', required=True)

    def flash_opts(p):
        p.add_argument('--idf-path', default=os.environ.get('IDF_PATH', ''))
        p.add_argument('--chip', required=True)
        p.add_argument('--flash-mode', default='dio')
        p.add_argument('--flash-freq', default='80m')
        p.add_argument('--flash-size', default='2MB')

    p = sub.add_parser('elf2image')
    flash_opts(p)
    p.add_argument('--project-name', default='app')
    p.add_argument('--project-ver', default='1')
    p.add_argument('--idf-ver', default='')
    p.add_argument('-o', '--output', required=True)
    p.add_argument('elf')
    p = sub.add_parser('bootloader-step')
    flash_opts(p)
    p.add_argument('--partition-offset', default='0x8000')
    p.add_argument('--bootloader-offset', default='0x0')
    p.add_argument('--source-file', default='')
    p.add_argument('-o', '--output', required=True)
    p.add_argument('elf')
    p = sub.add_parser('partition-table')
    p.add_argument('--offset', default='0x8000')
    p.add_argument('--flash-size', default='2MB')
    p.add_argument('-o', '--output', required=True)
    p.add_argument('csv')
    p = sub.add_parser('check-size')
    p.add_argument('--partition-table', required=True)
    p.add_argument('binary')
    a = ap.parse_args(argv)
    handler = {'elf2image': cmd_elf2image, 'bootloader-step': cmd_bootloader_step,
               'partition-table': cmd_partition_table, 'check-size': cmd_check_size}[a.cmd]
    try:
        return handler(a)
    except BrokenPipeError:
        return 1


if __name__ == '__main__':
    sys.exit(main())
