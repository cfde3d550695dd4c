"""An in-process fake of the part of Grafana's HTTP API that ``placewatch dashboards push`` uses.

Grafana cannot run on this machine (no binary, no Docker engine), so this fake follows Grafana's
documented HTTP API (developers/http_api: data_source, folder, dashboard) in the respects that
matter to a client:

- every ``/api`` request but ``/api/health`` needs basic auth (``user``/``password``) or a
  bearer token (``token``), else 401 with Grafana's messages;
- data sources: ``GET /api/datasources/uid/:uid`` (the stored fields plus ``id``, ``orgId``,
  ``version``, ``readOnly`` and ``secureJsonFields`` naming the secrets set, never their values),
  ``POST /api/datasources`` (409 when the name or uid is taken), ``PUT /api/datasources/uid/:uid``
  (replaces the fields, keeps the secrets the body does not name, 403 on a read-only one);
- folders: ``GET /api/folders/:uid``, ``POST /api/folders`` (409 when the uid or title is
  taken), ``PUT /api/folders/:uid`` (``version`` must match unless ``overwrite``);
- dashboards: ``GET /api/dashboards/uid/:uid`` (``{"dashboard": {..., "id", "uid", "version"},
  "meta": {"folderUid", ...}}``) and ``POST /api/dashboards/db`` (assigns the id, increments the
  version, 412 on a uid or title taken without ``overwrite``, 400 for an unknown folder);
- 404 ``{"message": "Data source not found" / "Folder not found" / "Dashboard not found"}``.

Every request is recorded (method, path, JSON body) so tests can tell reads from writes.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["FakeGrafana", "Request"]

# The data source fields Grafana keeps, with the zero values an update falls back to.
DATASOURCE_FIELDS: dict[str, Any] = {
    "name": "",
    "type": "",
    "access": "",
    "url": "",
    "user": "",
    "database": "",
    "basicAuth": False,
    "basicAuthUser": "",
    "withCredentials": False,
    "isDefault": False,
    "jsonData": {},
}

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: Any = None


class _Answer(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


@dataclass
class FakeGrafana:
    """Start with :meth:`start` (or ``with``); :attr:`url` is its address."""

    user: str = "admin"
    password: str = "admin"
    token: str | None = None
    requests: list[Request] = field(default_factory=list)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)  # by uid, no secrets
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)  # by data source uid
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)  # by uid
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)  # by uid, as stored
    dashboard_folders: dict[str, str] = field(default_factory=dict)  # uid -> folder uid ("")
    dashboard_messages: dict[str, list[str]] = field(default_factory=dict)  # version history
    _ids: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeGrafana:
        fake = self

        class Handler(_Handler):
            grafana = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-grafana", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> FakeGrafana:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- for tests ------------------------------------------------------------------------

    def writes(self) -> list[Request]:
        """The recorded requests that would change something."""
        return [r for r in self.requests if r.method in WRITES]

    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def forget_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # --- the API --------------------------------------------------------------------------

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def authorized(self, header: str | None) -> tuple[bool, str]:
        if not header:
            return False, "Unauthorized"
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return (self.token is not None and value == self.token), "Invalid API key"
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False, "Invalid username or password"
            ok = user == self.user and password == self.password
            return ok, "Invalid username or password"
        return False, "Unauthorized"

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        with self._lock:
            self.requests.append(Request(method, path, copy.deepcopy(body)))
            try:
                return 200, self._route(method, path, body)
            except _Answer as answer:
                return answer.status, answer.body

    def _route(self, method: str, path: str, body: Any) -> Any:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        match method, parts:
            case "GET", ["api", "health"]:
                return {"commit": "fake", "database": "ok", "version": "11.0.0-fake"}
            case "GET", ["api", "datasources", "uid", uid]:
                return self._datasource_view(self._datasource(uid))
            case "POST", ["api", "datasources"]:
                return self._create_datasource(_object(body))
            case "PUT", ["api", "datasources", "uid", uid]:
                return self._update_datasource(uid, _object(body))
            case "GET", ["api", "folders", uid]:
                return dict(self._folder(uid))
            case "POST", ["api", "folders"]:
                return self._create_folder(_object(body))
            case "PUT", ["api", "folders", uid]:
                return self._update_folder(uid, _object(body))
            case "GET", ["api", "dashboards", "uid", uid]:
                return self._get_dashboard(uid)
            case "POST", ["api", "dashboards", "db"]:
                return self._save_dashboard(_object(body))
        raise _Answer(404, {"message": "Not found"})

    # data sources

    def _datasource(self, uid: str) -> dict[str, Any]:
        if uid not in self.datasources:
            raise _Answer(404, {"message": "Data source not found"})
        return self.datasources[uid]

    def _datasource_view(self, stored: dict[str, Any]) -> dict[str, Any]:
        view = copy.deepcopy(stored)
        view.update(
            typeLogoUrl="",
            password="",
            basicAuthPassword="",
            secureJsonFields={k: True for k in self.secrets.get(stored["uid"], {})},
        )
        return view

    def _check_name(self, name: Any, uid: str | None) -> None:
        if not name or not isinstance(name, str):
            raise _Answer(400, {"message": "Name is required"})
        for other in self.datasources.values():
            if other["name"] == name and other["uid"] != uid:
                raise _Answer(409, {"message": "data source with the same name already exists"})

    def _create_datasource(self, body: dict[str, Any]) -> dict[str, Any]:
        self._check_name(body.get("name"), None)
        uid = body.get("uid") or f"generated{self._ids + 1}"
        if uid in self.datasources:
            raise _Answer(409, {"message": "data source with the same uid already exists"})
        stored = {k: copy.deepcopy(body.get(k, zero)) for k, zero in DATASOURCE_FIELDS.items()}
        stored["jsonData"] = stored["jsonData"] or {}
        stored.update(id=self._next_id(), uid=uid, orgId=1, version=1, readOnly=False)
        self.datasources[uid] = stored
        self.secrets[uid] = dict(body.get("secureJsonData") or {})
        return {
            "datasource": self._datasource_view(stored),
            "id": stored["id"],
            "message": "Datasource added",
            "name": stored["name"],
        }

    def _update_datasource(self, uid: str, body: dict[str, Any]) -> dict[str, Any]:
        old = self._datasource(uid)
        if old["readOnly"]:
            raise _Answer(
                403, {"message": "Data source is readonly. Can only be updated from configuration"}
            )
        self._check_name(body.get("name"), uid)
        stored = {k: copy.deepcopy(body.get(k, zero)) for k, zero in DATASOURCE_FIELDS.items()}
        stored["jsonData"] = stored["jsonData"] or {}
        stored.update(id=old["id"], uid=uid, orgId=1, version=old["version"] + 1, readOnly=False)
        self.datasources[uid] = stored
        # Grafana keeps the secrets an update does not name (fillWithSecureJSONData).
        self.secrets[uid] = {**self.secrets.get(uid, {}), **(body.get("secureJsonData") or {})}
        return {
            "datasource": self._datasource_view(stored),
            "id": stored["id"],
            "message": "Datasource updated",
            "name": stored["name"],
        }

    # folders

    def _folder(self, uid: str) -> dict[str, Any]:
        if uid not in self.folders:
            raise _Answer(404, {"message": "Folder not found"})
        return self.folders[uid]

    def _check_title(self, title: Any, uid: str | None) -> None:
        if not title or not isinstance(title, str):
            raise _Answer(400, {"message": "folder title cannot be empty"})
        for other in self.folders.values():
            if other["title"] == title and other["uid"] != uid:
                raise _Answer(409, {"message": "a folder with the same name already exists"})

    def _create_folder(self, body: dict[str, Any]) -> dict[str, Any]:
        title = body.get("title")
        self._check_title(title, None)
        uid = body.get("uid") or f"generated{self._ids + 1}"
        if uid in self.folders:
            raise _Answer(409, {"message": "a folder with the same uid already exists"})
        folder = {
            "id": self._next_id(),
            "uid": uid,
            "title": title,
            "url": f"/dashboards/f/{uid}/{_slug(str(title))}",
            "hasAcl": False,
            "canSave": True,
            "canEdit": True,
            "canAdmin": True,
            "canDelete": True,
            "createdBy": "admin",
            "created": "2025-01-01T00:00:00Z",
            "updatedBy": "admin",
            "updated": "2025-01-01T00:00:00Z",
            "version": 1,
        }
        self.folders[uid] = folder
        return dict(folder)

    def _update_folder(self, uid: str, body: dict[str, Any]) -> dict[str, Any]:
        folder = self._folder(uid)
        if not body.get("overwrite") and body.get("version") != folder["version"]:
            raise _Answer(
                412,
                {
                    "message": "the folder has been changed by someone else",
                    "status": "version-mismatch",
                },
            )
        title = body.get("title", folder["title"])
        self._check_title(title, uid)
        folder.update(
            title=title,
            url=f"/dashboards/f/{uid}/{_slug(str(title))}",
            version=folder["version"] + 1,
        )
        return dict(folder)

    # dashboards

    def _get_dashboard(self, uid: str) -> dict[str, Any]:
        if uid not in self.dashboards:
            raise _Answer(404, {"message": "Dashboard not found"})
        dashboard = copy.deepcopy(self.dashboards[uid])
        folder_uid = self.dashboard_folders[uid]
        folder = self.folders.get(folder_uid)
        slug = _slug(dashboard["title"])
        return {
            "dashboard": dashboard,
            "meta": {
                "type": "db",
                "canSave": True,
                "canEdit": True,
                "canAdmin": True,
                "canStar": True,
                "canDelete": True,
                "slug": slug,
                "url": f"/d/{uid}/{slug}",
                "expires": "0001-01-01T00:00:00Z",
                "created": "2025-01-01T00:00:00Z",
                "updated": "2025-01-01T00:00:00Z",
                "updatedBy": "admin",
                "createdBy": "admin",
                "version": dashboard["version"],
                "hasAcl": False,
                "isFolder": False,
                "folderId": folder["id"] if folder else 0,
                "folderUid": folder_uid,
                "folderTitle": folder["title"] if folder else "General",
                "folderUrl": folder["url"] if folder else "",
                "provisioned": False,
                "provisionedExternalId": "",
            },
        }

    def _save_dashboard(self, body: dict[str, Any]) -> dict[str, Any]:
        dashboard = copy.deepcopy(_object(body.get("dashboard")))
        title = dashboard.get("title")
        if not title or not isinstance(title, str):
            raise _Answer(400, {"message": "Dashboard title cannot be empty"})
        folder_uid = body.get("folderUid") or ""
        if folder_uid and folder_uid not in self.folders:
            raise _Answer(400, {"message": "folder not found"})
        overwrite = bool(body.get("overwrite"))
        uid = dashboard.get("uid") or f"generated{self._ids + 1}"
        existing = self.dashboards.get(uid)
        if existing is not None and not overwrite:
            if dashboard.get("id") is None:
                raise _Answer(
                    412,
                    {
                        "message": "A dashboard with the same uid already exists",
                        "status": "name-exists",
                    },
                )
            if dashboard.get("version") != existing["version"]:
                raise _Answer(
                    412,
                    {
                        "message": "The dashboard has been changed by someone else",
                        "status": "version-mismatch",
                    },
                )
        for other_uid, other in self.dashboards.items():
            same_place = self.dashboard_folders[other_uid] == folder_uid
            if other_uid != uid and same_place and other["title"] == title and not overwrite:
                raise _Answer(
                    412,
                    {
                        "message": "A dashboard with the same name in the folder already exists",
                        "status": "name-exists",
                    },
                )
        dashboard.update(
            id=existing["id"] if existing else self._next_id(),
            uid=uid,
            version=existing["version"] + 1 if existing else 1,
        )
        self.dashboards[uid] = dashboard
        self.dashboard_folders[uid] = folder_uid
        self.dashboard_messages.setdefault(uid, []).append(str(body.get("message", "")))
        slug = _slug(title)
        return {
            "id": dashboard["id"],
            "uid": uid,
            "url": f"/d/{uid}/{slug}",
            "status": "success",
            "version": dashboard["version"],
            "slug": slug,
        }


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _Answer(400, {"message": "bad request data"})
    return body


class _Handler(BaseHTTPRequestHandler):
    grafana: FakeGrafana
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16  # headers and body in one write: no delayed-ACK stall per answer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        if path != "/api/health":
            ok, message = self.grafana.authorized(self.headers.get("Authorization"))
            if not ok:
                self.grafana.record(Request(self.command, path, None))
                self._answer(401, {"message": message})
                return
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._answer(400, {"message": "bad request data"})
            return
        status, answer = self.grafana.handle(self.command, path, body)
        self._answer(status, answer)

    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = _serve
    do_POST = _serve
    do_PUT = _serve
    do_DELETE = _serve
