import json
import logging

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from filmstudio.streams import authenticated_stream
from generation import events, queue
from generation.models import GenerationJob
from projects.models import Project

logger = logging.getLogger(__name__)


def project_events(request, project_id: int):
    return authenticated_stream(
        request,
        channel=events.project_channel(project_id),
        owns=lambda user: Project.objects.filter(pk=project_id, owner=user).exists(),
    )


@csrf_exempt
@require_POST
def fal_webhook(request):
    """fal's completion callback: authenticated by its ED25519 signature, idempotent."""
    # fal-client (~0.1 s) loads in the web process only once a webhook arrives
    from generation.providers.fal import verify_fal_webhook  # noqa: PLC0415 (lazy SDK)

    if not verify_fal_webhook(request.body, request.headers):
        return JsonResponse({"detail": "Invalid webhook signature."}, status=401)
    try:
        payload = json.loads(request.body)
        request_id = str(payload["request_id"])
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"detail": "Invalid webhook payload: no request_id."}, status=400)
    job = GenerationJob.objects.filter(
        type=GenerationJob.Type.VIDEOS,
        status=GenerationJob.Status.WAITING,
        provider_request_ids__contains=[request_id],
    ).first()
    if job is None:  # fal retries for hours: a repeat after delivery is fine
        return JsonResponse({"detail": "No waiting job for this request; nothing to do."})
    # The heavy part (download, normalize) belongs to a worker: poll now instead of later.
    queue.enqueue(job.pk, task=queue.POLL_TASK, urgent=True)
    return JsonResponse({"detail": "Accepted."})
