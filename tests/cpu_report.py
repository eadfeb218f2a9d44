"""Where the suite's CPU goes: the CPU seconds of each test module, its own process's and those
of the processes it started and waited for (services, pipeline steps, servers), named at the end
of every run beside pytest's slowest tests. On 2 cores the suite is bound by CPU, not by
waiting, so these, not wall-clock durations, say what would make it faster."""

from __future__ import annotations

import resource
from collections import Counter
from collections.abc import Iterator

import pytest

TOP = 15
_KEY = "driftline_cpu_by_module"


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class CpuByModule:
    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Iterator[None]:
        started = cpu_seconds()
        yield
        self.seconds[item.nodeid.split("::")[0]] += cpu_seconds() - started

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:  # a pytest-xdist worker: the controller adds them up
            workeroutput[_KEY] = dict(self.seconds)

    def pytest_testnodedown(self, node: object) -> None:
        self.seconds.update(getattr(node, "workeroutput", {}).get(_KEY, {}))

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.seconds:
            return
        total = sum(self.seconds.values())
        terminalreporter.section(f"CPU seconds by test module (all: {total:.0f} s)")
        for module, seconds in self.seconds.most_common(TOP):
            terminalreporter.write_line(f"{seconds:8.1f} s  {seconds / total:5.1%}  {module}")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(CpuByModule(), "driftline-cpu-by-module")
