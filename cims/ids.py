import os
import time
import uuid


def uuid7():
    """A time-ordered UUID (RFC 9562, version 7).

    Random UUIDs scatter inserts across the whole primary-key index; version 7 keys grow with
    time, so new rows land at the index's right edge and bulk loads stay fast.
    """
    return uuid.UUID(int=uuid7_int(time.time_ns() // 1_000_000, int.from_bytes(os.urandom(10))))


def uuid7_int(millis, rand):
    """The value of a version 7 UUID for a Unix time in milliseconds and 80 random bits.

    Bulk loads that need reproducible ids (demo data) give their own time and bits, and skip the
    cost of a UUID object when they only write its hex form.
    """
    value = (millis & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 64) & 0xFFF) << 64
    value |= 0b10 << 62  # variant
    value |= rand & 0x3FFF_FFFF_FFFF_FFFF
    return value
