# The CIMS image: one image for the web server, the Celery worker and Celery beat.
FROM python:3.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# WeasyPrint needs Pango; reports and screenshots need CJK fonts; gettext compiles messages.
# Backups need pg_dump and pg_restore of the server's major version (18, docker-compose.yml),
# from the PostgreSQL project's repository: Debian's own is older.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 fonts-noto-cjk curl ca-certificates \
 && install -d /usr/share/postgresql-common/pgdg \
 && curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc https://www.postgresql.org/media/keys/ACCC4CF8.asc \
 && echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt bookworm-pgdg main" > /etc/apt/sources.list.d/pgdg.list \
 && apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client-18 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 cims

WORKDIR /app
COPY requirements.txt .
RUN pip install --require-hashes -r requirements.txt

COPY --chown=cims:cims . .
# collectstatic needs settings but no database: give it throwaway values.
RUN DEBUG=0 SECRET_KEY=build DATABASE_URL=postgres://build@localhost/build \
    REDIS_URL=redis://localhost:6379/0 python manage.py collectstatic --noinput

RUN mkdir -p var/media var/beat var/backups && chown -R cims:cims var
USER cims
EXPOSE 8000
# The workers' heartbeat files go to memory: on a container's overlay disk they stall requests.
CMD ["gunicorn", "cims.wsgi", "--bind", "0.0.0.0:8000", "--workers", "4", "--worker-tmp-dir", "/dev/shm", "--access-logfile", "-"]
