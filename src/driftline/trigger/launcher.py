"""Pipeline launchers: what the retrain-trigger calls when it fires.

``LocalPipelineLauncher`` (the embedded default) runs the KFP pipeline with KFP's local runner;
``ClusterPipelineLauncher`` submits it to a KFP cluster; ``RecordingLauncher`` only records the
request (for tests of the policy, and platforms that retrain by hand).

Every launcher names a run by its request's id, records it in retrain_runs before starting it
(status 'starting': a database error then starts nothing, and the trigger tries again), and a
launch of a request already started returns that run instead of starting a second one.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import SQLAlchemyError

from driftline.core.records import RetrainRequest
from driftline.core.settings import Settings
from driftline.platform.procs import die_with_parent
from driftline.store.raw_store import insert_ignoring_duplicates, naive_utc, retrain_runs
from driftline.training.local_run import PipelineParams

RunStatus = Literal["starting", "running", "succeeded", "failed", "recorded"]
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "recorded"})

log = logging.getLogger(__name__)


class PipelineLauncher(Protocol):
    name: str

    def launch(self, request: RetrainRequest) -> str:
        """Start a retraining for ``request`` (once: again, it returns the same run); returns
        the run's id, the id its row in retrain_runs has."""

    def status(self, run_id: str) -> RunStatus:
        """Where the run stands now (a finished one is written to the ledger)."""

    def reconcile(self) -> list[str]:
        """At start-up: write the outcome of runs that finished while no trigger watched them;
        returns the runs still going that ``status`` can follow, oldest first."""


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

    def unfinished(self, launcher: str) -> list[tuple[str, str | None]]:
        """(request_id, detail) of ``launcher``'s runs not finished, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(retrain_runs.c.request_id, retrain_runs.c.detail)
                .where(retrain_runs.c.launcher == launcher)
                .where(retrain_runs.c.status.not_in(sorted(FINISHED)))
                .order_by(retrain_runs.c.requested_at)
            ).all()
        return [(r[0], r[1]) for r in rows]

    def detail(self, request_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(retrain_runs.c.detail).where(retrain_runs.c.request_id == request_id)
            ).scalar_one_or_none()


def episode_split(request: RetrainRequest) -> datetime:
    """Where a drift episode is cut: the challenger trains on everything up to the middle of
    the episode and is compared with the champion on the rest, which neither has seen."""
    return request.data_start + (request.data_end - request.data_start) / 2


def pipeline_params(request: RetrainRequest, settings: Settings) -> PipelineParams:
    """The pipeline's parameters for ``request``, the same for every launcher: train up to the
    episode's middle (from ``retrain_lookback_seconds`` before it when set), evaluate on the
    rest, skip ``retrain_skip_steps``."""
    split = episode_split(request)
    start = None
    if settings.retrain_lookback_seconds is not None:
        start = request.data_start - timedelta(seconds=settings.retrain_lookback_seconds)
    skip = frozenset(s.strip() for s in settings.retrain_skip_steps.split(",") if s.strip())
    return PipelineParams(
        tag=f"drift-{request.request_id[:12]}",
        data_start=start,
        data_end=split,
        eval_start=split,
        eval_end=request.data_end,
        tune_count=settings.tune_samples,
        request_id=request.request_id,
        skip=skip,
    )


def _mark_running(ledger: RunLedger, run_id: str, detail: str | None = None) -> None:
    """The run started: say so. A database error here must not fail the launch (the run is
    going, and 'starting' blocks a new one as 'running' does); its outcome is written later."""
    try:
        ledger.set_status(run_id, "running", detail)
    except SQLAlchemyError as exc:
        log.warning("run %s started; recording it as running failed: %s", run_id, exc)


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

    def argv(self, request: RetrainRequest) -> list[str]:
        p = pipeline_params(request, self.settings)
        argv = [
            sys.executable, "-m", "driftline.cli.main", "pipeline", "run",
            "--tag", p.tag,
            "--request-id", p.request_id,
            "--data-end", p.data_end.isoformat() if p.data_end else "",
            "--eval-start", p.eval_start.isoformat() if p.eval_start else "",
            "--eval-end", p.eval_end.isoformat() if p.eval_end else "",
        ]  # fmt: skip
        if p.data_start is not None:
            argv += ["--data-start", p.data_start.isoformat()]
        if p.skip:
            argv += ["--skip", ",".join(sorted(p.skip))]
        return argv

    def launch(self, request: RetrainRequest) -> str:
        run_id = request.request_id
        if run_id in self._runs:
            return run_id  # started already (recording it as running failed): not twice
        argv = self.argv(request)
        # Recorded before it starts: a database error here raises before any run exists.
        self.ledger.record(request, self.name, "starting")
        log_dir = self.settings.data_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        with open(log_dir / f"pipeline-{run_id[:12]}.log", "ab") as out:
            self._runs[run_id] = subprocess.Popen(  # nosec B603  # our own CLI, no shell
                argv,
                env={**os.environ, **self.settings.to_env()},
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(),
            )
        _mark_running(self.ledger, run_id)
        return run_id

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

    def reconcile(self) -> list[str]:
        return []  # its runs die with the process that started them


KFP_RUN = "kfp run "  # the detail of a cluster run: "kfp run <KFP's run id>[: <state>]"


def kfp_run_id(detail: str | None) -> str | None:
    if not detail or not detail.startswith(KFP_RUN):
        return None
    return detail.removeprefix(KFP_RUN).split(":", 1)[0].strip() or None


def run_status(state: str | None) -> RunStatus:
    """A KFP run state (v2 API, or v1's phase) as the ledger's status."""
    s = str(state or "").upper()
    if s == "SUCCEEDED":
        return "succeeded"
    if s in ("FAILED", "CANCELED", "CANCELLED", "SKIPPED", "ERROR"):
        return "failed"
    return "running"


class ClusterPipelineLauncher:
    """Submits the compiled pipeline (deploy/kfp/retrain.yaml) to a KFP cluster.

    The run's id is the request's; KFP's own run id is kept in the row's detail
    (``kfp run <id>``), so a restarted trigger can ask KFP how the run ended.
    """

    name = "kfp"

    def __init__(self, ledger: RunLedger, settings: Settings) -> None:
        self.ledger = ledger
        self.settings = settings
        self._client: Any = None
        self._kfp_ids: dict[str, str] = {}

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

        run_id = request.request_id
        if run_id in self._kfp_ids:
            return run_id  # submitted already (recording it as running failed): not twice
        arguments = pipeline_params(request, self.settings).arguments()
        self.ledger.record(request, self.name, "starting")
        run = self.client.create_run_from_pipeline_package(
            str(COMPILED), arguments=arguments, run_name=f"retrain-{run_id[:12]}"
        )
        self._kfp_ids[run_id] = str(run.run_id)
        _mark_running(self.ledger, run_id, f"{KFP_RUN}{run.run_id}")
        return run_id

    def _kfp_id(self, run_id: str) -> str | None:
        found = self._kfp_ids.get(run_id)
        if found is None:
            found = kfp_run_id(self.ledger.detail(run_id))
            if found is not None:
                self._kfp_ids[run_id] = found
        return found

    def status(self, run_id: str) -> RunStatus:
        kfp_id = self._kfp_id(run_id)
        if kfp_id is None:
            return "running"  # submitted, its KFP id not recorded: the policy's deadline applies
        state = self.client.get_run(kfp_id).state
        status = run_status(state)
        if status in FINISHED:
            self.ledger.set_status(run_id, status, f"{KFP_RUN}{kfp_id}: {state}")
            self._kfp_ids.pop(run_id, None)
        return status

    def reconcile(self) -> list[str]:
        going = []
        for run_id, detail in self.ledger.unfinished(self.name):
            kfp_id = kfp_run_id(detail)
            if kfp_id is None:
                continue  # never got as far as KFP, or not recorded: the deadline applies
            self._kfp_ids[run_id] = kfp_id
            try:
                status = self.status(run_id)
            except SQLAlchemyError:
                raise  # the trigger retries its start
            except Exception as exc:  # whatever the KFP client raises: KFP is away
                log.warning("cannot ask KFP about run %s (%s); following it", run_id, exc)
                status = "running"
            if status not in FINISHED:
                going.append(run_id)
        return going


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

    def reconcile(self) -> list[str]:
        return []
