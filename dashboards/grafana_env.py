"""Environment expansion in provisioning values, exactly as Grafana's provisioning does it
(``pkg/services/provisioning/values``), so that ``placewatch dashboards push`` sends what
Grafana's own provisioning of the same file would set."""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from pathlib import Path

_BRACED = re.compile(r"\$(|__\w+)\{([^}]+)\}")
_SHELL_DEFAULT = re.compile(r"\w+:?[-=+?]")
_GO_SPECIAL = frozenset("*#$@!?-0123456789")


def expand_env(value: str, environ: Mapping[str, str]) -> str:
    """Expand ``value`` as Grafana expands a provisioning value (Grafana's
    ``pkg/services/provisioning/values``), so a push sends what Grafana's provisioning would set.

    - ``$$`` is a literal ``$``;
    - ``${NAME}`` and ``$__env{NAME}`` are replaced first, then ``$NAME`` (Go's
      ``os.ExpandEnv``): a ``$`` inside a value that came from ``${NAME}`` is expanded again,
      as Grafana's documentation warns (use ``$NAME`` for values that contain ``$``);
    - ``$__file{path}`` is the file's content, stripped;
    - an unset variable expands to the empty string. Grafana has no ``${NAME:-default}``: it would
      look up a variable literally named ``NAME:-default`` and so yield nothing. Such a value is
      refused here (``ValueError``) rather than pushed empty.
    """
    return "$".join(
        _go_expand(_expand_braced(part, environ), environ) for part in value.split("$$")
    )


def _expand_braced(part: str, environ: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        kind, name = match.group(1), match.group(2)
        if kind in ("", "__env"):
            shell = _SHELL_DEFAULT.match(name)
            if shell:  # named without its default, which may be a password
                raise ValueError(
                    f"'${{{shell.group(0)}...}}': Grafana's provisioning has no "
                    "${NAME:-default} syntax (it would expand to an empty string); "
                    "use ${NAME} and set NAME"
                )
            if name == "HOSTNAME" and not environ.get(name):
                return socket.gethostname()  # Grafana's special case
            return environ.get(name, "")
        if kind == "__file":
            try:
                return Path(name).read_text(encoding="utf-8").strip()
            except OSError as e:
                raise ValueError(f"'{match.group(0)}': cannot read the file: {e.strerror}") from e
        return match.group(0)  # an expander only Grafana Enterprise has ($__vault{...})

    return _BRACED.sub(replace, part)


def _go_expand(s: str, environ: Mapping[str, str]) -> str:
    """Go's ``os.Expand`` with the environment: ``$NAME``, ``${NAME}``, one-character special
    names, and its handling of bad syntax (``${}`` and an unclosed ``${`` are dropped)."""
    out: list[str] = []
    i = 0
    j = 0
    while j < len(s):
        if s[j] == "$" and j + 1 < len(s):
            out.append(s[i:j])
            name, width = _go_shell_name(s[j + 1 :])
            if name == "" and width > 0:
                pass  # bad syntax: eaten
            elif name == "":
                out.append("$")  # '$' not followed by a name stays
            else:
                out.append(environ.get(name, ""))
            j += width
            i = j + 1
        j += 1
    out.append(s[i:])
    return "".join(out)


def _go_shell_name(s: str) -> tuple[str, int]:
    if s[0] == "{":
        if len(s) > 2 and s[1] in _GO_SPECIAL and s[2] == "}":
            return s[1], 3
        end = s.find("}", 1)
        if end == 1:
            return "", 2
        if end == -1:
            return "", 1
        return s[1:end], end + 1
    if s[0] in _GO_SPECIAL:
        return s[0], 1
    n = 0
    while n < len(s) and (s[n] == "_" or (s[n].isascii() and s[n].isalnum())):
        n += 1
    return s[:n], n
