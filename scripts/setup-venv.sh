# Sourced by the README commands: a project virtualenv with placewatch and its dev tools,
# reinstalled only when pyproject.toml changes.
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.placewatch-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  # grafana-client's niquests needs urllib3-future, whose wheel replaces urllib3 itself (and
  # breaks requests-based tools such as schemathesis); built from source with this variable set
  # it installs beside urllib3 instead, as its maintainers document.
  URLLIB3_NO_OVERRIDE=1 .venv/bin/python -m pip install --quiet --no-binary urllib3-future \
    -e ".[dev]"
  touch "$stamp"
fi
