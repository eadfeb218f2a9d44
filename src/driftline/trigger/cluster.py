"""The cluster launcher: submits the compiled pipeline to a KFP cluster and follows the run
there; a restarted trigger finds its runs again through KFP's run id kept in the ledger."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from driftline.core.records import RetrainRequest
from driftline.core.settings import Settings
from driftline.trigger.ledger import FINISHED, RunLedger, RunStatus, mark_running
from driftline.trigger.run_params import pipeline_params

log = logging.getLogger(__name__)


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
