from cims.bench import SECTION, replace_section

OURS = f"{SECTION}\n\nNew figures.\n"


def test_the_section_is_added_to_a_new_report():
    assert replace_section("# Benchmarks\n", OURS) == f"# Benchmarks\n\n{OURS}"


def test_only_the_section_is_replaced_and_the_others_are_kept():
    document = (
        "# Benchmarks\n\n## Imports\n\nImport figures.\n\n"
        f"{SECTION}\n\nOld figures.\n\n### Detail\n\nOld detail.\n\n## Reports\n\nReport figures.\n"
    )
    assert replace_section(document, OURS) == (
        "# Benchmarks\n\n## Imports\n\nImport figures.\n\n"
        f"{SECTION}\n\nNew figures.\n\n## Reports\n\nReport figures.\n"
    )


def _reports_results(*, median_ms, pivot_seconds):
    return {
        "dashboard": {"manager": {"customers": 641_550, "median_ms": median_ms, "max_ms": 90.0}},
        "pivots": {
            "customers": 1_000_000,
            "all customers: province × channel, customers": pivot_seconds,
            "all customers: province × channel, revenue": 0.8,
        },
        "metrics": {
            "customers": 1_000_000,
            "orders": 5_000_000,
            "rows_changed_first": 0,
            "first_seconds": 2.5,
            "first_cpu_seconds": 2.4,
            "unchanged_seconds": 2.3,
            "unchanged_cpu_seconds": 2.2,
            "new_orders": 10_000,
            "rows_changed_after_orders": 9_000,
            "after_orders_seconds": 3.2,
            "after_orders_cpu_seconds": 3.1,
        },
        "exports": {
            "xlsx": {
                "rows": 100_000,
                "columns": 20,
                "seconds": 3.2,
                "cpu_seconds": 2.7,
                "peak_mb": 136,
            },
            "pdf": {
                "rows": 1_000,
                "columns": 13,
                "seconds": 6.5,
                "cpu_seconds": 6.4,
                "peak_mb": 361,
            },
        },  # fmt: skip
        "dispatch": {"schedules": 1000, "deliveries": 3000, "dispatch_ms": 920},
    }


def _reports_section(**figures):
    from cims.bench import render_reports_section

    data = {"name": "cims_bench", "customers": 1_000_000, "orders": 5_000_000}
    machine = {"date": "2026-11-25 20:00 CST", "load_before": (0.1, 0.2, 0.3)}
    machine["load_after"] = (1.0, 0.5, 0.4)
    return render_reports_section(data, machine, _reports_results(**figures))


def test_reports_section_judges_each_figure_against_its_goal():
    section = _reports_section(median_ms=20.0, pivot_seconds=0.3)
    rows = {line.split("|")[1].strip(): line for line in section.splitlines() if "|" in line}
    assert rows["`manager`"].endswith("| pass |")
    assert rows["all customers: province × channel, customers"].endswith("| pass |")
    # Over orders the goal is 1 s: 0.8 s passes there.
    assert rows["all customers: province × channel, revenue"].endswith("| pass |")
    assert rows["xlsx"].endswith("| pass |")
    assert rows["pdf"].endswith("| **fail** |")  # 6.5 s against 6 s


def test_reports_section_fails_a_slow_dashboard_and_pivot():
    section = _reports_section(median_ms=250.0, pivot_seconds=0.6)
    rows = {line.split("|")[1].strip(): line for line in section.splitlines() if "|" in line}
    assert rows["`manager`"].endswith("| **fail** |")
    assert rows["all customers: province × channel, customers"].endswith("| **fail** |")
