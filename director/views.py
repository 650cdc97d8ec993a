from director import selectors
from director.runs import run_channel
from director.streaming import session_channel
from filmstudio.streams import authenticated_stream


def session_events(request, session_id: int):
    """The session's turn events, live and replayable with Last-Event-ID."""
    return authenticated_stream(
        request,
        channel=session_channel(session_id),
        owns=lambda user: selectors.sessions_for_user(user).filter(pk=session_id).exists(),
    )


def run_events(request, run_id: int):
    """An agent run's events, live and replayable with Last-Event-ID."""
    return authenticated_stream(
        request,
        channel=run_channel(run_id),
        owns=lambda user: selectors.runs_for_user(user).filter(pk=run_id).exists(),
    )
