"""Finding customers who are probably the same person, without comparing every pair.

A million customers make half a trillion pairs, so the scan compares customers only within
blocks that share a cheap key, each an ordinary equality (hash) join in PostgreSQL:

- the name as sorted pinyin words ("weizhang" for 张伟, 章伟, Zhang Wei and Wei Zhang), together
  with the same company, the same city or the same last four digits of the phone;
- a similar name (pg_trgm similarity of the pinyin) within the same company, within the same
  last four phone digits, or within the same city among names that start alike.

A block with more than DUPLICATE_BLOCK_LIMIT customers is skipped: that many people who share
a common name and a city are not evidence of anything, and comparing them all would cost the
square of their number. The pairs found are scored from what they share and stored in
DuplicateCandidate, so the finder's page reads a table through an index. Email and phone are
unique among customers and encrypted, birthdays are encrypted: none of them can be compared in
SQL, and the last four phone digits are compared through their blind index.

The scan runs in Celery (customers.tasks.refresh_duplicate_candidates): nightly, and when
someone asks for it on the finder's page, which shows its progress.
"""

import datetime
import logging

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts import permissions
from customers.models import (
    Customer,
    DuplicateCandidate,
    DuplicateDismissal,
    DuplicateReason,
    DuplicateScan,
    Merge,
)

logger = logging.getLogger(__name__)

# One scan at a time: a second waits for the first (any constant both agree on).
SCAN_LOCK_KEY = 0x44555053  # "DUPS"

# What each shared trait adds to a pair's score (at most 100).
WEIGHTS = {
    DuplicateReason.SAME_NAME: 50,
    DuplicateReason.SAME_PINYIN: 45,
    # Times the names' similarity (0 to 1), but never as much as the same name in pinyin.
    DuplicateReason.SIMILAR_NAME: 65,
    DuplicateReason.SAME_COMPANY: 30,
    DuplicateReason.SAME_CITY: 10,
    DuplicateReason.SAME_DISTRICT: 5,
    DuplicateReason.SAME_PHONE_ENDING: 25,
}
# A name's points drop by this much for every tenfold more customers who bear it (王伟 is shared
# by thousands, 欧阳娜娜 by few), but never below NAME_FLOOR.
NAME_RARITY = 12
NAME_FLOOR = 20


def block_limit():
    return settings.DUPLICATE_BLOCK_LIMIT


def min_score():
    return settings.DUPLICATE_MIN_SCORE


def similarity_threshold():
    return settings.DUPLICATE_NAME_SIMILARITY


# Company names compared without spaces, punctuation and legal forms: 上海华东贸易有限公司 and
# 上海华东贸易 are one company, and so are "Acme Ltd." and "ACME".
COMPANY_NOISE = (
    r"股份有限公司|有限责任公司|有限公司|集团|公司|"
    r"\m(co|corp|corporation|inc|ltd|limited|llc|gmbh|company|group)\M|[[:punct:][:space:]]+"
)

KEYS_SQL = f"""
CREATE TEMPORARY TABLE dup_keys AS
SELECT c.id,
       c.name_pinyin AS pinyin,
       lower(c.display_name) AS name,
       coalesce(
           (SELECT string_agg(word, '' ORDER BY word)
              FROM regexp_split_to_table(
                  regexp_replace(c.name_pinyin, '[^a-z0-9 ]', '', 'g'), ' +') AS word
             WHERE word <> ''),
           nullif(regexp_replace(lower(c.display_name), '[[:space:]]', '', 'g'), '')
       ) AS name_key,
       nullif(regexp_replace(lower(c.company), '{COMPANY_NOISE}', '', 'g'), '') AS company_key,
       nullif(c.city, '') AS city,
       nullif(c.district, '') AS district,
       c.phone_last4_index AS last4
  FROM {Customer._meta.db_table} c
 -- Erased customers share one name and nothing else: never duplicates of anyone.
 WHERE NOT EXISTS (SELECT 1 FROM customers_erasure e WHERE e.customer_id = c.id)
"""
# How many customers have each name: sharing a common name says less than sharing a rare one.
NAME_COUNT_SQL = """
CREATE TEMPORARY TABLE dup_names AS
SELECT name_key, count(*) AS customers FROM dup_keys WHERE name_key IS NOT NULL GROUP BY name_key
"""

# Each rule adds pairs (a < b) that share a block. `{limit}` keeps only blocks small enough.
SAME_NAME_AND = """
INSERT INTO dup_pairs
SELECT x.id, y.id
  FROM dup_keys x JOIN dup_keys y ON x.name_key = y.name_key AND x.{key} = y.{key} AND x.id < y.id
"""

SIMILAR_NAME_IN_BLOCK = """
WITH blocks AS (
    SELECT id, pinyin, {block} AS block
      FROM dup_keys
     WHERE {present}
), small AS (
    SELECT block FROM blocks GROUP BY block HAVING count(*) BETWEEN 2 AND %(limit)s
), members AS (
    SELECT b.* FROM blocks b JOIN small s USING (block)
)
INSERT INTO dup_pairs
SELECT x.id, y.id
  FROM members x JOIN members y ON x.block = y.block AND x.id < y.id
 WHERE similarity(x.pinyin, y.pinyin) >= %(similarity)s
"""

# (progress label, SQL, parameters needed) in the order they run.
RULES = [
    ("same name and company", SAME_NAME_AND.format(key="company_key")),
    ("same name and phone ending", SAME_NAME_AND.format(key="last4")),
    (
        "same name and city",
        # A common name in a big city is no evidence: only blocks up to the limit.
        """
        WITH small AS (
            SELECT name_key, city FROM dup_keys WHERE city IS NOT NULL AND name_key IS NOT NULL
             GROUP BY name_key, city HAVING count(*) BETWEEN 2 AND %(limit)s
        ), members AS (
            SELECT k.id, k.name_key, k.city FROM dup_keys k JOIN small s USING (name_key, city)
        )
        INSERT INTO dup_pairs
        SELECT x.id, y.id
          FROM members x JOIN members y
            ON x.name_key = y.name_key AND x.city = y.city AND x.id < y.id
        """,
    ),
    (
        "similar name in the same company",
        SIMILAR_NAME_IN_BLOCK.format(block="company_key", present="company_key IS NOT NULL"),
    ),
    (
        "similar name and phone ending",
        SIMILAR_NAME_IN_BLOCK.format(
            block="last4 || convert_to(left(name_key, 1), 'UTF8')",
            present="last4 IS NOT NULL AND name_key IS NOT NULL",
        ),
    ),
    (
        "similar name in the same city",
        SIMILAR_NAME_IN_BLOCK.format(
            block="city || ':' || left(name_key, 3)",
            present="city IS NOT NULL AND name_key IS NOT NULL",
        ),
    ),
]

SCORE_SQL = f"""
CREATE TEMPORARY TABLE dup_found AS
WITH pairs AS (SELECT DISTINCT a, b FROM dup_pairs),
traits AS (
    SELECT p.a, p.b,
           least(coalesce(nx.customers, 1), coalesce(ny.customers, 1)) AS namesakes,
           x.name = y.name AS same_name,
           CASE WHEN x.name = y.name THEN %(same_name)s
                WHEN x.name_key = y.name_key THEN %(same_pinyin)s
                WHEN similarity(x.pinyin, y.pinyin) >= %(similarity)s
                THEN least(%(same_pinyin)s - 1, %(similar_name)s * similarity(x.pinyin, y.pinyin))
                ELSE 0 END AS name_points,
           x.name_key = y.name_key AS same_pinyin,
           similarity(x.pinyin, y.pinyin) AS name_similarity,
           x.company_key = y.company_key AS same_company,
           x.city = y.city AS same_city,
           x.city = y.city AND x.district = y.district AS same_district,
           x.last4 = y.last4 AS same_phone_ending
      FROM pairs p
      JOIN dup_keys x ON x.id = p.a
      JOIN dup_keys y ON y.id = p.b
      LEFT JOIN dup_names nx ON nx.name_key = x.name_key
      LEFT JOIN dup_names ny ON ny.name_key = y.name_key
),
scored AS (
    SELECT a, b,
           least(100, round(
               CASE WHEN name_points > 0
                    THEN greatest(%(name_floor)s, name_points - %(rarity)s * log(namesakes))
                    ELSE 0 END
               + CASE WHEN same_company THEN %(same_company)s ELSE 0 END
               + CASE WHEN same_city THEN %(same_city)s ELSE 0 END
               + CASE WHEN same_district THEN %(same_district)s ELSE 0 END
               + CASE WHEN same_phone_ending THEN %(same_phone_ending)s ELSE 0 END
           ))::smallint AS score,
           array_remove(ARRAY[
               CASE WHEN same_name THEN 'same_name'
                    WHEN same_pinyin THEN 'same_pinyin'
                    WHEN name_similarity >= %(similarity)s THEN 'similar_name' END,
               CASE WHEN same_company THEN 'same_company' END,
               CASE WHEN same_city THEN 'same_city' END,
               CASE WHEN same_district THEN 'same_district' END,
               CASE WHEN same_phone_ending THEN 'same_phone_ending' END
           ], NULL)::varchar(30)[] AS reasons
      FROM traits
)
SELECT s.* FROM scored s
 WHERE s.score >= %(min_score)s
   AND NOT EXISTS (
       SELECT 1 FROM {DuplicateDismissal._meta.db_table} d
        WHERE d.customer_a_id = s.a AND d.customer_b_id = s.b
   )
"""

CANDIDATES = DuplicateCandidate._meta.db_table
SAVE_SQL = f"""
INSERT INTO {CANDIDATES} (customer_a_id, customer_b_id, score, reasons, found_at, seen_at)
SELECT f.a, f.b, f.score, f.reasons, %(now)s, %(now)s
  FROM dup_found f
 WHERE EXISTS (SELECT 1 FROM {Customer._meta.db_table} c WHERE c.id = f.a)
   AND EXISTS (SELECT 1 FROM {Customer._meta.db_table} c WHERE c.id = f.b)
   -- Dismissed, or merged away, while the scan ran.
   AND NOT EXISTS (
       SELECT 1 FROM {DuplicateDismissal._meta.db_table} d
        WHERE d.customer_a_id = f.a AND d.customer_b_id = f.b
   )
ON CONFLICT (customer_a_id, customer_b_id) DO UPDATE
   SET score = EXCLUDED.score, reasons = EXCLUDED.reasons, seen_at = EXCLUDED.seen_at
"""

TEMPORARY_TABLES = ("dup_keys", "dup_names", "dup_pairs", "dup_found")
STEPS = 1 + len(RULES) + 2  # keys, the rules, scoring, saving


def _parameters():
    return {
        "limit": block_limit(),
        "similarity": similarity_threshold(),
        "min_score": min_score(),
        "rarity": NAME_RARITY,
        "name_floor": NAME_FLOOR,
        **{reason.value: weight for reason, weight in WEIGHTS.items()},
    }


def refresh_candidates(scan=None):
    """Find every likely pair of duplicates and replace the stored candidates with them.

    Each step commits on its own, with the scan's progress, so the finder's page can show how
    far it is. Pairs found before keep their id (and so their place in a paged list) and first
    finding time; pairs no longer found are removed. Returns the number of pairs stored.
    """

    def progress(step, **fields):
        if scan is not None:
            DuplicateScan.objects.filter(pk=scan.pk).update(step=step, **fields)

    started = timezone.now()
    parameters = _parameters()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [SCAN_LOCK_KEY])
        try:
            progress(0, state=DuplicateScan.State.RUNNING, started_at=started, steps=STEPS)
            cursor.execute("SET work_mem = '64MB'")
            for table in TEMPORARY_TABLES:
                cursor.execute(f"DROP TABLE IF EXISTS {table}")
            cursor.execute(KEYS_SQL)
            cursor.execute(NAME_COUNT_SQL)
            cursor.execute("CREATE TEMPORARY TABLE dup_pairs (a uuid NOT NULL, b uuid NOT NULL)")
            cursor.execute("ANALYZE dup_keys")
            progress(1)
            for number, (label, sql) in enumerate(RULES, start=2):
                cursor.execute(sql, parameters)
                logger.info("Duplicate scan: %s, %s pairs", label, cursor.rowcount)
                progress(number)
            cursor.execute(SCORE_SQL, parameters)
            progress(STEPS - 1)
            with transaction.atomic():
                cursor.execute(SAVE_SQL, {"now": started})
                DuplicateCandidate.objects.filter(seen_at__lt=started).delete()
            # The table was largely rewritten: statistics for the planner, which would otherwise
            # expect hundreds of pairs per customer and plan the customer page's count for them.
            cursor.execute(f"ANALYZE {CANDIDATES}")
            pairs = DuplicateCandidate.objects.count()
        finally:
            for table in TEMPORARY_TABLES:
                cursor.execute(f"DROP TABLE IF EXISTS {table}")
            cursor.execute("RESET work_mem")
            cursor.execute("SELECT pg_advisory_unlock(%s)", [SCAN_LOCK_KEY])
    progress(STEPS, state=DuplicateScan.State.DONE, pairs=pairs, finished_at=timezone.now())
    return pairs


# A scan still waiting or running after this long was lost with its worker.
ABANDONED_AFTER = datetime.timedelta(hours=6)


def queued_or_new_scan(user=None):
    """(the scan waiting or running, False), or (a new scan, True)."""
    unfinished = DuplicateScan.objects.filter(
        state__in=[DuplicateScan.State.PENDING, DuplicateScan.State.RUNNING]
    )
    unfinished.filter(created_at__lt=timezone.now() - ABANDONED_AFTER).update(
        state=DuplicateScan.State.FAILED, error="abandoned", finished_at=timezone.now()
    )
    running = unfinished.first()
    if running is not None:
        return running, False
    return DuplicateScan.objects.create(requested_by=user, steps=STEPS), True


def start_scan(*, user=None):
    """(scan, whether it is new): the scan waiting or running, or a new one queued."""
    from customers.tasks import refresh_duplicate_candidates

    scan, created = queued_or_new_scan(user)
    if created:
        transaction.on_commit(lambda: refresh_duplicate_candidates.delay(str(scan.pk)))
    return scan, created


def last_scan():
    return DuplicateScan.objects.filter(state=DuplicateScan.State.DONE).first()


def dismiss(customer_a, customer_b, *, user):
    """Remember that two customers are different people, and stop proposing them."""
    a, b = DuplicateDismissal.ordered(customer_a, customer_b)
    with transaction.atomic():
        DuplicateDismissal.objects.get_or_create(
            customer_a_id=a, customer_b_id=b, defaults={"dismissed_by": user}
        )
        DuplicateCandidate.objects.of(a, b).delete()


def candidates_for(user):
    """The stored pairs of which `user` may change both customers, with both loaded."""
    if not permissions.can_merge(user):
        return DuplicateCandidate.objects.none()
    return DuplicateCandidate.objects.changeable_by(user).select_related("customer_a", "customer_b")


def count_for_customer(user, customer, limit=99):
    """How many stored pairs with `customer` the user may merge (up to `limit` + 1): one query."""
    return (
        DuplicateCandidate.objects.changeable_by(user)
        .involving(customer)
        .values("pk")[: limit + 1]
        .count()
    )


def undoable_merges_into(customer, limit=3):
    """The latest merges into `customer` that can still be undone."""
    cutoff = timezone.now() - datetime.timedelta(days=settings.MERGE_UNDO_DAYS)
    return list(
        Merge.objects.filter(survivor=customer, undone_at__isnull=True, created_at__gte=cutoff)
        .only("id", "merged_name", "created_at")
        .order_by("-created_at")[:limit]
    )
