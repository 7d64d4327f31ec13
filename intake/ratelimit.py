"""How many submissions a client address has sent to public forms within the hour, in Redis.

The hour starts with the address's first submission, so the count and its expiry are set
together. When Redis cannot be reached the limiter lets everything through and logs a warning:
a customer's answers must not be lost to an outage of a protection against spam, and the
honeypot and the signed form token still apply.
"""

import functools
import ipaddress
import logging

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60 * 60


@functools.cache
def _client(url, timeout):
    return redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)


def _redis():
    return _client(settings.INTAKE_RATE_LIMIT_REDIS_URL, settings.INTAKE_RATE_LIMIT_TIMEOUT)


def _key(address):
    # The cache's prefix keeps deployments (and test runs) that share a Redis apart.
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "")
    return f"{prefix}:intake:submissions:{_scope(address)}"


def _scope(address):
    if not address:
        return "unknown"
    ip = ipaddress.ip_address(address)
    if ip.version == 6 and not ip.ipv4_mapped:
        # One IPv6 customer usually holds a whole /64, so the block counts as one address.
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip.ipv4_mapped or ip) if ip.version == 6 else str(ip)


def retry_after(address):
    """Seconds until `address` may submit again, or None while it is under the limit."""
    key = _key(address)
    try:
        pipe = _redis().pipeline(transaction=False)
        pipe.get(key)
        pipe.ttl(key)
        count, ttl = pipe.execute()
    except redis.RedisError as error:
        logger.warning("Submission rate limit not checked, Redis is unreachable: %s", error)
        return None
    if int(count or 0) < settings.INTAKE_SUBMISSIONS_PER_HOUR:
        return None
    return max(int(ttl), 1)


def count(address):
    """Count one submission from `address`: None while it is within the limit, else the seconds
    until the address may submit again.

    Counting and checking are one step, so that requests sent all at once cannot each pass a
    check made before any of them was counted.
    """
    key = _key(address)
    try:
        pipe = _redis().pipeline(transaction=True)
        pipe.set(key, 0, ex=WINDOW_SECONDS, nx=True)
        pipe.incr(key)
        pipe.ttl(key)
        _created, total, ttl = pipe.execute()
    except redis.RedisError as error:
        logger.warning("Submission from %s not counted, Redis is unreachable: %s", address, error)
        return None
    if total <= settings.INTAKE_SUBMISSIONS_PER_HOUR:
        return None
    return max(int(ttl), 1)
