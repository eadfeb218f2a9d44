"""Where the suite's CPU goes: the CPU seconds of each test module, its own process's and those
of the processes it started and waited for (services, pipeline steps, servers), named at the end
of every run beside pytest's slowest tests. On 2 cores the suite is bound by CPU, not by
waiting, so these, not wall-clock durations, say what would make it faster. With pytest-xdist it
also says when each worker finished its last module: a late finisher alone at the end of the
run is time the other workers sat idle (tests/conftest.py's LONGEST_FIRST deals it out early)."""

from __future__ import annotations

import resource
import time
from collections import Counter
from collections.abc import Iterator

import pytest

TOP = 15
_KEY = "driftline_cpu_by_module"
_SPANS = "driftline_module_spans"


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class CpuByModule:
    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()
        self.spans: dict[str, tuple[float, float]] = {}  # module -> (first start, last end)
        self.workers: dict[str, tuple[float, float, str]] = {}  # -> (start, end, last module)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Iterator[None]:
        module = item.nodeid.split("::")[0]
        started, began = cpu_seconds(), time.time()
        yield
        self.seconds[module] += cpu_seconds() - started
        self.spans[module] = (self.spans.get(module, (began, 0.0))[0], time.time())

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:  # a pytest-xdist worker: the controller adds them up
            workeroutput[_KEY] = dict(self.seconds)
            workeroutput[_SPANS] = dict(self.spans)
            workeroutput["driftline_worker"] = session.config.workerinput["workerid"]  # type: ignore[attr-defined]

    def pytest_testnodedown(self, node: object) -> None:
        output = getattr(node, "workeroutput", {})
        self.seconds.update(output.get(_KEY, {}))
        spans = output.get(_SPANS)
        if spans:
            last = max(spans, key=lambda m: spans[m][1])
            start = min(begun for begun, _ in spans.values())
            self.workers[output.get("driftline_worker", "?")] = (start, spans[last][1], last)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.seconds:
            return
        total = sum(self.seconds.values())
        terminalreporter.section(f"CPU seconds by test module (all: {total:.0f} s)")
        for module, seconds in self.seconds.most_common(TOP):
            terminalreporter.write_line(f"{seconds:8.1f} s  {seconds / total:5.1%}  {module}")
        if self.workers:
            zero = min(start for start, _, _ in self.workers.values())
            for worker, (_, end, last) in sorted(self.workers.items(), key=lambda w: w[1][1]):
                terminalreporter.write_line(
                    f"{worker} finished {end - zero:6.0f} s after the first test (last: {last})"
                )


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(CpuByModule(), "driftline-cpu-by-module")
