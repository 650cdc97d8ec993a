"""`/studio/`: the page a person uses to run a film from idea to final cut.

The page is a shell; static/filmstudio/studio.js does the work against the JSON API with the
session, sending the CSRF token (from the page's meta tag) that DRF's SessionAuthentication
asks for, so the page exercises the same contract every other client uses.
"""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from projects.models import Project


@require_GET
@login_required
def studio(request: HttpRequest) -> HttpResponse:
    context = {
        "aspect_ratios": Project.AspectRatio.values,
        "director_pages": ["project", "characters", "scenes", "storyboard", "videos"],
    }
    return render(request, "studio/studio.html", context)
