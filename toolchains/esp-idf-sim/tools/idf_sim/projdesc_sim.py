#!/usr/bin/env python3
# Run by project.cmake at configure time: writes the build directory's description files the way
# ESP-IDF v5 does: project_description.json, flasher_args.json, flash_args, flash_project_args,
# flash_app_args, flash_bootloader_args.
import argparse
import json
import os
import sys

# The install may be read-only (and is part of a repository): never write __pycache__.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import confgen_sim  # noqa: E402
import esptool_sim  # noqa: E402
import simcommon  # noqa: E402
from simcommon import CHIPS  # noqa: E402

COMMON_REQS = ['cxx', 'newlib', 'freertos', 'esp_hw_support', 'heap', 'log', 'soc', 'hal', 'esp_rom',
               'esp_common', 'esp_system']


def read_components(path):
    comps = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.rstrip('\n')
            if not line:
                continue
            cols = line.split('\t') + [''] * 8
            name, cdir, lib, reqs, priv, srcs, incs, kind = cols[:8]

            def lst(x):
                return [i for i in x.split(';') if i]
            comps.append({'name': name, 'dir': cdir, 'lib': lib, 'reqs': lst(reqs), 'priv_reqs': lst(priv),
                          'sources': lst(srcs), 'include_dirs': lst(incs), 'kind': kind})
    return comps


def main(argv=None):
    ap = argparse.ArgumentParser(prog='projdesc_sim.py')
    for opt in ('--idf-path', '--project-dir', '--project-name', '--build-dir', '--sdkconfig', '--target',
                '--components-file', '--c-compiler', '--partition-csv'):
        ap.add_argument(opt, required=True)
    ap.add_argument('--project-ver', default='1')
    ap.add_argument('--defaults', default='')
    a = ap.parse_args(argv)

    idf_version = simcommon.version_string(a.idf_path)
    cfg = confgen_sim.read_sdkconfig(a.sdkconfig)

    def conf(name, default):
        return confgen_sim._unquote(cfg.get(name, default))

    mode = conf('ESPTOOLPY_FLASHMODE', 'dio')
    freq = conf('ESPTOOLPY_FLASHFREQ', CHIPS.get(a.target, {}).get('flash_freq', '80m'))
    size = conf('ESPTOOLPY_FLASHSIZE', '2MB')
    before = conf('ESPTOOLPY_BEFORE', 'default_reset')
    after = conf('ESPTOOLPY_AFTER', 'hard_reset')
    pt_offset = int(conf('PARTITION_TABLE_OFFSET', '0x8000'), 16)
    comps = read_components(a.components_file)
    b = a.build_dir
    chip = CHIPS.get(a.target)
    app_bin = '%s.bin' % a.project_name

    desc = {
        'version': '1.2' if simcommon.read_version(a.idf_path)[:2] >= (5, 3) else '1.1',
        'project_name': a.project_name,
        'project_version': a.project_ver,
        'project_path': a.project_dir,
        'idf_path': a.idf_path,
        'build_dir': b,
        'config_file': a.sdkconfig,
        'config_defaults': a.defaults,
        'bootloader_elf': os.path.join(b, 'bootloader', 'bootloader.elf') if chip else '',
        'app_elf': '%s.elf' % a.project_name,
        'app_bin': app_bin if chip else '',
        'build_type': 'flash_app',
        'git_revision': idf_version,
        'target': a.target,
        'rev': str(chip['min_rev']) if chip else '',
        'min_rev': str(chip['min_rev']) if chip else '',
        'max_rev': str(chip['max_rev']) if chip else '',
        'phy_data_partition': '',
        'monitor_baud': conf('ESPTOOLPY_MONITOR_BAUD', '115200'),
        'monitor_toolprefix': simcommon.toolprefix(a.target),
        'c_compiler': a.c_compiler,
        'config_environment': {
            'COMPONENT_KCONFIGS': ';'.join(os.path.join(c['dir'], 'Kconfig') for c in comps
                                           if os.path.isfile(os.path.join(c['dir'], 'Kconfig'))),
            'COMPONENT_KCONFIGS_PROJBUILD': ';'.join(os.path.join(c['dir'], 'Kconfig.projbuild') for c in comps
                                                     if os.path.isfile(os.path.join(c['dir'], 'Kconfig.projbuild'))),
        },
        'common_component_reqs': COMMON_REQS,
        'build_components': [c['name'] for c in comps],
        'build_component_paths': [c['dir'] for c in comps],
        'build_component_info': {
            c['name']: {
                'alias': 'idf::%s' % c['name'],
                'target': '___idf_%s' % c['name'],
                'prefix': 'idf',
                'dir': c['dir'],
                'type': 'LIBRARY' if c['sources'] else 'CONFIG_ONLY',
                'lib': c['lib'],
                'reqs': c['reqs'],
                'priv_reqs': c['priv_reqs'],
                'managed_reqs': [],
                'managed_priv_reqs': [],
                'file': os.path.join(b, 'esp-idf', c['name'], 'lib%s.a' % c['name']) if c['sources'] else '',
                'sources': c['sources'],
                'include_dirs': c['include_dirs'],
            } for c in comps
        },
        'debug_prefix_map_gdbinit': '',
    }
    simcommon.write_if_changed(os.path.join(b, 'project_description.json'), json.dumps(desc, indent=4) + '\n')

    if chip is None:  # linux: a host executable, nothing to flash
        return 0
    boot_off = '0x%x' % chip['bootloader_offset']
    pt_off = '0x%x' % pt_offset
    parts = esptool_sim.read_partitions(a.partition_csv, pt_offset)
    apps = [p for p in parts if p['type'] == 0]
    app_off = '0x%x' % (apps[0]['offset'] if apps else 0x10000)
    files = [(boot_off, 'bootloader/bootloader.bin'), (pt_off, 'partition_table/partition-table.bin'),
             (app_off, app_bin)]
    head = '--flash_mode %s --flash_freq %s --flash_size %s' % (mode, freq, size)
    flash_args = head + '\n' + ''.join('%s %s\n' % f for f in files)
    simcommon.write_if_changed(os.path.join(b, 'flash_args'), flash_args)
    simcommon.write_if_changed(os.path.join(b, 'flash_project_args'), flash_args)
    simcommon.write_if_changed(os.path.join(b, 'flash_app_args'), '%s\n%s %s\n' % (head, app_off, app_bin))
    simcommon.write_if_changed(os.path.join(b, 'flash_bootloader_args'),
                               '%s\n%s bootloader/bootloader.bin\n' % (head, boot_off))
    flasher = {
        'write_flash_args': ['--flash_mode', mode, '--flash_size', size, '--flash_freq', freq],
        'flash_settings': {'flash_mode': mode, 'flash_size': size, 'flash_freq': freq},
        'flash_files': {off: f for off, f in files},
        'bootloader': {'offset': boot_off, 'file': 'bootloader/bootloader.bin', 'encrypted': 'false'},
        'partition-table': {'offset': pt_off, 'file': 'partition_table/partition-table.bin', 'encrypted': 'false'},
        'app': {'offset': app_off, 'file': app_bin, 'encrypted': 'false'},
        'extra_esptool_args': {'after': after, 'before': before, 'stub': True, 'chip': a.target},
    }
    simcommon.write_if_changed(os.path.join(b, 'flasher_args.json'), json.dumps(flasher, indent=4) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
