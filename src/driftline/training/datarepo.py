"""Dataset versions in a git + DVC repository: git holds the .dvc pointers and the tag, the DVC
remote holds the data. A dataset tag holds the dataset and the operators' label rows it was
joined with (``data/labels.parquet``), so a version pins its labels.

A dataset tag names one immutable version. Saving a tag again with the same data is a no-op
(a retried pipeline step), with other data an error. The pipeline owns the repository: it
commits with its own identity and keeps DVC's analytics and update checks off.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict

from driftline.anomaly.baseline import SensorBaseline
from driftline.core.settings import Settings
from driftline.training.repo_shell import DataRepoError, RepoShell

DATASET_PATH = "data/dataset.parquet"
DVC_FILE = DATASET_PATH + ".dvc"
LABELS_PATH = "data/labels.parquet"
PARAMS_SUFFIX = "-params"
BASELINES_PATH = "data/baselines.json"
BASELINES_SUFFIX = "-baselines"
REMOTE = "storage"
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class DatasetVersion(BaseModel):
    model_config = ConfigDict(frozen=True)
    tag: str
    dvc_md5: str
    rows: int
    git_commit: str
    path: str  # of the data inside the repository, at that tag
    labels_md5: str | None = None  # of the label rows pinned with it (None: none saved)
    label_rows: int = 0


class DataRepo:
    def __init__(self, settings: Settings) -> None:
        self.root = settings.resolved_data_repo
        self.remote = settings.resolved_dvc_remote
        self._shell = RepoShell(self.root)

    def ensure(self) -> None:
        """Create the repository, or bring its DVC remote in line with the settings."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.root / ".git").exists():
            self._shell.git("init", "-q", "-b", "main")  # safe to repeat, so before the lock
        with self._shell.lock():
            if not (self.root / ".dvc").exists():
                self._shell.dvc("init", "-q")
            self._configure_dvc()
            if "://" not in self.remote:
                Path(self.remote).mkdir(parents=True, exist_ok=True)
            self._shell.git("add", ".dvc/config", ".dvc/.gitignore", ".dvcignore")
            if self._shell.git("status", "--porcelain", "--untracked-files=no"):
                message = "Data repository: DVC remote from the settings"
                self._shell.git("commit", "-q", "-m", message)

    def save_dataset(
        self, tag: str, frame: pd.DataFrame, labels: pd.DataFrame | None = None
    ) -> DatasetVersion:
        """Write ``frame`` as this tag's dataset, and ``labels`` (the label rows joined onto it)
        beside it, push them to the remote, commit and tag."""
        _check_tag(tag)
        self.ensure()
        data = _parquet_bytes(frame)
        md5 = _md5(data)  # DVC's content address
        label_data = None if labels is None else _parquet_bytes(labels)
        with self._shell.lock():
            if self._has_tag(tag):
                if self.dataset_hash(tag) != md5:
                    raise DataRepoError(f"dataset tag {tag!r} exists with other data")
                labels_md5 = self.labels_hash(tag)
                if label_data is not None and labels_md5 not in (None, _md5(label_data)):
                    raise DataRepoError(f"dataset tag {tag!r} exists with other labels")
            else:
                files = {DATASET_PATH: data}
                if label_data is not None:
                    files[LABELS_PATH] = label_data
                else:  # a pointer of an earlier version must not carry over into this tag
                    pointer = LABELS_PATH + ".dvc"
                    self._shell.git("rm", "-q", "--cached", "--ignore-unmatch", pointer)
                    (self.root / pointer).unlink(missing_ok=True)
                self._track(files)
                message = f"Dataset {tag}: {len(frame)} rows"
                if labels is not None:
                    message += f", {len(labels)} label rows"
                self._shell.git("commit", "-q", "--allow-empty", "-m", message)
                self._shell.git("tag", "-a", tag, "-m", f"Dataset {tag}")
                labels_md5 = None if label_data is None else _md5(label_data)
        return DatasetVersion(
            tag=tag,
            dvc_md5=md5,
            rows=len(frame),
            git_commit=self._shell.git("rev-parse", f"refs/tags/{tag}^{{commit}}"),
            path=DATASET_PATH,
            labels_md5=labels_md5,
            label_rows=0 if labels is None or labels_md5 is None else len(labels),
        )

    def _track(self, files: dict[str, bytes]) -> None:
        """Write ``files``, add them to DVC, push them and stage their pointers."""
        for name, data in files.items():
            path = self.root / name
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)
        self._shell.dvc("add", "-q", *files)
        # Push before tagging: a tag must never name data the remote lacks.
        pointers = [name + ".dvc" for name in files]
        self._shell.dvc("push", "-q", "-r", REMOTE, *pointers)
        ignores = sorted({str(Path(name).parent / ".gitignore") for name in files})
        self._shell.git("add", *pointers, *ignores)

    def load_dataset(self, tag: str) -> pd.DataFrame:
        """The dataset as saved under ``tag`` (from the local cache, else the remote)."""
        return pd.read_parquet(io.BytesIO(self._read_tracked(tag, DATASET_PATH)))

    def load_labels(self, tag: str) -> pd.DataFrame | None:
        """The label rows pinned with dataset ``tag``, or None when it was saved without."""
        if self.labels_hash(tag) is None:
            return None
        return pd.read_parquet(io.BytesIO(self._read_tracked(tag, LABELS_PATH)))

    def labels_hash(self, tag: str) -> str | None:
        """The DVC md5 of the label rows pinned with dataset ``tag``, or None."""
        self.dataset_hash(tag)  # the dataset must exist
        listed = self._shell.git("ls-tree", "--name-only", f"refs/tags/{tag}", LABELS_PATH + ".dvc")
        return self._tracked_hash(tag, LABELS_PATH) if listed else None

    def save_baselines(self, tag: str, baselines: list[SensorBaseline]) -> str:
        """Version the per-sensor baselines a model of dataset ``tag`` judges readings by, as
        the dataset is (DVC, tag ``<tag>-baselines``); returns their DVC md5. Saving the same
        baselines again is a no-op, other ones an error."""
        self.dataset_hash(tag)  # the dataset must exist
        data = (
            json.dumps(
                [json.loads(b.to_json()) for b in sorted(baselines, key=lambda b: b.sensor_id)],
                indent=1,
            )
            + "\n"
        ).encode()
        md5 = _md5(data)
        named = tag + BASELINES_SUFFIX
        with self._shell.lock():
            if self._has_tag(named):
                if self._tracked_hash(named, BASELINES_PATH) != md5:
                    raise DataRepoError(f"baselines of {tag!r} exist and differ")
                return md5
            self._track({BASELINES_PATH: data})
            self._shell.git("commit", "-q", "--allow-empty", "-m", f"Baselines of dataset {tag}")
            self._shell.git("tag", "-a", named, "-m", f"Baselines of {tag}")
        return md5

    def load_baselines(self, tag: str) -> list[SensorBaseline] | None:
        """The baselines versioned with dataset ``tag``, or None when it has none."""
        named = tag + BASELINES_SUFFIX
        if not self._has_tag(named):
            return None
        items = json.loads(self._read_tracked(named, BASELINES_PATH))
        return [SensorBaseline.model_validate(item) for item in items]

    def _read_tracked(self, tag: str, path: str) -> bytes:
        """A DVC-tracked file at ``tag`` (from the local cache, else the remote), checked."""
        md5 = self._tracked_hash(tag, path)
        # DVC's local cache is content-addressed by that md5: reading it directly spares a
        # pipeline step DVC's import and repository set-up (seconds); checked below all the same.
        cached = self.root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
        if cached.is_file():
            data = cached.read_bytes()
            if _md5(data) == md5:
                return data
        import dvc.api

        try:
            with dvc.api.open(
                path,
                repo=str(self.root),
                rev=f"refs/tags/{tag}",
                mode="rb",
                config={"remote": {REMOTE: {"url": self.remote}}, "core": {"remote": REMOTE}},
            ) as f:
                data = f.read()
        except Exception as exc:  # DVC raises many types; all mean "could not get the data"
            raise DataRepoError(f"cannot read {path} of {tag!r}: {exc}") from exc
        if _md5(data) != md5:
            raise DataRepoError(f"{path} of {tag!r} does not match its md5 {md5}")
        return data

    def _tracked_hash(self, tag: str, path: str) -> str:
        pointer = yaml.safe_load(self._show(tag, path + ".dvc"))
        return str(pointer["outs"][0]["md5"])

    def dataset_hash(self, tag: str) -> str:
        """The DVC md5 of the dataset at ``tag``."""
        return self._tracked_hash(tag, DATASET_PATH)

    def save_params(self, tag: str, params: dict[str, Any]) -> str:
        """Record parameters tuned on dataset ``tag`` (tag ``<tag>-params``); returns the commit.

        Saving again moves that tag to the new parameters; the old ones stay in the history.
        """
        self.dataset_hash(tag)  # the dataset must exist
        path = Path("params") / f"{tag}.json"
        text = json.dumps(params, indent=2, sort_keys=True, default=_plain) + "\n"
        with self._shell.lock():
            (self.root / path.parent).mkdir(exist_ok=True)
            (self.root / path).write_text(text)
            self._shell.git("add", str(path))
            self._shell.git("commit", "-q", "--allow-empty", "-m", f"Parameters of dataset {tag}")
            self._shell.git("tag", "-f", "-a", tag + PARAMS_SUFFIX, "-m", f"Parameters of {tag}")
            return self._shell.git("rev-parse", "HEAD")

    def load_params(self, tag: str) -> dict[str, Any]:
        """Parameters saved for dataset ``tag``; raises DataRepoError if there are none."""
        self.dataset_hash(tag)  # the dataset must exist
        if not self._has_tag(tag + PARAMS_SUFFIX):
            raise DataRepoError(f"no parameters saved for dataset {tag!r}")
        params = json.loads(self._show(tag + PARAMS_SUFFIX, f"params/{tag}.json"))
        if not isinstance(params, dict):
            raise DataRepoError(f"parameters of {tag!r} are not an object")
        return params

    def tags(self) -> list[str]:
        """Every tag, sorted: dataset tags and their ``<tag>-params`` tags."""
        if not (self.root / ".git").exists():
            return []
        return sorted(self._shell.git("tag", "--list").split())

    def _show(self, tag: str, path: str) -> str:
        _check_tag(tag)
        if not self._has_tag(tag):
            raise DataRepoError(f"no tag {tag!r} in the data repository {self.root}")
        return self._shell.git("show", f"refs/tags/{tag}:{path}")

    def _has_tag(self, tag: str) -> bool:
        if not (self.root / ".git").exists():
            return False
        verify = ["git", "rev-parse", "-q", "--verify", f"refs/tags/{tag}"]
        ref = self._shell.run(verify, check=False)
        return ref.returncode == 0

    def _configure_dvc(self) -> None:
        from configobj import ConfigObj  # DVC's own config format and library

        config = ConfigObj(str(self.root / ".dvc" / "config"))
        before = config.dict()
        core = config.setdefault("core", {})
        core.update({"remote": REMOTE, "analytics": "false", "check_update": "false"})
        config.setdefault(f'remote "{REMOTE}"', {})["url"] = self.remote
        if config.dict() != before:
            config.write()


def _check_tag(tag: str) -> None:
    if not _TAG.fullmatch(tag) or tag.endswith(".lock") or ".." in tag:
        raise DataRepoError(f"invalid tag {tag!r}: letters, digits, '.', '_', '-'; up to 100")


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _plain(value: Any) -> Any:
    # numpy scalars (what tuners return) as plain JSON numbers.
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
