#!/usr/bin/env python3
#
# ESP-IDF stand-in (esp-idf-sim): the idf.py front end.
#
# Behaves like ESP-IDF's idf.py for what a build agent runs: --version, --list-targets,
# set-target, build (cmake -G Ninja + ninja), clean, fullclean, reconfigure, menuconfig.
# The implementation is shared by every stand-in install and lives next to the real file
# (tools/idf_sim/); this script may be reached through a symlink from another install, whose
# own version.cmake and target lists then apply.
import os
import sys

# The install may be read-only (and is part of a repository): never write __pycache__.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), 'idf_sim'))

from simcli import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main(sys.argv[1:], os.path.abspath(__file__)))
