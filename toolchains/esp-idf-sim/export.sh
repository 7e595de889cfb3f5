# This script should be sourced, not executed:  . ./export.sh
#
# ESP-IDF stand-in (esp-idf-sim): sets up the environment like ESP-IDF's export.sh does.
# IDF_PATH is derived from this file's location (without resolving symlinks, so an install that
# links to this file gets its own IDF_PATH).

__idf_sim_export() {
    local script_dir
    script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)" || return 1
    if [ ! -f "${script_dir}/tools/idf.py" ] || [ ! -f "${script_dir}/tools/cmake/version.cmake" ]; then
        echo "Could not detect IDF_PATH. Please set it before sourcing this script:" >&2
        echo "  export IDF_PATH=(add path here)" >&2
        return 1
    fi
    export IDF_PATH="${script_dir}"
    echo "Setting IDF_PATH to '${IDF_PATH}'"

    echo "Detecting the Python interpreter"
    local python="${IDF_PYTHON:-python3}"
    echo "Checking \"${python}\" ..."
    local pyver
    if ! pyver="$("${python}" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null)"; then
        echo "\"${python}\" is not installed! Please install Python 3.8 or newer." >&2
        return 1
    fi
    echo "Python ${pyver}"
    echo "\"${python}\" has been detected"

    echo "Checking Python compatibility"
    local info
    if ! info="$("${python}" "${IDF_PATH}/tools/idf_sim/check_env.py" "${IDF_PATH}")"; then
        return 1
    fi
    local idf_version py_short
    idf_version="$(printf '%s\n' "$info" | sed -n 's/^IDF_VERSION=//p')"
    py_short="$(printf '%s\n' "$info" | sed -n 's/^PYTHON_SHORT=//p')"

    export IDF_TOOLS_PATH="${IDF_TOOLS_PATH:-$HOME/.espressif}"
    export ESP_IDF_VERSION="${idf_version}"
    export IDF_PYTHON_ENV_PATH="${IDF_PATH}/python_env/idf${idf_version}_py${py_short}_env"

    echo "Checking other ESP-IDF version."
    echo "Adding ESP-IDF tools to PATH..."
    echo "Checking if Python packages are up to date..."
    echo "Constraint file: ${IDF_TOOLS_PATH}/espidf.constraints.v${idf_version}.txt"
    echo "Requirement files:"
    echo " - ${IDF_PATH}/tools/requirements/requirements.core.txt"
    echo "Python being checked: ${IDF_PYTHON_ENV_PATH}/bin/python"
    # The stand-in needs only the standard library; check that the modules idf.py uses import.
    if ! "${python}" -c 'import argparse, fcntl, hashlib, json, pty, runpy, selectors, shlex, struct, termios, tty' 2>/dev/null; then
        echo "Python requirements are not satisfied: ${python} lacks standard library modules." >&2
        return 1
    fi
    echo "Python requirements are satisfied."

    case ":${PATH}:" in
        *":${IDF_PATH}/tools:"*) ;;
        *) export PATH="${IDF_PATH}/tools:${PATH}" ;;
    esac
    echo "Added the following directories to PATH:"
    echo "  ${IDF_PATH}/tools"

    local delay_ms="${IDF_SIM_EXPORT_DELAY_MS//[^0-9]/}"
    if [ -n "${delay_ms}" ] && [ "${delay_ms}" -gt 0 ]; then
        sleep "$((delay_ms / 1000)).$(printf '%03d' $((delay_ms % 1000)))"
    fi

    echo "Done! You can now compile ESP-IDF projects."
    echo "Go to the project directory and run:"
    echo ""
    echo "  idf.py build"
    echo ""
}

__idf_sim_export
__idf_sim_rc=$?
unset -f __idf_sim_export
if [ "${__idf_sim_rc}" -ne 0 ]; then
    unset __idf_sim_rc
    return 1 2>/dev/null || exit 1
fi
unset __idf_sim_rc
