"""A local OpenAI-compatible chat server for tests: real HTTP on loopback, canned answers.

`FakeLLM.script` is a list of replies served in order (then `default`): each reply is a
`Reply(status, body, headers, delay_s)`; `body` may be a dict (sent as JSON) or raw text (for
malformed replies). The default answers like a model: an explanation for an explain prompt and
yes/no for a judge prompt (yes when the excerpt contains the explanation's quoted word).
Every request body is kept in `requests`.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


@dataclass
class Reply:
    status: int = 200
    body: dict | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def completion(text: str, *, prompt_tokens: int = 11, completion_tokens: int = 3) -> dict:
    return {
        "id": "cmpl-1",
        "object": "chat.completion",
        "model": "test-model",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def model_like(request: dict) -> Reply:
    system = request["messages"][0]["content"]
    user = request["messages"][-1]["content"]
    if "yes or no" in system:
        m = re.search(r'"([^"]+)"', user.split("\nExcerpt:")[0])
        excerpt = user.split("\nExcerpt: ", 1)[-1]
        return Reply(
            body=completion("Yes" if m and m.group(1) in excerpt else "No", completion_tokens=1)
        )
    marked = re.search(r"<<(.*?)>>(?!>)", user)
    return Reply(body=completion(f'the token "{marked.group(1) if marked else "?"}"'))


class FakeLLM:
    def __init__(self) -> None:
        self.script: list[Reply] = []
        self.requests: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet test output
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.loads(raw or b"{}")
                with owner.lock:
                    owner.requests.append({"path": self.path, **body})
                    owner.headers.append(dict(self.headers))
                    reply = owner.script.pop(0) if owner.script else None
                if self.path != "/v1/chat/completions":
                    reply = Reply(status=404, body={"error": {"message": "no such path"}})
                reply = reply or model_like(body)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                data = reply.body if isinstance(reply.body, str) else json.dumps(reply.body or {})
                payload = data.encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
