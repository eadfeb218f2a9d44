"""The watch loop of ``driftline up``: restarts children, shows the live view and, with
--demo, walks the stages (first champion, pumps, drift, trigger, retraining, serving) with
their deadlines, then prints the summary. It always ends: the loop closed, a stage missed its
deadline or failed, a service is down for good, or Ctrl-C/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.console import Console, RenderableType
from rich.live import Live

from driftline.core.settings import Settings
from driftline.core.topics import Topics
from driftline.platform.demo_stages import STAGES, Stage, StageClock, first_error, log_tail
from driftline.platform.demo_summary import (
    demo_summary,
    print_summary,
    retrained,
    serving_retrained,
    windows_after_promotion,
)
from driftline.platform.live_view import one_line, render
from driftline.platform.monitor import PlatformMonitor
from driftline.platform.supervisor import Supervisor
from driftline.simulate.inject import DriftInjection
from driftline.simulate.plans import sensor_ids
from driftline.simulate.publisher import (
    SimulationPlan,
    SimulationReport,
    publish_simulation,
    simulation_producer,
)
from driftline.simulate.signals import SyntheticPump
from driftline.streaming.kafka import ensure_topics

if TYPE_CHECKING:
    from driftline.platform.up import DemoOptions

EXIT_STOPPED = 3  # a stage missed or failed, or a service is down for good
EXIT_INTERRUPTED = 130
KEPT_CHAMPION_GRACE = 15.0  # after a run succeeded, how long to wait for its promotion event


@dataclass
class Outcome:
    code: int
    text: str
    log_pattern: str | None = None  # the log that explains it


@dataclass(eq=False)
class DemoWatch:
    settings: Settings
    supervisor: Supervisor
    demo: DemoOptions | None
    features: list[str]
    serving_url: str
    console: Console
    headless: bool
    monitor: PlatformMonitor = field(init=False)
    sim: dict[str, SimulationReport] = field(default_factory=dict, init=False)
    sim_task: asyncio.Task[None] | None = field(default=None, init=False)
    clock: StageClock = field(init=False)
    first_champion: str | None = field(default=None, init=False)
    runs_done_at: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.monitor = PlatformMonitor(self.settings, self.serving_url)
        self.clock = StageClock(time.monotonic())

    @staticmethod
    def _interrupted(sig: int, interrupted: list[int], stop: asyncio.Event) -> None:
        interrupted.append(sig)
        stop.set()

    async def run(self, duration: float) -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        interrupted: list[int] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._interrupted, sig, interrupted, stop)
        await ensure_topics(self.settings, Topics(self.settings.topic_prefix).all())
        monitor = asyncio.create_task(self.monitor.run(stop))
        started = time.monotonic()
        self.clock = StageClock(started)
        outcome: Outcome | None = None
        last_line = 0.0
        live = None if self.headless else Live(console=self.console, refresh_per_second=4)
        with live or contextlib.nullcontext():
            while not stop.is_set():
                now = time.monotonic()
                elapsed = now - started
                self.supervisor.check(now)
                outcome = self._services_down() or (self._stages(now) if self.demo else None)
                report = self.sim.get("report")
                if live is not None:
                    live.update(self._render(report, elapsed, now))
                elif elapsed - last_line >= 5:
                    print(one_line(self.monitor.state, report, elapsed), flush=True)
                    last_line = elapsed
                if outcome is None and duration and elapsed >= duration:
                    outcome = Outcome(0, f"ran for {duration:.0f} s as asked")
                if outcome is not None:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)
        if outcome is None:  # Ctrl-C or SIGTERM: how a platform run ends; a demo is cut short
            outcome = (
                Outcome(EXIT_INTERRUPTED, "interrupted: the summary so far")
                if self.demo is not None
                else Outcome(0, "stopped")
            )
        await self._stop_pumps(catch_up=outcome.code == 0)
        stop.set()
        monitor.cancel()
        await asyncio.gather(monitor, return_exceptions=True)
        return self._finish(outcome, time.monotonic() - started)

    def _render(
        self, report: SimulationReport | None, elapsed: float, now: float
    ) -> RenderableType:
        stage = self.clock.current if self.demo else None
        waiting = None
        if stage is not None:
            waited = self.clock.since_previous(now)
            waiting = f"{stage.what}: {waited:.0f} s of {stage.deadline:.0f} s"
        return render(
            self.monitor.state, report, self.supervisor, elapsed, self.serving_url, waiting
        )

    def _services_down(self) -> Outcome | None:
        down = self.supervisor.down_for_good()
        if not down:
            return None
        names = ", ".join(c.name for c in down)
        return Outcome(EXIT_STOPPED, f"stopped: {names} down for good", f"{down[0].name}.log")

    def _stages(self, now: float) -> Outcome | None:
        """Marks the stages reached; an Outcome when the demo is over (either way)."""
        if self.demo is None:
            raise RuntimeError("the demo's stages are watched only in a demo")
        state, clock = self.monitor.state, self.clock
        report = self.sim.get("report")
        bootstrap = next((c for c in self.supervisor.children if c.name == "bootstrap"), None)
        if "champion" not in clock.reached and bootstrap is not None and not bootstrap.alive:
            code = bootstrap.proc.returncode if bootstrap.proc else None
            if code != 0:
                return self._missed(STAGES[0], f"the first champion's training exited {code}")
            if state.promotions:
                self.first_champion = str(state.promotions[0].get("model_version"))
                clock.reach("champion", now)
                self.sim_task = asyncio.create_task(self._simulate())
        reached = clock.reached
        if "champion" in reached and state.valid > 0:
            clock.reach("streaming", now)
        onset = report.first_drift_ts if report is not None else None
        if "streaming" in reached and onset is not None and state.first_drifted_at is not None:
            clock.reach("detection", now)
        if "detection" in reached and state.retrain_requests:
            clock.reach("trigger", now)
        if "trigger" in reached:
            if retrained(state, self.first_champion):
                clock.reach("promotion", now)
            else:
                failed = self._pipeline_failed(now)
                if failed:
                    return self._missed(STAGES[4], failed)
        if "promotion" in reached and serving_retrained(state, self.first_champion):
            clock.reach("switch", now)
        if "switch" in reached and self._runs_finished():
            clock.reach("finished", now)
        if "finished" in reached and self._settled(self.demo, now - reached["switch"]):
            return Outcome(0, "the loop closed: serving answers with the retrained model")
        overdue = clock.overdue(now)
        if overdue is not None:
            return self._missed(overdue, f"not within {overdue.deadline:.0f} s")
        return None

    def _settled(self, demo: DemoOptions, since_switch: float) -> bool:
        """Streamed long enough after the switch to show that drift has stopped: the settle
        time, and a window per sensor started after the promotion (or the bound on waiting)."""
        if since_switch < demo.settle_seconds:
            return False
        state = self.monitor.state
        _, windows = windows_after_promotion(retrained(state, self.first_champion)[0], state)
        return windows >= demo.sensors or since_switch >= (
            demo.settle_seconds + demo.settle_windows_max_seconds
        )

    def _runs_finished(self) -> bool:
        state = self.monitor.state
        runs = [state.run_status.get(str(r.get("request_id"))) for r in state.retrain_requests]
        return bool(runs) and all(s in ("succeeded", "failed", "recorded") for s in runs)

    def _pipeline_failed(self, now: float) -> str | None:
        """Why no retrained model will be promoted, once that is certain."""
        runs = [self.monitor.state.run_status.get(str(r.get("request_id"))) for r in
                self.monitor.state.retrain_requests]  # fmt: skip
        if "failed" in runs:
            return "the retraining pipeline failed"
        if runs and all(s in ("succeeded", "recorded") for s in runs):
            self.runs_done_at = self.runs_done_at or now
            if now - self.runs_done_at > KEPT_CHAMPION_GRACE:
                return "the retraining pipeline finished without promoting a new model"
        return None

    def _missed(self, stage: Stage, why: str) -> Outcome:
        return Outcome(EXIT_STOPPED, f"stopped: {stage.what} did not happen ({why})", stage.log)

    async def _simulate(self) -> None:
        demo = self.demo
        if demo is None:
            raise RuntimeError("the simulated pumps run only in a demo")
        plan = SimulationPlan(
            sensors=sensor_ids(demo.sensors),
            rows=lambda i: SyntheticPump(
                seed=100 + i, fault_share=demo.fault_share, fault_rows=demo.fault_rows
            ).rows(demo.readings_per_sensor),
            features=self.features,
            rate=demo.rate,
            drift=DriftInjection(
                "shift", demo.drift_at, list(demo.drift_features), demo.drift_stds
            ),
            malformed_rate=demo.malformed_rate,
            seed=1,
        )
        producer = simulation_producer(self.settings, plan)
        await producer.start()
        try:
            self.sim["report"] = SimulationReport()

            def progress(r: SimulationReport) -> None:
                self.sim["report"] = r

            topic = Topics(self.settings.topic_prefix).raw_readings
            await publish_simulation(producer, topic, plan, progress)
        finally:
            await producer.stop()

    async def _stop_pumps(self, catch_up: bool) -> None:
        """Stop sending; after a closed loop, let ingest store and the validator judge what
        was sent (the summary counts both) for up to 15 s."""
        if self.sim_task is None:
            return
        self.sim_task.cancel()
        await asyncio.gather(self.sim_task, return_exceptions=True)
        report = self.sim.get("report")
        deadline = time.monotonic() + (15 if catch_up else 3)
        state = self.monitor.state
        while (
            report
            and min(state.stored, state.valid + state.dead_letters) < report.sent
            and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.5)

    def _finish(self, outcome: Outcome, elapsed: float) -> int:
        state = self.monitor.state
        print(one_line(state, self.sim.get("report"), elapsed), flush=True)
        down = [c.name for c in self.supervisor.down_for_good()]
        if self.demo is not None:
            summary = demo_summary(
                state, self.sim.get("report"), self.settings, self.first_champion,
                outcome.text, down,
            )  # fmt: skip
            summary["whole_run_seconds"] = round(elapsed, 1)
            print_summary(summary)
            path = self.settings.data_dir / "demo-summary.json"
            path.write_text(json.dumps(summary, indent=2, default=str))
            print(f"  this summary as JSON: {path}", flush=True)
        else:
            print(f"driftline up: {outcome.text}", flush=True)
            for name in down:
                print(f"  DOWN for good: {name}", flush=True)
        if outcome.code not in (0, EXIT_INTERRUPTED) and outcome.log_pattern:
            log_path, lines = log_tail(self.settings.data_dir / "logs", outcome.log_pattern)
            if log_path is not None:
                print(f"\nThe last lines of {log_path}:", flush=True)
                print("\n".join(f"  | {line}" for line in lines), flush=True)
                cause = first_error(log_path)
                if cause:
                    print(f"The first error in it: {cause}", flush=True)
        if (
            outcome.code == 0
            and self.demo is not None
            and not serving_retrained(state, self.first_champion)
        ):
            return 1
        return outcome.code
