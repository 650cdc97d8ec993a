from filmstudio.api import both_slashes
from generation import api, views

urlpatterns = [
    *both_slashes(
        "api/jobs/character-generation", api.CharacterGenerationApi.as_view(), "job-characters"
    ),
    *both_slashes("api/jobs/scene-generation", api.SceneGenerationApi.as_view(), "job-scenes"),
    *both_slashes("api/jobs/frame-generation", api.FrameGenerationApi.as_view(), "job-frames"),
    *both_slashes("api/jobs/video-generation", api.VideoGenerationApi.as_view(), "job-videos"),
    *both_slashes("api/jobs/video-stitching", api.StitchApi.as_view(), "job-stitch"),
    *both_slashes("api/jobs/export", api.ExportApi.as_view(), "job-export"),
    *both_slashes(
        "api/projects/<int:project_id>/storyboard/approve",
        api.StoryboardApproveApi.as_view(),
        "storyboard-approve",
    ),
    *both_slashes(
        "api/jobs/portrait-generation",
        api.PortraitGenerationApi.as_view(),
        "job-portrait",
    ),
    *both_slashes(
        "api/jobs/keyframe-generation",
        api.KeyframeGenerationApi.as_view(),
        "job-keyframe",
    ),
    *both_slashes("api/jobs/image-edit", api.ImageEditApi.as_view(), "job-image-edit"),
    *both_slashes(
        "api/jobs/reference-generation", api.ReferenceGenerationApi.as_view(), "job-reference"
    ),
    *both_slashes(
        "api/characters/<int:character_id>/takes",
        api.CharacterTakesApi.as_view(),
        "character-takes",
    ),
    *both_slashes("api/frames/<int:frame_id>/takes", api.FrameTakesApi.as_view(), "frame-takes"),
    *both_slashes(
        "api/objects/<int:object_id>/takes", api.ObjectTakesApi.as_view(), "object-takes"
    ),
    *both_slashes(
        "api/projects/<int:project_id>/takes",
        api.ProjectTakesApi.as_view(),
        "project-takes",
    ),
    *both_slashes("api/takes/<int:take_id>/select", api.TakeSelectApi.as_view(), "take-select"),
    *both_slashes("api/projects/<int:project_id>/stale", api.ProjectStaleApi.as_view(), "stale"),
    *both_slashes(
        "api/projects/<int:project_id>/refresh",
        api.ProjectRefreshApi.as_view(),
        "refresh",
    ),
    *both_slashes("api/rates", api.RatesApi.as_view(), "rates"),
    *both_slashes(
        "api/projects/<int:project_id>/estimate", api.ProjectEstimateApi.as_view(), "estimate"
    ),
    *both_slashes("api/projects/<int:project_id>/spend", api.ProjectSpendApi.as_view(), "spend"),
    *both_slashes("api/jobs/audio-generation", api.AudioGenerationApi.as_view(), "job-audio"),
    *both_slashes("api/voices", api.VoicesApi.as_view(), "voices"),
    *both_slashes("api/voices/<str:voice_id>/sample", api.VoiceSampleApi.as_view(), "voice-sample"),
    *both_slashes("api/jobs", api.JobListApi.as_view(), "job-list"),
    *both_slashes("api/jobs/<int:job_id>", api.JobDetailApi.as_view(), "job-detail"),
    *both_slashes("api/jobs/<int:job_id>/status", api.JobStatusApi.as_view(), "job-status"),
    *both_slashes("api/jobs/<int:job_id>/retry", api.JobRetryApi.as_view(), "job-retry"),
    *both_slashes("api/queues/status", api.QueueStatusApi.as_view(), "queue-status"),
    *both_slashes("api/events/projects/<int:project_id>", views.project_events, "project-events"),
    *both_slashes("api/webhooks/fal", views.fal_webhook, "fal-webhook"),
]
