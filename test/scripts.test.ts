// scripts/install.sh and scripts/provision-toolchain.sh, run for real in --dry-run mode: the
// plan they print, that it changes nothing, and their argument checking. (A real install needs
// root on a systemd machine and a real provisioning needs the network: not run here.)
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const REPO = path.resolve(import.meta.dirname, '..');
const INSTALL = path.join(REPO, 'scripts', 'install.sh');
const PROVISION = path.join(REPO, 'scripts', 'provision-toolchain.sh');
const isRoot = process.getuid?.() === 0;
const canDropPrivileges = isRoot && fs.existsSync('/usr/bin/setpriv');

const tmp = (prefix: string) => fs.mkdtempSync(path.join(os.tmpdir(), prefix));

function run(
  script: string,
  args: string[],
  opts: { env?: Record<string, string>; asNobody?: boolean } = {},
) {
  const argv = opts.asNobody
    ? ([
        '/usr/bin/setpriv',
        ['--reuid=65534', '--regid=65534', '--clear-groups', 'bash', script, ...args],
      ] as const)
    : (['bash', [script, ...args]] as const);
  const r = spawnSync(argv[0], argv[1], {
    encoding: 'utf8',
    cwd: os.tmpdir(),
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', LANG: 'C.UTF-8', ...opts.env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, lines: r.stdout.split('\n') };
}

/** Which of these paths exist: what a dry run must leave exactly as it was. */
const snapshot = (paths: string[]) => paths.map((p) => `${p}:${fs.existsSync(p)}`);
const SYSTEM_PATHS = [
  '/etc/aegis',
  '/etc/aegis/agent.env',
  '/etc/aegis/secrets.env',
  '/etc/systemd/system/aegis-agent.service',
  '/var/lib/aegis-agent',
  '/opt/aegis',
  '/etc/ccache.conf',
];

describe('scripts/install.sh', () => {
  it('--dry-run prints the whole plan and changes nothing', () => {
    const prefix = path.join(tmp('aegis-install-'), 'opt', 'aegis-agent');
    const before = snapshot(SYSTEM_PATHS);
    const r = run(INSTALL, ['--dry-run', '--prefix', prefix]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = r.stdout;
    // The user: created, or kept when it exists already (idempotent).
    expect(out).toMatch(
      /^(would: useradd --system --gid aegis --home-dir \/var\/lib\/aegis-agent .*--shell \S*nologin .*aegis|keep: user aegis exists)$/m,
    );
    expect(out).toContain(`would: cp -R ${REPO}/dist ${prefix}/dist`);
    expect(out).toContain(
      `would: install -m 0644 -o root -g root ${REPO}/package.json ${REPO}/package-lock.json ${prefix}/`,
    );
    expect(out).toContain(`would: cd ${prefix} && npm ci --omit=dev`);
    expect(out).toContain(
      `would: install -m 0755 -o root -g root <generated> ${prefix}/bin/aegis-agent`,
    );
    // Config only when absent, never overwritten.
    if (fs.existsSync('/etc/aegis/agent.env')) {
      expect(out).toContain('keep: /etc/aegis/agent.env exists, not overwritten');
    } else {
      expect(out).toContain(
        `would: install -m 0644 -o root -g root ${REPO}/systemd/aegis-agent.env.example /etc/aegis/agent.env`,
      );
    }
    if (fs.existsSync('/etc/aegis/secrets.env')) {
      expect(out).toContain('keep: /etc/aegis/secrets.env exists, not overwritten');
    } else {
      expect(out).toMatch(
        /^would: install -m 0600 -o root -g root <generated> \/etc\/aegis\/secrets\.env/m,
      );
    }
    expect(out).toContain('would: chmod 0600 /etc/aegis/secrets.env');
    expect(out).toMatch(
      /^would: install -m 0644 -o root -g root <generated> \/etc\/systemd\/system\/aegis-agent\.service/m,
    );
    expect(out).toContain('would: systemctl daemon-reload');
    expect(out).toContain('would: systemctl enable --now aegis-agent');
    // The order matters: code before unit, unit before daemon-reload, reload before enable.
    const at = (s: string) => out.indexOf(s);
    expect(at('npm ci')).toBeLessThan(at('/etc/systemd/system/aegis-agent.service'));
    expect(at('aegis-agent.service')).toBeLessThan(at('daemon-reload'));
    expect(at('daemon-reload')).toBeLessThan(at('enable --now'));
    // Every action line is a "would:" line; nothing ran.
    expect(r.lines.filter((l) => l.startsWith('+ '))).toEqual([]);
    expect(fs.existsSync(prefix)).toBe(false);
    expect(fs.existsSync(path.dirname(prefix))).toBe(false);
    expect(snapshot(SYSTEM_PATHS)).toEqual(before);
  });

  it('--no-start neither enables nor starts the service', () => {
    const r = run(INSTALL, ['--dry-run', '--no-start', '--prefix=/tmp/aegis-never-created']);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(/^would: systemctl enable/m);
    expect(r.stdout).toContain('would: systemctl daemon-reload');
    expect(fs.existsSync('/tmp/aegis-never-created')).toBe(false);
  });

  it('prints the same plan twice (nothing it decides depends on a previous dry run)', () => {
    const a = run(INSTALL, ['--dry-run', '--prefix', '/tmp/aegis-never-created']);
    const b = run(INSTALL, ['--dry-run', '--prefix', '/tmp/aegis-never-created']);
    expect(b.stdout).toBe(a.stdout);
  });

  it('writes the launcher path into the unit it installs for another prefix', () => {
    // The unit is piped through sed; its ExecStart must follow --prefix.
    const unit = fs.readFileSync(path.join(REPO, 'systemd', 'aegis-agent.service'), 'utf8');
    const sed = spawnSync('sed', ['s#/opt/aegis-agent/#/srv/agent/#g'], {
      input: unit,
      encoding: 'utf8',
    });
    expect(sed.stdout).toMatch(/^ExecStart=\/srv\/agent\/bin\/aegis-agent run$/m);
  });

  it.each([
    [['--bogus'], /unknown argument: --bogus/],
    [['--prefix'], /--prefix needs a directory/],
    [['--prefix', 'relative/dir', '--dry-run'], /--prefix must be an absolute path/],
  ])('rejects %j with the usage and exit 2', (args, message) => {
    const r = run(INSTALL, args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toContain('Usage: install.sh');
    expect(r.stdout).toBe('');
  });

  it('--help prints the usage and exits 0', () => {
    const r = run(INSTALL, ['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: install.sh [--dry-run] [--no-start] [--prefix DIR]');
  });

  it('asks for a build first when dist/cli.js is missing', () => {
    const dir = tmp('aegis-unbuilt-');
    fs.mkdirSync(path.join(dir, 'scripts', 'lib'), { recursive: true });
    fs.copyFileSync(INSTALL, path.join(dir, 'scripts', 'install.sh'));
    fs.copyFileSync(
      path.join(path.dirname(INSTALL), 'lib', 'actions.sh'),
      path.join(dir, 'scripts', 'lib', 'actions.sh'),
    );
    const r = run(path.join(dir, 'scripts', 'install.sh'), ['--dry-run']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('run npm ci && npm run build first');
  });

  it.skipIf(!canDropPrivileges)(
    'refuses a real install without root, but dry-runs as any user',
    () => {
      const real = run(INSTALL, ['--prefix', '/tmp/aegis-never-created'], { asNobody: true });
      expect(real.code).toBe(1);
      expect(real.stderr).toMatch(/must run as root.*--dry-run works as any user/);
      const dry = run(INSTALL, ['--dry-run', '--prefix', '/tmp/aegis-never-created'], {
        asNobody: true,
      });
      expect(dry.code).toBe(0);
      expect(dry.stdout).toContain('would: systemctl enable --now aegis-agent');
      expect(fs.existsSync('/tmp/aegis-never-created')).toBe(false);
    },
  );
});

describe('scripts/provision-toolchain.sh', () => {
  const noEnvFile = { AEGIS_AGENT_ENV: '/nonexistent/agent.env' };

  it('--dry-run 5.3.1 esp32,esp32c3 prints clone, install, ccache, chown, toolchains and SIGHUP', () => {
    const before = snapshot(SYSTEM_PATHS);
    const r = run(PROVISION, ['--dry-run', '5.3.1', 'esp32,esp32c3'], { env: noEnvFile });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = r.stdout;
    const dest = '/opt/aegis/toolchains/esp-idf-v5.3.1';
    expect(out).toContain(
      `would: git clone --depth 1 --branch v5.3.1 --recursive --shallow-submodules https://github.com/espressif/esp-idf.git ${dest}.partial`,
    );
    expect(out).toContain(`would: mv ${dest}.partial ${dest}`);
    expect(out).toContain(
      `would: cd ${dest} && env IDF_TOOLS_PATH=/opt/aegis/espressif ./install.sh esp32,esp32c3`,
    );
    expect(out).toMatch(
      /^(would: env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ccache|keep: ccache is installed .*)$/m,
    );
    expect(out).toContain(
      `would: sed -i '1i export IDF_CCACHE_ENABLE=1  # aegis: provision-toolchain.sh' ${dest}/export.sh`,
    );
    expect(out).toContain(
      'would: install -d -m 0750 -o aegis -g aegis /var/cache/aegis-agent /var/cache/aegis-agent/ccache',
    );
    expect(out).toMatch(
      /cache_dir = \/var\/cache\/aegis-agent\/ccache|keep: \/etc\/ccache\.conf already sets cache_dir/,
    );
    expect(out).toContain(`would: chown -R aegis:aegis ${dest} /opt/aegis/espressif`);
    expect(out).toContain('would: runuser -u aegis -- /opt/aegis-agent/bin/aegis-agent toolchains');
    expect(out).toContain('would: systemctl kill -s HUP aegis-agent');
    const order = [
      'git clone',
      './install.sh',
      'IDF_CCACHE_ENABLE',
      'chown -R',
      'toolchains\n',
      'kill -s HUP',
    ];
    const positions = order.map((s) => out.indexOf(s));
    expect(positions.every((p) => p >= 0)).toBe(true);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
    expect(r.lines.filter((l) => l.startsWith('+ '))).toEqual([]);
    expect(snapshot(SYSTEM_PATHS)).toEqual(before);
  });

  it('takes TOOLCHAINS_DIR, IDF_TOOLS_PATH and CACHE_DIR from the agent env file (read, not sourced)', () => {
    const dir = tmp('aegis-prov-');
    const envFile = path.join(dir, 'agent.env');
    const marker = path.join(dir, 'sourced');
    fs.writeFileSync(
      envFile,
      [
        '# comment',
        `TOOLCHAINS_DIR=${dir}/tc:/elsewhere`,
        `export IDF_TOOLS_PATH="${dir}/tools"`,
        `CACHE_DIR=${dir}/cache`,
        `LOG_LEVEL=$(touch ${marker})`,
      ].join('\n'),
    );
    const r = run(PROVISION, ['--dry-run', 'v5.2', 'esp32s3,linux'], {
      env: { AEGIS_AGENT_ENV: envFile },
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`${dir}/tc/esp-idf-v5.2.partial`);
    expect(r.stdout).toContain(
      `would: cd ${dir}/tc/esp-idf-v5.2 && env IDF_TOOLS_PATH=${dir}/tools ./install.sh esp32s3`,
    );
    expect(r.stdout).toContain(`${dir}/cache/ccache`);
    expect(r.stdout).toContain(`toolchains --config ${envFile}`);
    expect(fs.existsSync(marker)).toBe(false);
    expect(fs.existsSync(path.join(dir, 'tc'))).toBe(false);
  });

  it('lets the environment override the env file', () => {
    const r = run(PROVISION, ['--dry-run', '5.3.1', 'esp32'], {
      env: { ...noEnvFile, TOOLCHAINS_DIR: '/srv/idf', IDF_TOOLS_PATH: '/srv/espressif' },
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      'would: cd /srv/idf/esp-idf-v5.3.1 && env IDF_TOOLS_PATH=/srv/espressif ./install.sh esp32',
    );
  });

  it('stops on an existing directory that is not at the requested tag', () => {
    const dir = tmp('aegis-prov-');
    fs.mkdirSync(path.join(dir, 'esp-idf-v5.3.1'));
    const r = run(PROVISION, ['--dry-run', '5.3.1', 'esp32'], {
      env: { ...noEnvFile, TOOLCHAINS_DIR: dir },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/exists but is not v5\.3\.1/);
  });

  it.each([
    [['--dry-run', '5', 'esp32'], /invalid ESP-IDF version "5"/],
    [['--dry-run', 'latest', 'esp32'], /invalid ESP-IDF version "latest"/],
    [['--dry-run', '5.3.1;id', 'esp32'], /invalid ESP-IDF version/],
    [['--dry-run', '5.3.1', 'esp8266'], /unknown target "esp8266": expected one of esp32 esp32s2/],
    [['--dry-run', '5.3.1', 'esp32,,esp32c3'], /empty target/],
    [['--dry-run', '5.3.1', 'linux'], /"linux" needs a chip target beside it/],
    [['--dry-run', '5.3.1'], /expected <idf-version> <targets>/],
    [['--dry-run', '--frobnicate', '5.3.1', 'esp32'], /unknown option: --frobnicate/],
  ])('rejects %j with a clear error and exit 2', (args, message) => {
    const r = run(PROVISION, args, { env: noEnvFile });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe('');
  });

  it('--help prints the usage and exits 0', () => {
    const r = run(PROVISION, ['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: provision-toolchain.sh [--dry-run] <idf-version> <targets>');
  });

  it.skipIf(!canDropPrivileges)(
    'refuses to provision without root, but dry-runs as any user',
    () => {
      const real = run(PROVISION, ['5.3.1', 'esp32'], { asNobody: true, env: noEnvFile });
      expect(real.code).toBe(1);
      expect(real.stderr).toMatch(/must run as root/);
      const dry = run(PROVISION, ['--dry-run', '5.3.1', 'esp32'], {
        asNobody: true,
        env: noEnvFile,
      });
      expect(dry.code).toBe(0);
    },
  );
});

describe('the scripts are valid bash', () => {
  it.each([INSTALL, PROVISION])('bash -n %s', (script) => {
    const r = spawnSync('bash', ['-n', script], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
