"""What work will cost before it is done: units counted from the database, times the rate card.

Each job type's row in `jobtypes` names its estimate here: (project, target type, target id,
params) -> items. A request's quote adds what fires after it by itself up to the next checkpoint
(`request`); the project's quote is everything the pipeline would still make (`project_rest`).
Retries are not in any quote: a retry reserves again when it happens.

Text calls are counted in tokens: the prompt as it would be sent (a token is about four
characters), the answer from the size of what the schema asks for, with Gemini 2.5's thinking
on top. An image is the published 1290 output tokens plus its prompt and references; a clip is
the seconds the video service bills (fal: the clip lengths the model accepts)."""

import math
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

from generation import providers
from generation.costs import ZERO, remaining
from generation.jobtypes import job_type
from generation.models import GenerationJob
from generation.prompts import (
    approved_cast,
    cast_prompt,
    edit_prompt,
    frames_prompt,
    keyframe_prompt,
    portrait_prompt,
    project_objects,
    reference_prompt,
    scenes_prompt,
    with_instructions,
)
from generation.providers import billed_seconds, image_choice, text_choice, video_choice
from generation.rates import cost
from projects.cast import shot_cast
from projects.models import Character, Frame, Project, ProjectObject, Scene, Video
from projects.takes import refresh_plan, wanted_lines, with_line_inputs

Job = GenerationJob
Type = Job.Type
Target = Job.TargetType

# What an answer weighs, in output tokens per item the schema asks for (measured on Gemini 2.5
# Flash answers to our prompts: about 700-1,600 characters per scene, 400-700 per shot).
ANSWER_TOKENS = {"character": 180, "scene": 350, "frame": 140, "verdict": 60}
JUDGE_PROMPT_TOKENS = 110  # the consistency judge's question, before the images
THINKING_SHARE = 0.5  # Gemini 2.5 Flash thinks by default; thoughts bill as output tokens
IMAGE_OUTPUT_TOKENS = 1290  # per image up to 1024 px (Gemini image pricing)
REFERENCE_TOKENS = 258  # per reference image sent with a prompt
UNWRITTEN_PROMPT_CHARS = 900  # a keyframe prompt of a shot not written yet


@dataclass(frozen=True)
class Item:
    stage: str
    provider: str
    model: str
    count: float
    unit: str  # what `count` counts: input_tokens, output_tokens, image, video_second
    usd: Decimal

    def as_dict(self) -> dict:
        return {
            "stage": self.stage,
            "provider": self.provider,
            "model": self.model,
            "count": self.count,
            "unit": self.unit,
            "usd": float(self.usd),
        }


def priced(
    stage: str, provider: str, model: str, count: float, unit: str, parts: dict | None = None
) -> Item:
    """`count` of `unit` on the rate card (priced by `parts` when the card prices it otherwise:
    an image by its tokens)."""
    return Item(stage, provider, model, count, unit, cost(provider, model, parts or {unit: count}))


def tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def text_call(stage: str, prompt: str, *, answer_items: int, per_item: str) -> list[Item]:
    provider, model = text_choice()
    answer = ANSWER_TOKENS[per_item] * answer_items
    output = round(answer * (1 + THINKING_SHARE))
    prompt_tokens = tokens(prompt)
    return [
        priced(stage, provider, model, prompt_tokens, "input_tokens"),
        priced(stage, provider, model, output, "output_tokens"),
    ]


def images(stage: str, prompts: list[str], *, references: float = 0) -> list[Item]:
    if not prompts:
        return []
    provider, model = image_choice()
    prompt_tokens = round(sum(tokens(p) + references * REFERENCE_TOKENS for p in prompts))
    parts = {"input_tokens": prompt_tokens, "output_tokens": IMAGE_OUTPUT_TOKENS * len(prompts)}
    return [priced(stage, provider, model, len(prompts), "image", parts)]


def keyframes(prompts: list[str], *, references: float, in_shot: float) -> list[Item]:
    """Keyframes, and the judge's look at each (`generation.consistency`: a vision call to the
    text model, with the keyframe and the portraits; offline it is no provider call)."""
    items = images("keyframes", prompts, references=references)
    provider, model = text_choice()
    if provider == "local" or not prompts or not in_shot:
        return items
    count = len(prompts)
    sent = round(count * (JUDGE_PROMPT_TOKENS + (1 + in_shot) * REFERENCE_TOKENS))
    written = round(count * in_shot * ANSWER_TOKENS["verdict"] * (1 + THINKING_SHARE))
    return [
        *items,
        priced("consistency", provider, model, sent, "input_tokens"),
        priced("consistency", provider, model, written, "output_tokens"),
    ]


def clips(stage: str, durations: list[float]) -> list[Item]:
    if not durations:
        return []
    provider, model = video_choice()
    seconds = sum(billed_seconds(d) for d in durations)
    return [priced(stage, provider, model, seconds, "video_second")]


# A spoken line: about 150 words a minute, and Gemini's TTS bills 25 audio tokens a second.
WORDS_PER_SECOND = 2.5
AUDIO_TOKENS_PER_SECOND = 25
UNWRITTEN_LINE = "x" * 60  # a line of a shot not written yet


def speech(stage: str, lines: list[str]) -> list[Item]:
    if not lines:
        return []
    provider, model = providers.speech_choice()
    prompt_tokens = sum(tokens(line) for line in lines)
    seconds = sum(0.5 + len(line.split()) / WORDS_PER_SECOND for line in lines)
    audio = round(seconds * AUDIO_TOKENS_PER_SECOND)
    return [
        priced(stage, provider, model, prompt_tokens, "input_tokens"),
        priced(stage, provider, model, audio, "audio_tokens"),
    ]


def total(items: list[Item]) -> Decimal:
    return sum((i.usd for i in items), ZERO)


# --- one job of each type (the `estimate` column of the job-type table) ----------------------


def characters(project: Project, target_type: str, target_id: int, params: dict) -> list[Item]:
    count = int(params.get("count", 4))
    keep = approved_cast(project)
    prompt = cast_prompt(
        project, count=count, instructions=params.get("instructions", ""), keep=keep
    )
    portrait_prompts = [
        portrait_prompt(Character(name="x" * 12, role="x" * 12, appearance="x" * 200), project)
    ] * count
    return [
        *text_call("characters", prompt, answer_items=count, per_item="character"),
        *images("portraits", portrait_prompts),
    ]


def portrait(project: Project, target_type: str, target_id: int, params: dict) -> list[Item]:
    character = Character.objects.filter(pk=target_id).first()
    if character is None:
        return []
    return images("portraits", [portrait_prompt(character, project)])


def scenes(project: Project, target_type: str, target_id: int, params: dict) -> list[Item]:
    prompt = scenes_prompt(project, approved_cast(project), project_objects(project))
    return text_call("scenes", prompt, answer_items=project.num_scenes, per_item="scene")


def _scene_frames(project: Project, scene: Scene | None) -> list[Item]:
    cast = approved_cast(project) if scene is None else list(scene.characters.all())
    shots = project.frames_per_scene
    prompt = frames_prompt(scene, cast) if scene is not None else _unwritten_frames_prompt(project)
    # the scene's portraits (a shot may show fewer) and, after the first, an earlier shot
    references = sum(1 for c in cast if c.image) + (shots - 1) / shots
    return [
        *text_call("frames", prompt, answer_items=shots, per_item="frame"),
        *keyframes(
            ["x" * UNWRITTEN_PROMPT_CHARS] * shots,
            references=references,
            in_shot=sum(1 for c in cast if c.image),
        ),
    ]


def _unwritten_frames_prompt(project: Project) -> str:
    return scenes_prompt(project, approved_cast(project)) + "x" * 1200


def frames(project: Project, target_type: str, target_id: int, params: dict) -> list[Item]:
    if target_type == Target.SCENE:
        scene = Scene.objects.filter(pk=target_id).first()
        return _scene_frames(project, scene) if scene is not None else []
    scene_list = list(project.scenes.order_by("order"))
    return [item for s in scene_list for item in _scene_frames(project, s)]


def keyframe(project: Project, target_type: str, target_id: int, params: dict) -> list[Item]:
    frame = Frame.objects.select_related("scene").filter(pk=target_id).first()
    if frame is None:
        return []
    cast = shot_cast(frame)
    continuity = frame.order > 1  # an earlier shot of the scene comes as a reference too
    things = list(frame.scene.project_objects.exclude(image=""))  # after the portraits
    prompt = keyframe_prompt(frame, cast, continuity=continuity, objects=things)
    references = len(cast) + len(things) + continuity
    return keyframes([prompt], references=references, in_shot=len(cast))


def reference(project: Project, target_type: str, target_id: int, params: dict) -> list[Item]:
    obj = ProjectObject.objects.filter(pk=target_id).first()
    if obj is None:
        return []
    instructions = params.get("instructions", "")  # a redraw's, after the prompt
    return images("references", [with_instructions(reference_prompt(obj, project), instructions)])


def image_edit(project: Project, target_type: str, target_id: int, params: dict) -> list[Item]:
    """One image made from the current one (the only reference) and the instruction."""
    return images("edits", [edit_prompt(params.get("instruction", ""))], references=1)


def videos(project: Project, target_type: str, target_id: int, params: dict) -> list[Item]:
    shots = Frame.objects.filter(scene__project=project)
    if target_type == Target.FRAME:
        shots = shots.filter(pk=target_id)
    return clips("clips", list(shots.values_list("duration", flat=True)))


def lines(project: Project, target_type: str, target_id: int, params: dict) -> list[Item]:
    """The dialogue spoken: one frame's line again, or the project's (or a scene's) lines that
    have no take yet or whose take is stale (text, voice, speech provider or model changed),
    which are what such a job speaks."""
    shots = Frame.objects.filter(scene__project=project).exclude(dialogue="")
    if target_type == Target.FRAME:
        return speech("lines", list(shots.filter(pk=target_id).values_list("dialogue", flat=True)))
    if target_type == Target.SCENE:
        shots = shots.filter(scene_id=target_id)
    return speech("lines", [f.dialogue for f in wanted_lines(with_line_inputs(shots))])


# An agent run's planner (`director.runs.plan`), per round: what it answers (a few tool calls or
# a sentence) and what each later round carries of an earlier one (its calls and their results).
PLANNER_ANSWER_TOKENS = 150
PLANNER_ROUND_TOKENS = 600


def planner(prompt: str) -> list[Item]:
    """An agent run's planner acting on one situation: `prompt` (its instructions, tools and
    the situation) sent in each of its rounds, at most DIRECTOR_MAX_TOOL_ROUNDS and the final
    answer, each with the rounds before it; priced for the director's model. The offline
    planner is rules: nothing."""
    provider, model = providers.director_choice()
    if provider == "local":
        return []
    rounds = settings.DIRECTOR_MAX_TOOL_ROUNDS + 1
    sent = rounds * tokens(prompt) + PLANNER_ROUND_TOKENS * rounds * (rounds - 1) // 2
    written = round(rounds * PLANNER_ANSWER_TOKENS * (1 + THINKING_SHARE))
    return [
        priced("planner", provider, model, sent, "input_tokens"),
        priced("planner", provider, model, written, "output_tokens"),
    ]


def free(project: Project, target_type: str, target_id: int, params: dict) -> list[Item]:
    """Stitching, refresh containers: no provider call of their own."""
    return []


def job_items(job: Job) -> list[Item]:
    """What one job will spend by itself (what it reserves before its paid calls). Containers
    spend through their children."""
    if job.type in (Type.FRAMES, Type.VIDEOS) and job.target_type == Target.PROJECT:
        return []
    return for_type(job.project, job.type, job.target_type, job.target_id, job.params)


def for_type(
    project: Project, type: str, target_type: str, target_id: int, params: dict | None = None
) -> list[Item]:
    return job_type(type).estimate_items(project, target_type, target_id, params or {})


# --- what a request sets going, and what the rest of the pipeline costs ----------------------


def _storyboard_stop(project: Project) -> bool:
    return "storyboard" in (project.checkpoints or [])


def _expected_clips(project: Project) -> list[float]:
    return [float(project.clip_seconds)] * (project.num_scenes * project.frames_per_scene)


def _downstream_of_scenes(project: Project) -> list[Item]:
    """Scenes not written yet: their shot lists, keyframes and (without a storyboard stop)
    clips, from the project's shape."""
    cast = approved_cast(project)
    shots = project.frames_per_scene
    references = sum(1 for c in cast if c.image) + (shots - 1) / shots  # and continuity
    items = []
    for _ in range(project.num_scenes):
        items += text_call(
            "frames", _unwritten_frames_prompt(project), answer_items=shots, per_item="frame"
        )
    items += keyframes(
        ["x" * UNWRITTEN_PROMPT_CHARS] * (shots * project.num_scenes),
        references=references,
        in_shot=len(cast),
    )
    return items


def request(
    project: Project, type: str, target_type: str, target_id: int, params: dict | None = None
) -> list[Item]:
    """A person's request to start a job: the job, and what then runs by itself until the
    next checkpoint (the cast's approval, the storyboard's, or the film)."""
    items = for_type(project, type, target_type, target_id, params)
    to_clips = not _storyboard_stop(project)
    if type == Type.SCENES:
        items += _downstream_of_scenes(project)
        if to_clips:
            items += clips("clips", _expected_clips(project))
            items += speech("lines", [UNWRITTEN_LINE] * len(_expected_clips(project)))
    elif type == Type.FRAMES and to_clips:
        shots = project.frames_per_scene
        scene_count = 1 if target_type == Target.SCENE else project.scenes.count()
        items += clips("clips", [float(project.clip_seconds)] * (shots * scene_count))
        items += speech("lines", [UNWRITTEN_LINE] * (shots * scene_count))
    return _merged(items)


def refresh(project: Project, planned: list[dict] | None = None) -> list[Item]:
    """A refresh (`POST /api/projects/{id}/refresh`): the stale units and what follows them."""
    items: list[Item] = []
    for unit in refresh_plan(project) if planned is None else planned:
        kind, unit_id = unit["type"], unit["id"]
        if kind == "portrait":
            items += portrait(project, Target.CHARACTER, unit_id, {})
        elif kind == "reference":
            items += reference(project, Target.OBJECT, unit_id, {})
        elif kind == "keyframe":
            items += keyframe(project, Target.FRAME, unit_id, {})
        elif kind == "clip":
            items += videos(project, Target.FRAME, unit_id, {})
        elif kind == "line":
            items += lines(project, Target.FRAME, unit_id, {})
    return _merged(items)


def project_rest(project: Project) -> list[Item]:
    """Everything the pipeline would still make from the project's current state, to the film
    (checkpoints do not stop this quote)."""
    items: list[Item] = []
    cast = project.characters.exclude(status=Character.Status.REJECTED)
    if not cast.exists():
        items += characters(project, Target.PROJECT, project.pk, {})
    else:
        undrawn = cast.filter(image="")
        items += images("portraits", [portrait_prompt(c, project) for c in undrawn])
    scene_list = list(project.scenes.order_by("order"))
    if not scene_list:
        items += scenes(project, Target.PROJECT, project.pk, {})
        items += _downstream_of_scenes(project)
        items += clips("clips", _expected_clips(project))
        items += speech("lines", [UNWRITTEN_LINE] * len(_expected_clips(project)))
        return _merged(items)
    for scene in scene_list:
        if not scene.frames.exists():
            items += _scene_frames(project, scene)
    shots = Frame.objects.filter(scene__project=project).select_related("scene")
    undrawn_frames = [f for f in shots if not f.image]
    for frame in undrawn_frames:
        items += keyframe(project, Target.FRAME, frame.pk, {})
    clipless = shots.exclude(video__status=Video.Status.READY)
    durations = list(clipless.values_list("duration", flat=True))
    unwritten = sum(project.frames_per_scene for s in scene_list if not s.frames.exists())
    items += clips("clips", durations + [float(project.clip_seconds)] * unwritten)
    unspoken = shots.exclude(dialogue="").filter(line_take__isnull=True)
    spoken = list(unspoken.values_list("dialogue", flat=True))
    items += speech("lines", spoken + [UNWRITTEN_LINE] * unwritten)
    return _merged(items)


def _merged(items: list[Item]) -> list[Item]:
    """One line per stage, provider, model and unit."""
    lines: dict[tuple[str, str, str, str], Item] = {}
    for item in items:
        key = (item.stage, item.provider, item.model, item.unit)
        if key in lines:
            line = lines[key]
            lines[key] = Item(*key[:3], line.count + item.count, item.unit, line.usd + item.usd)
        else:
            lines[key] = item
    return list(lines.values())


def document(project: Project, items: list[Item]) -> dict:
    """The estimate as the API shows it."""
    left = remaining(project)
    return {
        "total_usd": float(total(items)),
        "items": [i.as_dict() for i in items],
        "spent_usd": float(project.spent_usd),
        "budget_usd": None if project.budget_usd is None else float(project.budget_usd),
        "remaining_usd": None if left is None else float(left),
    }
