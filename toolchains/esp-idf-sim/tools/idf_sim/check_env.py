# Run by export.sh: checks the Python version and that this install is complete (version.cmake,
# target lists, the build helpers import), then prints KEY=VALUE lines for export.sh.
import os
import shutil
import subprocess
import sys

if sys.version_info < (3, 8):
    sys.stderr.write('Python %d.%d is not supported: ESP-IDF needs Python 3.8 or newer.\n' % sys.version_info[:2])
    sys.exit(1)

# The install may be read-only (and is part of a repository): never write __pycache__.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import confgen_sim  # noqa: E402,F401
import esptool_sim  # noqa: E402,F401
import simcommon  # noqa: E402

idf_path = sys.argv[1]
try:
    major, minor, patch = simcommon.read_version(idf_path)
    supported, preview = simcommon.load_targets(idf_path)
except (OSError, KeyError, simcommon.FatalError) as e:
    sys.stderr.write('ESP-IDF installation at %s is incomplete: %s\n' % (idf_path, e))
    sys.exit(1)
for t in supported + preview:
    if t != 'linux' and t not in simcommon.CHIPS:
        sys.stderr.write('Unknown target %s in %s/tools/idf_py_actions/constants.py\n' % (t, idf_path))
        sys.exit(1)
# The build needs these on PATH (real ESP-IDF installs them under IDF_TOOLS_PATH).
for tool, args in (('cmake', ['--version']), ('ninja', ['--version']), ('cc', ['--version'])):
    exe = shutil.which(tool)
    if exe is None:
        sys.stderr.write("ERROR: tool %s has no installed versions. Please run 'install.sh' to install it.\n" % tool)
        sys.exit(1)
    try:
        subprocess.run([exe] + args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20)
    except (OSError, subprocess.SubprocessError) as e:
        sys.stderr.write('ERROR: tool %s (%s) does not run: %s\n' % (tool, exe, e))
        sys.exit(1)
# Every helper of the install must at least compile.
here = os.path.dirname(os.path.realpath(__file__))
for name in sorted(os.listdir(here)):
    if name.endswith('.py'):
        with open(os.path.join(here, name), encoding='utf-8') as f:
            compile(f.read(), name, 'exec')
print('IDF_VERSION=%d.%d' % (major, minor))
print('PYTHON_SHORT=%d.%d' % sys.version_info[:2])
