"""The Gemini director: `generate_content_stream` with native function declarations.

Tool calls come as `functionCall` parts (nothing is parsed out of text); the SDK's automatic
function calling is off because our runner executes them (as the calling user) and feeds the
results back as `functionResponse` parts. Calls go through GeminiModel: key rotation, 429
cooling, the per-model rate limit and our retry policy.
"""

from collections.abc import Callable

from django.conf import settings
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from director.agents.base import Call, Step, TurnInput
from director.models import DirectorMessage
from director.tools import Tool, ToolOutcome
from filmstudio.logging import redact
from generation import usage
from generation.providers.base import PermanentProviderError
from generation.providers.gemini import (
    TRANSPORT_ERRORS,
    GeminiModel,
    raise_if_blocked,
    response_usage,
)

Role = DirectorMessage.Role
# What the model is told a UI tool returned: the app carries it out, nothing comes back.
UI_DONE = {"output": "Done: the app carried it out for the person."}


def function_response(name: str, result: dict | None) -> types.Part:
    if result is None:
        payload = UI_DONE
    elif set(result) == {"error"}:
        payload = result
    else:
        payload = {"output": result}
    return types.Part.from_function_response(name=name, response=payload)


def _text(text: str) -> types.Part:
    return types.Part.from_text(text=text)


def _call(name: str, args: dict) -> types.Part:
    return types.Part(function_call=types.FunctionCall(name=name, args=args))


def history_contents(messages: list[DirectorMessage]) -> list[types.Content]:
    """Earlier turns from the database, in Gemini's form."""
    contents = []
    for message in messages:
        calls = message.function_calls or []
        if message.role == Role.USER:
            contents.append(types.Content(role="user", parts=[_text(message.text)]))
        elif message.role == Role.ASSISTANT:
            parts = [_text(message.text)] if message.text else []
            parts += [_call(c["name"], c.get("args") or {}) for c in calls]
            if parts:
                contents.append(types.Content(role="model", parts=parts))
        elif calls:
            parts = [function_response(c["name"], c.get("result")) for c in calls]
            contents.append(types.Content(role="user", parts=parts))
    return contents


def turn_contents(turn: TurnInput) -> list[types.Content]:
    contents = [
        *history_contents(turn.history),
        types.Content(role="user", parts=[_text(turn.message)]),
    ]
    for round_ in turn.rounds:
        contents.append(round_.step.raw or _model_content(round_.step))
        contents.append(types.Content(role="user", parts=_responses(round_.outcomes)))
    return contents


def _model_content(step: Step) -> types.Content:
    parts = [_text(step.text)] if step.text else []
    parts += [_call(c.name, c.args) for c in step.calls]
    return types.Content(role="model", parts=parts)


def _responses(outcomes: list[ToolOutcome]) -> list[types.Part]:
    return [function_response(o.name, o.result) for o in outcomes]


def declaration(tool: Tool) -> types.FunctionDeclaration:
    if not tool.parameters.get("properties"):
        return types.FunctionDeclaration(name=tool.name, description=tool.description)
    return types.FunctionDeclaration(
        name=tool.name, description=tool.description, parameters_json_schema=tool.parameters
    )


def turn_config(turn: TurnInput) -> types.GenerateContentConfig:
    # At the cap the tools stay declared (the history holds calls) but may not be called.
    modes = types.FunctionCallingConfigMode
    mode = modes.NONE if turn.final else modes.AUTO
    return types.GenerateContentConfig(
        system_instruction=turn.system,
        tools=[types.Tool(function_declarations=[declaration(t) for t in turn.tools])],
        tool_config=types.ToolConfig(
            function_calling_config=types.FunctionCallingConfig(mode=mode)
        ),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        max_output_tokens=settings.DIRECTOR_MAX_OUTPUT_TOKENS,
    )


class _StepCollector:
    """The parts of one streamed response: text goes out as it comes; everything is kept to be
    sent back verbatim (function calls carry thought signatures the API wants returned)."""

    def __init__(self, on_delta: Callable[[str], None]):
        self.on_delta = on_delta
        self.parts: list[types.Part] = []
        self.texts: list[str] = []
        self.calls: list[Call] = []

    def add(self, part: types.Part) -> None:
        if part.function_call is not None:
            call = part.function_call
            self.calls.append(Call(call.name or "", dict(call.args or {})))
            self.parts.append(part)
        elif part.text and not part.thought:
            self.on_delta(part.text)
            self.texts.append(part.text)
            self._add_text(part)
        elif part.thought_signature:
            self.parts.append(part)

    def _add_text(self, part: types.Part) -> None:
        last = self.parts[-1] if self.parts else None
        mergeable = last is not None and last.text and not last.thought_signature
        if mergeable and not part.thought_signature:
            self.parts[-1] = _text(last.text + part.text)
        else:
            self.parts.append(part)

    def step(self) -> Step:
        raw = types.Content(role="model", parts=self.parts)
        return Step(text="".join(self.texts), calls=self.calls, raw=raw)


class GeminiDirector:
    name = "gemini"

    def __init__(self) -> None:
        self.gemini = GeminiModel(settings.GEMINI_DIRECTOR_MODEL)

    def step(self, turn: TurnInput, on_delta: Callable[[str], None]) -> Step:
        model = self.gemini.model
        contents, config = turn_contents(turn), turn_config(turn)

        def request(client: genai.Client) -> Step:
            collector = _StepCollector(on_delta)
            last: types.GenerateContentResponse | None = None  # the usage comes with the last
            try:
                stream = client.models.generate_content_stream(
                    model=model, contents=contents, config=config
                )
                for chunk in stream:
                    if chunk.usage_metadata is not None:
                        last = chunk
                    raise_if_blocked(model, chunk)
                    candidate = (chunk.candidates or [None])[0]
                    content = candidate.content if candidate else None
                    for part in (content.parts if content else None) or []:
                        collector.add(part)
            except (genai_errors.APIError, *TRANSPORT_ERRORS) as error:
                # Text already streamed cannot be taken back: a retry would say it twice.
                if collector.texts:
                    raise PermanentProviderError(
                        redact(f"gemini {model}: the answer broke off: {error}")
                    ) from error
                raise
            finally:
                if last is not None:  # billed, whether or not the answer was usable
                    usage.report(response_usage(model, last))
            return collector.step()

        return self.gemini.call(request)
