# idf.py of the ESP-IDF stand-in: argument handling, actions, and running cmake/ninja with
# their output teed into <build>/log/idf_py_{stdout,stderr}_output_<pid> like ESP-IDF does.
import errno
import fcntl
import json
import os
import selectors
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import termios

import simcommon
from simcommon import FatalError, red_print, yellow_print

PROG = 'idf.py'
EXIT_USAGE = 2
EXIT_FATAL = 2


class UsageError(Exception):
    def __init__(self, message, command=None, usage=None):
        super().__init__(message)
        self.command = command
        self.usage = usage


# name -> (ninja target or None, aliases, help)
ACTIONS = {
    'all': ('all', ['build'], 'Aliased to "build". Build the project.'),
    'app': ('app', [], 'Build only the app.'),
    'bootloader': ('bootloader', [], 'Build only bootloader.'),
    'partition-table': ('partition-table', ['partition_table'], 'Build only partition table.'),
    'clean': (None, [], 'Delete build output files from the build directory.'),
    'fullclean': (None, [], 'Delete the entire build directory contents.'),
    'reconfigure': (None, [], 'Re-run CMake.'),
    'set-target': (None, [], 'Set the chip target to build.'),
    'menuconfig': (None, [], 'Run "menuconfig" project configuration tool.'),
    'flash': (None, [], 'Flash the project.'),
    'app-flash': (None, [], 'Flash the app only.'),
    'monitor': (None, [], 'Display serial output.'),
    'erase-flash': (None, [], 'Erase entire flash chip.'),
}
ALIASES = {a: name for name, (_t, aliases, _h) in ACTIONS.items() for a in aliases}


class Args:
    def __init__(self):
        self.project_dir = os.getcwd()
        self.build_dir = None
        self.preview = False
        self.verbose = False
        self.port = None
        self.baud = '460800'
        self.define_cache_entry = []
        self.version = False
        self.list_targets = False
        self.help = False
        self.actions = []  # [(name, [args])]


def _usage_main():
    return 'Usage: %s [OPTIONS] COMMAND1 [ARGS]... [COMMAND2 [ARGS]...]...' % PROG


def parse_args(argv, targets):
    a = Args()
    i = 0
    with_value = {'-C': 'project_dir', '--project-dir': 'project_dir', '-B': 'build_dir', '--build-dir': 'build_dir',
                  '-p': 'port', '--port': 'port', '-b': 'baud', '--baud': 'baud', '-G': 'generator',
                  '--cmake-generator': 'generator', '-D': 'define', '--define-cache-entry': 'define'}
    flags = {'--preview': 'preview', '-v': 'verbose', '--verbose': 'verbose', '--version': 'version',
             '--list-targets': 'list_targets', '-h': 'help', '--help': 'help'}
    ignored = {'--ccache', '--no-ccache', '-w', '--cmake-warn-uninitialized', '--no-warn-uninitialized',
               '-n', '--no-hints'}
    words = []
    while i < len(argv):
        arg = argv[i]
        key, eq, inline = arg.partition('=')
        if arg in flags:
            setattr(a, flags[arg], True)
        elif arg in ignored:
            pass
        elif key in with_value and eq and key.startswith('--'):
            _set_opt(a, with_value[key], inline)
        elif arg in with_value:
            if i + 1 >= len(argv):
                raise UsageError("Option '%s' requires an argument." % arg)
            i += 1
            _set_opt(a, with_value[arg], argv[i])
        elif arg.startswith('-D') and len(arg) > 2:
            _set_opt(a, 'define', arg[2:])
        elif arg.startswith('-C') and len(arg) > 2:
            _set_opt(a, 'project_dir', arg[2:])
        elif arg.startswith('-B') and len(arg) > 2:
            _set_opt(a, 'build_dir', arg[2:])
        elif arg.startswith('-') and not words:
            raise UsageError('No such option: %s' % arg)
        elif arg.startswith('-') and words and words[-1][0] == 'set-target' and not words[-1][1]:
            raise UsageError('No such option: %s' % arg, 'set-target')
        elif arg.startswith('-'):
            raise UsageError('No such option: %s' % arg, words[-1][0] if words else None)
        else:
            if words and words[-1][0] == 'set-target' and not words[-1][1]:
                words[-1][1].append(arg)
            else:
                name = ALIASES.get(arg, arg)
                if name not in ACTIONS:
                    raise UsageError("No such command '%s'." % arg)
                words.append((name, []))
        i += 1
    a.actions = words
    a.project_dir = os.path.realpath(os.path.expanduser(a.project_dir))
    if a.build_dir is None:
        a.build_dir = os.path.join(a.project_dir, 'build')
    else:
        a.build_dir = os.path.realpath(os.path.expanduser(a.build_dir))
    return a


def _set_opt(a, name, value):
    if name == 'define':
        a.define_cache_entry.append(value)
    elif name == 'generator':
        if value != 'Ninja':
            raise UsageError("Invalid value for '-G' / '--cmake-generator': '%s' is not 'Ninja'." % value)
    else:
        setattr(a, name, value)


def print_help(targets):
    print(_usage_main())
    print()
    print('  ESP-IDF CLI build management tool.')
    print()
    print('Options:')
    for opt, text in [
        ('--version', 'Show IDF version and exit.'),
        ('--list-targets', 'Print list of supported targets and exit.'),
        ('-C, --project-dir PATH', 'Project directory.'),
        ('-B, --build-dir PATH', 'Build directory.'),
        ('-v, --verbose', 'Verbose build output.'),
        ('--preview', 'Enable IDF features that are still in preview.'),
        ('-D, --define-cache-entry TEXT', 'Create a cmake cache entry.'),
        ('-p, --port PATH', 'Serial port.'),
        ('-b, --baud INTEGER', 'Baud rate for flashing.'),
        ('--help', 'Show this message and exit.'),
    ]:
        print('  %-30s %s' % (opt, text))
    print()
    print('Commands:')
    for name in sorted(ACTIONS):
        print('  %-18s %s' % (name, ACTIONS[name][2]))


# ------------------------------------------------------------------ running tools
def _winsize(fd):
    try:
        return fcntl.ioctl(fd, termios.TIOCGWINSZ, b'\0' * 8)
    except OSError:
        return struct.pack('HHHH', 24, 80, 0, 0)


def _write_all(fd, data, state):
    if state['stdout_gone']:
        return
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BrokenPipeError:
            state['stdout_gone'] = True
            return
        except InterruptedError:
            continue
        view = view[n:]


def run_tool(tool_name, cmd, cwd, build_dir, env=None):
    """Run cmake/ninja. Under a terminal the tool gets a pty of its own (so ninja shows its
    smart-terminal progress), otherwise pipes; either way output goes to our stdout/stderr and
    to log/idf_py_stdout_output_<pid> / log/idf_py_stderr_output_<pid>."""
    log_dir = os.path.join(build_dir, 'log')
    os.makedirs(log_dir, exist_ok=True)
    out_path = os.path.join(log_dir, 'idf_py_stdout_output_%d' % os.getpid())
    err_path = os.path.join(log_dir, 'idf_py_stderr_output_%d' % os.getpid())
    tty = sys.stdout.isatty()
    sys.stdout.flush()
    sys.stderr.flush()
    state = {'stdout_gone': False}
    received = []
    with open(out_path, 'wb') as out_log, open(err_path, 'wb') as err_log:
        if tty:
            master, slave = os.openpty()
            fcntl.ioctl(slave, termios.TIOCSWINSZ, _winsize(sys.stdout.fileno()))
            attrs = termios.tcgetattr(slave)
            attrs[1] &= ~termios.OPOST  # pass the tool's bytes through unchanged
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=slave, stderr=slave)
            os.close(slave)
            streams = {master: (1, out_log)}
        else:
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            streams = {proc.stdout.fileno(): (1, out_log), proc.stderr.fileno(): (2, err_log)}

        def forward(signum, _frame):
            # Sent to idf.py alone (a terminal's Ctrl-C or a process-group kill reaches the tool
            # directly): pass it on to the tool and everything it started, since ninja leaves
            # console-pool steps running when only ninja is signalled.
            received.append(signum)
            for pid in [proc.pid] + _descendants(proc.pid):
                try:
                    os.kill(pid, signum)
                except OSError:
                    pass

        def on_winch(_signum, _frame):
            if tty:
                try:
                    fcntl.ioctl(master, termios.TIOCSWINSZ, _winsize(sys.stdout.fileno()))
                except OSError:
                    pass

        old = {}
        for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            old[s] = signal.signal(s, forward)
        old[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, on_winch)
        try:
            _pump(proc, streams, state)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            for fd in list(streams):
                try:
                    os.close(fd)
                except OSError:
                    pass
            if not tty:
                for f in (proc.stdout, proc.stderr):
                    try:
                        f.close()
                    except OSError:
                        pass
    if received:
        sig = received[0]
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    if proc.returncode != 0:
        raise FatalError('%s failed with exit code %d, output of the command is in the %s and %s'
                         % (tool_name, proc.returncode, err_path, out_path))


def _descendants(root):
    """Pids of all processes below `root`, from /proc (Linux)."""
    children = {}
    try:
        entries = os.listdir('/proc')
    except OSError:
        return []
    for e in entries:
        if not e.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % e, 'rb') as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b')') + 2:].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(e))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _pump(proc, streams, state):
    sel = selectors.DefaultSelector()
    for fd in streams:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    open_fds = set(streams)
    exited = False
    while open_fds:
        events = sel.select(timeout=0.05 if exited else 0.2)
        got = False
        for key, _ in events:
            fd = key.fd
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            except OSError as e:
                if e.errno == errno.EIO:  # pty: the tool and everything holding it have exited
                    data = b''
                else:
                    raise
            if not data:
                sel.unregister(fd)
                open_fds.discard(fd)
                continue
            got = True
            out_fd, log = streams[fd]
            log.write(data)
            _write_all(out_fd, data, state)
        if not exited and proc.poll() is not None:
            exited = True
        elif exited and not got:
            # The tool has exited and its output is drained; a leftover background process that
            # still holds the stream open does not keep idf.py waiting.
            break
    proc.wait()
    sel.close()


# ------------------------------------------------------------------ project helpers
def parse_cmakecache(path):
    result = {}
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            for line in f:
                if line.startswith(('#', '//')) or ':' not in line or '=' not in line:
                    continue
                key, _, rest = line.partition(':')
                _typ, _, value = rest.partition('=')
                result[key] = value.rstrip('\n')
    except OSError:
        pass
    return result


def sdkconfig_target(project_dir):
    import confgen_sim
    return confgen_sim._unquote(confgen_sim.read_sdkconfig(os.path.join(project_dir, 'sdkconfig')).get('IDF_TARGET', ''))


def check_project_dir(args):
    if not os.path.isdir(args.project_dir):
        raise FatalError("Project directory %s does not exist" % args.project_dir)
    if not os.path.exists(os.path.join(args.project_dir, 'CMakeLists.txt')):
        raise FatalError("Directory '%s' doesn't contain a project (there is no CMakeLists.txt file). "
                         "Run %s in a project directory or use the '-C' option." % (args.project_dir, PROG))


def check_target_consistency(args):
    env_target = os.environ.get('IDF_TARGET')
    cache = parse_cmakecache(os.path.join(args.build_dir, 'CMakeCache.txt'))
    cache_target = cache.get('IDF_TARGET')
    sdk = sdkconfig_target(args.project_dir)
    sdk_path = os.path.join(args.project_dir, 'sdkconfig')
    if env_target and sdk and env_target != sdk:
        raise FatalError("Project sdkconfig '%s' was generated for target '%s', but environment variable IDF_TARGET "
                         "is set to '%s'. Run '%s set-target %s' to generate new sdkconfig file for target %s."
                         % (sdk_path, sdk, env_target, PROG, env_target, env_target))
    if cache_target and sdk and cache_target != sdk:
        raise FatalError("Project sdkconfig '%s' was generated for target '%s', but CMakeCache.txt contains '%s'. "
                         "To keep the setting in sdkconfig (%s) and re-generate CMakeCache.txt, run '%s fullclean'. "
                         "To re-generate sdkconfig for '%s' target, run '%s set-target %s'."
                         % (sdk_path, sdk, cache_target, sdk, PROG, cache_target, PROG, cache_target))
    if env_target and cache_target and env_target != cache_target:
        raise FatalError("Target settings are not consistent: '%s' in the environment, '%s' in CMakeCache.txt. "
                         "Run '%s fullclean' to start again." % (env_target, cache_target, PROG))


def ensure_build_directory(args, always_run_cmake=False, check_target=True):
    check_project_dir(args)
    if check_target:
        check_target_consistency(args)
    os.makedirs(args.build_dir, exist_ok=True)
    cache_path = os.path.join(args.build_dir, 'CMakeCache.txt')
    cache = parse_cmakecache(cache_path)
    if cache:
        home = cache.get('CMAKE_HOME_DIRECTORY')
        if home and os.path.realpath(home) != args.project_dir:
            raise FatalError("Build directory '%s' configured for project '%s' not '%s'. Run '%s fullclean' to start "
                             "again." % (args.build_dir, os.path.realpath(home), args.project_dir, PROG))
        gen = cache.get('CMAKE_GENERATOR')
        if gen and gen != 'Ninja':
            raise FatalError("Build is configured for generator '%s' not 'Ninja'. Run '%s fullclean' to start again."
                             % (gen, PROG))
    if not cache or always_run_cmake or args.define_cache_entry:
        cmd = ['cmake', '-G', 'Ninja', '-DPYTHON_DEPS_CHECKED=1', '-DPYTHON=%s' % sys.executable, '-DESP_PLATFORM=1']
        cmd += ['-D' + d for d in args.define_cache_entry]
        if args.verbose:
            cmd.append('-DCMAKE_VERBOSE_MAKEFILE=ON')
        cmd += ['-DCCACHE_ENABLE=0', args.project_dir]
        print('Running cmake in directory %s' % args.build_dir)
        print('Executing "%s"...' % ' '.join(shlex.quote(c) for c in cmd), flush=True)
        run_tool('cmake', cmd, args.build_dir, args.build_dir)
        args.define_cache_entry = []


def run_ninja(args, target):
    ensure_build_directory(args)
    cmd = ['ninja'] + (['-v'] if args.verbose else []) + [target]
    print('Running ninja in directory %s' % args.build_dir)
    print('Executing "%s"...' % ' '.join(cmd), flush=True)
    run_tool('ninja', cmd, args.build_dir, args.build_dir)


def print_flash_hint(args, title='Project'):
    path = os.path.join(args.build_dir, 'flasher_args.json')
    try:
        with open(path, encoding='utf-8') as f:
            fa = json.load(f)
    except (OSError, ValueError):
        return
    extra = fa.get('extra_esptool_args', {})

    def flasher_path(f):
        return shlex.quote(os.path.relpath(os.path.join(args.build_dir, f)))

    items = sorted(((o, f) for o, f in fa.get('flash_files', {}).items() if o), key=lambda x: int(x[0], 0))
    write = ' '.join(fa.get('write_flash_args', []))
    files = ' '.join('%s %s' % (o, flasher_path(f)) for o, f in items)
    base = 'python -m esptool --chip %s -b %s --before %s --after %s%s write_flash' % (
        extra.get('chip', 'esp32'), args.baud, extra.get('before', 'default_reset'),
        extra.get('after', 'hard_reset'), '' if extra.get('stub', True) else ' --no-stub')
    print()
    print('%s build complete. To flash, run:' % title)
    print(' %s flash' % PROG)
    print('or')
    print(' %s %s %s' % (base, write, files))
    print('or from the "%s" directory' % args.build_dir)
    print(' %s "@flash_args"' % base)


# ------------------------------------------------------------------ actions
def action_build(args, name):
    ninja_target = ACTIONS[name][0]
    run_ninja(args, ninja_target)
    cache = parse_cmakecache(os.path.join(args.build_dir, 'CMakeCache.txt'))
    if name == 'all' and cache.get('IDF_TARGET') != 'linux':
        print_flash_hint(args)
    elif name == 'app':
        print()
        print('App build complete. To flash, run:')
        print(' %s app-flash' % PROG)
    elif name == 'bootloader':
        print()
        print('Bootloader build complete. To flash, run:')
        print(' %s bootloader-flash' % PROG)
    elif name == 'partition-table':
        print()
        print('Partition Table build complete. To flash, run:')
        print(' %s partition-table-flash' % PROG)


def action_fullclean(args):
    b = args.build_dir
    if not os.path.isdir(b):
        print("Build directory '%s' not found. Nothing to clean." % b)
        return
    if not os.listdir(b):
        print("Build directory '%s' is empty. Nothing to clean." % b)
        return
    if not os.path.exists(os.path.join(b, 'CMakeCache.txt')):
        raise FatalError("Directory '%s' doesn't seem to be a CMake build directory. Refusing to automatically "
                         "delete files in this directory. Delete the directory manually to 'clean' it." % b)
    for red in ('CMakeLists.txt', '.git', '.svn'):
        if os.path.exists(os.path.join(b, red)):
            raise FatalError("Refusing to automatically delete files in directory containing '%s'. Delete files "
                             "manually if you're sure." % os.path.join(b, red))
    for f in os.listdir(b):
        f = os.path.join(b, f)
        if args.verbose:
            print('Removing: %s' % f)
        if os.path.isdir(f) and not os.path.islink(f):
            shutil.rmtree(f)
        else:
            os.remove(f)
    print('Done')


def action_clean(args):
    if not os.path.isdir(args.build_dir):
        print("Build directory '%s' not found. Nothing to clean." % args.build_dir)
        return
    if not os.path.exists(os.path.join(args.build_dir, 'build.ninja')):
        print("Build directory '%s' is not configured. Nothing to clean." % args.build_dir)
        return
    cmd = ['ninja', 'clean']
    print('Running ninja in directory %s' % args.build_dir)
    print('Executing "%s"...' % ' '.join(cmd), flush=True)
    run_tool('ninja', cmd, args.build_dir, args.build_dir)


def target_usage(targets):
    return '{%s}' % '|'.join(targets)


def action_set_target(args, params, supported, preview):
    choices = supported + preview
    metavar = target_usage(choices)
    usage = 'Usage: %s set-target [OPTIONS] %s' % (PROG, metavar)
    if not params:
        raise UsageError("Missing argument '%s'." % metavar, 'set-target', usage)
    target = params[0].lower()
    if target not in choices:
        raise UsageError("Invalid value for '%s': '%s' is not one of %s."
                         % (metavar, params[0], ', '.join("'%s'" % c for c in choices)), 'set-target', usage)
    if target in preview and not args.preview:
        raise FatalError("%s is still in preview. You have to append '--preview' option after idf.py to use any "
                         "preview feature." % target)
    print('Adding "set-target"\'s dependency "fullclean" to list of commands with default set of options.')
    print('Executing action: fullclean')
    action_fullclean(args)
    print('Executing action: set-target')
    print('Set Target to: %s, new sdkconfig will be created.' % target)
    check_project_dir(args)
    sdk = os.path.join(args.project_dir, 'sdkconfig')
    if os.path.exists(sdk):
        os.replace(sdk, sdk + '.old')
    args.define_cache_entry.append('IDF_TARGET=%s' % target)
    env_target = os.environ.get('IDF_TARGET')
    if env_target and env_target != target:
        yellow_print("WARNING: environment variable IDF_TARGET is set to '%s', ignoring it for set-target."
                     % env_target)
    saved = os.environ.pop('IDF_TARGET', None)
    try:
        ensure_build_directory(args, always_run_cmake=True, check_target=False)
    finally:
        if saved is not None:
            os.environ['IDF_TARGET'] = saved


def action_menuconfig(args):
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise FatalError('menuconfig needs an interactive terminal: stdin and stdout must be a TTY. '
                         'Run it in a terminal, or set the options in sdkconfig.defaults instead.')
    ensure_build_directory(args)
    print('Running ninja in directory %s' % args.build_dir)
    print('Executing "ninja menuconfig"...', flush=True)
    import menuconfig_sim
    menuconfig_sim.run(args.idf_path, args.project_dir, args.build_dir)


def action_serial(args, name):
    check_project_dir(args)
    if not args.port:
        raise FatalError("No serial ports found. Connect a device, or use '-p PORT' option to set a specific port.")
    raise FatalError("Could not open %s, the port is busy or doesn't exist.\n([Errno 2] could not open port %s: "
                     "[Errno 2] No such file or directory: '%s')" % (args.port, args.port, args.port))


def check_environment(script_path):
    detected = os.path.realpath(os.path.join(os.path.dirname(script_path), '..'))
    env_path = os.environ.get('IDF_PATH')
    if env_path:
        if os.path.realpath(env_path) != detected:
            yellow_print('WARNING: IDF_PATH environment variable is set to %s but %s path indicates IDF directory %s. '
                         'Using the environment variable directory, but results may be unexpected...'
                         % (os.path.realpath(env_path), PROG, detected))
        return os.path.realpath(env_path)
    yellow_print('Setting IDF_PATH environment variable: %s' % detected)
    os.environ['IDF_PATH'] = detected
    return detected


def main(argv, script_path):
    idf_path = check_environment(script_path)
    try:
        supported, preview = simcommon.load_targets(idf_path)
        args = parse_args(argv, supported)
        args.idf_path = idf_path
        if args.help or (not args.actions and not args.version and not args.list_targets):
            print_help(supported)
            return 0
        if args.version:
            print('ESP-IDF %s' % simcommon.version_string(idf_path))
            return 0
        if args.list_targets:
            for t in supported + (preview if args.preview else []):
                print(t)
            return 0
        for name, params in args.actions:
            if name == 'set-target':
                action_set_target(args, params, supported, preview)
                continue
            if name in ('all', 'app', 'bootloader', 'partition-table'):
                aliases = ACTIONS[name][1]
                print('Executing action: %s%s' % (name, ' (aliases: %s)' % ', '.join(aliases) if aliases else ''))
                action_build(args, name)
            elif name == 'clean':
                print('Executing action: clean')
                action_clean(args)
            elif name == 'fullclean':
                print('Executing action: fullclean')
                action_fullclean(args)
            elif name == 'reconfigure':
                print('Executing action: reconfigure')
                ensure_build_directory(args, always_run_cmake=True)
            elif name == 'menuconfig':
                print('Executing action: menuconfig', flush=True)
                action_menuconfig(args)
            else:
                print('Executing action: %s' % name, flush=True)
                action_serial(args, name)
        return 0
    except UsageError as e:
        if e.usage:
            print(e.usage, file=sys.stderr)
            print("Try '%s %s --help' for help." % (PROG, e.command), file=sys.stderr)
        else:
            print(_usage_main(), file=sys.stderr)
            print("Try '%s --help' for help." % PROG, file=sys.stderr)
        print('\nError: %s' % e, file=sys.stderr)
        return EXIT_USAGE
    except FatalError as e:
        sys.stdout.flush()
        red_print(str(e))
        return EXIT_FATAL
    except KeyboardInterrupt:
        return 130
