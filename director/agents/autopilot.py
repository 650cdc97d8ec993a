"""Planners of agent runs (`director.runs`): what the run does when the project's state leaves
a choice to make.

The interface is the director's own (`director.agents.base.Director`): `step(turn, on_delta)
-> Step`, text and tool calls. The runner (`director.runs.plan`) hands the planner a
`TurnInput` whose `message` is the situation, starting with one of

- `SET_UP` + the goal: turn the goal into the project (update_project) and start character
  generation (start_generation kind=characters);
- `REVISE` + the checkpoint's kind and the person's notes: act on the notes with the unit
  tools (regenerate_portrait, edit_scene, regenerate_keyframe, ...), approving nothing;

and executes each call through `director.tools.execute` as the run's user, on the agent page
(`director.runs.AGENT_PAGE`), feeding the results back in `turn.rounds` (a refusal is a
result `{"error": ...}`; Gemini hears it as a function response) until the planner answers
without calls. Everything else (checkpoints, approvals, waiting) is the runner's, not the
planner's.

- With Gemini keys, the planner is `GeminiDirector` itself: native function calls declared
  from the tools' JSON schemas (director/tools.py).
- Offline, `LocalPlanner`: rule-based and deterministic. Set-up reads the goal (a number of
  characters, scenes or shots per scene; a project id named in it is looked up like a model
  would, and the owner-scoped selectors refuse another user's); notes go to the rule-based
  director (`director.agents.local.LocalDirector`), which already acts on requests about one
  unit ("redo Mara's portrait: older").
"""

import re
import time
from collections.abc import Callable
from dataclasses import replace

from django.conf import settings

from director.agents.base import Call, Director, Step, TurnInput, configured_director
from director.agents.local import NUMBER_WORDS, LocalDirector

SET_UP = "Set up the film. Goal: "
REVISE = "Revise at the checkpoint "

_COUNT = r"(\d+|" + "|".join(NUMBER_WORDS) + r")"
_GOAL_FIELDS = {
    "count": re.compile(_COUNT + r"\s+(?:main\s+)?characters?\b", re.I),
    "num_scenes": re.compile(_COUNT + r"\s+scenes?\b", re.I),
    "frames_per_scene": re.compile(_COUNT + r"\s+(?:shots?|frames?)\s+(?:per|a|each)\b", re.I),
}
_PROJECT_ID = re.compile(r"\bproject\s+(?:#|no\.?\s*|number\s+)?(\d+)\b", re.I)


def _number(text: str) -> int:
    return NUMBER_WORDS.get(text.lower()) or int(text)


def goal_numbers(goal: str) -> dict[str, int]:
    """Numbers the goal asks for: characters (count), scenes, shots per scene."""
    found = {}
    for name, pattern in _GOAL_FIELDS.items():
        match = pattern.search(goal)
        if match:
            found[name] = _number(match.group(1))
    return found


def named_projects(goal: str) -> list[int]:
    return [int(m) for m in _PROJECT_ID.findall(goal)]


def _results(turn: TurnInput, name: str) -> list[dict]:
    return [o.result or {} for r in turn.rounds for o in r.outcomes if o.name == name]


class LocalPlanner:
    name = "local"

    def __init__(self, *, delay: float = 0.0):
        self.delay = delay  # per step that calls tools, so a demo's log reads as it goes
        self.director = LocalDirector()

    def step(self, turn: TurnInput, on_delta: Callable[[str], None]) -> Step:
        if turn.message.startswith(REVISE):
            _, _, notes = turn.message.partition(": ")
            step = self.director.step(replace(turn, message=notes), on_delta)
        else:
            step = self._set_up(turn)
            on_delta(step.text)
        if step.calls and self.delay:
            time.sleep(self.delay)
        return step

    def _set_up(self, turn: TurnInput) -> Step:
        goal = turn.message.removeprefix(SET_UP)
        elsewhere = [pid for pid in named_projects(goal) if pid != turn.project_id]
        if not turn.rounds:
            calls = [Call("get_project_status", {"project_id": pid}) for pid in elsewhere]
            return Step("Reading the project.", [*calls, Call("get_project_status", {})])
        if len(turn.rounds) == 1:
            refused = [r["error"] for r in _results(turn, "get_project_status") if "error" in r]
            text = "Setting up the film from the goal."
            if refused:
                text = (
                    f"Project(s) {elsewhere} named in the goal: {refused[0]} I work on this "
                    "run's project only. " + text
                )
            numbers = goal_numbers(goal)
            fields: dict[str, object] = {k: v for k, v in numbers.items() if k != "count"}
            status = next((r for r in _results(turn, "get_project_status") if "project" in r), {})
            if not (status.get("project") or {}).get("logline"):
                fields["logline"] = goal[:2000]
            calls = [Call("update_project", fields)] if fields else []
            count = numbers.get("count")
            characters: dict[str, object] = {"kind": "characters"}
            if count:
                characters["count"] = count
            return Step(text, [*calls, Call("start_generation", characters)])
        started = [r for r in _results(turn, "start_generation") if "job" in r]
        if started:
            return Step(f"Character generation started (job #{started[0]['job']['id']}).")
        errors = [r["error"] for r in _results(turn, "start_generation") if "error" in r]
        return Step(f"Character generation did not start: {'; '.join(errors) or 'no answer'}")


def planner_for_settings() -> Director:
    """Gemini when it has keys (DIRECTOR_PROVIDER=auto), else the offline rules."""
    return configured_director(lambda: LocalPlanner(delay=settings.AGENT_LOCAL_DELAY), what="plan")
