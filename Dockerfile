# The CIMS image: one image for the web server, the Celery worker and Celery beat.
FROM python:3.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# WeasyPrint needs Pango; reports and screenshots need CJK fonts; gettext compiles messages.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 fonts-noto-cjk curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 cims

WORKDIR /app
COPY requirements.txt .
RUN pip install --require-hashes -r requirements.txt

COPY --chown=cims:cims . .
# collectstatic needs settings but no database: give it throwaway values.
RUN DEBUG=0 SECRET_KEY=build DATABASE_URL=postgres://build@localhost/build \
    REDIS_URL=redis://localhost:6379/0 python manage.py collectstatic --noinput

RUN mkdir -p var/media var/beat && chown -R cims:cims var
USER cims
EXPOSE 8000
# The workers' heartbeat files go to memory: on a container's overlay disk they stall requests.
CMD ["gunicorn", "cims.wsgi", "--bind", "0.0.0.0:8000", "--workers", "4", "--worker-tmp-dir", "/dev/shm", "--access-logfile", "-"]
