"""Headless Chromium driven over the DevTools protocol (no browser download: Debian's chromium).

Just enough of CDP to open ComfyUI's real frontend, evaluate JavaScript in the page and take
screenshots. Runs as root, hence ``--no-sandbox``; background networking is off because this
machine has no internet.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import aiohttp

WINDOW = (1400, 900)
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
    "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
    "--disable-sync",
)


class JavaScriptError(RuntimeError):
    pass


class Browser:
    def __init__(self, port: int):
        self.port = port
        self.profile = tempfile.mkdtemp(prefix="rtv-chromium-")
        self.proc: subprocess.Popen | None = None
        self.session: aiohttp.ClientSession | None = None
        self.ws = None
        self._ids = 0
        self.console_errors: list[str] = []

    async def __aenter__(self) -> Browser:
        exe = shutil.which("chromium")
        if exe is None:
            raise RuntimeError("chromium is not installed: run tools/bootstrap.sh (INSTALL_CHROMIUM=1)")
        self.proc = subprocess.Popen(
            [exe, *CHROMIUM_FLAGS, f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--remote-debugging-port={self.port}",
             f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.session = aiohttp.ClientSession()
        pages = []
        for _ in range(300):
            try:
                async with self.session.get(f"http://127.0.0.1:{self.port}/json/list") as r:
                    pages = [t for t in await r.json() if t["type"] == "page"]
                if pages:
                    break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        if not pages:
            raise RuntimeError("chromium did not open a page")
        self.ws = await self.session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0)
        await self.cdp("Page.enable")
        await self.cdp("Runtime.enable")
        await self.cdp("Emulation.setDeviceMetricsOverride", width=WINDOW[0], height=WINDOW[1],
                       deviceScaleFactor=1, mobile=False)
        return self

    async def __aexit__(self, *exc) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.session is not None:
            await self.session.close()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)

    async def cdp(self, method: str, **params):
        self._ids += 1
        my_id = self._ids
        await self.ws.send_json({"id": my_id, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json()
            if msg.get("method") == "Runtime.exceptionThrown":
                self.console_errors.append(json.dumps(msg["params"]["exceptionDetails"])[:500])
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    async def js(self, expression: str):
        """Evaluate (awaiting promises) and return the JSON value."""
        r = await self.cdp("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in r:
            raise JavaScriptError(r["exceptionDetails"].get("exception", {}).get("description")
                                  or json.dumps(r["exceptionDetails"])[:1000])
        return r["result"].get("value")

    async def open(self, url: str, ready: str, timeout: float = 120) -> float:
        t0 = time.time()
        await self.cdp("Page.navigate", url=url)
        while not await self.js(f"!!({ready})"):
            if time.time() - t0 > timeout:
                raise TimeoutError(f"page not ready after {timeout} s: {ready}")
            await asyncio.sleep(0.25)
        return time.time() - t0

    async def screenshot(self, path: Path) -> Path:
        shot = await self.cdp("Page.captureScreenshot", format="png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path
