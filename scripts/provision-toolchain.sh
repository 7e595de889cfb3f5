#!/usr/bin/env bash
# Provision one real ESP-IDF release for aegis-agent: clone it into TOOLCHAINS_DIR, install its
# tools for the given targets into the shared IDF_TOOLS_PATH, turn ccache on for every build,
# hand it to the aegis user, show what the agent now sees, and tell a running agent to rescan.
# Idempotent: an install already at that tag is not cloned again; ESP-IDF's own install.sh
# skips tools that are already there. Operator documentation: docs/operations.md.
set -euo pipefail

readonly SERVICE=aegis-agent
readonly AGENT_USER=aegis
readonly AGENT_GROUP=aegis
readonly IDF_REPO=https://github.com/espressif/esp-idf.git
readonly KNOWN_TARGETS=(esp32 esp32s2 esp32c3 esp32s3 esp32c2 esp32c6 esp32h2 esp32p4 esp32c5 esp32c61 linux)
readonly CCACHE_MARK='# aegis: provision-toolchain.sh'
AGENT_ENV_FILE="${AEGIS_AGENT_ENV:-/etc/aegis/agent.env}"
AGENT_BIN="${AEGIS_AGENT_BIN:-/opt/aegis-agent/bin/aegis-agent}"
readonly AGENT_ENV_FILE AGENT_BIN

usage() {
  cat <<EOF
Usage: provision-toolchain.sh [--dry-run] <idf-version> <targets>

  <idf-version>  an ESP-IDF release, e.g. 5.3.1 (the tag v5.3.1 is cloned)
  <targets>      comma-separated, from: ${KNOWN_TARGETS[*]}
                 ("linux" uses the host's compiler and needs a chip target beside it)
  --dry-run      print every action as one "would: ..." line and change nothing (any user)
  -h, --help     this help

Example: provision-toolchain.sh 5.3.1 esp32,esp32c3

TOOLCHAINS_DIR (first entry; default /opt/aegis/toolchains), IDF_TOOLS_PATH (default
/opt/aegis/espressif) and CACHE_DIR (default /var/cache/aegis-agent) are read from the
environment, else from ${AGENT_ENV_FILE}, so the agent and this script agree.
EOF
}

die() {
  printf 'provision-toolchain.sh: %s\n' "$1" >&2
  exit "${2:-1}"
}

usage_error() {
  printf 'provision-toolchain.sh: %s\n\n' "$1" >&2
  usage >&2
  exit 2
}

DRY_RUN=0
POSITIONAL=()
while (($# > 0)); do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    -h | --help)
      usage
      exit 0
      ;;
    --) shift && POSITIONAL+=("$@") && break ;;
    -*) usage_error "unknown option: $1" ;;
    *) POSITIONAL+=("$1") ;;
  esac
  shift
done
((${#POSITIONAL[@]} == 2)) || usage_error "expected <idf-version> <targets>, got ${#POSITIONAL[@]} argument(s)"
readonly DRY_RUN

# ---- arguments ----------------------------------------------------------------------------

VERSION="${POSITIONAL[0]#v}"
[[ "${VERSION}" =~ ^[0-9]+\.[0-9]+(\.[0-9]+)?(-(beta|rc)[0-9]+)?$ ]] ||
  usage_error "invalid ESP-IDF version \"${POSITIONAL[0]}\": expected a release like 5.3.1 (or 5.3, 5.4-rc1)"
readonly VERSION
readonly TAG="v${VERSION}"

TARGETS=()
CHIP_TARGETS=()
IFS=',' read -r -a requested <<<"${POSITIONAL[1]}"
((${#requested[@]} > 0)) || usage_error "no target given"
for t in "${requested[@]}"; do
  t="${t// /}"
  [[ -n "${t}" ]] || usage_error "empty target in \"${POSITIONAL[1]}\""
  known=0
  for k in "${KNOWN_TARGETS[@]}"; do [[ "${t}" == "${k}" ]] && known=1; done
  ((known)) || usage_error "unknown target \"${t}\": expected one of ${KNOWN_TARGETS[*]}"
  dup=0
  for seen in "${TARGETS[@]+"${TARGETS[@]}"}"; do [[ "${seen}" == "${t}" ]] && dup=1; done
  ((dup)) && continue
  TARGETS+=("${t}")
  [[ "${t}" == linux ]] || CHIP_TARGETS+=("${t}")
done
# ESP-IDF's install.sh has no tools for "linux" (it builds with the host gcc).
((${#CHIP_TARGETS[@]} > 0)) || usage_error "\"linux\" needs a chip target beside it, e.g. esp32,linux"
CHIP_LIST="$(IFS=,; printf '%s' "${CHIP_TARGETS[*]}")"
readonly TARGETS CHIP_TARGETS CHIP_LIST

# ---- settings shared with the agent -------------------------------------------------------

# One value from a KEY=VALUE file (systemd EnvironmentFile syntax). Read, never sourced.
env_file_value() {
  local key="$1" line value
  [[ -r "${AGENT_ENV_FILE}" ]] || return 0
  while IFS= read -r line || [[ -n "${line}" ]]; do
    line="${line#"${line%%[![:space:]]*}"}"
    line="${line#export }"
    [[ "${line}" == "${key}="* ]] || continue
    value="${line#"${key}"=}"
    value="${value%"${value##*[![:space:]]}"}"
    if [[ "${value}" =~ ^\"(.*)\"$ || "${value}" =~ ^\'(.*)\'$ ]]; then value="${BASH_REMATCH[1]}"; fi
    printf '%s' "${value}"
  done <"${AGENT_ENV_FILE}"
}

setting() {
  local key="$1" default="$2" value="${!1:-}"
  [[ -n "${value}" ]] || value="$(env_file_value "${key}")"
  printf '%s' "${value:-${default}}"
}

TOOLCHAINS_ROOT="$(setting TOOLCHAINS_DIR /opt/aegis/toolchains)"
TOOLCHAINS_ROOT="${TOOLCHAINS_ROOT%%:*}"
IDF_TOOLS="$(setting IDF_TOOLS_PATH /opt/aegis/espressif)"
AGENT_CACHE="$(setting CACHE_DIR /var/cache/aegis-agent)"
for p in "${TOOLCHAINS_ROOT}" "${IDF_TOOLS}" "${AGENT_CACHE}"; do
  [[ "${p}" == /* ]] || die "${p} is not an absolute path (check ${AGENT_ENV_FILE})"
done
[[ "${IDF_TOOLS}" != /home/* ]] || die "IDF_TOOLS_PATH must be outside /home (the unit has ProtectHome=yes): ${IDF_TOOLS}"
readonly TOOLCHAINS_ROOT IDF_TOOLS AGENT_CACHE
readonly DEST="${TOOLCHAINS_ROOT}/esp-idf-${TAG}"
readonly CCACHE_DIR_PATH="${AGENT_CACHE}/ccache"

# ---- how every action is carried out: printed, and run unless --dry-run ------------------

# quoted, act and act_in: scripts/lib/actions.sh.
# shellcheck source=lib/actions.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/actions.sh"

note() { printf '%s\n' "$*"; }

# git refuses repositories owned by another user ("dubious ownership"); the install belongs to
# aegis while this runs as root. Environment-scoped config, for this script's git runs only.
export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=safe.directory GIT_CONFIG_VALUE_0="${DEST}"

# ---- preconditions --------------------------------------------------------------------------

if ((!DRY_RUN)) && ((EUID != 0)); then
  die "must run as root (it writes under ${TOOLCHAINS_ROOT} and ${IDF_TOOLS}); --dry-run works as any user"
fi
for tool in git python3; do
  command -v "${tool}" >/dev/null || ((DRY_RUN)) || die "${tool} not found: ESP-IDF needs it (apt-get install ${tool})"
done
if ((!DRY_RUN)) && ! getent passwd "${AGENT_USER}" >/dev/null; then
  die "user ${AGENT_USER} does not exist: run scripts/install.sh first"
fi

((DRY_RUN)) && note "dry run: nothing is changed. Plan for ESP-IDF ${TAG} (${TARGETS[*]}):"

# ---- 1. the source, at the release tag ----------------------------------------------------

act install -d -m 0755 "${TOOLCHAINS_ROOT}" "${IDF_TOOLS}"
if [[ -d "${DEST}" ]]; then
  at="$(git -C "${DEST}" describe --tags --exact-match 2>/dev/null || true)"
  [[ "${at}" == "${TAG}" ]] ||
    die "${DEST} exists but is not ${TAG} (git says: ${at:-no tag}): move it away or remove it, then run again"
  note "keep: ${DEST} is already ${TAG}, not cloned again"
else
  # Cloned beside its final name and renamed when complete: an interrupted clone never looks
  # like an install to the agent.
  act rm -rf "${DEST}.partial"
  act git clone --depth 1 --branch "${TAG}" --recursive --shallow-submodules "${IDF_REPO}" "${DEST}.partial"
  act mv "${DEST}.partial" "${DEST}"
fi

# ---- 2. the tools, shared by every install, outside /home ---------------------------------

act_in "${DEST}" env IDF_TOOLS_PATH="${IDF_TOOLS}" ./install.sh "${CHIP_LIST}"

# ---- 3. ccache for every build ------------------------------------------------------------
# idf.py turns ccache on when IDF_CCACHE_ENABLE=1. The agent captures each install's export.sh
# environment and passes IDF_* (and PATH) on to builds, so the variable is set in export.sh
# itself (one marked line at the top: the script's own exit status stays the last word).
# Builds get a HOME inside their workspace, so the shared cache directory comes from ccache's
# system-wide config instead of CCACHE_DIR, which the agent's allow-list would not pass.

if command -v ccache >/dev/null; then
  note "keep: ccache is installed ($(command -v ccache))"
else
  command -v apt-get >/dev/null || ((DRY_RUN)) || die "ccache is missing and apt-get is not available: install ccache, then run again"
  act env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ccache
fi

if [[ -f "${DEST}/export.sh" ]] && grep -qF "${CCACHE_MARK}" "${DEST}/export.sh"; then
  note "keep: ${DEST}/export.sh already sets IDF_CCACHE_ENABLE=1"
else
  act sed -i "1i export IDF_CCACHE_ENABLE=1  ${CCACHE_MARK}" "${DEST}/export.sh"
fi

act install -d -m 0750 -o "${AGENT_USER}" -g "${AGENT_GROUP}" "${AGENT_CACHE}" "${CCACHE_DIR_PATH}"
if [[ -f /etc/ccache.conf ]] && grep -Eq '^[[:space:]]*cache_dir[[:space:]]*=' /etc/ccache.conf; then
  note "keep: /etc/ccache.conf already sets cache_dir (not changed): $(grep -E '^[[:space:]]*cache_dir' /etc/ccache.conf | tail -n 1)"
elif ((DRY_RUN)); then
  printf 'would: append "cache_dir = %s  %s" to /etc/ccache.conf\n' "${CCACHE_DIR_PATH}" "${CCACHE_MARK}"
else
  printf '+ append "cache_dir = %s" to /etc/ccache.conf\n' "${CCACHE_DIR_PATH}"
  printf '%s\ncache_dir = %s\n' "${CCACHE_MARK}: the shared compiler cache of every build" "${CCACHE_DIR_PATH}" >>/etc/ccache.conf
fi

# ---- 4. hand it to the agent's user -------------------------------------------------------

act chown -R "${AGENT_USER}:${AGENT_GROUP}" "${DEST}" "${IDF_TOOLS}"

# ---- 5. what the agent sees now, and a rescan ---------------------------------------------

agent_args=(toolchains)
[[ -r "${AGENT_ENV_FILE}" ]] && agent_args+=(--config "${AGENT_ENV_FILE}")
rc=0
act runuser -u "${AGENT_USER}" -- "${AGENT_BIN}" "${agent_args[@]}" || rc=$?

if ((DRY_RUN)); then
  note "would: systemctl kill -s HUP ${SERVICE}  # only if it is running: it rescans TOOLCHAINS_DIR"
elif systemctl is-active --quiet "${SERVICE}" 2>/dev/null; then
  act systemctl kill -s HUP "${SERVICE}"
else
  note "skip: ${SERVICE} is not running; it scans TOOLCHAINS_DIR when it starts"
fi

((rc == 0)) || die "aegis-agent toolchains reports no usable install (exit ${rc}): see its output above"
exit 0
