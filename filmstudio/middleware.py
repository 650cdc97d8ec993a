from django.conf import settings
from django.http import JsonResponse


class BodySizeLimitMiddleware:
    """Answer an oversized body with a JSON 413 before Django's HTML 400 can."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        length = request.META.get("CONTENT_LENGTH") or "0"
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            too_big = int(length) > limit
        except ValueError:
            return JsonResponse({"detail": "Invalid Content-Length header."}, status=400)
        if too_big:
            return JsonResponse(
                {"detail": f"Request body is larger than the limit of {limit} bytes."},
                status=413,
            )
        return self.get_response(request)
