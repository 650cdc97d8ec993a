"""`make bench` calls a target held or missed only on a machine that was quiet before it."""

from bench.run import MAX_LOAD, NOT_JUDGED, judge, markdown_table


def rows() -> list[dict]:
    base = {"name": "x", "measured": "1 s", "baseline": "1 s", "ratio": 1.0, "target": "≤ 1.2"}
    return [
        {**base, "id": "5", "holds": True},
        {**base, "id": "5d", "holds": False},
        {**base, "id": "5a", "target": "", "holds": None},
    ]


def test_a_quiet_machine_gets_its_verdicts():
    table = rows()
    assert judge(table, MAX_LOAD)
    assert [row["holds"] for row in table] == [True, False, None]
    assert "✅ yes" in markdown_table(table) and "❌ no" in markdown_table(table)


def test_a_busy_machine_gets_no_verdict_and_keeps_what_it_would_have_been():
    table = rows()
    assert not judge(table, MAX_LOAD + 0.1)
    assert [row["holds"] for row in table] == [NOT_JUDGED, NOT_JUDGED, None]
    assert [row.get("holds_unjudged") for row in table] == [True, False, None]
    text = markdown_table(table)
    assert text.count("| not judged |") == 2
    assert "✅" not in text and "❌" not in text
