#!/usr/bin/env python3
# The stand-in's kconfgen: reads the project's Kconfig files (a small subset of the Kconfig
# language), merges Kconfig defaults, sdkconfig.defaults and the existing sdkconfig, and writes
# sdkconfig plus build/config/sdkconfig.h, sdkconfig.cmake and sdkconfig.json.
#
# Kconfig subset: menu "T" / endmenu, config NAME / menuconfig NAME, bool|int|hex|string "prompt",
# prompt "p", default X [if ...], range A B, help (indented text), choice NAME / endchoice,
# comment, if/endif, depends on, select, source (ignored).
import argparse
import json
import os
import shlex
import sys

# The install may be read-only (and is part of a repository): never write __pycache__.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import simcommon  # noqa: E402
from simcommon import CHIPS, FatalError  # noqa: E402


class Option:
    def __init__(self, name, menu):
        self.name = name
        self.menu = menu
        self.type = None
        self.prompt = None
        self.default = None
        self.range = None
        self.help = ''
        self.choice = None  # the Choice this bool belongs to

    def __repr__(self):
        return 'Option(%s, %s)' % (self.name, self.type)


class Choice:
    def __init__(self, name, menu):
        self.name = name
        self.menu = menu
        self.prompt = None
        self.default = None
        self.options = []


def _unquote(s):
    s = s.strip()
    if len(s) >= 2 and s[0] == '"' and s[-1] == '"':
        return s[1:-1].replace('\\"', '"').replace('\\\\', '\\')
    return s


def _strip_if(s):
    """`default 5 if FOO` -> `5` (conditions are not evaluated by the stand-in)."""
    try:
        toks = shlex.split(s, posix=False)
    except ValueError:
        return s.strip()
    if 'if' in toks:
        toks = toks[:toks.index('if')]
    return ' '.join(toks)


def parse_kconfig(path, top_menu=None):
    """Entries in file order: ('menu', title, depth) markers and Option objects."""
    entries = []
    menus = [top_menu] if top_menu else []
    cur = None
    choice = None
    in_help = False
    help_indent = None
    with open(path, encoding='utf-8') as f:
        lines = f.read().split('\n')
    for raw in lines:
        line = raw.expandtabs(8)
        stripped = line.strip()
        if in_help:
            if not stripped:
                if cur is not None and cur.help:
                    cur.help += '\n'
                continue
            indent = len(line) - len(line.lstrip())
            if help_indent is None:
                help_indent = indent
            if indent >= help_indent and help_indent > 0:
                if cur is not None:
                    cur.help += stripped + ' '
                continue
            in_help = False
        if not stripped or stripped.startswith('#'):
            continue
        word, _, rest = stripped.partition(' ')
        rest = rest.strip()
        if word in ('config', 'menuconfig'):
            cur = Option(rest, ' / '.join(m for m in menus if m))
            if choice is not None:
                cur.choice = choice
                choice.options.append(cur)
            entries.append(cur)
        elif word == 'menu':
            menus.append(_unquote(rest))
            entries.append(('menu', menus[-1], len(menus)))
            cur = None
        elif word == 'endmenu':
            if menus:
                menus.pop()
            cur = None
        elif word == 'choice':
            choice = Choice(rest, ' / '.join(m for m in menus if m))
            cur = None
        elif word == 'endchoice':
            choice = None
            cur = None
        elif word in ('bool', 'int', 'hex', 'string', 'tristate'):
            target = cur
            if target is not None:
                target.type = 'bool' if word == 'tristate' else word
                if rest:
                    target.prompt = _unquote(_strip_if(rest))
        elif word == 'prompt':
            if cur is not None:
                cur.prompt = _unquote(_strip_if(rest))
            elif choice is not None:
                choice.prompt = _unquote(_strip_if(rest))
        elif word in ('default', 'def_bool', 'def_int', 'def_hex', 'def_string'):
            val = _strip_if(rest)
            if word.startswith('def_') and cur is not None:
                cur.type = word[4:]
            if cur is not None:
                if cur.default is None:
                    cur.default = _unquote(val)
            elif choice is not None and choice.default is None:
                choice.default = val
        elif word == 'range':
            parts = _strip_if(rest).split()
            if cur is not None and len(parts) >= 2:
                cur.range = (parts[0], parts[1])
        elif word in ('help', '---help---'):
            in_help = True
            help_indent = None
        # depends on / select / imply / visible / comment / if / endif / source / option: ignored
    return entries


def parse_int(text, typ):
    text = str(text).strip()
    if typ == 'hex':
        return int(text, 16)
    return int(text, 0) if text.lower().startswith(('0x', '-0x')) else int(text)


def format_value(opt_type, value):
    """Value as written in sdkconfig (right of `CONFIG_X=`), or None for `is not set`."""
    if opt_type == 'bool':
        return 'y' if value else None
    if opt_type == 'int':
        return str(value)
    if opt_type == 'hex':
        return '0x%x' % value
    return '"%s"' % str(value).replace('\\', '\\\\').replace('"', '\\"')


def coerce(opt, raw):
    """Raw sdkconfig/Kconfig text -> Python value for the option's type; ValueError if invalid."""
    t = opt.type or 'string'
    if t == 'bool':
        r = raw.strip()
        if r in ('y', 'n', ''):
            return r == 'y'
        raise ValueError('%s is not a bool value' % raw)
    if t in ('int', 'hex'):
        v = parse_int(raw, t)
        if opt.range:
            lo, hi = parse_int(opt.range[0], t), parse_int(opt.range[1], t)
            if not lo <= v <= hi:
                raise ValueError('%s is out of range %s..%s' % (raw, opt.range[0], opt.range[1]))
        return v
    return _unquote(raw)


def read_sdkconfig(path):
    """{NAME: raw text} from an sdkconfig/sdkconfig.defaults file; `# CONFIG_X is not set` -> 'n'."""
    values = {}
    if not path or not os.path.isfile(path):
        return values
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.strip()
            if line.startswith('# CONFIG_') and line.endswith(' is not set'):
                values[line[len('# CONFIG_'):-len(' is not set')]] = 'n'
            elif line.startswith('CONFIG_') and '=' in line:
                k, _, v = line.partition('=')
                values[k[len('CONFIG_'):]] = v
    return values


# ESP-IDF's own options that the stand-in knows (menu, name, type, default or callable(target)).
def _idf_options(target, version):
    chip = CHIPS.get(target, {})
    arch = chip.get('arch', 'linux')
    return [
        (None, 'IDF_CMAKE', 'bool', 'y'),
        (None, 'IDF_TOOLCHAIN', 'string', 'gcc'),
        (None, 'IDF_TARGET_ARCH_%s' % arch.upper(), 'bool', 'y'),
        (None, 'IDF_TARGET_ARCH', 'string', arch),
        (None, 'IDF_TARGET', 'string', target),
        (None, 'IDF_INIT_VERSION', 'string', version),
        (None, 'IDF_TARGET_%s' % target.upper(), 'bool', 'y'),
        (None, 'IDF_FIRMWARE_CHIP_ID', 'hex', '0x%04x' % chip.get('chip_id', 0xFFFF)),
        ('Build type', 'APP_BUILD_TYPE_APP_2NDBOOT', 'bool', 'y'),
        ('Bootloader config', 'BOOTLOADER_OFFSET_IN_FLASH', 'hex', '0x%x' % chip.get('bootloader_offset', 0)),
        ('Build type', 'APP_BUILD_GENERATE_BINARIES', 'bool', 'y'),
        ('Build type', 'APP_BUILD_BOOTLOADER', 'bool', 'y'),
        ('Serial flasher config', 'ESPTOOLPY_FLASHMODE', 'string', 'dio'),
        ('Serial flasher config', 'ESPTOOLPY_FLASHFREQ', 'string', chip.get('flash_freq', '80m')),
        ('Serial flasher config', 'ESPTOOLPY_FLASHSIZE', 'string', '2MB'),
        ('Serial flasher config', 'ESPTOOLPY_BEFORE', 'string', 'default_reset'),
        ('Serial flasher config', 'ESPTOOLPY_AFTER', 'string', 'hard_reset'),
        ('Serial flasher config', 'ESPTOOLPY_MONITOR_BAUD', 'int', '115200'),
        ('Partition Table', 'PARTITION_TABLE_SINGLE_APP', 'bool', 'y'),
        ('Partition Table', 'PARTITION_TABLE_FILENAME', 'string', 'partitions_singleapp.csv'),
        ('Partition Table', 'PARTITION_TABLE_OFFSET', 'hex', '0x8000'),
        ('Partition Table', 'PARTITION_TABLE_MD5', 'bool', 'y'),
        ('Compiler options', 'COMPILER_OPTIMIZATION_DEBUG', 'bool', 'y'),
        ('Component config / Log output', 'LOG_DEFAULT_LEVEL', 'int', '3'),
        ('Component config / Log output', 'LOG_MAXIMUM_LEVEL', 'int', '3'),
        ('Component config / Log output', 'LOG_COLORS', 'bool', 'y'),
        ('Component config / FreeRTOS', 'FREERTOS_HZ', 'int', '100'),
        ('Component config / ESP System Settings', 'ESP_CONSOLE_UART_BAUDRATE', 'int', '115200'),
    ]


# Derived choice symbols written next to the string they come from (like ESP-IDF's choices).
_DERIVED = {
    'ESPTOOLPY_FLASHMODE': lambda v: ['ESPTOOLPY_FLASHMODE_%s' % v.upper()],
    'ESPTOOLPY_FLASHFREQ': lambda v: ['ESPTOOLPY_FLASHFREQ_%s' % v.upper()],
    'ESPTOOLPY_FLASHSIZE': lambda v: ['ESPTOOLPY_FLASHSIZE_%s' % v.upper()],
    'LOG_DEFAULT_LEVEL': lambda v: ['LOG_DEFAULT_LEVEL_%s' % {0: 'NONE', 1: 'ERROR', 2: 'WARN', 3: 'INFO', 4: 'DEBUG', 5: 'VERBOSE'}.get(v, 'INFO')],
}

FORCED = ('IDF_CMAKE', 'IDF_TOOLCHAIN', 'IDF_TARGET', 'IDF_TARGET_ARCH', 'IDF_FIRMWARE_CHIP_ID',
          'BOOTLOADER_OFFSET_IN_FLASH')


def find_kconfigs(project_dir, component_dirs):
    """(Kconfig.projbuild files, component Kconfig files) in component order."""
    projbuild, kconfigs = [], []
    for d in component_dirs:
        p = os.path.join(d, 'Kconfig.projbuild')
        if os.path.isfile(p):
            projbuild.append(p)
        k = os.path.join(d, 'Kconfig')
        if os.path.isfile(k):
            kconfigs.append(k)
    return projbuild, kconfigs


class Config:
    """The resolved configuration: ordered sections of (Option, value)."""

    def __init__(self, idf_path, project_dir, component_dirs, target, defaults_files, sdkconfig_path):
        self.idf_path = idf_path
        self.version = '%d.%d.%d' % simcommon.read_version(idf_path)
        self.target = target
        self.sdkconfig_path = sdkconfig_path
        self.project_options = []  # Options from the project's Kconfig files (menuconfig edits these)
        self.project_entries = []  # same plus ('menu', title, depth) markers
        self.idf_options = []
        self.values = {}
        self.warnings = []
        projbuild, kconfigs = find_kconfigs(project_dir, component_dirs)
        for path in projbuild:
            self.project_entries += parse_kconfig(path)
        if kconfigs:
            self.project_entries.append(('menu', 'Component config', 1))
            for path in kconfigs:
                self.project_entries += parse_kconfig(path, top_menu='Component config')
        self.project_options = [e for e in self.project_entries if isinstance(e, Option) and e.type]
        for menu, name, typ, default in _idf_options(target, self.version):
            o = Option(name, menu)
            o.type = typ
            o.default = default
            self.idf_options.append(o)
        self.load(defaults_files, sdkconfig_path)

    def all_options(self):
        return self.idf_options + self.project_options

    def option(self, name):
        for o in self.all_options():
            if o.name == name:
                return o
        return None

    def load(self, defaults_files, sdkconfig_path):
        layered = {}
        for d in defaults_files:
            layered.update(read_sdkconfig(d))
        layered.update(read_sdkconfig(sdkconfig_path))
        for o in self.all_options():
            val = None
            if o.name in layered and o.name not in FORCED:
                try:
                    val = coerce(o, layered[o.name])
                except ValueError as e:
                    self.warnings.append('warning: CONFIG_%s: %s, using the default' % (o.name, e))
            if val is None and o.default is not None:
                try:
                    val = coerce(o, o.default)
                except ValueError:
                    val = None
            if val is None:
                val = {'bool': False, 'int': 0, 'hex': 0}.get(o.type, '')
            self.values[o.name] = val
        # choices: exactly one member set
        seen = set()
        for o in self.project_options:
            ch = o.choice
            if ch is None or id(ch) in seen:
                continue
            seen.add(id(ch))
            chosen = [m for m in ch.options if self.values.get(m.name)]
            pick = chosen[-1].name if chosen else (_strip_if(ch.default or '') or (ch.options[0].name if ch.options else None))
            for m in ch.options:
                self.values[m.name] = m.name == pick

    def set(self, name, value):
        opt = self.option(name)
        if opt is None:
            raise KeyError(name)
        if opt.choice is not None and opt.type == 'bool':
            if not value:
                return  # a choice always has one member selected
            for m in opt.choice.options:
                self.values[m.name] = m is opt
            return
        self.values[name] = value

    # ---- output ----
    def _lines_for(self, opt):
        out = []
        v = self.values[opt.name]
        fv = format_value(opt.type, v)
        out.append('CONFIG_%s=%s' % (opt.name, fv) if fv is not None else '# CONFIG_%s is not set' % opt.name)
        if opt.name in _DERIVED:
            for d in _DERIVED[opt.name](v):
                out.insert(0, 'CONFIG_%s=y' % d)
        return out

    def sdkconfig_text(self):
        lines = [
            '#',
            '# Automatically generated file. DO NOT EDIT.',
            '# Espressif IoT Development Framework (ESP-IDF) %s Project Configuration' % self.version,
            '#',
        ]
        menu = None
        sections = [(o.menu, o) for o in self.idf_options if not (o.menu or '').startswith('Component config')]
        sections += [(o.menu, o) for o in self.project_options]
        sections += [(o.menu, o) for o in self.idf_options if (o.menu or '').startswith('Component config')]
        for m, o in sections:
            if m != menu:
                if menu:
                    lines.append('# end of %s' % menu.split(' / ')[-1])
                if m:
                    lines += ['', '#', '# %s' % m.split(' / ')[-1], '#']
                menu = m
            lines += self._lines_for(o)
        if menu:
            lines.append('# end of %s' % menu.split(' / ')[-1])
        lines.append('')
        return '\n'.join(lines)

    def _defined(self):
        for o in self.all_options():
            for line in self._lines_for(o):
                if line.startswith('CONFIG_'):
                    k, _, v = line.partition('=')
                    yield k, v

    def header_text(self):
        lines = [
            '/*',
            ' * Automatically generated file. DO NOT EDIT.',
            ' * Espressif IoT Development Framework (ESP-IDF) %s Configuration Header' % self.version,
            ' */',
            '#pragma once',
        ]
        for k, v in self._defined():
            lines.append('#define %s %s' % (k, '1' if v == 'y' else v))
        lines.append('')
        return '\n'.join(lines)

    def cmake_text(self):
        lines = ['# Automatically generated file. DO NOT EDIT.']
        for k, v in self._defined():
            if v.startswith('"'):
                v = _unquote(v)
            lines.append('set(%s "%s")' % (k, v.replace('\\', '\\\\').replace('"', '\\"')))
        lines.append('')
        return '\n'.join(lines)

    def json_text(self):
        data = {}
        for o in self.all_options():
            data[o.name] = self.values[o.name]
        return json.dumps(data, indent=4) + '\n'

    def write_all(self, config_dir):
        simcommon.write_if_changed(self.sdkconfig_path, self.sdkconfig_text())
        if config_dir:
            simcommon.write_if_changed(os.path.join(config_dir, 'sdkconfig.h'), self.header_text())
            simcommon.write_if_changed(os.path.join(config_dir, 'sdkconfig.cmake'), self.cmake_text())
            simcommon.write_if_changed(os.path.join(config_dir, 'sdkconfig.json'), self.json_text())


def resolve_target(cache_target, env_target, sdkconfig_path, defaults_files):
    """The build's target, with ESP-IDF's consistency errors."""
    sdk_target = _unquote(read_sdkconfig(sdkconfig_path).get('IDF_TARGET', '')) or None
    if cache_target:
        if sdk_target and sdk_target != cache_target:
            raise FatalError(
                "Target '%s' in sdkconfig '%s' does not match currently selected IDF_TARGET '%s'. "
                'To change the target, clear the build directory and sdkconfig file, and build the '
                'project again.' % (sdk_target, sdkconfig_path, cache_target))
        return cache_target
    if sdk_target:
        if env_target and env_target != sdk_target:
            raise FatalError(
                "Project sdkconfig '%s' was generated for target '%s', but environment variable "
                "IDF_TARGET is set to '%s'. Run 'idf.py set-target %s' to generate new sdkconfig "
                'file for target %s.' % (sdkconfig_path, sdk_target, env_target, env_target, env_target))
        return sdk_target
    if env_target:
        return env_target
    for d in defaults_files:
        t = _unquote(read_sdkconfig(d).get('IDF_TARGET', ''))
        if t:
            return t
    return 'esp32'


def default_files(project_dir, target=None, explicit=None):
    files = []
    if explicit:
        for f in explicit:
            f = f if os.path.isabs(f) else os.path.join(project_dir, f)
            files.append(f)
    else:
        d = os.path.join(project_dir, 'sdkconfig.defaults')
        if os.path.isfile(d):
            files.append(d)
    if target:
        for f in list(files):
            t = '%s.%s' % (f, target)
            if os.path.isfile(t):
                files.append(t)
    return [f for f in files if os.path.isfile(f)]


def main(argv=None):
    ap = argparse.ArgumentParser(prog='confgen_sim.py')
    ap.add_argument('--idf-path', required=True)
    ap.add_argument('--project-dir', required=True)
    ap.add_argument('--sdkconfig', required=True)
    ap.add_argument('--defaults', default='')
    ap.add_argument('--target', default='')
    ap.add_argument('--env-target', default='')
    ap.add_argument('--component-dirs', default='')
    ap.add_argument('--config-dir', required=True)
    a = ap.parse_args(argv)
    explicit = [x for x in a.defaults.split(';') if x] or None
    comps = [x for x in a.component_dirs.split(';') if x]
    try:
        base_defaults = default_files(a.project_dir, None, explicit)
        supported, preview = simcommon.load_targets(a.idf_path)
        target = resolve_target(a.target, a.env_target, a.sdkconfig, base_defaults)
        if target not in supported + preview:
            raise FatalError("IDF_TARGET '%s' is not supported by this ESP-IDF version (%s)."
                             % (target, simcommon.version_string(a.idf_path)))
        cfg = Config(a.idf_path, a.project_dir, comps, target, default_files(a.project_dir, target, explicit), a.sdkconfig)
    except (FatalError, OSError) as e:
        print(str(e), file=sys.stderr)
        return 1
    for w in cfg.warnings:
        print(w, file=sys.stderr)
    cfg.write_all(a.config_dir)
    return 0


if __name__ == '__main__':
    sys.exit(main())
