"""The session engine (SESSION_ENGINE = "accounts.sessions"), how long a session lasts, and
ending a user's sessions everywhere.

Sessions are Django's cached_db sessions, read from Redis and written through to PostgreSQL,
except that a session read from the database while Redis is unreachable is served instead of
failing the request (Django's engine re-caches it without catching the error).

A signed-in session records when it began and when it was last used. SessionTimeoutMiddleware
ends it SESSION_COOKIE_AGE seconds (SESSION_IDLE_TIMEOUT) after its last request and
SESSION_MAX_AGE seconds after signing in, whichever comes first.

Each session's key is also recorded under its user in the cache, so that end_sessions() can
delete a user's sessions without decoding every session in the database. A session the record
misses (the cache was flushed) stays harmless: the authentication backend refuses an inactive
user's session and a changed password invalidates every older session's hash; such a session
only waits in the table for `clearsessions`.
"""

import logging
import time
from importlib import import_module

from django.conf import settings
from django.contrib.sessions.backends.cached_db import SessionStore as CachedDBStore
from django.core.cache import cache

logger = logging.getLogger(__name__)

SIGNED_IN_AT = "accounts.signed_in_at"
LAST_SEEN = "accounts.last_seen"
RECORDED_KEY = "accounts.recorded_key"
# The time of last use is written at most once a minute: saving the session on every request
# would cost a database write for every page.
ACTIVITY_RESOLUTION = 60


class SessionStore(CachedDBStore):
    def load(self):
        try:
            data = self._cache.get(self.cache_key)
        except Exception:
            logger.exception("Error reading a session from the cache (%s)", self._cache)
            data = None
        if data is not None:
            return data
        stored = self._get_session_from_db()
        if not stored:
            return {}
        data = self.decode(stored.session_data)
        try:
            self._cache.set(self.cache_key, data, self.get_expiry_age(expiry=stored.expire_date))
        except Exception:
            logger.warning("Session served from the database only: the cache cannot be reached")
        return data


def start(request):
    """Begin a signed-in session's clocks; called right after signing in."""
    now = int(time.time())
    request.session[SIGNED_IN_AT] = now
    request.session[LAST_SEEN] = now


def expiry(request):
    """'idle' or 'max' if the signed-in session has run out, else None."""
    session = request.session
    started = session.get(SIGNED_IN_AT)
    if started is None:
        # Signed in without the sign-in page (force_login in tests) or before these clocks
        # existed: the clocks start now.
        start(request)
        return None
    now = time.time()
    if now - started >= settings.SESSION_MAX_AGE:
        return "max"
    if now - session.get(LAST_SEEN, started) >= settings.SESSION_COOKIE_AGE:
        return "idle"
    return None


def touch(request):
    """Note that the session was used, and record its key under its user once per key."""
    session = request.session
    now = int(time.time())
    if now - session.get(LAST_SEEN, 0) >= ACTIVITY_RESOLUTION:
        session[LAST_SEEN] = now
    key = session.session_key
    if key and session.get(RECORDED_KEY) != key:
        try:
            _record(request.user.pk, key, session.get(SIGNED_IN_AT, now))
        except Exception:
            # Not fatal: see the module's docstring. The next request tries again.
            logger.exception("Could not record the session of user %s", request.user.pk)
        else:
            session[RECORDED_KEY] = key


def end_sessions(user, *, keep=None):
    """Delete every session of `user` from the session store (database and cache), except the
    one whose key is `keep`. Call it when an account is deactivated or its password changes.

    While Redis is unreachable it deletes nothing and does not raise: the sessions are already
    refused on their next request (see the module's docstring)."""
    try:
        recorded = cache.get(_index_key(user.pk)) or {}
    except Exception:
        logger.exception("Could not read the sessions of user %s to end them", user.pk)
        return
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    for key in recorded:
        if key != keep:
            store.delete(key)
    kept = {key: since for key, since in recorded.items() if key == keep}
    if kept:
        cache.set(_index_key(user.pk), kept, timeout=settings.SESSION_MAX_AGE)
    else:
        cache.delete(_index_key(user.pk))


def _record(user_id, key, signed_in_at):
    # Two sessions of one user recorded in the same instant could lose one entry; that session
    # is then only left for clearsessions (see above).
    index_key = _index_key(user_id)
    cutoff = time.time() - settings.SESSION_MAX_AGE
    recorded = {k: since for k, since in (cache.get(index_key) or {}).items() if since > cutoff}
    recorded[key] = signed_in_at
    cache.set(index_key, recorded, timeout=settings.SESSION_MAX_AGE)


def _index_key(user_id):
    return f"accounts:sessions:{user_id}"
