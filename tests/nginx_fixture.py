"""nginx with Debian's echo module as a test target we did not write (reusable by any test).

``nginx_server({path: directives})`` starts ``/usr/sbin/nginx`` in the foreground
(``daemon off``, one process) with its own configuration in a temporary
directory: it listens on 127.0.0.1 on a free port, keeps its pid, logs and temp
files in that directory, loads ``ngx_http_echo_module.so``, and serves one
``location = PATH { directives }`` per entry. It yields the base URL and stops
the process it started (by its own pid) on exit.

``sse_directives(events)`` writes the echo directives of a canned Server-Sent
Events stream: ``events`` is a list of ``(delay_s, text)``; each waits
``delay_s`` (``echo_sleep``) and then writes ``text`` and flushes it
(``echo_flush``), so the client gets each piece at a known time.
``chat_chunk`` / ``usage_chunk`` build OpenAI chat-completion chunks.

``requires_nginx`` skips a test when nginx or the module is missing, saying how
to enable it: ``apt-get install nginx libnginx-mod-http-echo``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

NGINX = os.environ.get("SIMROUTER_TEST_NGINX", "/usr/sbin/nginx")
ECHO_MODULE = os.environ.get("SIMROUTER_TEST_NGINX_ECHO", "/usr/lib/nginx/modules/ngx_http_echo_module.so")
ENABLE = "apt-get install nginx libnginx-mod-http-echo"
START_TIMEOUT_S = 10.0


def missing() -> str | None:
    """Why the nginx tests cannot run here, or None."""
    if not (Path(NGINX).is_file() and os.access(NGINX, os.X_OK)):
        return f"nginx not found at {NGINX}: {ENABLE} to run these tests"
    if not Path(ECHO_MODULE).is_file():
        return f"nginx's echo module not found at {ECHO_MODULE}: {ENABLE} to run these tests"
    return None


requires_nginx = pytest.mark.skipif(missing() is not None, reason=missing() or "")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _quote(text: str) -> str:
    """An nginx quoted string: backslash, double quote and ``$`` (a variable) escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r").replace("$", "${dollar}") + '"'


def sse_directives(events: list[tuple[float, str]], content_type: str = "text/event-stream") -> str:
    """Echo directives sending each ``(delay_s, text)`` after ``delay_s``, flushed."""
    lines = [f"default_type {content_type};"]
    for delay, text in events:
        if delay > 0:
            lines.append(f"echo_sleep {delay:.3f};")
        lines.append(f"echo -n {_quote(text)};")
        lines.append("echo_flush;")
    return "\n".join(lines)


def chat_chunk(content: str | None = None, finish_reason: str | None = None) -> str:
    delta = {} if content is None else {"content": content}
    payload = {"id": "chatcmpl-nginx", "object": "chat.completion.chunk", "model": "nginx", "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
    return "data: " + json.dumps(payload, separators=(",", ":")) + "\n\n"


def usage_chunk(prompt: int, completion: int) -> str:
    payload = {"id": "chatcmpl-nginx", "object": "chat.completion.chunk", "model": "nginx", "choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}}
    return "data: " + json.dumps(payload, separators=(",", ":")) + "\n\n"


DONE = "data: [DONE]\n\n"


def _config(folder: Path, port: int, locations: dict[str, str]) -> str:
    blocks = "\n".join(f"    location = {path} {{\n{body}\n    }}" for path, body in locations.items())
    temp = "\n".join(f"  {name}_temp_path {folder / name};" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""load_module {ECHO_MODULE};
daemon off;
master_process off;
worker_processes 1;
pid {folder / 'nginx.pid'};
error_log {folder / 'error.log'} warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
{temp}
  geo $dollar {{ default "$"; }}
  keepalive_requests 100000;
  server {{
    listen 127.0.0.1:{port};
{blocks}
  }}
}}
"""


@contextlib.contextmanager
def nginx_server(locations: dict[str, str]):
    """nginx serving ``locations`` on 127.0.0.1: yields its base URL (module docstring)."""
    reason = missing()
    if reason:
        pytest.skip(reason)
    with tempfile.TemporaryDirectory(prefix="simrouter-nginx-") as name:
        folder = Path(name)
        for attempt in range(5):  # a free port can be taken between the probe and nginx's bind
            port = free_port()
            (folder / "nginx.conf").write_text(_config(folder, port, locations))
            command = [NGINX, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-e", str(folder / "error.log")]
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if _wait_listening(port, process):
                break
            _stop(process)
        else:
            log = (folder / "error.log").read_text() if (folder / "error.log").exists() else ""
            raise RuntimeError(f"nginx did not start: {log[-500:]}")
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            _stop(process)


def _wait_listening(port: int, process: subprocess.Popen) -> bool:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
        time.sleep(0.02)
    return False


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()  # nginx's fast shutdown
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stderr is not None:
        process.stderr.close()


__all__ = ["requires_nginx", "nginx_server", "sse_directives", "chat_chunk", "usage_chunk", "DONE", "missing", "free_port"]
