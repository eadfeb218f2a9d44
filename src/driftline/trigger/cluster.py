"""The cluster launcher: submits the compiled pipeline to a KFP cluster and follows the run
there; a restarted trigger finds its runs again through KFP's run id kept in the ledger."""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from driftline.core.records import RetrainRequest
from driftline.core.settings import Settings
from driftline.trigger.ledger import FINISHED, RunLedger, RunStatus, Unfinished, mark_running
from driftline.trigger.run_params import pipeline_params

log = logging.getLogger(__name__)


KFP_RUN = "kfp run "  # the detail of a cluster run: "kfp run <KFP's run id>[: <state>]"


def kfp_run_id(detail: str | None) -> str | None:
    if not detail or not detail.startswith(KFP_RUN):
        return None
    return detail.removeprefix(KFP_RUN).split(":", 1)[0].strip() or None


def run_name(run_id: str) -> str:
    return f"retrain-{run_id[:12]}"


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

    def launch(self, request: RetrainRequest, attempt: int = 0) -> str:
        from driftline.pipelines.retrain import COMPILED

        run_id = request.request_id
        if run_id in self._kfp_ids:
            return run_id  # submitted already (recording it as running failed): not twice
        arguments = pipeline_params(request, self.settings).arguments()
        self.ledger.record(request, self.name, "starting", attempt)
        run = self.client.create_run_from_pipeline_package(
            str(COMPILED), arguments=arguments, run_name=run_name(run_id)
        )
        self._kfp_ids[run_id] = str(run.run_id)
        mark_running(self.ledger, run_id, f"{KFP_RUN}{run.run_id}")
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
        """Each run the ledger has unfinished: its state from KFP (a run recorded before KFP
        answered is looked up by its name); one KFP does not know was never started, and is
        recorded failed. While KFP is away, a run with a KFP id is followed, one without is
        left to the policy's deadline."""
        going = []
        for run in self.ledger.unfinished(self.name):
            try:
                status = self._reconcile(run)
            except SQLAlchemyError:
                raise  # the trigger retries its start
            except Exception as exc:  # whatever the KFP client raises: KFP is away
                log.warning("cannot ask KFP about run %s (%s)", run.request_id, exc)
                status = "running" if run.request_id in self._kfp_ids else "starting"
            if status == "running":
                going.append(run.request_id)
        return going

    def _reconcile(self, run: Unfinished) -> RunStatus:
        kfp_id = kfp_run_id(run.detail)
        if kfp_id is None:
            kfp_id = self._find(run.request_id)
            if kfp_id is None:
                detail = "abandoned: the trigger stopped before KFP had the run; KFP has none"
                self.ledger.set_status(run.request_id, "failed", detail, run.requested_at)
                log.warning("run %s %s", run.request_id, detail)
                return "failed"
            self.ledger.set_status(run.request_id, "running", f"{KFP_RUN}{kfp_id}")
        self._kfp_ids[run.request_id] = kfp_id
        return self.status(run.request_id)

    def _find(self, run_id: str) -> str | None:
        """KFP's id of the run launched for ``run_id``, found by its name and parameter."""
        name = run_name(run_id)
        predicate = {"key": "display_name", "operation": "EQUALS", "string_value": name}
        found = self.client.list_runs(filter=json.dumps({"predicates": [predicate]}))
        for kfp_run in found.runs or []:
            parameters = getattr(kfp_run.runtime_config, "parameters", None) or {}
            if kfp_run.display_name == name and parameters.get("request_id") == run_id:
                return str(kfp_run.run_id)
        return None
