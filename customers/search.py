"""How customers are found by one search box.

Each customer carries three derived columns, rebuilt whenever a name, the company or the email
changes (see `Customer.refresh_search_fields`):

- ``name_pinyin``: the name in lower-case pinyin ("zhang wei"), used to sort names;
- ``search_text``: a lower-case blob of name, compact name, pinyin, initials, company and email,
  indexed with pg_trgm for substrings of three or more characters;
- ``search_keys``: an array of short keys, indexed with GIN: one- and two-character fragments of
  Chinese names and companies, pinyin syllables, initials and short name words. pg_trgm cannot
  index a two-character Chinese fragment such as 张伟, and these keys can.

`search_q` turns what a user typed into a filter over those columns (or over email and phone).
"""

import re
import unicodedata

import phonenumbers
from django.conf import settings
from django.db.models import Q
from django.db.models.functions import Right
from django.db.models.lookups import Exact
from pypinyin import Style, lazy_pinyin, pinyin

MAX_QUERY_LENGTH = 100

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_WORD = re.compile(r"[0-9a-z]+")
_PHONE_LIKE = re.compile(r"^[+\d][\d\s\-().]*$")


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


def search_fields(*, display_name, family_name="", given_name="", company="", email=""):
    """The derived search columns for one customer, as a dict of field values."""
    name = normalize(display_name)
    family, given = normalize(family_name), normalize(given_name)
    company = normalize(company)
    syllables = lazy_pinyin(name)
    words = [w for part in syllables for w in _WORD.findall(part)]
    compact = "".join(words)
    initials = "".join(w[0] for w in words)

    keys = _fragments(name) | _fragments(family + given) | _fragments(company)
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

    text_parts = [name, name.replace(" ", ""), family + given, compact, initials, company]
    text_parts += alternatives
    text_parts.append(normalize(email))
    return {
        "name_pinyin": " ".join(w for w in syllables if w.strip())[:300],
        "search_text": " ".join(dict.fromkeys(p for p in text_parts if p)),
        "search_keys": sorted(k for k in keys if k)[:200],
    }


def normalize_phone(raw, region=None):
    """The E.164 form of a phone number, or None when it is not a valid number."""
    try:
        number = phonenumbers.parse(raw, region or settings.PHONE_DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def search_q(raw):
    """A Q object for what a user typed in the search box, or None when it is empty."""
    query = normalize(raw)[:MAX_QUERY_LENGTH]
    if not query:
        return None
    if "@" in query:
        return Q(email=query) | Q(search_text__contains=query)
    digits = re.sub(r"\D", "", query)
    if _PHONE_LIKE.match(query) and len(digits) >= 4:
        if len(digits) == 4 and digits == query:
            return Q(Exact(Right("phone", 4), digits))
        if phone := normalize_phone(query):
            return Q(phone=phone)
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
        if len(token) > 1 or latin:
            # The keys find candidates; the text check makes sure the characters are adjacent.
            condition &= Q(search_text__contains=token)
    return condition


def _latin_q(query):
    tokens = ["".join(_WORD.findall(t)) or t for t in query.split()]
    compact = "".join(tokens)
    if len(compact) <= 2:
        # Too short for trigrams: initials (zw), a pinyin syllable (li) or a short name word.
        return Q(search_keys__contains=[compact])
    condition = Q(search_text__contains=compact)
    if len(tokens) > 1 and all(len(t) >= 3 for t in tokens):
        every_token = Q()
        for token in tokens:
            every_token &= Q(search_text__contains=token)
        condition |= every_token
    return condition
