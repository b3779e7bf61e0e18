"""A local stand-in of the Hugging Face Hub HTTP API, enough for ``huggingface_hub`` and
``datasets``.

Serves, in memory, the endpoints that ``create_repo``, ``upload_folder`` and ``create_commit``
(preupload + NDJSON commit with additions and deletions, every file as a regular base64 blob, so
no LFS or Xet transfer is involved), ``repo_info`` / ``dataset_info``, ``list_repo_tree``,
``get_paths_info``, ``hf_hub_download`` and ``HfFileSystem``
(``resolve`` with HEAD and byte ranges) call::

    with HubStandIn() as hub:                 # listens on 127.0.0.1, a free port
        hub.url                               # use as HF_ENDPOINT / endpoint=
        hub.fail_commits_after(10)            # commits fail once 10 files have been committed
        hub.committed_paths                   # every path committed, in commit order

Repositories are keyed ``(repo_type, repo_id)``; every commit keeps a snapshot, so a revision may
be ``main`` or any commit sha. Write endpoints require an ``Authorization`` header.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

DEFAULT_BRANCH = "main"
TYPES = {"datasets": "dataset", "models": "model", "spaces": "space"}
REPO = r"(?P<kind>datasets|models|spaces)/(?P<repo>[^/]+/[^/]+)"


def git_blob_sha1(content: bytes) -> str:
    """The git object id of a blob (what the Hub reports as the ``oid`` of a regular file)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Commit:
    oid: str
    message: str
    files: dict[str, bytes]  # the full snapshot after this commit
    changed: list[str]


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    commits: list[Commit] = field(default_factory=list)

    @property
    def head(self) -> Commit:
        return self.commits[-1]

    def snapshot(self, revision: str) -> Commit | None:
        if revision in (DEFAULT_BRANCH, "refs/heads/main"):
            return self.head
        return next((c for c in reversed(self.commits) if c.oid.startswith(revision)), None)

    def commit(self, message: str, files: dict[str, bytes], deleted: list[str]) -> Commit:
        snapshot = dict(self.head.files)
        for path in deleted:
            for existing in [
                p for p in snapshot if p == path or p.startswith(path.rstrip("/") + "/")
            ]:
                del snapshot[existing]
        snapshot.update(files)
        oid = hashlib.sha1(
            f"{self.head.oid}:{message}:{sorted(files)}:{len(self.commits)}".encode()
        ).hexdigest()
        commit = Commit(oid, message, snapshot, sorted(files))
        self.commits.append(commit)
        return commit


class HubState:
    """Repositories, the commit log and the failure switch, shared by the request threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.repos: dict[tuple[str, str], Repo] = {}
        self.committed_paths: list[str] = []
        self.fail_after_files: int | None = None
        self.requests: list[tuple[str, str]] = []
        self.range_requests = 0  # resolve requests answered with part of a file


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are written separately; no delayed-ACK stalls
    server: _Server

    # -- plumbing -------------------------------------------------------------------------------

    @property
    def state(self) -> HubState:
        return self.server.state

    def log_message(self, format, *args):  # keep test output quiet
        pass

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(
        self, status: int, payload=None, headers: dict | None = None, body: bytes | None = None
    ):
        if body is None:
            body = json.dumps(payload if payload is not None else {}).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, str(value))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, message: str, code: str | None = None):
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, {"error": message}, headers)

    def _repo(self, kind: str, repo_id: str) -> Repo | None:
        repo = self.state.repos.get((TYPES[kind], repo_id))
        if repo is None:
            self._error(404, f"Repository {repo_id} not found", "RepoNotFound")
        return repo

    def _snapshot(self, repo: Repo, revision: str) -> Commit | None:
        commit = repo.snapshot(unquote(revision))
        if commit is None:
            self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    def _authorized(self) -> bool:
        if not self.headers.get("Authorization"):
            self._error(401, "Invalid credentials in Authorization header")
            return False
        return True

    def _route(self, routes):
        path = urlsplit(self.path).path
        self.state.requests.append((self.command, path))
        for pattern, handler in routes:
            m = re.fullmatch(pattern, path)
            if m:
                return handler(**m.groupdict())
        self._error(404, f"stand-in: no route for {self.command} {path}")

    def do_GET(self):
        self._route(
            [
                (r"/api/whoami-v2", self.whoami),
                (rf"/api/{REPO}(?:/revision/(?P<revision>.+))?", self.info),
                (rf"/api/{REPO}/tree/(?P<revision>[^/]+)(?:/(?P<path>.*))?", self.tree),
                (rf"/{REPO}/resolve/(?P<revision>[^/]+)/(?P<path>.+)", self.resolve),
                (
                    r"/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<path>.+)",
                    self.resolve_model,
                ),
            ]
        )

    do_HEAD = do_GET

    def do_POST(self):
        self._route([
            (r"/api/repos/create", self.create),
            (r"/api/validate-yaml", self.validate_yaml),
            (rf"/api/{REPO}/preupload/(?P<revision>[^/]+)", self.preupload),
            (rf"/api/{REPO}/commit/(?P<revision>[^/]+)", self.commit),
            (rf"/api/{REPO}/paths-info/(?P<revision>[^/]+)", self.paths_info),
        ])  # fmt: skip

    # -- endpoints ------------------------------------------------------------------------------

    def whoami(self):
        self._send(
            200,
            {
                "type": "user",
                "name": "stand-in",
                "orgs": [],
                "auth": {"accessToken": {"role": "write"}},
            },
        )

    def create(self):
        if not self._authorized():
            return
        payload = json.loads(self._body() or b"{}")
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or 'stand-in'}/{payload['name']}"
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"{self.server.url}/{prefix}{repo_id}"
        with self.state.lock:
            if (repo_type, repo_id) in self.state.repos:
                return self._send(
                    409,
                    {"error": "You already created this repo", "url": url},
                    {"X-Error-Message": "You already created this repo"},
                )
            repo = Repo(
                repo_type,
                repo_id,
                payload.get("visibility") == "private" or bool(payload.get("private")),
            )
            repo.commits.append(
                Commit(hashlib.sha1(repo_id.encode()).hexdigest(), "initial commit", {}, [])
            )
            self.state.repos[(repo_type, repo_id)] = repo
        self._send(200, {"url": url, "name": repo_id})

    def validate_yaml(self):
        content = json.loads(self._body() or b"{}").get("content", "")
        match = re.match(r"---\n(.*?)\n---\n", content, re.DOTALL)
        try:
            if match:
                yaml.safe_load(match.group(1))
        except yaml.YAMLError as err:
            return self._send(400, {"errors": [{"message": str(err)}], "warnings": []})
        self._send(200, {"errors": [], "warnings": []})

    def info(self, kind, repo, revision=None):
        repo_obj = self._repo(kind, repo)
        if repo_obj is None:
            return
        commit = self._snapshot(repo_obj, revision or DEFAULT_BRANCH)
        if commit is None:
            return
        card = {}
        readme = commit.files.get("README.md")
        if readme:
            match = re.match(r"---\n(.*?)\n---\n", readme.decode(), re.DOTALL)
            card = yaml.safe_load(match.group(1)) if match else {}
        self._send(
            200,
            {
                "_id": commit.oid[:24],
                "id": repo,
                "author": repo.split("/")[0],
                "sha": commit.oid,
                "private": repo_obj.private,
                "gated": False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "cardData": card,
                "lastModified": "2026-01-01T00:00:00.000Z",
                "createdAt": "2026-01-01T00:00:00.000Z",
                "siblings": [
                    {"rfilename": p, "size": len(b), "blobId": git_blob_sha1(b)}
                    for p, b in sorted(commit.files.items())
                ],
            },
        )

    @staticmethod
    def _entry(path: str, content: bytes | None) -> dict:
        if content is None:
            return {
                "type": "directory",
                "oid": hashlib.sha1(path.encode()).hexdigest(),
                "size": 0,
                "path": path,
            }
        return {"type": "file", "oid": git_blob_sha1(content), "size": len(content), "path": path}

    def tree(self, kind, repo, revision, path=None):
        repo_obj = self._repo(kind, repo)
        commit = repo_obj and self._snapshot(repo_obj, revision)
        if commit is None:
            return
        prefix = (unquote(path or "").strip("/") + "/").lstrip("/")
        recursive = parse_qs(urlsplit(self.path).query).get("recursive", ["false"])[0].lower() in (
            "1",
            "true",
        )
        files = {p: b for p, b in commit.files.items() if p.startswith(prefix)}
        if prefix and not files:
            return self._error(404, f"{path} does not exist", "EntryNotFound")
        entries: dict[str, dict] = {}
        for p, content in sorted(files.items()):
            parts = p[len(prefix) :].split("/")
            depth = len(parts) if recursive else 1
            for i in range(1, min(depth, len(parts)) + 1):
                sub = prefix + "/".join(parts[:i])
                entries.setdefault(sub, self._entry(sub, content if i == len(parts) else None))
        self._send(200, sorted(entries.values(), key=lambda e: e["path"]))

    def paths_info(self, kind, repo, revision):
        repo_obj = self._repo(kind, repo)
        commit = repo_obj and self._snapshot(repo_obj, revision)
        if commit is None:
            return
        body = self._body()
        if self.headers.get("Content-Type", "").startswith("application/json"):
            paths = json.loads(body).get("paths", [])
        else:
            paths = parse_qs(body.decode()).get("paths", [])
        out = []
        for path in paths:
            path = path.strip("/")
            if path in commit.files:
                out.append(self._entry(path, commit.files[path]))
            elif any(p.startswith(path + "/") for p in commit.files):
                out.append(self._entry(path, None))
        self._send(200, out)

    def resolve_model(self, repo, revision, path):
        self.resolve("models", repo, revision, path)

    def resolve(self, kind, repo, revision, path):
        repo_obj = self._repo(kind, repo)
        commit = repo_obj and self._snapshot(repo_obj, revision)
        if commit is None:
            return
        content = commit.files.get(unquote(path))
        if content is None:
            return self._error(404, "Entry not found", "EntryNotFound")
        headers = {
            "ETag": f'"{git_blob_sha1(content)}"',
            "X-Repo-Commit": commit.oid,
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        status, body = 200, content
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        if m and content:
            start, end = m.groups()
            if start == "":
                start, end = max(len(content) - int(end), 0), len(content) - 1
            else:
                start, end = (
                    int(start),
                    min(int(end) if end else len(content) - 1, len(content) - 1),
                )
            if start >= len(content):
                return self._send(
                    416, body=b"", headers={"Content-Range": f"bytes */{len(content)}"}
                )
            status, body = 206, content[start : end + 1]
            self.state.range_requests += 1
            headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
        self._send(status, body=body, headers=headers)

    def preupload(self, kind, repo, revision):
        if not self._authorized():
            return
        repo_obj = self._repo(kind, repo)
        commit = repo_obj and self._snapshot(repo_obj, revision)
        if commit is None:
            return
        files = json.loads(self._body())["files"]
        out = []
        for f in files:
            existing = commit.files.get(f["path"])
            out.append(
                {
                    "path": f["path"],
                    "uploadMode": "regular",
                    "shouldIgnore": False,
                    "oid": git_blob_sha1(existing) if existing is not None else None,
                }
            )
        self._send(200, {"files": out, "commitOid": commit.oid})

    def commit(self, kind, repo, revision):
        if not self._authorized():
            return
        repo_obj = self._repo(kind, repo)
        if repo_obj is None:
            return
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        header = next((item["value"] for item in lines if item["key"] == "header"), {})
        files: dict[str, bytes] = {}
        deleted: list[str] = []
        for item in lines:
            key, value = item["key"], item["value"]
            if key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key in ("deletedFile", "deletedFolder"):
                deleted.append(value["path"])
            elif key == "lfsFile":
                return self._error(
                    400, "stand-in: LFS/Xet files are not supported; upload as regular files"
                )
        with self.state.lock:
            limit = self.state.fail_after_files
            if limit is not None and len(self.state.committed_paths) >= limit:
                return self._error(400, "stand-in: upload interrupted (failure switch on)")
            new = repo_obj.commit(header.get("summary", ""), files, deleted)
            self.state.committed_paths.extend(sorted(files))
        prefix = "" if repo_obj.repo_type == "model" else f"{repo_obj.repo_type}s/"
        self._send(200, {"commitUrl": f"{self.server.url}/{prefix}{repo}/commit/{new.oid}",
                         "commitOid": new.oid, "pullRequestUrl": None})  # fmt: skip


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: HubState
    url: str


class HubStandIn:
    """The stand-in server in a background thread (a context manager)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.httpd = _Server((host, port), Handler)
        self.httpd.state = HubState()
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self.httpd.url = self.url
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def state(self) -> HubState:
        return self.httpd.state

    @property
    def committed_paths(self) -> list[str]:
        return list(self.state.committed_paths)

    def fail_commits_after(self, n_files: int | None) -> None:
        """Refuse every commit once ``n_files`` files have been committed (``None``: accept
        again)."""
        self.state.fail_after_files = n_files

    def files(self, repo_id: str, repo_type: str = "dataset") -> dict[str, bytes]:
        """The files at the head of ``main`` of a repository."""
        return dict(self.state.repos[(repo_type, repo_id)].head.files)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
