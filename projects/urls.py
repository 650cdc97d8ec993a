from filmstudio.api import both_slashes
from projects import api

urlpatterns = [
    *both_slashes("api/projects", api.ProjectListCreateApi.as_view(), "project-list"),
    *both_slashes(
        "api/projects/<int:project_id>", api.ProjectDetailApi.as_view(), "project-detail"
    ),
    *both_slashes(
        "api/projects/<int:project_id>/characters",
        api.ProjectCharactersApi.as_view(),
        "project-characters",
    ),
    *both_slashes(
        "api/characters/<int:character_id>", api.CharacterDetailApi.as_view(), "character-detail"
    ),
    *both_slashes(
        "api/projects/<int:project_id>/objects", api.ProjectObjectsApi.as_view(), "project-objects"
    ),
    *both_slashes("api/objects/<int:object_id>", api.ObjectDetailApi.as_view(), "object-detail"),
    *both_slashes(
        "api/characters/<int:character_id>/approve",
        api.CharacterApproveApi.as_view(),
        "character-approve",
    ),
    *both_slashes(
        "api/characters/<int:character_id>/reject",
        api.CharacterRejectApi.as_view(),
        "character-reject",
    ),
    *both_slashes(
        "api/projects/<int:project_id>/export", api.ProjectExportApi.as_view(), "project-export"
    ),
    *both_slashes(
        "api/projects/<int:project_id>/music", api.MusicUploadApi.as_view(), "project-music"
    ),
    *both_slashes(
        "api/projects/<int:project_id>/subtitles.srt", api.SubtitlesApi.as_view(), "subtitles-srt"
    ),
    *both_slashes(
        "api/projects/<int:project_id>/subtitles.vtt",
        api.SubtitlesVttApi.as_view(),
        "subtitles-vtt",
    ),
    *both_slashes("api/scenes/<int:scene_id>", api.SceneDetailApi.as_view(), "scene-detail"),
    *both_slashes("api/frames/<int:frame_id>", api.FrameDetailApi.as_view(), "frame-detail"),
]
