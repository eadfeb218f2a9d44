"""Pipeline launchers: what the retrain-trigger calls when it fires.

``LocalPipelineLauncher`` (the embedded default) runs the KFP pipeline with KFP's local runner;
``ClusterPipelineLauncher`` submits it to a KFP cluster; ``RecordingLauncher`` only records the
request (for tests of the policy, and platforms that retrain by hand).
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from sqlalchemy import Engine, select, update

from driftline.procs import die_with_parent
from driftline.raw_store import insert_ignoring_duplicates, naive_utc, retrain_runs
from driftline.records import RetrainRequest
from driftline.settings import Settings

RunStatus = Literal["running", "succeeded", "failed", "recorded"]
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "recorded"})


class PipelineLauncher(Protocol):
    name: str

    def launch(self, request: RetrainRequest) -> str:
        """Start a retraining for ``request``; returns the run's id."""

    def status(self, run_id: str) -> RunStatus:
        """Where the run stands now."""


class RunLedger:
    """The retrain_runs table: every launched run, its status and when it finished."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, request: RetrainRequest, launcher: str, status: RunStatus) -> None:
        insert_ignoring_duplicates(
            self.engine,
            retrain_runs,
            [
                {
                    "request_id": request.request_id,
                    "requested_at": naive_utc(request.requested_at),
                    "launcher": launcher,
                    "status": status,
                    "request": request.model_dump_json(),
                    "finished_at": naive_utc(datetime.now(UTC)) if status in FINISHED else None,
                }
            ],
        )

    def set_status(self, request_id: str, status: RunStatus, detail: str | None = None) -> None:
        values: dict[str, object] = {"status": status, "detail": detail}
        if status in FINISHED:
            values["finished_at"] = naive_utc(datetime.now(UTC))
        with self.engine.begin() as conn:
            conn.execute(
                update(retrain_runs).where(retrain_runs.c.request_id == request_id).values(values)
            )

    def latest(self) -> tuple[datetime, str] | None:
        """(requested_at as UTC, status) of the newest run, if any."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(retrain_runs.c.requested_at, retrain_runs.c.status)
                .order_by(retrain_runs.c.requested_at.desc())
                .limit(1)
            ).first()
        return None if row is None else (row[0].replace(tzinfo=UTC), row[1])


def episode_split(request: RetrainRequest) -> datetime:
    """Where a drift episode is cut: the challenger trains on everything up to the middle of
    the episode and is compared with the champion on the rest, which neither has seen."""
    return request.data_start + (request.data_end - request.data_start) / 2


class LocalPipelineLauncher:
    """Runs the KFP pipeline with the local runner, in a child process of its own.

    The run's time range is the drift episode's; the model is then evaluated and promoted on
    the same recent data. The run is recorded in retrain_runs with its outcome.
    """

    name = "kfp-local"

    def __init__(self, ledger: RunLedger, settings: Settings) -> None:
        self.ledger = ledger
        self.settings = settings
        self._runs: dict[str, subprocess.Popen[bytes]] = {}

    def launch(self, request: RetrainRequest) -> str:
        log_dir = self.settings.data_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        split = episode_split(request)
        argv = [
            sys.executable, "-m", "driftline.cli", "pipeline", "run",
            "--tag", f"drift-{request.request_id[:12]}",
            "--request-id", request.request_id,
            "--data-end", split.isoformat(),
            "--eval-start", split.isoformat(),
            "--eval-end", request.data_end.isoformat(),
        ]  # fmt: skip
        if self.settings.retrain_lookback_seconds is not None:
            start = request.data_start - timedelta(seconds=self.settings.retrain_lookback_seconds)
            argv += ["--data-start", start.isoformat()]
        if self.settings.retrain_skip_steps:
            argv += ["--skip", self.settings.retrain_skip_steps]
        with open(log_dir / f"pipeline-{request.request_id[:12]}.log", "ab") as out:
            self._runs[request.request_id] = subprocess.Popen(  # nosec B603  # our own CLI, no shell
                argv,
                env={**os.environ, **self.settings.to_env()},
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(),
            )
        self.ledger.record(request, self.name, "running")
        return request.request_id

    def status(self, run_id: str) -> RunStatus:
        proc = self._runs.get(run_id)
        if proc is None:
            return "failed"  # launched by an earlier process that is gone
        code = proc.poll()
        if code is None:
            return "running"
        status: RunStatus = "succeeded" if code == 0 else "failed"
        self.ledger.set_status(run_id, status, f"exit code {code}")
        del self._runs[run_id]
        return status


class ClusterPipelineLauncher:
    """Submits the compiled pipeline (deploy/kfp/retrain.yaml) to a KFP cluster."""

    name = "kfp"

    def __init__(self, ledger: RunLedger, settings: Settings) -> None:
        self.ledger = ledger
        self.settings = settings
        self._client: Any = None

    @property
    def client(self) -> Any:
        """The KFP client, made at first use: making one asks the cluster's healthz, and a
        cluster that is away then must fail a launch (recorded, retried), not the trigger."""
        if self._client is None:
            from kfp import Client

            self._client = Client(host=self.settings.kfp_host)
        return self._client

    def launch(self, request: RetrainRequest) -> str:
        from driftline.pipelines.retrain import COMPILED

        split = episode_split(request)
        run = self.client.create_run_from_pipeline_package(
            str(COMPILED),
            arguments={
                "tag": f"drift-{request.request_id[:12]}",
                "request_id": request.request_id,
                "data_end": split.isoformat(),
                "eval_start": split.isoformat(),
                "eval_end": request.data_end.isoformat(),
            },
            run_name=f"retrain-{request.request_id[:12]}",
        )
        self.ledger.record(request, self.name, "running")
        return str(run.run_id)

    def status(self, run_id: str) -> RunStatus:
        state = str(self.client.get_run(run_id).state or "").upper()
        if state in ("SUCCEEDED",):
            return "succeeded"
        if state in ("FAILED", "CANCELED", "CANCELLED", "SKIPPED"):
            return "failed"
        return "running"


def make_launcher(settings: Settings, ledger: RunLedger) -> PipelineLauncher:
    match settings.retrain_launcher:
        case "record":
            return RecordingLauncher(ledger)
        case "kfp-local":
            return LocalPipelineLauncher(ledger, settings)
        case "kfp":
            return ClusterPipelineLauncher(ledger, settings)


class RecordingLauncher:
    """Records the request and runs nothing: its runs finish as 'recorded' at once."""

    name = "recording"

    def __init__(self, ledger: RunLedger) -> None:
        self.ledger = ledger

    def launch(self, request: RetrainRequest) -> str:
        self.ledger.record(request, self.name, "recorded")
        return request.request_id

    def status(self, run_id: str) -> RunStatus:
        return "recorded"
