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

import os
import subprocess
import sys
from typing import Protocol

from driftline.core.records import RetrainRequest
from driftline.core.settings import Settings
from driftline.platform import procs
from driftline.trigger.cluster import ClusterPipelineLauncher
from driftline.trigger.ledger import RunLedger, RunStatus, mark_running
from driftline.trigger.run_params import pipeline_params


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


class LocalPipelineLauncher:
    """Runs the KFP pipeline with the local runner, in a child process of its own (started by
    ``driftline.platform.procs``: its own session, SIGTERMed by Linux if the trigger dies).

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
            self._runs[run_id] = procs.start(
                argv, env={**os.environ, **self.settings.to_env()}, stdout=out
            )
        mark_running(self.ledger, run_id)
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
