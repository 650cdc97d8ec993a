"""`make bench` calls a target held or missed only on a machine that was quiet before it."""

import pytest

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
    assert judge(table, MAX_LOAD, MAX_LOAD)
    assert [row["holds"] for row in table] == [True, False, None]
    assert "✅ yes" in markdown_table(table) and "❌ no" in markdown_table(table)


def test_the_benches_own_load_afterwards_does_not_take_the_verdict():
    table = rows()
    assert judge(table, MAX_LOAD - 0.5, MAX_LOAD + 2.5)
    assert [row["holds"] for row in table] == [True, False, None]


@pytest.mark.parametrize(("before", "after"), [(MAX_LOAD + 0.1, 0.2), (MAX_LOAD + 4, 6.0)])
def test_a_machine_busy_before_gets_no_verdict_and_says_how_busy(before, after):
    table = rows()
    assert not judge(table, before, after)
    said = f"{NOT_JUDGED} (load {before:.1f} before, {after:.1f} after)"
    assert [row["holds"] for row in table] == [said, said, None]
    assert [row.get("holds_unjudged") for row in table] == [True, False, None]
    text = markdown_table(table)
    assert text.count(f"| {said} |") == 2
    assert "✅" not in text and "❌" not in text
