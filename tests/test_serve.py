"""zsl-serve as users run it: a real server process on a free loopback port, driven over HTTP.

The committed tiny bundle is copied once per session; each server is stopped by its pid at the
end, pass or fail. Results must equal the in-process call bit for bit under concurrency, and
no input, load or signal may cost more than a 4xx, a 503 or a clean exit.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from serve_fuzz import fuzz_body  # noqa: E402

from zsl_onnx import ZeroShotClassifier  # noqa: E402

pytestmark = pytest.mark.serve

START_TIMEOUT_S = 60
# One client for every call of a test: creating an httpx.Client builds an SSL context (~0.1 s of CPU).
PROBE = httpx.Client(timeout=10)
KEY = "k3y-for-tests-0123456789abcdef"


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM by pid, then the exit status (killed after ``timeout`` seconds)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def metrics(self) -> dict[str, float]:
        """One /metrics snapshot: sample name (with its labels) -> value."""
        text = PROBE.get(f"{self.url}/metrics", headers=_auth(KEY)).text
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line and not line.startswith("#")}

    def metric(self, name: str) -> float:
        samples = self.metrics()
        assert name in samples, f"{name} not in /metrics: {sorted(samples)}"
        return samples[name]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(bundle: Path, log: Path, *args: str, host: str = "127.0.0.1", group: bool = False) -> Server:
    """Start ``python -m zsl_onnx.serve`` and wait until /ready says true."""
    port = free_port()
    command = [sys.executable, "-m", "zsl_onnx.serve", str(bundle), "--host", host, "--port", str(port),
               "--threads", "1", *args]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=group)
    server = Server(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"zsl-serve exited {process.returncode}:\n{server.log_text()}")
        try:
            if PROBE.get(f"{server.url}/ready", timeout=2).json() == {"ready": True}:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise AssertionError(f"zsl-serve not ready after {START_TIMEOUT_S} s:\n{server.log_text()}")


@pytest.fixture(scope="session")
def serve_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """launch(...) for tests; every server still running at the end gets SIGTERM by its pid."""
    started: list[Server] = []

    def start(bundle: Path, *args: str, **kwargs: Any) -> Server:
        log = tmp_path_factory.mktemp("serve-log") / "server.log"
        server = launch(bundle, log, *args, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.stop()


@pytest.fixture(scope="session")
def variant_servers(bert_bundle: Path, serve_factory: Any) -> Any:
    """variant_servers("int8") -> the keyed server of that variant, started once per session."""
    servers: dict[str, Server] = {}

    def get(variant: str) -> Server:
        if variant not in servers:
            servers[variant] = serve_factory(bert_bundle, "--variant", variant, "--max-wait-ms", "20",
                                             "--max-body-bytes", "65536", "--api-key-env", "ZSL_TEST_KEY")
        return servers[variant]

    return get


@pytest.fixture(params=["int8", "fp32"])
def variant_server(request: pytest.FixtureRequest, variant_servers: Any) -> tuple[str, Server]:
    return request.param, variant_servers(request.param)


@pytest.fixture(scope="session", autouse=True)
def _key_in_environment() -> Iterator[None]:
    os.environ["ZSL_TEST_KEY"] = KEY
    yield
    os.environ.pop("ZSL_TEST_KEY", None)


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


TEXTS = ["The match went to extra time.", "Stocks fell after the central bank raised rates.", "Goal!",
         "Parliament voted on the new immigration law after a long debate that lasted into the night.",
         "Une chanson douce.", "He sings.", "A very long text about nothing in particular " * 12,
         "Der Verein hat einen neuen Trainer.", "Inflation is eating into wages."]
LABEL_SETS = [["sports", "politics", "economy"], ["music", "sports"], "sports, politics, economy, music"]


def random_request(rng: random.Random) -> tuple[str, dict[str, Any]]:
    """An endpoint and body; most share one key so that the server has requests to merge."""
    common = rng.random() < 0.6
    texts = rng.sample(TEXTS, rng.randint(1, 4))
    body: dict[str, Any] = {
        "sequences": texts[0] if rng.random() < 0.4 else texts,
        "candidate_labels": LABEL_SETS[0] if common else rng.choice(LABEL_SETS),
    }
    if not common and rng.random() < 0.5:
        body["hypothesis_template"] = "Ce texte parle de {}."
    if not common and rng.random() < 0.5:
        body["multi_label"] = True
    return ("classify" if common or rng.random() < 0.5 else "scores"), body


def in_process(clf: ZeroShotClassifier, endpoint: str, body: dict[str, Any]) -> Any:
    """The same request made alone in this process, through JSON (whose float repr round-trips)."""
    args = (body["sequences"], body["candidate_labels"])
    kwargs = {"hypothesis_template": body.get("hypothesis_template"), "multi_label": body.get("multi_label", False)}
    result = clf(*args, **kwargs) if endpoint == "classify" else {"scores": clf.scores(*args, **kwargs).tolist()}
    return json.loads(json.dumps(result))


def test_concurrent_results_equal_the_call_alone_bit_for_bit(variant_server, bert_bundle):
    variant, server = variant_server
    clf = ZeroShotClassifier.from_pretrained(bert_bundle, variant=variant, threads=1)
    rng = random.Random(7)
    requests = [random_request(rng) for _ in range(192)]
    merged_before = server.metric("zsl_serve_batch_requests_count") - _bucket(server, "zsl_serve_batch_requests", "1.0")

    def call(item: tuple[str, dict[str, Any]]) -> tuple[int, Any]:
        endpoint, body = item
        answer = client.post(f"{server.url}/v1/{endpoint}", json=body)
        return answer.status_code, answer.json()

    with _client(64, _auth(KEY)) as client, ThreadPoolExecutor(64) as pool:
        answers = list(pool.map(call, requests))
    for (endpoint, body), (status, got) in zip(requests, answers):
        assert status == 200, got
        assert got == in_process(clf, endpoint, body), (endpoint, body)
    merged = server.metric("zsl_serve_batch_requests_count") - _bucket(server, "zsl_serve_batch_requests", "1.0")
    assert merged > merged_before, "no two requests were ever merged into one model call"


def _client(connections: int, headers: dict[str, str] | None = None) -> httpx.Client:
    """A client that many threads share, with a connection each."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.Client(timeout=60, headers=headers, limits=limits)


def _bucket(server: Server, name: str, le: str) -> float:
    return server.metric(f'{name}_bucket{{le="{le}"}}')


def test_model_and_probe_endpoints(variant_server):
    variant, server = variant_server
    assert PROBE.get(f"{server.url}/health").json() == {"status": "ok"}
    assert PROBE.get(f"{server.url}/v1/model").status_code == 401
    info = PROBE.get(f"{server.url}/v1/model", headers=_auth(KEY)).json()
    assert info["kind"] == "nli" and info["variant"] == variant and info["max_length"] == 128
    assert info["labels"] == ["entailment", "neutral", "contradiction"] and info["limits"]["max_body_bytes"] == 65536
    embed = PROBE.post(f"{server.url}/v1/embed", json={"sequences": ["x"]}, headers=_auth(KEY))
    assert embed.status_code == 422 and "embedding bundle" in embed.json()["error"]["message"]
    schema = PROBE.get(f"{server.url}/openapi.json", headers=_auth(KEY)).json()
    assert {"/v1/classify", "/v1/scores", "/v1/embed", "/v1/model"} <= set(schema["paths"])
    page = PROBE.get(f"{server.url}/docs", headers=_auth(KEY))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


def test_limits_answer_with_the_error_body(variant_server):
    _, server = variant_server
    with httpx.Client(base_url=server.url, headers=_auth(KEY), timeout=30) as client:
        too_big = client.post("/v1/classify", content=b"x" * 70000)
        assert too_big.status_code == 413 and too_big.json()["error"]["type"] == "payload_too_large"
        texts = client.post("/v1/classify", json={"sequences": ["a"] * 65, "candidate_labels": ["x"]})
        assert texts.status_code == 422 and "--max-texts" in texts.json()["error"]["message"]
        labels = client.post("/v1/scores", json={"sequences": "a", "candidate_labels": [f"l{i}" for i in range(65)]})
        assert labels.status_code == 422 and "--max-labels" in labels.json()["error"]["message"]
        empty = client.post("/v1/classify", json={"sequences": "a", "candidate_labels": []})
        assert empty.status_code == 422 and empty.json()["error"]["message"].startswith("candidate_labels is empty")
        template = client.post("/v1/classify", json={"sequences": "a", "candidate_labels": "x", "hypothesis_template": "no slot"})
        assert template.status_code == 422 and "placeholder" in template.json()["error"]["message"]


def test_a_thousand_fuzzed_bodies_give_no_5xx(variant_servers):
    server = variant_servers("int8")  # one variant is enough: bodies are refused before the model's numbers
    rng = random.Random(1234)
    bodies = [(rng.choice(["classify", "scores", "embed"]), fuzz_body(rng)) for _ in range(1000)]

    def send(item: tuple[str, bytes]) -> tuple[int, Any]:
        endpoint, body = item
        answer = client.post(f"{server.url}/v1/{endpoint}", content=body)
        return answer.status_code, answer.json()

    headers = {**_auth(KEY), "Content-Type": "application/json"}
    with _client(8, headers) as client, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, bodies))
    statuses = sorted({status for status, _ in answers})
    assert all(status < 500 for status in statuses), statuses
    for status, payload in answers:
        if status != 200:
            assert set(payload) == {"error"} and payload["error"]["type"] and payload["error"]["message"]
    assert {200, 413, 422} <= set(statuses)
    assert PROBE.get(f"{server.url}/health").status_code == 200


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="session")
def small_server(bert_bundle: Path, serve_factory: Any) -> Server:
    """No batching and a queue of 3: easy to fill."""
    return serve_factory(bert_bundle, "--max-queue", "3", "--max-batch-size", "1", "--max-wait-ms", "0")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS from /proc")
def test_overload_gives_503_with_retry_after_and_bounded_memory(small_server):
    server = small_server
    body = {"sequences": ["A long text to keep the model busy for a while. " * 10] * 4, "candidate_labels": ["a", "b", "c"]}

    def call(_: int) -> tuple[int, str | None]:
        answer = client.post(f"{server.url}/v1/classify", json=body)
        return answer.status_code, answer.headers.get("retry-after")

    with _client(32) as client, ThreadPoolExecutor(32) as pool:
        list(pool.map(call, range(64)))  # warm: allocator pools and buffers reach their working size
        before = rss_kib(server.process.pid)
        answers = list(pool.map(call, range(400)))
    after = rss_kib(server.process.pid)
    assert {status for status, _ in answers} <= {200, 503}
    rejected = [retry for status, retry in answers if status == 503]
    assert rejected and all(retry == "1" for retry in rejected)
    assert PROBE.get(f"{server.url}/health").status_code == 200
    assert after - before < 40 * 1024, f"RSS grew from {before} to {after} KiB under load"


def test_a_client_that_leaves_costs_no_model_call(small_server):
    server = small_server
    slow = {"sequences": [f"text {i} " * 60 for i in range(32)], "candidate_labels": [f"label {i}" for i in range(32)]}
    calls_before = server.metric("zsl_serve_batch_texts_count")
    left_before = _requests(server, "/v1/scores", 499)
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(PROBE.post, f"{server.url}/v1/classify", json=slow, timeout=120)
        while not server.metric("zsl_serve_model_busy") and not running.done():
            time.sleep(0.01)  # until the slow request is on the model, not before it
        for _ in range(3):  # queued behind it, then given up by their clients
            with pytest.raises(httpx.ReadTimeout):
                PROBE.post(f"{server.url}/v1/scores", json={"sequences": "x", "candidate_labels": "a"}, timeout=0.05)
        while _requests(server, "/v1/scores", 499) < left_before + 3 and not running.done():
            time.sleep(0.01)
        # the one worker is still on the slow request, so none of the three can have started
        assert not running.done(), "the slow request ended before the server saw the clients leave"
        assert running.result().status_code == 200
    assert _requests(server, "/v1/scores", 499) == left_before + 3
    assert server.metric("zsl_serve_batch_texts_count") == calls_before + 1  # only the slow request ran


def _requests(server: Server, path: str, status: int) -> float:
    try:
        return server.metric(f'zsl_serve_requests_total{{path="{path}",status="{status}"}}')
    except AssertionError:
        return 0.0


def test_api_key_is_enforced_on_a_non_loopback_bind(bert_bundle, serve_factory, tmp_path):
    refused = subprocess.run([sys.executable, "-m", "zsl_onnx.serve", str(bert_bundle), "--host", "0.0.0.0"],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert refused.stderr.startswith("zsl-serve: error: --host 0.0.0.0") and "--trusted-network" in refused.stderr
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    server = serve_factory(bert_bundle, "--api-key-file", str(key_file), "--cors-origin", "https://app.example",
                           host="0.0.0.0")
    body = {"sequences": "a", "candidate_labels": ["x", "y"]}
    for headers in ({}, _auth("wrong-key-0123456789abcdef"), {"Authorization": KEY}, _auth(KEY + "x")):
        denied = PROBE.post(f"{server.url}/v1/classify", json=body, headers=headers)
        assert denied.status_code == 401 and denied.json()["error"]["type"] == "unauthorized"
        assert denied.headers["www-authenticate"] == "Bearer"
    assert PROBE.post(f"{server.url}/v1/classify", json=body, headers=_auth(KEY)).status_code == 200
    assert PROBE.get(f"{server.url}/health").status_code == 200
    preflight = PROBE.options(f"{server.url}/v1/classify", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert server.stop() == 0


def test_cors_is_off_unless_an_origin_is_given(variant_servers):
    answer = PROBE.get(f"{variant_servers('int8').url}/health", headers={"Origin": "https://app.example"})
    assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers


def test_a_request_past_its_deadline_gets_504_and_the_server_goes_on(bert_bundle, serve_factory):
    server = serve_factory(bert_bundle, "--timeout-s", "0.1", "--max-batch-size", "1")
    slow = {"sequences": [f"text {i} " * 60 for i in range(16)], "candidate_labels": [f"label {i}" for i in range(16)]}
    late = PROBE.post(f"{server.url}/v1/scores", json=slow)
    assert late.status_code == 504 and "--timeout-s" in late.json()["error"]["message"]
    assert PROBE.get(f"{server.url}/health").status_code == 200


def test_start_up_errors_are_one_line_and_exit_2(tmp_path):
    shown = subprocess.run([sys.executable, "-m", "zsl_onnx.serve", "--version"], capture_output=True, text=True,
                           timeout=60)
    assert shown.returncode == 0 and shown.stdout.startswith("zsl-serve ")
    for args in ([str(tmp_path / "missing-bundle")], [str(tmp_path), "--max-queue", "0"]):
        done = subprocess.run([sys.executable, "-m", "zsl_onnx.serve", *args, "--offline"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and done.stderr.startswith("zsl-serve: error: "), done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_sigterm_to_the_process_group_answers_requests_in_flight_and_exits_0(bert_bundle, serve_factory):
    server = serve_factory(bert_bundle, "--max-batch-size", "1", "--max-wait-ms", "0", "--grace-s", "60", group=True)
    body = {"sequences": [f"text {i} " * 60 for i in range(16)], "candidate_labels": [f"label {i}" for i in range(16)]}

    def call(_: int) -> int:
        return client.post(f"{server.url}/v1/scores", json=body).status_code

    with _client(6) as client, ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(call, i) for i in range(6)]
        deadline, admitted, depth = time.monotonic() + 30, 0.0, 0.0
        while admitted < 6 and time.monotonic() < deadline:  # waiting + running + answered
            now = server.metrics()  # one snapshot: a job cannot be counted twice
            depth = now["zsl_serve_queue_depth"]
            answered = now.get('zsl_serve_requests_total{path="/v1/scores",status="200"}', 0.0)
            admitted = depth + now["zsl_serve_model_busy"] + answered
        assert admitted == 6 and depth >= 1, "the requests were not all received, or none is left in flight"
        os.killpg(server.process.pid, signal.SIGTERM)
        statuses = [future.result() for future in futures]
    assert statuses == [200] * 6
    assert server.process.wait(60) == 0, server.log_text()
