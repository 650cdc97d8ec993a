"""Prompt builders. Context is inherited from the database: project -> approved cast -> scene
-> frame, never taken from client-supplied state."""

from projects.models import Character, Frame, Project, ProjectObject, Scene


def project_brief(project: Project) -> str:
    lines = [f"Film title: {project.title}"]
    for label, value in (
        ("Logline", project.logline),
        ("Synopsis", project.synopsis),
        ("Genre", project.genre),
        ("Visual style", project.style),
    ):
        if value:
            lines.append(f"{label}: {value}")
    lines.append(f"Aspect ratio: {project.aspect_ratio}")
    return "\n".join(lines)


def cast_sheet(characters: list[Character]) -> str:
    return "\n".join(
        f"- {c.name} ({c.role}): {c.description} Looks: {c.appearance} Personality: {c.personality}"
        for c in characters
    )


def approved_cast(project: Project) -> list[Character]:
    return list(project.characters.filter(status=Character.Status.APPROVED).order_by("id"))


def cast_prompt(project: Project, *, count: int, instructions: str, keep: list[Character]) -> str:
    parts = [
        project_brief(project),
        f"Create {count} new characters for this film.",
    ]
    if keep:
        parts.append("Already in the cast (do not repeat them):\n" + cast_sheet(keep))
    if instructions:
        parts.append(f"Producer's instructions: {instructions}")
    return "\n\n".join(parts)


def portrait_prompt(character: Character, project: Project) -> str:
    style = project.style or "cinematic, natural light"
    return (
        f"Character portrait for the film '{project.title}'. {character.name}, "
        f"{character.role}. {character.appearance} Style: {style}. "
        "Head and shoulders, neutral background, consistent features."
    )


def reference_prompt(obj: ProjectObject, project: Project) -> str:
    style = project.style or "cinematic, natural light"
    return (
        f"Reference image for the film '{project.title}'. {obj.name}. {obj.description} "
        f"Style: {style}. The whole of it, clearly lit, plain background, no people."
    )


def project_objects(project: Project) -> list[ProjectObject]:
    return list(project.project_objects.order_by("id"))


def object_sheet(objects: list[ProjectObject]) -> str:
    """One line each, "* " (the cast's lines are "- "): a description's line breaks would
    read as more items."""
    lines = []
    for o in objects:
        description = " ".join(o.description.split())
        lines.append(f"* {o.name}: {description}" if description else f"* {o.name}")
    return "\n".join(lines)


def scenes_prompt(
    project: Project, cast: list[Character], objects: list[ProjectObject] | tuple = ()
) -> str:
    parts = [
        project_brief(project),
        "Cast (use only these characters, by exact name):\n" + cast_sheet(cast),
    ]
    if objects:
        parts.append(
            "Objects and places that must look the same in every shot (list those each scene "
            "shows in its objects, by exact name; none when it shows none):\n"
            + object_sheet(objects)
        )
    parts.append(
        f"Write the film as exactly {project.num_scenes} scenes in story order. "
        f"Each scene will be shown in {project.frames_per_scene} shots of "
        f"{project.clip_seconds} seconds."
    )
    return "\n\n".join(parts)


def scene_cast_prompt(draft, cast: list[Character]) -> str:
    """The corrective question for a scene that named none of the cast (`steps.scenes`)."""
    return "\n\n".join(
        [
            "Cast (answer with these exact names only):\n" + cast_sheet(cast),
            f"Scene: {draft.title}\nPlot: {draft.detailed_plot or draft.concise_plot}\n"
            f"Dialogue:\n{draft.dialogue}",
            "The scene above named none of its characters. Which cast members are present in "
            "it? Give their exact names as listed.",
        ]
    )


def frames_prompt(scene: Scene, cast: list[Character]) -> str:
    project = scene.project
    return "\n\n".join(
        [
            project_brief(project),
            "Characters in this scene:\n" + cast_sheet(cast),
            f"Scene {scene.order}: {scene.title}\nLocation: {scene.location}\n"
            f"Mood: {scene.mood}\nPlot: {scene.detailed_plot or scene.concise_plot}\n"
            f"Dialogue:\n{scene.dialogue}",
            f"Break this scene into exactly {project.frames_per_scene} shots of "
            f"{project.clip_seconds} seconds each, in order. Give each shot at most one line of "
            "dialogue, short enough to say in the shot, and name its speaker (a character of "
            "this scene, exactly as written above; empty for the narrator).",
        ]
    )


def keyframe_prompt(
    frame: Frame,
    cast: list[Character],
    *,
    continuity: bool = False,
    objects: list[ProjectObject] | tuple = (),
) -> str:
    """The keyframe's prompt; `cast` are the characters in the shot, whose portraits come as
    the first reference images, in this order; the scene's `objects` (props, places) follow
    them; with `continuity`, the last reference image is an earlier shot of the same scene."""
    scene = frame.scene
    project = scene.project
    style = project.style or "cinematic"
    if cast:
        portraits = "; ".join(f"reference image {i} is {c.name}" for i, c in enumerate(cast, 1))
        people = f"Characters in the shot: {portraits}: keep their faces, hair and clothes."
    else:
        people = "No character is in this shot."
    if objects:
        things = "; ".join(
            f"reference image {i} is {o.name}" for i, o in enumerate(objects, len(cast) + 1)
        )
        people += f" Objects and places in the scene: {things}: keep their look."
    earlier = (
        " The last reference image is an earlier shot of this scene: keep its setting, light "
        "and wardrobe, not its framing."
        if continuity
        else ""
    )
    return (
        f"Keyframe for shot {frame.order} of scene '{scene.title}' in '{project.title}'. "
        f"{frame.prompt} Camera: {frame.camera}. Location: {scene.location}. "
        f"Mood: {scene.mood}. {people}{earlier} "
        f"Style: {style}. Aspect ratio {project.aspect_ratio}."
    )


def with_instructions(prompt: str, instructions: str) -> str:
    """The producer's free-text instructions for one regeneration, after the prompt."""
    return f"{prompt}\n\nProducer's instructions: {instructions}" if instructions else prompt


def video_prompt(frame: Frame, instructions: str = "") -> str:
    scene = frame.scene
    line = f" Dialogue: {frame.dialogue}" if frame.dialogue else ""
    prompt = f"{frame.prompt} Camera: {frame.camera}. Mood: {scene.mood}.{line}"
    return with_instructions(prompt, instructions)


EDIT_PREFIX = "Edit this image: "


def edit_prompt(instruction: str) -> str:
    """An image edit (`steps.edit`): the current image goes in as the only reference."""
    return f"{EDIT_PREFIX}{instruction}; keep everything else."
