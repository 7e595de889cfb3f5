#!/usr/bin/env bash
# Install (or upgrade) aegis-agent on a systemd build machine from a built checkout or release
# directory: the `aegis` user, the code under the prefix with its production dependencies, the
# launcher, /etc/aegis/{agent,secrets}.env (only when absent) and the systemd unit.
# Idempotent: a second run gives the same result and never touches an operator's config.
# Operator documentation: docs/operations.md.
set -euo pipefail

readonly DEFAULT_PREFIX=/opt/aegis-agent
readonly SERVICE=aegis-agent
readonly AGENT_USER=aegis
readonly AGENT_GROUP=aegis
readonly AGENT_HOME=/var/lib/aegis-agent
readonly ETC_DIR=/etc/aegis
readonly UNIT_DIR=/etc/systemd/system
readonly MIN_NODE_MAJOR=20

SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly SRC_DIR

usage() {
  cat <<EOF
Usage: install.sh [--dry-run] [--no-start] [--prefix DIR]

Installs aegis-agent from ${SRC_DIR} (built: run "npm ci && npm run build" first).

  --dry-run      print every action as one "would: ..." line and change nothing (any user)
  --no-start     install, but do not enable or start the service
  --prefix DIR   where the code goes (default ${DEFAULT_PREFIX})
  -h, --help     this help

Creates the system user ${AGENT_USER}, installs dist/, package.json and package-lock.json into
the prefix with "npm ci --omit=dev", the launcher <prefix>/bin/aegis-agent,
${ETC_DIR}/agent.env and ${ETC_DIR}/secrets.env (0600, only when absent: never overwritten),
${UNIT_DIR}/${SERVICE}.service, then: systemctl daemon-reload; systemctl enable --now ${SERVICE}.
Toolchains are not installed here: see scripts/provision-toolchain.sh.
EOF
}

die() {
  printf 'install.sh: %s\n' "$1" >&2
  exit "${2:-1}"
}

usage_error() {
  printf 'install.sh: %s\n\n' "$1" >&2
  usage >&2
  exit 2
}

DRY_RUN=0
START=1
PREFIX="${DEFAULT_PREFIX}"
while (($# > 0)); do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --no-start) START=0 ;;
    --prefix)
      (($# >= 2)) || usage_error "--prefix needs a directory"
      PREFIX="$2"
      shift
      ;;
    --prefix=*) PREFIX="${1#--prefix=}" ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) usage_error "unknown argument: $1" ;;
  esac
  shift
done
[[ "${PREFIX}" == /* ]] || usage_error "--prefix must be an absolute path, got: ${PREFIX}"
[[ "${PREFIX}" != / ]] || usage_error "--prefix must not be /"
PREFIX="${PREFIX%/}"
readonly DRY_RUN START PREFIX

# ---- how every action is carried out: printed, and run unless --dry-run ------------------

# quoted, act and act_in: scripts/lib/actions.sh.
# shellcheck source=lib/actions.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/actions.sh"

# put MODE DEST NOTE: install stdin as DEST, root-owned, with MODE (written whole, then moved).
put() {
  local mode="$1" dest="$2" note="${3:-}" tmp
  if ((DRY_RUN)); then
    cat >/dev/null
    printf 'would: install -m %s -o root -g root <generated> %s%s\n' "${mode}" "${dest}" "${note:+  # ${note}}"
    return
  fi
  tmp="$(mktemp)"
  cat >"${tmp}"
  printf '+ install -m %s -o root -g root <generated> %s\n' "${mode}" "${dest}"
  install -m "${mode}" -o root -g root "${tmp}" "${dest}"
  rm -f "${tmp}"
}

note() { printf '%s\n' "$*"; }

# ---- preconditions --------------------------------------------------------------------------

[[ -f "${SRC_DIR}/dist/cli.js" ]] ||
  die "${SRC_DIR}/dist/cli.js not found: run npm ci && npm run build first"
for f in package.json package-lock.json "systemd/${SERVICE}.service" "systemd/${SERVICE}.env.example"; do
  [[ -f "${SRC_DIR}/${f}" ]] || die "${SRC_DIR}/${f} is missing: not an aegis-agent checkout or release"
done

if ((!DRY_RUN)) && ((EUID != 0)); then
  die "must run as root to install (try: sudo $0 $*); --dry-run works as any user"
fi

NODE_BIN="$(command -v node || true)"
if [[ -z "${NODE_BIN}" ]]; then
  ((DRY_RUN)) || die "node not found on PATH: install Node.js ${MIN_NODE_MAJOR} or later first"
  note "warning: node not found on PATH (a real install stops here)"
  NODE_BIN=/usr/bin/node
else
  node_major="$("${NODE_BIN}" -p 'process.versions.node.split(".")[0]')"
  if ((node_major < MIN_NODE_MAJOR)); then
    ((DRY_RUN)) || die "${NODE_BIN} is Node ${node_major}; aegis-agent needs ${MIN_NODE_MAJOR} or later"
    note "warning: ${NODE_BIN} is Node ${node_major} (a real install stops here)"
  fi
fi
command -v npm >/dev/null || ((DRY_RUN)) || die "npm not found on PATH"
readonly NODE_BIN

((DRY_RUN)) && note "dry run: nothing is changed. Plan for prefix ${PREFIX}:"

# ---- 1. the user --------------------------------------------------------------------------

NOLOGIN=/usr/sbin/nologin
[[ -x "${NOLOGIN}" ]] || NOLOGIN=/sbin/nologin
if getent group "${AGENT_GROUP}" >/dev/null; then
  note "keep: group ${AGENT_GROUP} exists"
else
  act groupadd --system "${AGENT_GROUP}"
fi
if getent passwd "${AGENT_USER}" >/dev/null; then
  note "keep: user ${AGENT_USER} exists"
else
  act useradd --system --gid "${AGENT_GROUP}" --home-dir "${AGENT_HOME}" --no-create-home \
    --shell "${NOLOGIN}" --comment "aegis build agent" "${AGENT_USER}"
fi
# The unit's StateDirectory= makes it too; made here so provisioning can run before the first start.
act install -d -m 0750 -o "${AGENT_USER}" -g "${AGENT_GROUP}" "${AGENT_HOME}"

# ---- 2. the code, root-owned: the agent cannot modify what it runs ------------------------

act install -d -m 0755 -o root -g root "${PREFIX}" "${PREFIX}/bin" "${PREFIX}/docs" "${PREFIX}/scripts"
act rm -rf "${PREFIX}/dist"
act cp -R "${SRC_DIR}/dist" "${PREFIX}/dist"
act install -m 0644 -o root -g root "${SRC_DIR}/package.json" "${SRC_DIR}/package-lock.json" "${PREFIX}/"
act install -m 0755 -o root -g root "${SRC_DIR}/scripts/provision-toolchain.sh" "${PREFIX}/scripts/"
act install -D -m 0644 -o root -g root "${SRC_DIR}/scripts/lib/actions.sh" "${PREFIX}/scripts/lib/actions.sh"
if [[ -f "${SRC_DIR}/docs/operations.md" ]]; then
  act install -m 0644 -o root -g root "${SRC_DIR}/docs/operations.md" "${PREFIX}/docs/"
fi
act_in "${PREFIX}" npm ci --omit=dev --no-audit --no-fund
act chmod -R u=rwX,go=rX "${PREFIX}"

# exec: node replaces the shell, so systemd's main PID (and WATCHDOG_PID) is the agent itself.
put 0755 "${PREFIX}/bin/aegis-agent" <<EOF
#!/bin/sh
# aegis-agent launcher, written by scripts/install.sh.
exec ${NODE_BIN} ${PREFIX}/dist/cli.js "\$@"
EOF

# ---- 3. configuration: created once, never overwritten ------------------------------------

act install -d -m 0755 -o root -g root "${ETC_DIR}"
if [[ -e "${ETC_DIR}/agent.env" ]]; then
  note "keep: ${ETC_DIR}/agent.env exists, not overwritten"
else
  act install -m 0644 -o root -g root "${SRC_DIR}/systemd/${SERVICE}.env.example" "${ETC_DIR}/agent.env"
fi

SECRET_SET=0
if [[ -e "${ETC_DIR}/secrets.env" ]]; then
  note "keep: ${ETC_DIR}/secrets.env exists, not overwritten (mode and owner enforced)"
  grep -q '^[[:space:]]*AGENT_AUTH_SECRET=.' "${ETC_DIR}/secrets.env" 2>/dev/null && SECRET_SET=1
else
  put 0600 "${ETC_DIR}/secrets.env" "absent: a placeholder, no secret is generated" <<'EOF'
# aegis-agent secrets: KEY=VALUE, one per line. Keep this file mode 0600, owner root:root.
# systemd reads it (LoadCredential=agent-secrets:/etc/aegis/secrets.env) and hands it to the
# agent as $CREDENTIALS_DIRECTORY/agent-secrets; it never enters the environment.
# Set this agent's shared secret (as configured on the control plane), then:
#   sudo systemctl restart aegis-agent
#AGENT_AUTH_SECRET=
EOF
fi
act chown root:root "${ETC_DIR}/secrets.env"
act chmod 0600 "${ETC_DIR}/secrets.env"

# ---- 4. the unit --------------------------------------------------------------------------

# Ours, so replaced on every install: local changes belong in a drop-in (systemctl edit).
sed "s#${DEFAULT_PREFIX}/#${PREFIX}/#g" "${SRC_DIR}/systemd/${SERVICE}.service" |
  put 0644 "${UNIT_DIR}/${SERVICE}.service" "replaced on every install; customise with: systemctl edit ${SERVICE}"
act systemctl daemon-reload

WAS_ACTIVE=0
if ((START)); then
  systemctl is-active --quiet "${SERVICE}" 2>/dev/null && WAS_ACTIVE=1
  act systemctl enable --now "${SERVICE}"
else
  note "skip: not enabled or started (--no-start); later: systemctl enable --now ${SERVICE}"
fi

# ---- what is left to the operator ---------------------------------------------------------

((SECRET_SET)) ||
  note "next: set AGENT_AUTH_SECRET in ${ETC_DIR}/secrets.env, then: systemctl restart ${SERVICE} (until then it exits 78 and is not restarted)"
((WAS_ACTIVE)) &&
  note "note: the running agent keeps the old code until: systemctl restart ${SERVICE} (it drains running builds first)"
note "next: provision a toolchain: ${PREFIX}/scripts/provision-toolchain.sh 5.3.1 esp32,esp32c3"
exit 0
