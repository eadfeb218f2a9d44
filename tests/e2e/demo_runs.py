"""Running `driftline up --demo` headless, as the e2e tests do: a clean environment on a data
directory of its own, and the processes that environment marks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.processes import port_block


def processes_using(data_dir: Path) -> list[int]:
    """PIDs whose environment points at ``data_dir`` (the platform's children inherit it)."""
    marker = f"DRIFTLINE_DATA_DIR={data_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


# Where Label Studio plays no part, as after `make demo` on a fresh machine (it is not installed).
WITHOUT_LABEL_STUDIO = {"DRIFTLINE_LABEL_STUDIO_START": "false"}


def clean_env(data_dir: Path) -> dict[str, str]:
    """This environment without any Driftline, Kafka or store settings, on ``data_dir``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KAFKA_", "DRIFTLINE_", "DATABASE_", "MLFLOW_", "BENTOML_"))
    }
    env["DRIFTLINE_DATA_DIR"] = str(data_dir)
    return env


def run_demo(
    data_dir: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`driftline up --demo` as `make demo` runs it on a fresh machine: without Label Studio
    (`make demo` does not install it; make test does, beside the first tests, so a demo here
    would start it or not depending on the moment). `up` with Label Studio: test_labels.py and
    test_stop_signals.py."""
    env = clean_env(data_dir) | WITHOUT_LABEL_STUDIO | (extra_env or {})
    env["DRIFTLINE_SERVING_PORT"] = str(port_block(1))
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "driftline.cli.main", "up", "--demo", "--headless",
         "--metrics-base-port", str(port_block())],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    print(f"driftline up --demo took {time.monotonic() - started:.0f} s")
    print(result.stdout[-2500:])
    return result
