"""Sign-in throttling: failed passwords and codes counted per account and per client address.

Counts live in the cache (Redis), so every web process sees the same numbers. Reaching
LOGIN_ACCOUNT_FAILURE_LIMIT failures for a username, or LOGIN_ADDRESS_FAILURE_LIMIT from one
address, within LOGIN_FAILURE_WINDOW seconds of the first refuses sign-in for that username or
address for LOGIN_LOCKOUT_SECONDS. Unknown usernames are counted like real ones, so a lockout
does not tell anyone which accounts exist.

When the cache cannot be reached, sign-in fails closed (SignInUnavailable): the throttle is the
only thing between an attacker and unlimited password guesses, and with sessions kept in the
same Redis nobody could use a session started during the outage anyway.
"""

import hashlib
import ipaddress
import logging
import time
import unicodedata

from django.conf import settings
from django.core.cache import cache

from accounts.audit import client_ip
from accounts.signals import login_locked_out

logger = logging.getLogger(__name__)

KEY_PREFIX = "signin"


class SignInLocked(Exception):
    """Too many failures: sign-in is refused for `seconds` more."""

    def __init__(self, seconds):
        super().__init__(seconds)
        self.seconds = seconds


class SignInUnavailable(Exception):
    """The cache that holds the counts cannot be reached."""


def check(request, username):
    """Raise SignInLocked if the username or the client's address is locked out."""
    ends = _cache_call(cache.get_many, [_lock_key(scope) for scope in _scopes(request, username)])
    remaining = max(ends.values(), default=0) - time.time()
    if remaining > 0:
        raise SignInLocked(int(remaining) + 1)


def record_failure(request, username):
    """Count a failed password or code; return whether it started a lockout.

    The lockout signal is sent once per failure that starts one, whether the account, the
    address or both became locked.
    """
    started = False
    for scope, limit in zip(
        _scopes(request, username),
        (settings.LOGIN_ACCOUNT_FAILURE_LIMIT, settings.LOGIN_ADDRESS_FAILURE_LIMIT),
        strict=True,
    ):
        if _increment(_count_key(scope)) >= limit:
            ends = time.time() + settings.LOGIN_LOCKOUT_SECONDS
            started |= _cache_call(
                cache.add, _lock_key(scope), ends, timeout=settings.LOGIN_LOCKOUT_SECONDS
            )
            # Counting starts afresh once the lockout is over.
            _cache_call(cache.delete, _count_key(scope))
    if started:
        logger.warning("Sign-in locked out for %r from %s", username, client_ip(request))
        login_locked_out.send(sender=None, username=username, request=request)
    return started


def record_success(username):
    """Forget the account's failures once its owner has signed in completely.

    The address's count stays: otherwise an attacker with one working account could reset it
    between guesses at other accounts.
    """
    try:
        cache.delete(_count_key(_account_scope(username)))
    except Exception:
        logger.exception("Could not reset the sign-in failures of %r", username)


def _scopes(request, username):
    return _account_scope(username), _address_scope(client_ip(request))


def _account_scope(username):
    # Case and Unicode variants of one name share a count, so they cannot multiply the tries;
    # hashing keeps whatever was typed out of the key.
    normal = unicodedata.normalize("NFKC", username or "").casefold()
    return "account:" + hashlib.sha256(normal.encode()).hexdigest()[:32]


def _address_scope(address):
    if not address:
        return "address:unknown"
    ip = ipaddress.ip_address(address)
    if ip.version == 6:
        if ip.ipv4_mapped:
            return f"address:{ip.ipv4_mapped}"
        # One IPv6 customer usually holds a whole /64, so the block is counted as one address.
        return "address:" + str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return f"address:{ip}"


def _count_key(scope):
    return f"{KEY_PREFIX}:failures:{scope}"


def _lock_key(scope):
    return f"{KEY_PREFIX}:locked:{scope}"


def _increment(key):
    # The window starts with the first failure: add() sets the expiry only when it creates the key.
    _cache_call(cache.add, key, 0, timeout=settings.LOGIN_FAILURE_WINDOW)
    try:
        return _cache_call(cache.incr, key)
    except ValueError:
        # The window ended between the two calls.
        _cache_call(cache.set, key, 1, timeout=settings.LOGIN_FAILURE_WINDOW)
        return 1


def _cache_call(method, *args, **kwargs):
    try:
        return method(*args, **kwargs)
    except ValueError:
        raise
    except Exception as error:
        # Any backend error (connection refused, timeout, authentication) means the same here.
        logger.exception("The sign-in throttle cannot reach the cache")
        raise SignInUnavailable from error
