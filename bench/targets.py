"""The targets: one Debian nginx (one worker) on a few loopback ports, started with its own temp config.

Every site is a path (`/s/<n>`) on one of the ports; `keepalive_timeout 0` makes every
probe a new TCP connection, as it is in production where 10,000 checks point at
10,000 different hosts. `/flip` answers 503 while the file `flip-down` exists.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from bench.procstat import tree_cpu_seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CONF = """
{user}
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
worker_rlimit_nofile 20000;
events {{ worker_connections 8192; multi_accept on; }}
http {{
  access_log off;
  keepalive_timeout 0;
  default_type text/plain;
  client_body_temp_path {root}/tmp;
  proxy_temp_path {root}/tmp;
  fastcgi_temp_path {root}/tmp;
  uwsgi_temp_path {root}/tmp;
  scgi_temp_path {root}/tmp;
  server {{
    {listens}
    location = /flip {{
      if (-f {root}/flip-down) {{ return 503 "down\\n"; }}
      return 200 "ok\\n";
    }}
    location / {{ return 200 "ok\\n"; }}
  }}
  server {{
    listen 127.0.0.1:{admin};
    location = /stub {{ stub_status; }}
  }}
}}
"""


class Nginx:
    def __init__(self, root: Path, nports: int = 8) -> None:
        self.root = root
        self.ports = [free_port() for _ in range(nports)]
        self.admin = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = shutil.which("nginx") or "/usr/sbin/nginx"
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        listens = "\n    ".join(f"listen 127.0.0.1:{p} backlog=4096;" for p in self.ports)
        conf = self.root / "nginx.conf"
        # as root, workers would run as nobody and could not see the flip file in our 0700 temp dir
        user = "user root;" if os.geteuid() == 0 else ""
        conf.write_text(CONF.format(user=user, root=self.root, listens=listens, admin=self.admin))
        self.proc = subprocess.Popen(
            [exe, "-c", str(conf), "-p", str(self.root), "-e", str(self.root / "error.log"), "-g", "daemon off;"]
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                self.requests()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not start; see {self.root / 'error.log'}")

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports[i % len(self.ports)]}/s/{i:05d}"

    @property
    def flip_url(self) -> str:
        return f"http://127.0.0.1:{self.ports[0]}/flip"

    def set_flip(self, down: bool) -> None:
        path = self.root / "flip-down"
        if down:
            path.write_text("503\n")
        else:
            path.unlink(missing_ok=True)

    def requests(self) -> int:
        """Requests served so far (stub_status)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/stub", timeout=5) as resp:
            lines = resp.read().decode().splitlines()
        return int(lines[2].split()[2])

    def cpu(self) -> float:
        assert self.proc is not None
        return tree_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
