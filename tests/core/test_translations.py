"""The Simplified Chinese translation is complete, current and compiled."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

LOCALE = Path(settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES"
SOURCES = ["manage.py", "cims", "accounts", "customers", "intake", "reports", "templates"]


def _statistics(po_file):
    """GNU msgfmt's count of translated, fuzzy and untranslated messages in a catalog."""
    result = subprocess.run(
        ["msgfmt", "--statistics", "-o", os.devnull, po_file], capture_output=True, text=True
    )
    return result.stderr.strip()


@pytest.fixture(scope="module")
def refreshed_catalog(tmp_path_factory):
    """The catalog as `make messages` would leave it after extracting today's sources."""
    if not shutil.which("xgettext"):
        pytest.fail("GNU gettext is needed to check translations (apt-get install gettext)")
    root = tmp_path_factory.mktemp("project")
    for name in SOURCES:
        source = Path(settings.BASE_DIR) / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, root / name)
    shutil.copytree(LOCALE.parent.parent, root / "locale")
    # Extraction reads files only; addresses are given so manage.py starts no servers.
    env = {**os.environ, "DATABASE_URL": "postgres://unused@localhost/unused"}
    env["REDIS_URL"] = "redis://localhost:1/0"
    command = ["makemessages", "--locale", "zh_Hans", "--no-obsolete", "--add-location", "file"]
    subprocess.run(
        [sys.executable, "manage.py", *command], cwd=root, env=env, check=True, capture_output=True
    )
    return root / "locale/zh_Hans/LC_MESSAGES/django.po"


def test_every_translatable_string_has_a_chinese_translation(refreshed_catalog):
    statistics = _statistics(refreshed_catalog)
    assert "translated messages" in statistics
    assert "fuzzy" not in statistics
    assert "untranslated" not in statistics


def test_compiled_catalog_matches_its_source(tmp_path):
    compiled = tmp_path / "django.mo"
    subprocess.run(["msgfmt", "--check", "-o", compiled, LOCALE / "django.po"], check=True)
    assert compiled.read_bytes() == (LOCALE / "django.mo").read_bytes()
