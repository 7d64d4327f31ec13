import os
import time
import uuid


def uuid7():
    """A time-ordered UUID (RFC 9562, version 7).

    Random UUIDs scatter inserts across the whole primary-key index; version 7 keys grow with
    time, so new rows land at the index's right edge and bulk loads stay fast.
    """
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10))
    value = (millis & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 64) & 0xFFF) << 64
    value |= 0b10 << 62  # variant
    value |= rand & 0x3FFF_FFFF_FFFF_FFFF
    return uuid.UUID(int=value)
