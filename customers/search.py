"""How customers are found by one search box.

Each customer carries three derived columns, rebuilt whenever a name or the company changes
(see `Customer.refresh_search_fields`):

- ``name_pinyin``: the name in lower-case pinyin ("zhang wei"), used to sort names;
- ``search_text``: a lower-case blob of name, compact name, pinyin, initials and company,
  indexed with pg_trgm for substrings of three or more characters;
- ``search_keys``: an array of short keys, indexed with GIN: one- and two-character fragments of
  Chinese names and companies, pinyin syllables, initials and short name words. pg_trgm cannot
  index a two-character Chinese fragment such as 张伟, and these keys can.

Email and phone are encrypted at rest and never appear in those columns. They are found by exact
value only, through blind indexes (keyed hashes, `cims.crypto.blind_index`) of the lower-case
email, the E.164 phone and its last four digits (see `Customer.refresh_contact_fields`).

`search_q` turns what a user typed into a filter over those columns (or the blind indexes).
"""

import functools
import re
import unicodedata

from django.db.models import Q, Value
from django.db.models.functions import StrIndex
from django.db.models.lookups import GreaterThan
from pypinyin import Style, lazy_pinyin, pinyin

from cims import crypto
from customers.phones import normalize_phone

MAX_QUERY_LENGTH = 100

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_WORD = re.compile(r"[0-9a-z]+")
_PHONE_LIKE = re.compile(r"^[+\d][\d\s\-().]*$")
_FOUR_DIGITS = re.compile(r"[0-9]{4}")


def normalize(text):
    """Full-width to half-width, lower case, single spaces."""
    return " ".join(unicodedata.normalize("NFKC", text or "").lower().split())


def _fragments(text):
    """Characters and character pairs of every run of Chinese characters in text."""
    keys = set()
    for run in _CJK.findall(text):
        keys.update(run)
        keys.update(run[i : i + 2] for i in range(len(run) - 1))
    return keys


def name_pinyin(name):
    """'张伟' -> 'zhang wei'; Latin names are kept, lower-cased."""
    return " ".join(part for part in lazy_pinyin(normalize(name)) if part.strip()).strip()


def _family_readings(family_name):
    """Every reading of a one-character family name: 曾 is both zeng and ceng."""
    if len(family_name) != 1 or not _CJK.fullmatch(family_name):
        return set()
    return set(pinyin(family_name, style=Style.NORMAL, heteronym=True)[0])


def name_terms(display_name, family_name="", given_name=""):
    """What a name contributes to the search columns, for `combine_search_fields`.

    Split from the company and email parts so that bulk loads, where the same names recur many
    times, can compute the expensive pinyin once per name.
    """
    name = normalize(display_name)
    family, given = normalize(family_name), normalize(given_name)
    syllables = lazy_pinyin(name)
    words = [w for part in syllables for w in _WORD.findall(part)]
    compact = "".join(words)
    initials = "".join(w[0] for w in words)

    keys = _fragments(name) | _fragments(family + given)
    keys.update(words)
    keys.update(_family_readings(family))
    if len(words) > 1:
        keys.add(initials)
    # Alternative readings of the family name, so 曾伟 is found as zengwei and cengwei.
    alternatives = [
        reading + "".join(words[1:])
        for reading in _family_readings(family)
        if words and reading != words[0]
    ]
    return {
        "pinyin": " ".join(w for w in syllables if w.strip())[:300],
        "text": (name, name.replace(" ", ""), family + given, compact, initials),
        "alternatives": tuple(alternatives),
        "keys": frozenset(keys),
    }


def company_terms(company):
    """What a company name contributes to the search columns, for `combine_search_fields`."""
    company = normalize(company)
    return {"text": company, "keys": frozenset(_fragments(company))}


def combine_search_fields(name, company):
    """The derived search columns from `name_terms` and `company_terms`."""
    text_parts = [*name["text"], company["text"], *name["alternatives"]]
    return {
        "name_pinyin": name["pinyin"],
        "search_text": " ".join(dict.fromkeys(p for p in text_parts if p)),
        "search_keys": sorted(k for k in name["keys"] | company["keys"] if k)[:200],
    }


def search_fields(*, display_name, family_name="", given_name="", company=""):
    """The derived search columns for one customer, as a dict of field values."""
    return combine_search_fields(
        name_terms(display_name, family_name, given_name), company_terms(company)
    )


def normalize_email(email):
    """Email addresses are stored, indexed and looked up in lower case."""
    return (email or "").strip().lower()


def email_index(email):
    """The blind index of a normalised email address, or None for no address."""
    return crypto.blind_index(email, "email") if email else None


def phone_indexes(phone):
    """The blind indexes of an E.164 phone number and of its last four digits, or Nones."""
    if not phone:
        return None, None
    return crypto.blind_index(phone, "phone"), crypto.blind_index(phone[-4:], "phone_last4")


def email_q(email):
    """Customers with exactly this email address, in any case."""
    email = normalize_email(email)
    return Q(email_index=email_index(email)) if email else Q(pk__in=[])


def phone_q(phone):
    """Customers with this phone number, typed in any format."""
    phone = normalize_phone(phone) if phone else None
    return Q(phone_index=phone_indexes(phone)[0]) if phone else Q(pk__in=[])


def phone_ending_q(digits):
    """Customers whose phone number ends in these four digits."""
    if not _FOUR_DIGITS.fullmatch(digits or ""):
        return Q(pk__in=[])
    return Q(phone_last4_index=crypto.blind_index(digits, "phone_last4"))


def _checked_row_by_row(text):
    """search_text contains `text`, checked on the rows other conditions found.

    strpos() finds the same substring as LIKE, but PostgreSQL cannot answer it from the
    trigram index, so it never gathers the index's long lists of common trigrams for it.
    """
    return Q(GreaterThan(StrIndex("search_text", Value(text)), 0))


def search_q(raw):
    """A Q object for what a user typed in the search box, or None when it is empty."""
    query = normalize(raw)[:MAX_QUERY_LENGTH]
    if not query:
        return None
    if "@" in query:
        # Email addresses are encrypted: only the whole address finds its customer.
        return email_q(query)
    digits = re.sub(r"\D", "", query)
    if _PHONE_LIKE.match(query) and len(digits) >= 4:
        if len(digits) == 4 and digits == query:
            return phone_ending_q(digits)
        if phone := normalize_phone(query):
            return Q(phone_index=phone_indexes(phone)[0])
    if _CJK.search(query):
        return _chinese_q(query)
    return _latin_q(query)


def _chinese_q(query):
    condition = Q()
    for token in query.split():
        keys = set()
        for run in _CJK.findall(token):
            keys.update([run] if len(run) == 1 else (run[i : i + 2] for i in range(len(run) - 1)))
        latin = "".join(_WORD.findall(token))
        if keys:
            condition &= Q(search_keys__contains=sorted(keys))
        # The keys find candidates; the text check makes sure the characters are adjacent. A
        # token of two Chinese characters is itself a key, which already says so, and checking
        # it twice would make PostgreSQL expect a hundred times fewer matches than there are
        # (and choose a slow plan for a common name).
        if (len(token) > 1 or latin) and token not in keys:
            condition &= Q(search_text__contains=token)
    return condition


@functools.cache
def pinyin_syllables():
    """Every Mandarin syllable without its tone, as the search keys spell them (lv for lü)."""
    from pypinyin.pinyin_dict import pinyin_dict

    readings = {reading for value in pinyin_dict.values() for reading in value.split(",")}
    decomposed = (unicodedata.normalize("NFD", r).replace("u\u0308", "v") for r in readings)
    plain = {"".join(c for c in reading if c.isascii()) for reading in decomposed}
    # Without a vowel a reading is an interjection (嗯 ng, 呣 m), never part of a name.
    return frozenset(s for s in plain if s.isalpha() and any(vowel in s for vowel in "aeiouv"))


def syllable_readings(letters, limit=4):
    """The ways to split `letters` into two or more pinyin syllables: "xian" -> [(xi, an)].

    Returns at most `limit` readings, and none for text that is not all syllables or is longer
    than a name is likely to be.
    """
    if len(letters) > 24 or not letters.isalpha():
        return []
    syllables = pinyin_syllables()

    @functools.cache
    def split(start):
        if start == len(letters):
            return [()]
        readings = []
        for end in range(min(len(letters), start + 6), start, -1):
            if letters[start:end] in syllables:
                readings += [(letters[start:end], *rest) for rest in split(end)]
        return readings[:limit]

    return [reading for reading in split(0) if len(reading) > 1][:limit]


def _latin_q(query):
    tokens = ["".join(_WORD.findall(t)) or t for t in query.split()]
    compact = "".join(tokens)
    if len(compact) <= 2:
        # Too short for trigrams: initials (zw), a pinyin syllable (li) or a short name word.
        return Q(search_keys__contains=[compact])
    if all(token in pinyin_syllables() for token in tokens):
        # "wang", "zhang wei": names with all these syllables, found through the keys' index.
        # Pinyin's trigrams (ang, han, eng) are in most rows, and gathering them costs far more.
        return Q(search_keys__contains=tokens)
    if readings := syllable_readings(compact):
        # "zhangwei", "xiuying": the keys find the names with the syllables of each way to read
        # the letters, and the text check keeps those where the letters are adjacent.
        candidates = Q()
        for syllables in readings:
            candidates |= Q(search_keys__contains=list(syllables))
        return candidates & _checked_row_by_row(compact)
    condition = Q(search_text__contains=compact)
    if (typed := query.replace(" ", "")) != compact:
        # Punctuation belongs to some names and companies: o'neil, acme.cn.
        condition |= Q(search_text__contains=typed)
    if len(tokens) > 1 and all(len(t) >= 3 for t in tokens):
        every_token = Q()
        for token in tokens:
            every_token &= Q(search_text__contains=token)
        condition |= every_token
    return condition
