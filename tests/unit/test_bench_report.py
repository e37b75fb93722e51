"""The bench's verdicts (pipeshare_local.bench.report): a stated target missed fails the run; informational rows never
do; the README table is rendered from the JSON report."""

from __future__ import annotations

from typing import Any

from pipeshare_local.bench.report import build_table, readme_table


def _results(ratio: float, rss: float, *, overhead: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "cold_init": {
            "AcceptInvitationsFunction": {"ratio": 1.1, "handler_median_ms": 110.0, "baseline_median_ms": 100.0},
            "TrackExecutionsFunction": {"ratio": ratio, "handler_median_ms": ratio * 100, "baseline_median_ms": 100.0},
        },
        "peak_rss": {
            "AcceptInvitationsFunction": {"peak_rss_mb": 80.0, "error": None, "overhead": overhead},
            "TrackExecutionsFunction": {"peak_rss_mb": rss, "error": None},
        },
    }


OVERHEAD = {"ratio": 3.0, "handler_median_ms": 3.0, "bare_median_ms": 1.0, "warm_calls": ["a:B"], "runs": 30}


def test_every_target_met_leaves_nothing_missed() -> None:
    table = build_table(_results(1.5, 90.0, overhead=OVERHEAD), {}, 7)

    assert table.missed == []
    assert {r["ok"] for r in table.rows} == {"yes", "info"}


def test_a_cold_init_ratio_over_the_target_is_missed() -> None:
    table = build_table(_results(1.51, 80.0), {}, 7)

    assert [(r["handler"], r["metric"].split(",")[0]) for r in table.missed] == [
        ("TrackExecutionsFunction", "cold init ratio")
    ]


def test_a_peak_rss_over_the_target_is_missed() -> None:
    table = build_table(_results(1.2, 90.1), {}, 7)

    assert [(r["handler"], r["value"]) for r in table.missed] == [("TrackExecutionsFunction", "90.1 MB")]


def test_the_warm_overhead_is_informational_however_high() -> None:
    table = build_table(_results(1.2, 80.0, overhead={**OVERHEAD, "ratio": 50.0}), {}, 7)

    [row] = [r for r in table.rows if r["metric"].startswith("warm per-event overhead")]
    assert row["ok"] == "info"
    assert row["value"].startswith("50.00")
    assert table.missed == []


def test_a_measurement_not_taken_is_missed() -> None:
    table = build_table(_results(1.2, 80.0), {"latency": "no alert readable"}, 7)

    assert [r["ok"] for r in table.missed] == ["ERROR"]


def test_the_readme_table_folds_each_metric_over_the_functions_and_names_who_missed() -> None:
    report = {"table": build_table(_results(1.6, 80.0, overhead=OVERHEAD), {}, 7).rows}

    lines = readme_table(report).splitlines()

    assert lines[0].split("|")[1:-1] == [" metric ", " handler ", " value ", " target "]
    [cold] = [line for line in lines if line.startswith("| cold init ratio")]
    assert "AcceptInvitations / TrackExecutions" in cold
    assert "1.10 / 1.60" in cold
    assert "**not met by TrackExecutions**" in cold
    [rss] = [line for line in lines if line.startswith("| peak RSS")]
    assert "80.0 / 80.0 MB" in rss
    assert "not met" not in rss
    [overhead] = [line for line in lines if line.startswith("| warm per-event overhead")]
    assert "(informational)" in overhead


def test_a_row_of_one_function_keeps_its_value_and_unit_in_the_readme_table() -> None:
    results = _results(1.2, 80.0)
    results["flood"] = {
        "timeout_seconds": 120.0,
        "rss_ratio_large_to_small": 1.22,
        **{
            str(size): {"wall_seconds": 50.0, "calls_per_invitation": 1.03, "peak_rss_mb": 93.2} for size in (100, 1000)
        },
    }
    report = {"table": build_table(results, {}, 7).rows}

    lines = readme_table(report).splitlines()

    [flood] = [line for line in lines if "sweep over 1,000" in line]
    assert (
        "| AcceptInvitationsFunction | 50.0 s, 1.03 calls per invitation, peak RSS 93.2 MB | < 120 s (Timeout) |"
        in flood
    )
    [ratio] = [line for line in lines if "peak RSS 1,000 / 100" in line]
    assert "| 1.22 | - (informational) |" in ratio
