from cims.bench import SECTION, replace_section

OURS = f"{SECTION}\n\nNew figures.\n"


def test_the_section_is_added_to_a_new_report():
    assert replace_section("# Benchmarks\n", OURS) == f"# Benchmarks\n\n{OURS}"


def test_only_the_section_is_replaced_and_the_others_are_kept():
    document = (
        "# Benchmarks\n\n## Imports\n\nImport figures.\n\n"
        f"{SECTION}\n\nOld figures.\n\n### Detail\n\nOld detail.\n\n## Reports\n\nReport figures.\n"
    )
    assert replace_section(document, OURS) == (
        "# Benchmarks\n\n## Imports\n\nImport figures.\n\n"
        f"{SECTION}\n\nNew figures.\n\n## Reports\n\nReport figures.\n"
    )
