FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    DJANGO_DEBUG=false VAR_DIR=/app/var PORT=5000 WEB_CONCURRENCY=1

# No Debian ffmpeg: the static build in imageio-ffmpeg (requirements.txt) is the one used; libass
# finds the subtitle font through fontconfig's configuration (fontconfig-config).
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-dejavu-core fontconfig-config espeak-ng \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
RUN SECRET_KEY=build-only DATABASE_URL=postgres://x@localhost/x REDIS_URL=redis://localhost \
    python manage.py collectstatic --noinput \
 && useradd --create-home --uid 10001 film \
 && mkdir -p /app/var && chown -R film /app/var

USER film
EXPOSE 5000
CMD ["sh", "-c", "python manage.py migrate --noinput && exec uvicorn filmstudio.asgi:application --host 0.0.0.0 --port ${PORT} --workers ${WEB_CONCURRENCY:-1} --proxy-headers"]
