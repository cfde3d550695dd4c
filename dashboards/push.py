"""``placewatch dashboards push``: upload our data sources, folders and dashboards to a running
Grafana through its HTTP API (with the ``grafana-client`` library).

What is pushed, from ``root`` (``dashboards/`` by default):

- ``provisioning/datasources/placewatch.yaml``: Grafana's data source provisioning format
  (``apiVersion: 1``, ``datasources:``). Every string value in it is expanded from the
  environment the way Grafana's provisioning does it (:mod:`dashboards.grafana_env`). Data
  sources are created or updated by ``uid``. ``orgId``, ``version`` and ``editable`` are
  provisioning-only and not sent (a data source made through the API is editable in the UI);
  the deprecated top-level ``password`` and ``basicAuthPassword`` are sent as
  ``secureJsonData``.
- ``json/<Folder Title>/<name>.json``: one dashboard per file, with a fixed ``uid`` and ``title``.
  As with Grafana's ``foldersFromFilesStructure``, the directory's name is the folder's title
  (files directly in ``json/`` go to the General folder); the folder's uid is
  ``placewatch-<slug of the title>`` (:func:`folder_uid`). Dashboard files are not
  env-expanded (Grafana does not expand them either).
- ``provisioning/dashboards/placewatch.yaml`` (the file provider) is only for Grafana's own
  provisioning and is not read here.

Idempotence: each item is read from Grafana first and written only when it differs from what
would be sent, so pushing the same files twice makes no write request the second time:

- data source: the non-secure fields (name, type, access, url, user, database, basicAuth,
  basicAuthUser, withCredentials, isDefault, jsonData; a field the file leaves out counts as
  Grafana's zero value, because an update replaces all of them) and whether each secret key of
  ``secureJsonData`` is set (``secureJsonFields``). Secret *values* cannot be read back, so they
  are sent when the data source is created, when a secret key is not set in Grafana yet (then
  only those keys), and all of them on every push with ``update_secrets=True``
  (``--update-secrets``), which therefore always reports such data sources as updated. An update
  without ``secureJsonData`` keeps the secrets Grafana has.
- folder: its title.
- dashboard: the JSON minus ``id`` and ``version``, and its folder (``meta.folderUid``). It is
  written with ``overwrite: true``, its ``folderUid`` and the message ``placewatch dashboards
  push`` (shown in the dashboard's version history).

Nothing is deleted. Every failure is a :class:`PushError` naming the item, the HTTP status and
Grafana's message, or the URL that could not be reached. Secrets are never part of a message.

A Grafana that provisions these same files itself (Grafana's file provisioning) marks the data
sources read-only and the dashboards provisioned: it refuses to have them changed through the
API, and its folders made from the file structure get generated uids. Push to a Grafana that
does not provision them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaException, GrafanaTimeoutError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from dashboards.grafana_env import expand_env

__all__ = [
    "DEFAULT_ROOT",
    "MESSAGE",
    "PushError",
    "PushReport",
    "display_url",
    "folder_uid",
    "push",
]

DEFAULT_ROOT = Path(__file__).resolve().parent
DATASOURCES_FILE = Path("provisioning/datasources/placewatch.yaml")
DASHBOARDS_DIR = Path("json")
MESSAGE = "placewatch dashboards push"
FOLDER_UID_PREFIX = "placewatch-"


# Grafana's uids: at most 40 characters of letters, digits, '-' and '_'.
_UID = re.compile(r"[A-Za-z0-9_-]{1,40}")

# The data source fields an API create or update sets, with Grafana's zero values (an update
# replaces every one of them, so a field the file leaves out is compared as its zero value).
_DATASOURCE_FIELDS: dict[str, Any] = {
    "name": "",
    "type": "",
    "access": "proxy",
    "url": "",
    "user": "",
    "database": "",
    "basicAuth": False,
    "basicAuthUser": "",
    "withCredentials": False,
    "isDefault": False,
    "jsonData": {},
}
_DATASOURCE_BOOLS = ("basicAuth", "withCredentials", "isDefault")
# Provisioning-only keys: meaningful to Grafana's file provisioning, not to the HTTP API.
_DATASOURCE_IGNORED = ("orgId", "version", "editable")
# Deprecated top-level secrets that Grafana keeps in secureJsonData.
_DATASOURCE_LEGACY_SECRETS = ("password", "basicAuthPassword")

T = TypeVar("T")


class PushError(Exception):
    """The push failed; the message names the item and says why (never a secret)."""


@dataclass
class PushReport:
    """What a push did, item by item ("datasource <uid>", "folder <uid>", "dashboard <uid>")."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    # Things worth a look that did not stop the push (e.g. a secret that expanded to nothing).
    warnings: list[str] = field(default_factory=list)


def _expand_tree(value: Any, environ: Mapping[str, str], where: str) -> Any:
    """Expand every string in a YAML value (not the keys), as Grafana does."""
    if isinstance(value, str):
        try:
            return expand_env(value, environ)
        except ValueError as e:
            raise PushError(f"{where}: {e}") from e
    if isinstance(value, dict):
        return {k: _expand_tree(v, environ, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_tree(v, environ, f"{where}[{n}]") for n, v in enumerate(value)]
    return value


def _go_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):  # e.g. isDefault: $IS_DEFAULT (Go's strconv.ParseBool)
        if value in ("1", "t", "T", "TRUE", "true", "True"):
            return True
        if value in ("0", "f", "F", "FALSE", "false", "False"):
            return False
    raise PushError(f"{where}: {value!r} is not a boolean")


# --- what the files say ----------------------------------------------------------------------


@dataclass(frozen=True)
class _DataSource:
    uid: str
    fields: dict[str, Any]  # every key of _DATASOURCE_FIELDS
    secrets: dict[str, str]

    @property
    def item(self) -> str:
        return f"datasource {self.uid}"


@dataclass(frozen=True)
class _Folder:
    uid: str
    title: str

    @property
    def item(self) -> str:
        return f"folder {self.uid}"


@dataclass(frozen=True)
class _Dashboard:
    uid: str
    model: dict[str, Any]  # without id and version
    folder_uid: str  # "" for the General folder
    path: Path

    @property
    def item(self) -> str:
        return f"dashboard {self.uid}"


def folder_uid(title: str) -> str:
    """``placewatch-`` and the title in lower case, each run of characters other than ASCII
    letters and digits made one ``-`` and none at either end ("Care & Alerts" gives
    ``placewatch-care-alerts``)."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    if not slug:
        raise PushError(f"folder {title!r}: no letter or digit to make its uid from")
    uid = FOLDER_UID_PREFIX + slug
    if len(uid) > 40:
        raise PushError(f"folder {title!r}: its uid {uid} is longer than Grafana's 40 characters")
    return uid


def _load_datasources(
    root: Path, environ: Mapping[str, str], warnings: list[str]
) -> list[_DataSource]:
    path = root / DATASOURCES_FILE
    try:
        doc = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise PushError(f"{path}: cannot read it: {e.strerror}") from e
    except YAMLError as e:
        raise PushError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(doc, dict):
        raise PushError(f"{path}: expected a mapping with apiVersion and datasources")
    if doc.get("apiVersion") != 1:
        raise PushError(f"{path}: apiVersion {doc.get('apiVersion')!r}; only 1 is known")
    entries = doc.get("datasources") or []
    if not isinstance(entries, list):
        raise PushError(f"{path}: datasources must be a list")
    found: list[_DataSource] = []
    for n, entry in enumerate(entries):
        where = f"{path}: datasources[{n}]"
        if not isinstance(entry, dict):
            raise PushError(f"{where}: expected a mapping")
        entry = _expand_tree(entry, environ, where)
        uid = entry.get("uid")
        if not isinstance(uid, str) or not _UID.fullmatch(uid):
            raise PushError(f"{where}: needs a uid of 1 to 40 letters, digits, '-' or '_'")
        where = f"{path}: datasource {uid}"
        for key in ("name", "type"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise PushError(f"{where}: needs a {key}")
        fields = dict(_DATASOURCE_FIELDS)
        secrets: dict[str, str] = {}
        for key, value in entry.items():
            if key in _DATASOURCE_FIELDS:
                fields[key] = value
            elif key == "secureJsonData":
                if not isinstance(value, dict):
                    raise PushError(f"{where}: secureJsonData must be a mapping")
                secrets.update({str(k): "" if v is None else str(v) for k, v in value.items()})
            elif key in _DATASOURCE_LEGACY_SECRETS:
                secrets.setdefault(key, "" if value is None else str(value))
            elif key not in _DATASOURCE_IGNORED and key != "uid":
                warnings.append(f"datasource {uid}: {key} is not a data source field; ignored")
        for key in _DATASOURCE_BOOLS:
            fields[key] = _go_bool(fields[key], f"{where}: {key}")
        if fields["jsonData"] is None:
            fields["jsonData"] = {}
        if not isinstance(fields["jsonData"], dict):
            raise PushError(f"{where}: jsonData must be a mapping")
        for key, value in fields.items():
            if value is None:
                fields[key] = _DATASOURCE_FIELDS[key]
        for key, value in secrets.items():
            if value == "":
                warnings.append(
                    f"datasource {uid}: secureJsonData.{key} is empty "
                    "(is its environment variable set?)"
                )
        if any(d.uid == uid for d in found):
            raise PushError(f"{where}: a second data source with this uid")
        if any(d.fields["name"] == fields["name"] for d in found):
            raise PushError(f"{where}: a second data source named {fields['name']!r}")
        found.append(_DataSource(uid, fields, secrets))
    return found


def _load_dashboards(root: Path) -> tuple[list[_Folder], list[_Dashboard]]:
    base = root / DASHBOARDS_DIR
    if not base.is_dir():
        raise PushError(f"{base}: no such directory")
    folders: dict[str, _Folder] = {}
    dashboards: dict[str, _Dashboard] = {}
    for path in sorted(base.rglob("*.json")):
        if path.parent == base:
            fuid = ""
        else:  # Grafana's foldersFromFilesStructure: the directory's name is the folder's title
            title = path.parent.name
            fuid = folder_uid(title)
            known = folders.setdefault(fuid, _Folder(fuid, title))
            if known.title != title:
                raise PushError(
                    f"{path.parent}: folders {known.title!r} and {title!r} would share uid {fuid}"
                )
        try:
            model = json.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise PushError(f"{path}: cannot read it: {e.strerror}") from e
        except ValueError as e:
            raise PushError(f"{path}: not valid JSON: {e}") from e
        if not isinstance(model, dict):
            raise PushError(f"{path}: a dashboard is a JSON object")
        uid = model.get("uid")
        if not isinstance(uid, str) or not _UID.fullmatch(uid):
            raise PushError(f"{path}: needs a uid of 1 to 40 letters, digits, '-' or '_'")
        if not isinstance(model.get("title"), str) or not model["title"]:
            raise PushError(f"{path}: needs a title")
        if uid in dashboards:
            raise PushError(f"{path}: uid {uid} is also the uid of {dashboards[uid].path}")
        dashboards[uid] = _Dashboard(uid, _comparable(model), fuid, path)
    return list(folders.values()), list(dashboards.values())


def _comparable(dashboard: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in dashboard.items() if k not in ("id", "version")}


# --- talking to Grafana ----------------------------------------------------------------------


def display_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def _grafana_message(e: GrafanaException) -> str:
    response = e.response
    if isinstance(response, dict) and response.get("message"):
        return str(response["message"])
    if isinstance(response, str) and response.strip():
        return response.strip()[:200]
    return str(e.message)


def _unreachable_reason(e: OSError) -> str:
    text = str(e)
    # niquests wraps the socket error several times; its innermost part says it best.
    found = re.findall(r"\[Errno -?\d+\][^'\")]*", text)
    if found:
        return str(found[-1]).strip()
    unresolved = re.search(r"Failed to resolve '([^']+)'", text)
    if unresolved:
        return f"cannot resolve the host name {unresolved.group(1)}"
    return text


class _Grafana:
    """The few grafana-client calls the push makes, with its errors turned into PushError."""

    def __init__(self, url: str, auth: str | tuple[str, str], timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PushError(f"{url!r} is not an http(s) URL of a Grafana")
        if parts.username is not None or parts.password is not None:
            raise PushError(
                "the Grafana URL holds credentials; give them with --user/--password or --token"
            )
        # grafana-client appends "api" to the path as it is: a sub-path needs its trailing '/'.
        path = parts.path if parts.path.endswith("/") else parts.path + "/"
        self.url = display_url(url)
        self.timeout = timeout
        self.api: Any = GrafanaApi.from_url(
            urlunsplit((parts.scheme, parts.netloc, path, parts.query, "")),
            credential=auth,
            timeout=timeout,
        )

    def close(self) -> None:
        self.api.client.s.close()

    def call(self, item: str, request: Callable[[], T], *, missing_ok: bool = False) -> T | None:
        try:
            return request()
        except GrafanaTimeoutError as e:
            raise PushError(
                f"{item}: Grafana at {self.url} did not answer within {self.timeout:g} s"
            ) from e
        except GrafanaException as e:
            status = e.status_code
            if status == 404 and missing_ok:
                return None
            message = _grafana_message(e)
            if status == 401:
                raise PushError(
                    f"Grafana refused the credentials (401) at {self.url}: {message}"
                ) from e
            if status == 0:
                raise PushError(f"{item}: cannot talk to Grafana at {self.url}: {message}") from e
            raise PushError(f"{item}: Grafana answered {status} at {self.url}: {message}") from e
        except ValueError as e:  # a body that is not JSON: not Grafana's API there
            raise PushError(
                f"{item}: {self.url} did not answer with JSON; is it Grafana's address?"
            ) from e
        except OSError as e:  # niquests' ConnectionError is not wrapped by grafana-client
            raise PushError(f"cannot reach Grafana at {self.url}: {_unreachable_reason(e)}") from e

    def get(self, item: str, request: Callable[[], Any]) -> dict[str, Any] | None:
        found = self.call(item, request, missing_ok=True)
        if found is not None and not isinstance(found, dict):
            raise PushError(f"{item}: {self.url} answered something else than Grafana's JSON")
        return found


@contextmanager
def _connect(url: str, auth: str | tuple[str, str], timeout: float) -> Iterator[_Grafana]:
    grafana = _Grafana(url, auth, timeout)
    try:
        yield grafana
    finally:
        grafana.close()


# --- the push --------------------------------------------------------------------------------


def push(
    url: str,
    *,
    auth: str | tuple[str, str],
    root: Path = DEFAULT_ROOT,
    environ: Mapping[str, str] = os.environ,
    timeout: float = 10,
    update_secrets: bool = False,
) -> PushReport:
    """Create or update in the Grafana at ``url`` the data sources, folders and dashboards of
    ``root``, leaving alone those that already are as the files say.

    ``auth`` is an API or service account token, or a (user, password) pair for basic auth.
    ``update_secrets`` sends the data sources' secrets even to data sources that have them
    (their values cannot be compared). Raises :class:`PushError`.
    """
    report = PushReport()
    datasources = _load_datasources(root, environ, report.warnings)
    folders, dashboards = _load_dashboards(root)
    with _connect(url, auth, timeout) as grafana:
        for ds in datasources:
            _push_datasource(grafana, ds, update_secrets, report)
        for folder in folders:
            _push_folder(grafana, folder, report)
        for dashboard in dashboards:
            _push_dashboard(grafana, dashboard, report)
    return report


def _push_datasource(
    grafana: _Grafana, ds: _DataSource, update_secrets: bool, report: PushReport
) -> None:
    api = grafana.api
    remote = grafana.get(ds.item, lambda: api.datasource.get_datasource_by_uid(ds.uid))
    body: dict[str, Any] = {**ds.fields, "uid": ds.uid}
    if remote is None:
        if ds.secrets:
            body["secureJsonData"] = dict(ds.secrets)
        grafana.call(ds.item, lambda: api.datasource.create_datasource(body))
        report.created.append(ds.item)
        return
    differs = [key for key, value in ds.fields.items() if _remote_field(remote, key) != value]
    set_remotely = remote.get("secureJsonFields") or {}
    secrets = (
        dict(ds.secrets)
        if update_secrets
        else {k: v for k, v in ds.secrets.items() if not set_remotely.get(k)}
    )
    if not differs and not secrets:
        report.unchanged.append(ds.item)
        return
    if secrets:
        body["secureJsonData"] = secrets
    try:
        grafana.call(ds.item, lambda: api.datasource.update_datasource_by_uid(ds.uid, body))
    except PushError as e:
        if remote.get("readOnly"):
            raise PushError(
                f"{e} (Grafana provisions this data source from its own files; change those)"
            ) from e
        raise
    report.updated.append(ds.item)


def _remote_field(remote: Mapping[str, Any], key: str) -> Any:
    value = remote.get(key)
    return _DATASOURCE_FIELDS[key] if value is None else value


def _push_folder(grafana: _Grafana, folder: _Folder, report: PushReport) -> None:
    api = grafana.api
    remote = grafana.get(folder.item, lambda: api.folder.get_folder(folder.uid))
    if remote is None:
        grafana.call(folder.item, lambda: api.folder.create_folder(folder.title, uid=folder.uid))
        report.created.append(folder.item)
    elif remote.get("title") != folder.title:
        grafana.call(
            folder.item,
            lambda: api.folder.update_folder(folder.uid, title=folder.title, overwrite=True),
        )
        report.updated.append(folder.item)
    else:
        report.unchanged.append(folder.item)


def _push_dashboard(grafana: _Grafana, dashboard: _Dashboard, report: PushReport) -> None:
    api = grafana.api
    remote = grafana.get(dashboard.item, lambda: api.dashboard.get_dashboard(dashboard.uid))
    if remote is not None:
        meta = remote.get("meta") or {}
        same = (
            _comparable(remote.get("dashboard") or {}) == dashboard.model
            and (meta.get("folderUid") or "") == dashboard.folder_uid
        )
        if same:
            report.unchanged.append(dashboard.item)
            return
    body: dict[str, Any] = {
        "dashboard": {**dashboard.model, "id": None},
        "overwrite": True,
        "message": MESSAGE,
    }
    if dashboard.folder_uid:
        body["folderUid"] = dashboard.folder_uid
    try:
        grafana.call(dashboard.item, lambda: api.dashboard.update_dashboard(body))
    except PushError as e:
        if remote is not None and (remote.get("meta") or {}).get("provisioned"):
            raise PushError(
                f"{e} (Grafana provisions this dashboard from its own files; change those)"
            ) from e
        raise
    (report.created if remote is None else report.updated).append(dashboard.item)
