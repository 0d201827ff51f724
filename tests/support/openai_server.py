"""A small real OpenAI-compatible HTTP server for tests: ``/audio/speech`` and ``/chat/completions``.

Speech is a WAV tone whose length follows the text (``SECONDS_PER_CHAR``), so tests can check that
the farm used this backend; chat answers ``"<system prompt> | you said: <text>"`` so tests can see
the agent's prompt arrived. Every request body and Authorization header is recorded.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.helpers import wav_bytes

SECONDS_PER_CHAR = 0.05
RATE_HZ = 24_000


def tone_wav(seconds: float) -> bytes:
    return wav_bytes(seconds, RATE_HZ, freq_hz=220.0)


@dataclass
class OpenAiServer:
    url: str
    requests: list[tuple[str, dict[str, Any], str | None]] = field(default_factory=list)
    fail_with: int | None = None  # answer every request with this status when set
    garbage_audio: bool = False  # answer speech with bytes that are not audio


@contextmanager
def openai_server() -> Iterator[OpenAiServer]:
    """Serve on a free loopback port in a thread; ``.url`` is the base (``…/v1``)."""
    state = OpenAiServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
            state.requests.append((self.path, body, self.headers.get("Authorization")))
            if state.fail_with is not None:
                self._send(state.fail_with, b'{"error": "down"}', "application/json")
            elif self.path == "/v1/audio/speech" and state.garbage_audio:
                self._send(200, b"not audio at all" * 10, "audio/wav")
            elif self.path == "/v1/audio/speech":
                self._send(200, tone_wav(SECONDS_PER_CHAR * len(body["input"])), "audio/wav")
            elif self.path == "/v1/chat/completions":
                system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
                user = body["messages"][-1]["content"]
                reply = {
                    "choices": [{"message": {"role": "assistant", "content": f"{system} | you said: {user}"}}]
                }
                self._send(200, json.dumps(reply).encode(), "application/json")
            else:
                self._send(404, b"{}", "application/json")

        def _send(self, status: int, data: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, name="openai-server", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
