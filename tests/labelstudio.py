"""A real Label Studio server for the round-trip tests, and a small API client for it.

``label_studio_server()`` starts Label Studio from its own virtual environment (the path of
its ``label-studio`` executable in ``ZSL_LABEL_STUDIO``; Label Studio pins many packages, so
it never shares the test venv), on SQLite in a temporary data directory and a free loopback
port, with a user and a legacy API token created at start. It waits until ``/health``
answers, yields a client, and at the end stops the server's whole process group, pass or fail.
Without ``ZSL_LABEL_STUDIO`` (or with a path that is not there) the tests skip, saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import pytest

__all__ = ["LabelStudio", "choices_config", "label_studio_executable", "label_studio_server"]

ENV_VAR = "ZSL_LABEL_STUDIO"
START_TIMEOUT_S = 600  # the first start migrates a fresh SQLite database: minutes on a small machine
_TOKEN = "zsl0onnx0test0token0123456789"
_USER, _PASSWORD = "tests@example.com", "zsl-onnx-tests-password"


def label_studio_executable() -> Path:
    """The ``label-studio`` executable named by ZSL_LABEL_STUDIO, or a skip saying what is missing."""
    named = os.environ.get(ENV_VAR)
    if not named:
        pytest.skip(f"{ENV_VAR} is not set: point it at the label-studio executable of a venv with "
                    "label-studio==1.23.2 (see .ci/run) to run the Label Studio round trip")
    path = Path(named)
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.skip(f"{ENV_VAR}={named} is not an executable file")
    return path


def choices_config(labels: list[str], name: str = "label") -> str:
    """A single-choice labelling config over ``$text``; labels are XML-escaped (<, &, quotes survive)."""
    choices = "".join(f"<Choice value={quoteattr(label)}/>" for label in labels)
    return (f'<View><Text name="text" value="$text"/><Choices name={quoteattr(name)} toName="text" '
            f'choice="single">{choices}</Choices></View>')


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LabelStudio:
    """The few API calls a person's work in Label Studio amounts to, over httpx."""

    client: Any  # httpx.Client with the base URL and the token
    log: Path  # the server's output, for failure messages

    def create_project(self, title: str, label_config: str) -> int:
        response = self.client.post("/api/projects", json={"title": title, "label_config": label_config})
        return self._ok(response)["id"]

    def project(self, project: int) -> dict[str, Any]:
        return self._ok(self.client.get(f"/api/projects/{project}"))

    def import_file(self, project: int, path: Path) -> dict[str, Any]:
        with path.open("rb") as handle:
            response = self.client.post(f"/api/projects/{project}/import",
                                        files={"file": (path.name, handle, "application/json")})
        return self._ok(response)

    def tasks(self, project: int) -> list[dict[str, Any]]:
        """Every task of the project, page by page."""
        tasks: list[dict[str, Any]] = []
        page = 1
        while True:
            body = self._ok(self.client.get("/api/tasks", params={"project": project, "page": page, "page_size": 100}))
            tasks += body["tasks"]
            if not body["tasks"] or len(tasks) >= body["total"]:
                return tasks
            page += 1

    def predictions(self, task: int) -> list[dict[str, Any]]:
        return self._ok(self.client.get("/api/predictions", params={"task": task}))

    def annotate(self, task: int, choices: list[str], cancelled: bool = False, name: str = "label") -> dict[str, Any]:
        """Submit (or, with ``cancelled``, skip) a task as an annotator does in the labelling UI."""
        result = [] if cancelled else [
            {"from_name": name, "to_name": "text", "type": "choices", "value": {"choices": choices}}]
        body = {"result": result, "was_cancelled": cancelled}
        return self._ok(self.client.post(f"/api/tasks/{task}/annotations", json=body))

    def export_json(self, project: int) -> bytes:
        """The project's JSON export, every task included (not only the annotated ones)."""
        response = self.client.get(f"/api/projects/{project}/export", params={"exportType": "JSON", "download_all_tasks": "true"})
        self._ok(response, decode=False)
        return response.content

    def _ok(self, response: Any, decode: bool = True) -> Any:
        if response.status_code >= 300:
            raise AssertionError(f"{response.request.method} {response.request.url.path}: "
                                 f"{response.status_code} {response.text[:500]}")
        return json.loads(response.content) if decode else None


@contextmanager
def label_studio_server() -> Iterator[LabelStudio]:
    """Start Label Studio, wait for it, yield a client; stop its process group at the end."""
    httpx = pytest.importorskip("httpx", reason="the Label Studio client needs httpx (in the [dev] extra)")
    executable = label_studio_executable()
    data = Path(tempfile.mkdtemp(prefix="zsl-label-studio-"))
    port = _free_port()
    log = data / "server.log"
    process = _start(executable, data, port, log)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_up(httpx, url, process, log)
        with httpx.Client(base_url=url, headers={"Authorization": f"Token {_TOKEN}"}, timeout=120) as client:
            yield LabelStudio(client, log)
    finally:
        _stop(process)
        shutil.rmtree(data, ignore_errors=True)


def _start(executable: Path, data: Path, port: int, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data),
        "DJANGO_DB": "sqlite",
        "LABEL_STUDIO_USERNAME": _USER,
        "LABEL_STUDIO_PASSWORD": _PASSWORD,
        "LABEL_STUDIO_USER_TOKEN": _TOKEN,
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
    }
    command = [str(executable), "start", "--no-browser", "--host", "127.0.0.1", "--port", str(port),
               "--data-dir", str(data), "--enable-legacy-api-token"]
    with log.open("wb") as out:  # the child keeps its own handle
        return subprocess.Popen(command, cwd=data, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def _wait_until_up(httpx: Any, url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"Label Studio exited with {process.returncode}:\n{_tail(log)}")
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass  # not listening yet
        time.sleep(1)
    raise AssertionError(f"Label Studio did not answer within {START_TIMEOUT_S} s:\n{_tail(log)}")


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, then SIGKILL to whatever of the group is left."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return  # the whole group is gone
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"
