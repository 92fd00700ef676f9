"""Start a real headless ComfyUI server with this pack loaded, and talk to it over its HTTP API.

Used by the end-to-end tests (one server per test session) and by ``make demo``. Standard library
only, so it works from any Python; the server itself runs with the host's interpreter
(``.host/env.sh``, written by tools/bootstrap.sh).
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
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOST = REPO / ".host"
SERVER_START_TIMEOUT_S = 240
PACK_MODULE = "custom_nodes.ComfyUI-RealtimeVideo"


def host_env() -> dict:
    """COMFY_DIR and COMFY_PYTHON as written by tools/bootstrap.sh."""
    env_file = HOST / "env.sh"
    if not env_file.is_file():
        raise RuntimeError("no development host: run tools/bootstrap.sh (make test / make demo do it)")
    pairs = (line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    return {k: v.strip('"') for k, v in pairs}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PromptError(RuntimeError):
    """A prompt was rejected (HTTP 400 with node_errors) or failed while executing."""

    def __init__(self, message: str, payload: dict):
        super().__init__(message)
        self.payload = payload


@dataclass
class PromptResult:
    prompt_id: str
    history: dict
    server: ComfyServer

    @property
    def outputs(self) -> dict:
        return self.history["outputs"]

    @property
    def status(self) -> str:
        return self.history["status"].get("status_str", "")

    def messages(self, kind: str) -> list[dict]:
        return [m[1] for m in self.history["status"].get("messages", []) if m[0] == kind]

    def files(self, node_id: str, key: str = "images") -> list[Path]:
        """Paths on disk of the files a node reported (images, gifs, ...)."""
        return [self.server.output_path(item) for item in self.outputs.get(node_id, {}).get(key, [])]

    def text(self, node_id: str) -> list[str]:
        return self.outputs.get(node_id, {}).get("text", [])


@dataclass
class ComfyServer:
    """``python main.py --cpu`` in a fresh base folder, with the dev host's custom nodes and models."""

    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rtv-comfy-")))
    port: int = field(default_factory=free_port)
    extra_args: tuple = ()
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def output_dir(self) -> Path:
        return self.workdir / "output"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def output_path(self, item: dict) -> Path:
        kind = item.get("type", "output")
        # ComfyUI puts its temp folder *inside* --temp-directory (folder_paths adds "temp").
        base = self.workdir / "temp" / "temp" if kind == "temp" else self.workdir / kind
        return base / item.get("subfolder", "") / item["filename"]

    # ------------------------------------------------------------------------------ lifecycle
    def start(self) -> ComfyServer:
        env = host_env()
        for sub in ("output", "input", "temp", "user"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        cmd = [
            env["COMFY_PYTHON"], "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
            "--extra-model-paths-config", str(HOST / "extra_model_paths.yaml"),
            "--output-directory", str(self.workdir / "output"), "--input-directory", str(self.workdir / "input"),
            "--temp-directory", str(self.workdir / "temp"), "--user-directory", str(self.workdir / "user"),
            "--disable-auto-launch", "--disable-api-nodes", "--database-url", "sqlite:///:memory:",
            *self.extra_args,
        ]
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=env["COMFY_DIR"], stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        t0 = time.time()
        while time.time() - t0 < SERVER_START_TIMEOUT_S:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited during start-up:\n{self.log_tail()}")
            try:
                self.get("/system_stats", timeout=5)
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"ComfyUI did not answer within {SERVER_START_TIMEOUT_S} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ComfyServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text()[-chars:]
        except OSError:
            return "(no server log)"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # ------------------------------------------------------------------------------ HTTP
    def get(self, path: str, timeout: float = 60):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            body = r.read()
            return json.loads(body) if r.headers.get_content_type() == "application/json" else body

    def post(self, path: str, payload) -> tuple[int, dict]:
        req = urllib.request.Request(self.url + path, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                body = r.read()
                return r.status, (json.loads(body) if body else {})
        except urllib.error.HTTPError as e:
            body = e.read()
            return e.code, (json.loads(body) if body else {})

    def object_info(self) -> dict:
        return self.get("/object_info")

    def submit(self, prompt: dict, extra_data: dict | None = None) -> str:
        """POST /prompt; raises PromptError with the node_errors of a rejected graph."""
        status, body = self.post("/prompt", {"prompt": prompt, "client_id": str(uuid.uuid4()),
                                             "extra_data": extra_data or {}})
        if status != 200:
            raise PromptError(describe_rejection(body), body)
        return body["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 600) -> PromptResult:
        t0 = time.time()
        while time.time() - t0 < timeout:
            entry = self.get(f"/history/{urllib.parse.quote(prompt_id)}").get(prompt_id)
            if entry and (entry["status"].get("completed") or entry["status"].get("status_str") == "error"):
                return PromptResult(prompt_id, entry, self)
            if not self.alive():
                raise RuntimeError(f"ComfyUI died while running {prompt_id}:\n{self.log_tail()}")
            time.sleep(0.2)
        raise TimeoutError(f"prompt {prompt_id} not finished after {timeout} s")

    def run(self, prompt: dict, timeout: float = 600, expect_success: bool = True) -> PromptResult:
        result = self.wait(self.submit(prompt), timeout)
        if expect_success and result.status != "success":
            errors = result.messages("execution_error")
            detail = "; ".join(f"{e.get('node_type')} #{e.get('node_id')}: {e.get('exception_message', '').strip()}"
                               for e in errors) or result.status
            raise PromptError(f"prompt failed: {detail}", result.history)
        return result


def describe_rejection(body: dict) -> str:
    """One readable line per node error of a rejected prompt (HTTP 400)."""
    lines = [body.get("error", {}).get("message", "prompt rejected")]
    for node_id, node in body.get("node_errors", {}).items():
        for err in node.get("errors", []):
            lines.append(f"  {node.get('class_type')} #{node_id}: {err.get('message')} ({err.get('details')})")
    return "\n".join(lines)


def webp_frame_count(path: Path) -> int:
    """Frames of an animated WEBP (ANMF chunks), read from the RIFF container."""
    data = Path(path).read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError(f"{path} is not a WEBP file")
    i, frames = 12, 0
    while i + 8 <= len(data):
        tag, size = data[i:i + 4], int.from_bytes(data[i + 4:i + 8], "little")
        frames += tag == b"ANMF"
        i += 8 + size + (size & 1)
    return frames


def webp_frames(path: Path):
    """Frames (T, H, W, 3) float32 in [0, 1] of an animated WEBP (Pillow, as ComfyUI has it)."""
    import torch
    from PIL import Image, ImageSequence

    with Image.open(path) as image:
        frames = [torch.frombuffer(bytearray(f.convert("RGB").tobytes()), dtype=torch.uint8)
                  .view(f.height, f.width, 3) for f in ImageSequence.Iterator(image)]  # fmt: skip
    return torch.stack(frames).float() / 255
