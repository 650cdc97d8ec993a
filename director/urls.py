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
]
