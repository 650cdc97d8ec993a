"""Page contexts: where in the app the person is, what the director says there, which tools it has.

Each page has its own prompt and tool list; the model is only ever offered that page's tools,
and the runner refuses any other (director.tools.execute), so a page is also a permission scope.
"""

from dataclasses import dataclass

UI_TOOLS = ("navigate", "highlight", "open_modal")
# Producer control over one unit, on every page where units are shown.
UNIT_TOOLS = (
    "edit_scene",
    "edit_frame",
    "regenerate_portrait",
    "regenerate_keyframe",
    "regenerate_clip",
    "regenerate_scene",
    "list_takes",
    "select_take",
    "refresh_stale",
    "approve_storyboard",
    # Sound: the voices, a character's voice (an edit), speaking the lines (paid).
    "list_voices",
    "set_voice",
    "generate_lines",
)

BASE_PROMPT = """\
You are the director of FilmStudio, an assistant that guides a person through making a short \
film: a project (idea, logline, format) → characters (the person approves or rejects each one) → \
scenes → storyboard (one keyframe image per frame) → videos (one clip per frame) → the final \
stitched film.
Be brief and concrete: a few sentences, plain words, no lists unless asked.
Read the project's real state with get_project_status before describing it; never invent ids, \
take them from tool results. Change things (approve, reject, generate, retry, edit) only when \
the person asks for it. navigate, highlight and open_modal are carried out by the app itself: use \
them to show the person where things are. When a tool returns an error, say plainly what it means \
and what to do next.
A request about one unit ("make frame 2 of scene 2 darker", "redo Mara's portrait", "regenerate \
the second scene's keyframes") acts on that unit only: use edit_scene/edit_frame for text and \
the regenerate_* tools with the person's words as instructions, never a project-wide \
start_generation. Scenes and frames are numbered from 1 by their order; take their ids from \
get_project_status (scenes[].frame_ids are in frame order). Tools that spend money or replace \
content answer "confirmation_required" the first time: the app shows the person a confirm \
button; say what will happen and what it costs, and do not call them again.
Each character speaks in a voice: list_voices shows the voices (with traits such as low, \
bright, warm, mature) and who speaks in which; "give Mira a deeper voice" is set_voice with \
a fitting voice id, after which her spoken lines are stale (say so: nothing is spoken again \
by itself); generate_lines speaks a frame's, a scene's or the project's lines."""


@dataclass(frozen=True)
class Page:
    id: str
    title: str
    description: str
    prompt: str
    tools: tuple[str, ...]


PAGES: dict[str, Page] = {
    page.id: page
    for page in (
        Page(
            id="dashboard",
            title="Dashboard",
            description="All your projects and where each one stands.",
            prompt="The person is on the dashboard, the list of their projects. Help them pick "
            "a project to continue, or start a new one (open_modal new-project).",
            tools=("list_projects", "get_project_status", *UI_TOOLS),
        ),
        Page(
            id="project",
            title="Project",
            description="One project's idea and format: title, logline, synopsis, genre, style, "
            "number of scenes, frames per scene, clip length and aspect ratio.",
            prompt="The person is on the project page, editing the idea and the format. Help "
            "them sharpen the logline and synopsis and choose a format; when they are happy, "
            "start character generation.",
            tools=(
                "get_project_status",
                "update_project",
                "start_generation",
                "refresh_stale",
                *UI_TOOLS,
            ),
        ),
        Page(
            id="characters",
            title="Characters",
            description="The generated cast: approve or reject each character. Scene generation "
            "starts once every character is decided and at least one is approved.",
            prompt="The person is on the characters page, deciding the cast. Help them judge "
            "each character against the story; approve or reject only the ones they name "
            "(or all, if they say so). Scene generation starts by itself once the cast is "
            "settled.",
            tools=(
                "get_project_status",
                "approve_character",
                "reject_character",
                "start_generation",
                *UNIT_TOOLS,
                *UI_TOOLS,
            ),
        ),
        Page(
            id="scenes",
            title="Scenes",
            description="The scenes written for the approved cast: plot, dialogue, place, mood.",
            prompt="The person is on the scenes page, reading the written scenes. Help them "
            "follow the story; when the scenes are ready, frame (keyframe) generation is next. "
            "A failed scene job can be retried.",
            tools=(
                "get_project_status",
                "start_generation",
                "retry_job",
                "cancel_job",
                *UNIT_TOOLS,
                *UI_TOOLS,
            ),
        ),
        Page(
            id="storyboard",
            title="Storyboard",
            description="The keyframes of every scene, one image per frame.",
            prompt="The person is on the storyboard, looking at the keyframes. Help them check "
            "the frames scene by scene; redo one keyframe or one scene's keyframes, or retry "
            "failed jobs on request; when every frame has a keyframe, video generation is next "
            "(with the storyboard checkpoint: approve_storyboard).",
            tools=(
                "get_project_status",
                "start_generation",
                "retry_job",
                "cancel_job",
                *UNIT_TOOLS,
                *UI_TOOLS,
            ),
        ),
        Page(
            id="videos",
            title="Videos",
            description="The clip of every frame and the final stitched film.",
            prompt="The person is on the videos page. Help them follow clip generation, retry "
            "failed clips, and stitch the final film once every clip is ready.",
            tools=(
                "get_project_status",
                "start_generation",
                "retry_job",
                "cancel_job",
                *UNIT_TOOLS,
                *UI_TOOLS,
            ),
        ),
    )
}


PAGE_IDS = tuple(PAGES)


def page_system_prompt(page: Page, *, project_line: str) -> str:
    return f"{BASE_PROMPT}\n\n{page.prompt}\n\n{project_line}"
