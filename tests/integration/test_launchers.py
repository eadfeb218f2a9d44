"""Pipeline launchers against a real database: a run is recorded before it starts (a database
error starts nothing), asked again it is not started twice, and the cluster launcher, against a
stand-in of the KFP REST API (the endpoints kfp.Client calls), records the id it returns,
writes how runs ended, reconciles after a restart and passes the same parameters as the local
launcher."""

from __future__ import annotations

import json
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from driftline.core.records import RetrainRequest
from driftline.core.settings import Settings
from driftline.platform import procs
from driftline.store.raw_store import RawStore
from driftline.store.tables import retrain_runs, trigger_decisions
from driftline.trigger.cluster import ClusterPipelineLauncher
from driftline.trigger.launcher import LocalPipelineLauncher
from driftline.trigger.ledger import RunLedger
from driftline.trigger.machine import Pending
from driftline.trigger.policy import Decision
from driftline.trigger.recovery import restore
from driftline.trigger.store import DecisionStore, policy_config, policy_from
from tests.unit.test_policy import event


class FakeKfp(ThreadingHTTPServer):
    """The KFP v2beta1 REST endpoints kfp.Client uses to submit a run and follow it."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _KfpHandler)
        self.runs: dict[str, dict[str, Any]] = {}
        self.experiments: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _KfpHandler(BaseHTTPRequestHandler):
    server: FakeKfp

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        """No access log line per request: the test's output stays readable."""

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        return json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        with self.server.lock:
            if path == "/apis/v2beta1/healthz":
                return self._reply(200, {"multi_user": False})
            if path == "/apis/v2beta1/experiments":
                experiments = self.server.experiments
                return self._reply(200, {"experiments": experiments} if experiments else {})
            if path == "/apis/v2beta1/runs":
                return self._reply(200, self._list_runs())
            if path.startswith("/apis/v2beta1/runs/"):
                run = self.server.runs.get(path.rsplit("/", 1)[1])
                if run is None:
                    return self._reply(404, {"error": "no such run", "code": 5})
                return self._reply(200, run)
        self._reply(404, {"error": f"not in the stand-in: GET {path}", "code": 5})

    def _list_runs(self) -> dict[str, Any]:
        """The runs the filter's EQUALS predicates select (what the launcher asks)."""
        query = parse_qs(urlsplit(self.path).query)
        predicates = json.loads(query.get("filter", ["{}"])[0]).get("predicates", [])
        runs = [
            run
            for run in self.server.runs.values()
            if all(
                p["operation"] == "EQUALS"
                and run.get(p["key"]) == p.get("string_value", p.get("stringValue"))
                for p in predicates
            )
        ]
        return {"runs": runs, "total_size": len(runs)} if runs else {}

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        body = self._body()
        with self.server.lock:
            if path == "/apis/v2beta1/experiments":
                experiment = {**body, "experiment_id": uuid.uuid4().hex}
                self.server.experiments.append(experiment)
                return self._reply(200, experiment)
            if path == "/apis/v2beta1/runs":
                run = {**body, "run_id": uuid.uuid4().hex, "state": "RUNNING"}
                self.server.runs[run["run_id"]] = run
                return self._reply(200, run)
        self._reply(404, {"error": f"not in the stand-in: POST {path}", "code": 5})


@pytest.fixture
def kfp() -> Iterator[FakeKfp]:
    server = FakeKfp()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RawStore]:
    s = RawStore.from_url(f"sqlite:///{tmp_path / 'raw.db'}")
    s.create_tables()
    yield s
    s.engine.dispose()


def settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", **overrides)  # type: ignore[arg-type]


def request(hours_ago: float = 2.0) -> RetrainRequest:
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=hours_ago)
    return RetrainRequest(
        reason="test",
        sensors=["pump-001"],
        drift_event_ids=["e1"],
        data_start=end - timedelta(minutes=30),
        data_end=end,
    )


def rows(store: RawStore) -> dict[str, dict[str, Any]]:
    with store.engine.connect() as conn:
        return {r["request_id"]: dict(r) for r in conn.execute(sa.select(retrain_runs)).mappings()}


def parameters(kfp: FakeKfp, kfp_id: str) -> dict[str, Any]:
    return kfp.runs[kfp_id]["runtime_config"]["parameters"]


def test_the_cluster_launcher_records_the_id_it_returns_and_how_the_run_ended(
    kfp: FakeKfp, store: RawStore, tmp_path: Path
) -> None:
    s = settings(
        tmp_path, kfp_host=kfp.url, retrain_lookback_seconds=3600, retrain_skip_steps="tune"
    )
    launcher = ClusterPipelineLauncher(RunLedger(store.engine), s)
    r = request()
    run_id = launcher.launch(r)
    assert run_id == r.request_id  # the ledger's id, not KFP's
    (kfp_id,) = kfp.runs
    row = rows(store)[run_id]
    assert (row["status"], row["detail"], row["launcher"]) == (
        "running",
        f"kfp run {kfp_id}",
        "kfp",
    )
    # The same parameters as the local launcher: lookback before the episode, steps skipped.
    p = parameters(kfp, kfp_id)
    assert datetime.fromisoformat(p["data_start"]) == r.data_start - timedelta(hours=1)
    split = r.data_start + (r.data_end - r.data_start) / 2
    assert datetime.fromisoformat(p["data_end"]) == split
    assert datetime.fromisoformat(p["eval_end"]) == r.data_end
    assert p["run_tune"] is False and p["run_train"] is True
    assert p["request_id"] == r.request_id
    local = LocalPipelineLauncher(RunLedger(store.engine), s).argv(r)
    assert local[local.index("--data-start") + 1] == p["data_start"]
    assert local[local.index("--skip") + 1] == "tune"

    assert launcher.launch(r) == run_id and len(kfp.runs) == 1  # asked again: not twice
    assert launcher.status(run_id) == "running"
    kfp.runs[kfp_id]["state"] = "SUCCEEDED"
    assert launcher.status(run_id) == "succeeded"
    row = rows(store)[run_id]
    assert row["status"] == "succeeded" and row["finished_at"] is not None
    assert row["detail"] == f"kfp run {kfp_id}: SUCCEEDED"


def test_a_restarted_cluster_launcher_writes_runs_that_ended_and_follows_the_rest(
    kfp: FakeKfp, store: RawStore, tmp_path: Path
) -> None:
    s = settings(tmp_path, kfp_host=kfp.url, trigger_cooldown_seconds=60)
    before = ClusterPipelineLauncher(RunLedger(store.engine), s)
    ended, going = request(hours_ago=5), request(hours_ago=3)
    before.launch(ended)
    before.launch(going)
    kfp_ids = {rows(store)[r.request_id]["detail"].split()[-1]: r for r in (ended, going)}
    for kfp_id, r in kfp_ids.items():
        kfp.runs[kfp_id]["state"] = "FAILED" if r is ended else "RUNNING"
    ledger = RunLedger(store.engine)
    assert policy_from(policy_config(s), ledger).in_flight_since is not None

    after = ClusterPipelineLauncher(ledger, s)  # the trigger restarted
    assert after.reconcile() == [going.request_id]
    assert rows(store)[ended.request_id]["status"] == "failed"
    assert after.status(going.request_id) == "running"
    for kfp_id, r in kfp_ids.items():
        if r is going:
            kfp.runs[kfp_id]["state"] = "SUCCEEDED"
    assert after.status(going.request_id) == "succeeded"
    # The newest run finished: nothing is in flight for a policy restored now.
    assert policy_from(policy_config(s), ledger).in_flight_since is None


def test_a_cluster_launch_kfp_refuses_is_recorded_before_and_raises(
    store: RawStore, tmp_path: Path
) -> None:
    s = settings(tmp_path, kfp_host="http://127.0.0.1:9")  # nothing listens there
    launcher = ClusterPipelineLauncher(RunLedger(store.engine), s)
    r = request()
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever the KFP client raises
        launcher.launch(r)
    assert rows(store)[r.request_id]["status"] == "starting"
    assert launcher.reconcile() == []  # never reached KFP: the policy's deadline applies


def test_the_local_launcher_records_a_run_before_starting_it(tmp_path: Path) -> None:
    """Hazard: it started the run, then recorded it; a database error there, and the retried
    launch started a second run."""
    store = RawStore.from_url(f"sqlite:///{tmp_path / 'raw.db'}")  # no tables yet: inserts fail
    s = settings(tmp_path)
    launcher = LocalPipelineLauncher(RunLedger(store.engine), s)
    r = request()
    with pytest.raises(OperationalError):
        launcher.launch(r)
    assert launcher._runs == {}  # nothing started
    assert not (s.data_dir / "logs").exists()
    store.create_tables()
    try:
        assert launcher.launch(r) == r.request_id
        (child,) = launcher._runs.values()
        assert rows(store)[r.request_id]["status"] == "running"
        assert launcher.launch(r) == r.request_id  # asked again (a retried batch): not twice
        assert list(launcher._runs.values()) == [child]
    finally:
        for proc in launcher._runs.values():
            procs.stop_group(proc)
        store.engine.dispose()


async def test_a_restarted_trigger_follows_the_cluster_run_still_going(
    kfp: FakeKfp, store: RawStore, tmp_path: Path
) -> None:
    """Restart recovery from the database: decided events, cooldown, the run in flight."""
    s = settings(tmp_path, kfp_host=kfp.url, trigger_cooldown_seconds=3600)
    ledger = RunLedger(store.engine)
    r = request(hours_ago=0)
    ClusterPipelineLauncher(ledger, s).launch(r)
    decided = event()
    fired = Pending(datetime.now(UTC), Decision(True, "fired"), r)
    DecisionStore(store.engine).record_drift(decided, fired)

    trigger = restore(s, ledger, ClusterPipelineLauncher(ledger, s))  # a new process
    assert decided.event_id in trigger.seen
    assert trigger.in_flight is not None and trigger.in_flight.run_id == r.request_id
    assert trigger.policy.blockers(datetime.now(UTC))  # in flight, cooling down
    await trigger.tick()
    assert trigger.in_flight is not None  # KFP still runs it
    (kfp_id,) = kfp.runs
    kfp.runs[kfp_id]["state"] = "SUCCEEDED"
    await trigger.tick()
    assert trigger.in_flight is None and trigger.policy.in_flight_since is None
    assert rows(store)[r.request_id]["status"] == "succeeded"


@pytest.fixture
def db(database_url: str) -> Iterator[RawStore]:
    """A raw store on MariaDB and on SQLite."""
    s = RawStore.from_url(database_url)
    s.create_tables()
    yield s
    s.engine.dispose()


def naive(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None)


def test_a_restarted_cluster_launcher_settles_runs_recorded_before_kfp_answered(
    kfp: FakeKfp, db: RawStore, tmp_path: Path
) -> None:
    """Hazard: a run left 'starting' (the trigger stopped between recording it and recording
    KFP's answer) blocked retraining until the deadline. KFP is asked for it by name."""
    s = settings(tmp_path, kfp_host=kfp.url)
    ledger = RunLedger(db.engine)
    submitted, never = request(hours_ago=3), request(hours_ago=2)
    ClusterPipelineLauncher(ledger, s).launch(submitted)
    (kfp_id,) = kfp.runs
    ledger.set_status(submitted.request_id, "starting")  # KFP's answer never recorded
    ledger.record(never, "kfp", "starting")  # stopped before it was submitted
    assert policy_from(policy_config(s), ledger).in_flight_since is not None

    after = ClusterPipelineLauncher(ledger, s)  # the trigger restarted
    assert after.reconcile() == [submitted.request_id]
    found, abandoned = rows(db)[submitted.request_id], rows(db)[never.request_id]
    assert (found["status"], found["detail"]) == ("running", f"kfp run {kfp_id}")
    assert abandoned["status"] == "failed" and abandoned["detail"].startswith("abandoned: ")
    assert abandoned["finished_at"] == naive(never.requested_at)
    assert len(kfp.runs) == 1  # nothing submitted again
    kfp.runs[kfp_id]["state"] = "SUCCEEDED"
    assert after.status(submitted.request_id) == "succeeded"
    assert policy_from(policy_config(s), ledger).in_flight_since is None


def record_local_run(ledger: RunLedger, r: RetrainRequest, process: str | None) -> None:
    """A run as the local launcher of a trigger before a restart left it."""
    ledger.record(r, "kfp-local", "starting")
    if process is not None:
        ledger.set_status(r.request_id, "running", process)


def test_a_restarted_local_launcher_follows_a_live_run_and_settles_the_rest(
    db: RawStore, tmp_path: Path
) -> None:
    """Hazard: a local run left 'running' by a trigger that died blocked retraining until the
    deadline. Its recorded process (pid and start time) says whether it still runs."""
    s = settings(tmp_path)
    ledger = RunLedger(db.engine)
    sleeper = procs.start([sys.executable, "-c", "import time; time.sleep(120)"])
    ended = procs.start([sys.executable, "-c", "pass"])
    ended_since = procs.running_since(ended.pid)
    sleeper_since = procs.running_since(sleeper.pid)
    assert ended.wait(timeout=60) == 0 and ended_since is not None
    live, gone, reused, unrecorded = (request(hours_ago=h) for h in (4, 3, 2, 1))
    try:
        record_local_run(ledger, live, f"pid {sleeper.pid} since {sleeper_since}")
        record_local_run(ledger, gone, f"pid {ended.pid} since {ended_since}")
        # The pid again, another start time: another process took the pid.
        record_local_run(ledger, reused, f"pid {sleeper.pid} since {sleeper_since - 1}")
        record_local_run(ledger, unrecorded, None)

        after = LocalPipelineLauncher(ledger, s)  # the trigger restarted
        assert after.reconcile() == [live.request_id]
        found = rows(db)
        assert found[live.request_id]["status"] == "running"
        for r in (gone, reused, unrecorded):
            assert found[r.request_id]["status"] == "failed", r
            assert found[r.request_id]["detail"].startswith("abandoned: "), r
            assert found[r.request_id]["finished_at"] == naive(r.requested_at)  # no log
        assert after.status(live.request_id) == "running"
        procs.stop_group(sleeper)
        assert after.status(live.request_id) == "failed"
        assert rows(db)[live.request_id]["detail"].startswith("abandoned: its process ended")
        assert policy_from(policy_config(s), ledger).in_flight_since is None
    finally:
        procs.stop_group(sleeper)


def test_a_local_launch_records_its_process(db: RawStore, tmp_path: Path) -> None:
    s = settings(tmp_path)
    launcher = LocalPipelineLauncher(RunLedger(db.engine), s)
    r = request()
    launcher.launch(r, attempt=1)
    (child,) = launcher._runs.values()
    try:
        row = rows(db)[r.request_id]
        assert row["detail"] == f"pid {child.pid} since {procs.running_since(child.pid)}"
        assert row["attempt"] == 1
    finally:
        procs.stop_group(child)


def test_a_restart_relaunches_an_abandoned_run_only_if_it_failed_recently(
    db: RawStore, tmp_path: Path
) -> None:
    s = settings(tmp_path, trigger_retry_max_age_seconds=3600)
    ledger = RunLedger(db.engine)
    ended = procs.start([sys.executable, "-c", "pass"])
    process = f"pid {ended.pid} since {procs.running_since(ended.pid)}"
    ended.wait(timeout=60)
    old = request().model_copy(update={"requested_at": datetime.now(UTC) - timedelta(hours=3)})
    record_local_run(ledger, old, process)

    for _ in range(2):  # restarted twice: decided once
        trigger = restore(s, ledger, LocalPipelineLauncher(ledger, s))
        assert trigger.relaunch is None and trigger.in_flight is None
        assert trigger.policy.in_flight_since is None  # drift may fire again
    with db.engine.connect() as conn:
        held = conn.execute(
            sa.select(trigger_decisions).where(trigger_decisions.c.sensor_id.like("relaunch:%"))
        ).all()
    assert [(h.sensor_id, h.fired) for h in held] == [(f"relaunch:{old.request_id}", False)]
    assert "not relaunching" in held[0].reason and "3600s" in held[0].reason
    assert rows(db)[old.request_id]["status"] == "failed"

    recent = request()
    record_local_run(ledger, recent, process)
    trigger = restore(s, ledger, LocalPipelineLauncher(ledger, s))
    assert trigger.relaunch is not None
    assert (trigger.relaunch.failed, trigger.relaunch.attempt) == (recent, 1)
