"""Pipeline launchers: what the retrain-trigger calls when it fires.

``LocalPipelineLauncher`` (the embedded default) runs the KFP pipeline with KFP's local runner;
``ClusterPipelineLauncher`` (``driftline.trigger.cluster``) submits it to a KFP cluster;
``RecordingLauncher`` only records the request (for tests of the policy, and platforms that
retrain by hand). ``make_launcher`` picks one by ``retrain_launcher``.

Every launcher names a run by its request's id, records it in retrain_runs
(``driftline.trigger.ledger``) before starting it (status 'starting': a database error then
starts nothing, and the trigger tries again), and a launch of a request already started
returns that run instead of starting a second one.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from driftline.core.records import RetrainRequest
from driftline.core.settings import Settings
from driftline.platform import procs
from driftline.trigger.cluster import ClusterPipelineLauncher
from driftline.trigger.ledger import RunLedger, RunStatus, Unfinished, mark_running
from driftline.trigger.run_params import pipeline_params

log = logging.getLogger(__name__)


class PipelineLauncher(Protocol):
    name: str

    def launch(self, request: RetrainRequest, attempt: int = 0) -> str:
        """Start a retraining for ``request``, relaunch number ``attempt`` (once: again, it
        returns the same run); returns the run's id, the id its row in retrain_runs has."""

    def status(self, run_id: str) -> RunStatus:
        """Where the run stands now (a finished one is written to the ledger)."""

    def reconcile(self) -> list[str]:
        """At start-up: write the outcome of runs that finished while no trigger watched them;
        returns the runs still going that ``status`` can follow, oldest first."""


LOCAL_PROCESS = re.compile(r"pid (\d+) since (\d+)$")  # a running local run's detail


def local_process(detail: str | None) -> tuple[int, int] | None:
    """(pid, start time) of a local run's process, from its detail while it runs."""
    found = LOCAL_PROCESS.match(detail or "")
    return None if found is None else (int(found.group(1)), int(found.group(2)))


class LocalPipelineLauncher:
    """Runs the KFP pipeline with the local runner, in a child process of its own (started by
    ``driftline.platform.procs``: its own session, SIGTERMed by Linux if the trigger dies).

    The run's time range is the drift episode's; the model is then evaluated and promoted on
    the same recent data. The run is recorded in retrain_runs with its outcome, and while it
    runs with its process (``pid <pid> since <start time>``): a restarted trigger tells from
    it whether the run still goes.
    """

    name = "kfp-local"

    def __init__(self, ledger: RunLedger, settings: Settings) -> None:
        self.ledger = ledger
        self.settings = settings
        self._runs: dict[str, subprocess.Popen[bytes]] = {}
        self._adopted: dict[str, tuple[int, int]] = {}  # a trigger's before a restart

    def log_path(self, run_id: str) -> Path:
        return self.settings.data_dir / "logs" / f"pipeline-{run_id[:12]}.log"

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

    def launch(self, request: RetrainRequest, attempt: int = 0) -> str:
        run_id = request.request_id
        if run_id in self._runs:
            return run_id  # started already (recording it as running failed): not twice
        argv = self.argv(request)
        # Recorded before it starts: a database error here raises before any run exists.
        self.ledger.record(request, self.name, "starting", attempt)
        log_path = self.log_path(run_id)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as out:
            child = procs.start(argv, env={**os.environ, **self.settings.to_env()}, stdout=out)
        self._runs[run_id] = child
        since = procs.running_since(child.pid)
        mark_running(
            self.ledger, run_id, None if since is None else f"pid {child.pid} since {since}"
        )
        return run_id

    def status(self, run_id: str) -> RunStatus:
        proc = self._runs.get(run_id)
        if proc is None:
            return self._adopted_status(run_id)
        code = proc.poll()
        if code is None:
            return "running"
        status: RunStatus = "succeeded" if code == 0 else "failed"
        self.ledger.set_status(run_id, status, f"exit code {code}")
        del self._runs[run_id]
        return status

    def _adopted_status(self, run_id: str) -> RunStatus:
        """A run a trigger before a restart started: running while its process is, then
        failed (not our child: its exit code is unknown)."""
        process = self._adopted.get(run_id)
        if process is not None and procs.running_since(process[0]) == process[1]:
            return "running"
        self._adopted.pop(run_id, None)
        detail = "abandoned: its process ended while no trigger watched it; exit code unknown"
        self.ledger.set_status(run_id, "failed", detail)
        return "failed"

    def reconcile(self) -> list[str]:
        """Unfinished runs whose process still runs are followed; the others (their process
        gone, or none recorded: the trigger stopped as it started them) are recorded failed,
        ended at their log's last write."""
        going = []
        for run in self.ledger.unfinished(self.name):
            process = local_process(run.detail)
            if process is not None and procs.running_since(process[0]) == process[1]:
                self._adopted[run.request_id] = process
                going.append(run.request_id)
                continue
            why = "its process ended" if process else "no process recorded for it"
            detail = f"abandoned: {why} while no trigger watched it; exit code unknown"
            self.ledger.set_status(run.request_id, "failed", detail, self._last_sign(run))
            log.warning("retraining run %s %s", run.request_id, detail)
        return going

    def _last_sign(self, run: Unfinished) -> datetime:
        """When an abandoned run was last seen alive: its log's last write, else its start."""
        try:
            written = datetime.fromtimestamp(self.log_path(run.request_id).stat().st_mtime, UTC)
        except OSError:
            return run.requested_at
        return max(written, run.requested_at)


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

    def launch(self, request: RetrainRequest, attempt: int = 0) -> str:
        self.ledger.record(request, self.name, "recorded", attempt)
        return request.request_id

    def status(self, run_id: str) -> RunStatus:
        return "recorded"

    def reconcile(self) -> list[str]:
        return []
