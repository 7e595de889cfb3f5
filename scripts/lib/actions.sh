# Shared by scripts/install.sh and scripts/provision-toolchain.sh (sourced, not run): every
# action is printed as one line, and only printed under --dry-run (DRY_RUN=1).

# The words of a command as a shell would read them back: bare when safe, else single-quoted.
quoted() {
  local out=() arg
  for arg in "$@"; do
    if [[ "${arg}" =~ ^[A-Za-z0-9_./=:,@%+-]+$ ]]; then
      out+=("${arg}")
    else
      out+=("'${arg//\'/\'\\\'\'}'")
    fi
  done
  printf '%s' "${out[*]}"
}

# act CMD ARGS...: one action, one line.
act() {
  if ((DRY_RUN)); then
    printf 'would: %s\n' "$(quoted "$@")"
  else
    printf '+ %s\n' "$(quoted "$@")"
    "$@"
  fi
}

# act_in DIR CMD ARGS...: an action run inside DIR.
act_in() {
  local dir="$1"
  shift
  if ((DRY_RUN)); then
    printf 'would: cd %s && %s\n' "$(quoted "${dir}")" "$(quoted "$@")"
  else
    printf '+ cd %s && %s\n' "$(quoted "${dir}")" "$(quoted "$@")"
    (cd "${dir}" && "$@")
  fi
}
