# Sourced by scripts/run and scripts/test: activates the active virtual environment's python, else
# ./.venv (created, with Debian's python3-venv installed when missing: Debian's python refuses
# `pip install` outside a venv).
PYTHON=${PYTHON:-python3}
if [[ -z ${VIRTUAL_ENV:-} ]]; then
    if [[ ! -x .venv/bin/python ]]; then
        if ! "$PYTHON" -m venv .venv 2>/dev/null; then
            ver=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
            SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
            $SUDO apt-get install -y "python${ver}-venv" || $SUDO apt-get install -y python3-venv
            rm -rf .venv
            "$PYTHON" -m venv .venv
        fi
    fi
    # shellcheck disable=SC1091
    source .venv/bin/activate
fi
