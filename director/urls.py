from director import api, views
from filmstudio.api import both_slashes

urlpatterns = [
    *both_slashes("api/director/pages", api.DirectorPagesApi.as_view(), "director-pages"),
    *both_slashes("api/director/stream", api.DirectorStreamApi.as_view(), "director-stream"),
    *both_slashes("api/director/confirm", api.DirectorConfirmApi.as_view(), "director-confirm"),
    *both_slashes(
        "api/director/sessions/<int:session_id>",
        api.DirectorSessionApi.as_view(),
        "director-session",
    ),
    *both_slashes(
        "api/director/sessions/<int:session_id>/events",
        views.session_events,
        "director-session-events",
    ),
    *both_slashes(
        "api/projects/<int:project_id>/agent-runs",
        api.ProjectAgentRunsApi.as_view(),
        "project-agent-runs",
    ),
    *both_slashes("api/agent-runs/<int:run_id>", api.AgentRunApi.as_view(), "agent-run"),
    *both_slashes(
        "api/agent-runs/<int:run_id>/decide", api.AgentRunDecideApi.as_view(), "agent-run-decide"
    ),
    *both_slashes("api/agent-runs/<int:run_id>/events", views.run_events, "agent-run-events"),
]
