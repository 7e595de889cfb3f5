# `idf.py menuconfig` of the ESP-IDF stand-in: a small full-screen editor for the project's Kconfig
# options, drawn with ANSI escapes on a raw-mode terminal (no curses).
#
# Keys: Up/Down or k/j move, PgUp/PgDn page, Enter edits an int/hex/string (type, Backspace,
# Enter accepts, Esc cancels), Space or Enter toggles a bool, S saves to sdkconfig, Q or Esc quits.
# The terminal size is shown top right as [COLSxROWS]; SIGWINCH redraws at the new size.
import os
import select
import signal
import sys
import termios
import tty

import confgen_sim
import simcommon

REVERSE = '\x1b[7m'
BOLD = '\x1b[1m'
DIM = '\x1b[2m'
RESET = '\x1b[0m'


def _component_dirs(project_dir, build_dir, idf_path):
    tsv = os.path.join(build_dir, 'config', 'components.tsv')
    dirs = []
    try:
        with open(tsv, encoding='utf-8') as f:
            for line in f:
                cols = line.rstrip('\n').split('\t')
                if len(cols) > 1 and cols[1]:
                    dirs.append(cols[1])
    except OSError:
        pass
    if not dirs:
        comp_root = os.path.join(project_dir, 'components')
        if os.path.isdir(comp_root):
            dirs += [os.path.join(comp_root, d) for d in sorted(os.listdir(comp_root))]
        dirs.append(os.path.join(project_dir, 'main'))
    return dirs


class Menu:
    def __init__(self, cfg, sdkconfig, config_dir, out_fd, in_fd):
        self.cfg = cfg
        self.sdkconfig = sdkconfig
        self.config_dir = config_dir
        self.out = out_fd
        self.inp = in_fd
        self.rows = []  # (kind, payload, depth): kind 'menu' or 'opt'
        depth = 0
        for e in cfg.project_entries:
            if isinstance(e, tuple):
                self.rows.append(('menu', e[1], e[2] - 1))
                depth = e[2]
            elif isinstance(e, confgen_sim.Option) and e.type:
                self.rows.append(('opt', e, e.menu.count(' / ') + 1 if e.menu else 0))
        self.selectable = [i for i, r in enumerate(self.rows) if r[0] == 'opt']
        self.cur = 0  # index into selectable
        self.top = 0
        self.editing = None  # edit buffer (str) while editing
        self.message = ''
        self.dirty = False
        self.saved = False
        self.quit = False
        del depth

    # ---- drawing
    def size(self):
        try:
            sz = os.get_terminal_size(self.out)
            return max(sz.columns, 20), max(sz.lines, 8)
        except OSError:
            return 80, 24

    def value_text(self, opt):
        v = self.cfg.values.get(opt.name)
        if opt.type == 'bool':
            if opt.choice is not None:
                return '(X)' if v else '( )'
            return '[*]' if v else '[ ]'
        if self.editing is not None and self.current_opt() is opt:
            return '(%s_)' % self.editing
        if opt.type == 'hex':
            return '(0x%x)' % v
        return '(%s)' % v

    def current_opt(self):
        if not self.selectable:
            return None
        return self.rows[self.selectable[self.cur]][1]

    def draw(self):
        cols, lines = self.size()
        title = ' ESP-IDF %s Project Configuration: %s' % (
            simcommon.version_string(self.cfg.idf_path), self.sdkconfig)
        tag = '[%dx%d]' % (cols, lines)
        room = cols - len(tag) - 1
        if len(title) > room:
            title = title[:max(room - 3, 0)] + '...'
        head = title + ' ' * (cols - len(title) - len(tag)) + tag
        out = [REVERSE + head[:cols] + RESET]
        out.append(('-' * cols))
        body = lines - 6
        if not self.selectable:
            listing = ['  (this project has no configuration options of its own)']
            cur_row = -1
        else:
            cur_row = self.selectable[self.cur]
            if cur_row < self.top:
                self.top = cur_row
            if cur_row >= self.top + body:
                self.top = cur_row - body + 1
            listing = []
            for i in range(self.top, min(len(self.rows), self.top + body)):
                kind, payload, depth = self.rows[i]
                indent = '  ' * depth
                if kind == 'menu':
                    text = ' %s%s  --->' % (indent, payload)
                    listing.append(BOLD + text[:cols] + RESET)
                    continue
                text = '  %s%s %s' % (indent, self.value_text(payload), payload.prompt or payload.name)
                text = text[:cols]
                if i == cur_row:
                    listing.append(REVERSE + text.ljust(cols)[:cols] + RESET)
                else:
                    listing.append(text)
        listing += [''] * (body - len(listing))
        out += listing
        out.append('-' * cols)
        opt = self.current_opt()
        if self.message:
            status = self.message
        elif self.editing is not None and opt is not None:
            rng = ' (range %s..%s)' % opt.range if opt.range else ''
            status = 'CONFIG_%s: type a value%s, Enter to accept, Esc to cancel' % (opt.name, rng)
        elif opt is not None:
            status = 'CONFIG_%s%s' % (opt.name, (': ' + opt.help.strip()) if opt.help.strip() else '')
        else:
            status = ''
        out.append(status[:cols])
        keys = 'Up/Down j/k: move  Enter: edit  Space: toggle  S: save  Q/Esc: quit'
        out.append(DIM + keys[:cols] + RESET)
        data = '\x1b[H\x1b[2J' + '\r\n'.join(out)
        self._write(data)

    def _write(self, text):
        data = text.encode('utf-8')
        while data:
            try:
                n = os.write(self.out, data)
            except InterruptedError:
                continue
            data = data[n:]

    # ---- actions
    def move(self, delta):
        if self.selectable:
            self.cur = max(0, min(len(self.selectable) - 1, self.cur + delta))
        self.message = ''

    def activate(self):
        opt = self.current_opt()
        if opt is None:
            return
        if opt.type == 'bool':
            self.toggle()
            return
        v = self.cfg.values.get(opt.name)
        self.editing = ('0x%x' % v) if opt.type == 'hex' else str(v)
        self.message = ''

    def toggle(self):
        opt = self.current_opt()
        if opt is None or opt.type != 'bool':
            return
        self.cfg.set(opt.name, not self.cfg.values.get(opt.name))
        self.dirty = True
        self.message = ''

    def accept_edit(self):
        opt = self.current_opt()
        try:
            value = confgen_sim.coerce(opt, self.editing)
        except ValueError as e:
            self.message = 'Invalid value for CONFIG_%s: %s' % (opt.name, e)
            return
        if self.cfg.values.get(opt.name) != value:
            self.dirty = True
        self.cfg.set(opt.name, value)
        self.editing = None
        self.message = ''

    def save(self):
        self.cfg.write_all(self.config_dir)
        self.dirty = False
        self.saved = True
        self.message = "Configuration saved to '%s'" % self.sdkconfig

    def handle(self, data):
        i = 0
        while i < len(data):
            ch = data[i:i + 1]
            seq = None
            if ch == b'\x1b':
                if data[i + 1:i + 2] in (b'[', b'O'):
                    j = i + 2
                    while j < len(data) and not (0x40 <= data[j] <= 0x7E):
                        j += 1
                    seq = data[i:j + 1]
                    i = j + 1
                else:
                    seq = b'\x1b'
                    i += 1
            else:
                i += 1
            if self.editing is not None:
                self._edit_key(seq or ch)
            else:
                self._nav_key(seq or ch)
            if self.quit:
                return

    def _edit_key(self, k):
        if k == b'\x1b':
            self.editing = None
            self.message = 'Edit cancelled'
        elif k in (b'\r', b'\n'):
            self.accept_edit()
        elif k in (b'\x7f', b'\x08'):
            self.editing = self.editing[:-1]
        elif k == b'\x03':
            self.quit = True
        elif len(k) == 1 and 0x20 <= k[0] < 0x7F:
            self.editing += k.decode('ascii')
            self.message = ''

    def _nav_key(self, k):
        if k in (b'\x1b[A', b'\x1bOA', b'k', b'K'):
            self.move(-1)
        elif k in (b'\x1b[B', b'\x1bOB', b'j', b'J'):
            self.move(1)
        elif k == b'\x1b[5~':
            self.move(-10)
        elif k == b'\x1b[6~':
            self.move(10)
        elif k in (b'\r', b'\n'):
            self.activate()
        elif k == b' ':
            self.toggle()
        elif k in (b's', b'S'):
            self.save()
        elif k in (b'q', b'Q', b'\x1b', b'\x03'):
            self.quit = True


def run(idf_path, project_dir, build_dir):
    sdkconfig = os.path.join(project_dir, 'sdkconfig')
    target = confgen_sim._unquote(confgen_sim.read_sdkconfig(sdkconfig).get('IDF_TARGET', '')) or 'esp32'
    comps = _component_dirs(project_dir, build_dir, idf_path)
    defaults = confgen_sim.default_files(project_dir, target)
    cfg = confgen_sim.Config(idf_path, project_dir, comps, target, defaults, sdkconfig)
    in_fd, out_fd = sys.stdin.fileno(), sys.stdout.fileno()
    sys.stdout.flush()
    menu = Menu(cfg, sdkconfig, os.path.join(build_dir, 'config'), out_fd, in_fd)
    saved_attrs = termios.tcgetattr(in_fd)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)

    def on_winch(_s, _f):
        try:
            os.write(wake_w, b'w')
        except OSError:
            pass

    old_winch = signal.signal(signal.SIGWINCH, on_winch)
    try:
        tty.setraw(in_fd)
        menu._write('\x1b[?1049h\x1b[?25l')
        menu.draw()
        while not menu.quit:
            ready, _, _ = select.select([in_fd, wake_r], [], [])
            if wake_r in ready:
                os.read(wake_r, 1024)
            if in_fd in ready:
                data = os.read(in_fd, 1024)
                if not data:
                    break
                menu.handle(data)
            if not menu.quit:
                menu.draw()
    finally:
        signal.signal(signal.SIGWINCH, old_winch)
        menu._write('\x1b[?25h\x1b[?1049l')
        termios.tcsetattr(in_fd, termios.TCSADRAIN, saved_attrs)
        os.close(wake_r)
        os.close(wake_w)
    print("Loaded configuration '%s'" % sdkconfig)
    if menu.saved:
        print("Configuration saved to '%s'" % sdkconfig)
    if menu.dirty:
        print("Configuration changes were not saved (press 'S' before quitting to save them).")
    elif not menu.saved:
        print("No changes to save (for '%s')" % sdkconfig)
