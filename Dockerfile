# Production image for Stepwise: gunicorn (web) and Celery (worker) run from this one image.
# Build: docker build -t stepwise .      Run the whole stack: docker compose up -d (see docker-compose.yml).

# ---- build stage: resolve the pinned dependencies into a virtualenv --------------------------
FROM python:3.12-slim AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
COPY requirements.lock /tmp/requirements.lock
RUN /opt/venv/bin/pip install -r /tmp/requirements.lock


# ---- runtime stage ---------------------------------------------------------------------------
FROM python:3.12-slim

# STEPWISE_VAR_DIR and MEDIA_ROOT are read by config/settings.py. Static files are collected into
# $STEPWISE_VAR_DIR/static below, so the runtime value must stay the build-time value.
ENV PATH="/opt/venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    STEPWISE_VAR_DIR=/app/var \
    MEDIA_ROOT=/data/media

RUN groupadd --system --gid 10001 stepwise \
    && useradd --system --uid 10001 --gid stepwise --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin stepwise

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
# Code stays owned by root: the app user can read it but not change it.
COPY . /app

# Hashed, compressed static files for whitenoise (DEBUG off selects the manifest storage).
# The secret is a throwaway used only by this build step; the real one comes from the environment.
# The in-memory broker keeps settings from creating the embedded filesystem broker's folders.
RUN DEBUG=0 SECRET_KEY=build-time-dummy-secret-not-used-at-runtime CELERY_BROKER_URL=memory:// \
    python manage.py collectstatic --noinput \
    && python -m compileall -q /app \
    && mkdir -p "$STEPWISE_VAR_DIR" "$MEDIA_ROOT" \
    && chown stepwise:stepwise "$STEPWISE_VAR_DIR" "$MEDIA_ROOT"

USER 10001:10001

EXPOSE 8000

# Health probe without curl: GET /healthz with a Host header taken from ALLOWED_HOSTS (so Django
# does not answer 400) and X-Forwarded-Proto so SECURE_SSL_REDIRECT does not redirect the probe.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os,urllib.request as r;h=[x.strip().lstrip('.') for x in os.environ.get('ALLOWED_HOSTS','').split(',') if x.strip() not in ('','*')];r.urlopen(r.Request('http://127.0.0.1:8000/healthz',headers={'Host':(h or ['localhost'])[0],'X-Forwarded-Proto':'https'}),timeout=4)"]

# gthread workers: a slow upload occupies a thread, not a whole process, and does not trip the
# worker timeout (the heartbeat runs on the main thread). Recycle workers to bound memory growth.
CMD ["gunicorn", "config.wsgi:application", \
     "--bind", "0.0.0.0:8000", \
     "--worker-class", "gthread", "--workers", "3", "--threads", "4", \
     "--timeout", "120", "--graceful-timeout", "30", "--keep-alive", "5", \
     "--max-requests", "1000", "--max-requests-jitter", "100", \
     "--worker-tmp-dir", "/dev/shm", \
     "--access-logfile", "-", "--error-logfile", "-"]
