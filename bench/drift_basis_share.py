"""Share of drift windows flagged on normal operation, per basis (issue 16, points 1 and 8).

On each recording's rows before its first changepoint (normal operation), the windows of
``bench/drift_quality.py``'s chain (60 rows, stride 2, drift share >= 0.375 or a flatline) are
compared three ways: with the recording's own baseline as the reference, and with one shared
reference (the first 400 rows of the first ``--normal`` recording) on the drift service's
``baseline`` and ``raw`` bases; each with the service's default test and the chain's tuned one.

    .venv/bin/python bench/drift_basis_share.py [--data DIR...] [--normal DIR...]
"""

from __future__ import annotations

import argparse
import itertools

import drift_quality as dq  # bench/drift_quality.py

from driftline.anomaly.recordings import skab_csvs

TESTS = (("wasserstein", 2.0), ("ks", 1e-6))  # the service's default; the tuned chain's
REFERENCES = ("own", "baseline", "raw")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=dq.Path, nargs="+", default=[dq.SKAB / "valve1"])
    parser.add_argument("--normal", type=dq.Path, nargs="+", default=[dq.SKAB / "anomaly-free"])
    args = parser.parse_args()
    free = dq.load_recording(skab_csvs(args.normal)[0])
    dq.SHARED["normal"] = dq.Reference(
        "shared", dq.FEATURES, free.values[: dq.REFERENCE_ROWS], free.name
    )
    recs = [dq.load_recording(p) for p in skab_csvs(args.data)]
    table = dq.Table(title="windows drifted before each recording's first changepoint")
    for column in ("test", "reference", "drifted", "windows", "share"):
        table.add_column(column)
    for (test, threshold), reference in itertools.product(TESTS, REFERENCES):
        drifted = total = 0
        for rec in recs:
            first = rec.changepoints_ns.min() if len(rec.changepoints_ns) else rec.times_ns[-1]
            for end, event in dq.window_events(rec, 60, 2, test, threshold, reference):
                if rec.times_ns[end] < first:
                    total += 1
                    drifted += event.drift_share >= 0.375 or bool(event.flatlined)
        basis = "own baseline" if reference == "own" else f"shared, {reference} basis"
        share = f"{drifted / total:.1%}" if total else "-"
        table.add_row(f"{test} {threshold:g}", basis, str(drifted), str(total), share)
    dq.console.print(table)
    dq.console.print(dq.versions())


if __name__ == "__main__":
    main()
