# Shared facts of the ESP-IDF stand-in: version and target lists of an install, per-chip data
# (image chip ids, flash offsets, plausible memory map), and small output helpers.
import os
import re
import runpy
import sys


class FatalError(Exception):
    """An error idf.py reports (in red on a terminal) before exiting with code 2."""


def read_version(idf_path):
    """(major, minor, patch) from tools/cmake/version.cmake, the same file the agent parses."""
    with open(os.path.join(idf_path, 'tools', 'cmake', 'version.cmake'), encoding='utf-8') as f:
        text = f.read()
    parts = []
    for name in ('MAJOR', 'MINOR', 'PATCH'):
        m = re.search(r'set\s*\(\s*IDF_VERSION_%s\s+(\d+)\s*\)' % name, text)
        if not m:
            raise FatalError('%s/tools/cmake/version.cmake has no IDF_VERSION_%s' % (idf_path, name))
        parts.append(int(m.group(1)))
    return tuple(parts)


def version_string(idf_path):
    return 'v%d.%d.%d' % read_version(idf_path)


def load_targets(idf_path):
    """(SUPPORTED_TARGETS, PREVIEW_TARGETS) of this install."""
    consts = runpy.run_path(os.path.join(idf_path, 'tools', 'idf_py_actions', 'constants.py'))
    return list(consts['SUPPORTED_TARGETS']), list(consts['PREVIEW_TARGETS'])


# Flash frequency -> low nibble of the image header's speed/size byte, per chip family.
_FREQ_STD = {'80m': 0xF, '40m': 0x0, '26m': 0x1, '20m': 0x2}
_FREQ_C2 = {'60m': 0xF, '30m': 0x0, '20m': 0x1, '15m': 0x2}
_FREQ_C6 = {'80m': 0x0, '40m': 0x0, '20m': 0x2}
_FREQ_H2 = {'48m': 0xF, '24m': 0x0, '16m': 0x1, '12m': 0x2}

FLASH_SIZES = {'1MB': 0, '2MB': 1, '4MB': 2, '8MB': 3, '16MB': 4, '32MB': 5, '64MB': 6, '128MB': 7}
FLASH_MODES = {'qio': 0, 'qout': 1, 'dio': 2, 'dout': 3}


def _chip(chip_id, arch, boot, freq, freqs, min_rev, max_rev, drom, dram, iram, irom):
    return {
        'chip_id': chip_id, 'arch': arch, 'bootloader_offset': boot, 'flash_freq': freq,
        'freq_codes': freqs, 'min_rev': min_rev, 'max_rev': max_rev,
        'drom': drom, 'dram': dram, 'iram': iram, 'irom': irom,
    }


CHIPS = {
    'esp32': _chip(0, 'xtensa', 0x1000, '40m', _FREQ_STD, 0, 399, 0x3F400020, 0x3FFB0000, 0x40080000, 0x400D0020),
    'esp32s2': _chip(2, 'xtensa', 0x1000, '80m', _FREQ_STD, 0, 199, 0x3F000020, 0x3FFBE000, 0x40022000, 0x40080020),
    'esp32c3': _chip(5, 'riscv', 0x0, '80m', _FREQ_STD, 3, 199, 0x3C000020, 0x3FC8A000, 0x40380000, 0x42000020),
    'esp32s3': _chip(9, 'xtensa', 0x0, '80m', _FREQ_STD, 0, 99, 0x3C000020, 0x3FC88000, 0x40374000, 0x42000020),
    'esp32c2': _chip(12, 'riscv', 0x0, '60m', _FREQ_C2, 100, 199, 0x3C000020, 0x3FCA0000, 0x40380000, 0x42000020),
    'esp32c6': _chip(13, 'riscv', 0x0, '80m', _FREQ_C6, 0, 99, 0x42800020, 0x40820000, 0x40800000, 0x42000020),
    'esp32h2': _chip(16, 'riscv', 0x0, '48m', _FREQ_H2, 0, 99, 0x42800020, 0x40820000, 0x40800000, 0x42000020),
    'esp32p4': _chip(18, 'riscv', 0x2000, '80m', _FREQ_STD, 0, 99, 0x40000020, 0x4FF10000, 0x4FF00000, 0x40040020),
    'esp32c5': _chip(23, 'riscv', 0x2000, '80m', _FREQ_STD, 0, 99, 0x42800020, 0x40820000, 0x40800000, 0x42000020),
    'esp32c61': _chip(20, 'riscv', 0x0, '80m', _FREQ_STD, 0, 99, 0x42800020, 0x40820000, 0x40800000, 0x42000020),
}

TOOLPREFIX = {'xtensa': 'xtensa-esp32-elf-', 'riscv': 'riscv32-esp-elf-'}


def toolprefix(target):
    chip = CHIPS.get(target)
    if chip is None:
        return ''
    if chip['arch'] == 'xtensa':
        return 'xtensa-%s-elf-' % target
    return TOOLPREFIX['riscv']


def use_color(stream):
    return stream.isatty() and os.environ.get('TERM', '') != 'dumb'


def _colored(code, text, stream):
    if use_color(stream):
        return '\033[%sm%s\033[0m' % (code, text)
    return text


def red_print(text):
    print(_colored('0;31', text, sys.stderr), file=sys.stderr, flush=True)


def yellow_print(text, stream=None):
    stream = stream or sys.stderr
    print(_colored('0;33', text, stream), file=stream, flush=True)


def green_print(text):
    print(_colored('0;32', text, sys.stdout), flush=True)


def write_if_changed(path, data):
    """Write bytes/str only when they differ, so ninja and cmake don't see a needless change."""
    if isinstance(data, str):
        data = data.encode('utf-8')
    try:
        with open(path, 'rb') as f:
            if f.read() == data:
                return False
    except OSError:
        pass
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = '%s.tmp%d' % (path, os.getpid())
    with open(tmp, 'wb') as f:
        f.write(data)
    os.replace(tmp, path)
    return True
