"""Loopback targets the live benchmarks share: a free port, waiting for a
listener, and a one-worker nginx started from a ``location /`` body.

nginx runs in the foreground (``daemon off``) with every temporary path inside
``folder``, so a benchmark needs no root and leaves nothing behind; the caller
stops the process it gets back. ``ECHO_MODULE`` is Debian's
``libnginx-mod-http-echo`` (``echo_sleep``), loaded only when asked for.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

ECHO_MODULE = "/usr/lib/nginx/modules/ngx_http_echo_module.so"

NGINX_CONF = """
{load_module}
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{ {location} }}
  }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"target on port {port} did not start")


def nginx_binary() -> str | None:
    """The nginx executable, or None when nginx is not installed."""
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    return found if Path(found).exists() else None


def start_nginx(folder: Path, location: str, echo_module: bool = False) -> tuple[subprocess.Popen, str]:
    """nginx answering every request with the directives ``location`` (one worker,
    on a free loopback port) -> (its process, its base URL). Raises SystemExit
    saying what to install when nginx (or, with ``echo_module``, its echo module) is missing."""
    nginx = nginx_binary()
    if nginx is None or (echo_module and not Path(ECHO_MODULE).exists()):
        raise SystemExit("needs nginx" + (" and its echo module: apt-get install nginx libnginx-mod-http-echo" if echo_module else ": apt-get install nginx"))
    port = free_port()
    conf = folder / "nginx.conf"
    load_module = f"load_module {ECHO_MODULE};" if echo_module else ""
    conf.write_text(NGINX_CONF.format(load_module=load_module, dir=folder, port=port, location=location))
    process = subprocess.Popen([nginx, "-c", str(conf), "-p", str(folder)], stderr=subprocess.DEVNULL)
    wait_for_port(port)
    return process, f"http://127.0.0.1:{port}"
