import pytest

from jobs.formats import prompts

COLUMNS = ["Review Text", "Ünïcode name", "price ($)", "id"]


def test_it_finds_placeholders_with_spaces_accents_and_punctuation():
    template = "Review: {{ Review Text }} by {{Ünïcode name}} at {{  price ($)  }}"
    assert prompts.placeholders(template) == ["Review Text", "Ünïcode name", "price ($)"]


def test_it_lists_unknown_placeholders_once_in_order():
    template = "{{ nope }} {{ id }} {{ Nope }} {{ nope }}"
    assert prompts.unknown_placeholders(template, COLUMNS) == ["nope", "Nope"]


def test_it_renders_a_row_literally():
    compiled = prompts.compile_template("Say {{ Review Text }} for #{{ id }}.", COLUMNS)
    assert compiled.render(["great", "x", "1", "42"]) == "Say great for #42."


def test_a_cell_that_looks_like_a_placeholder_is_not_expanded_again():
    compiled = prompts.compile_template("{{ Review Text }}", COLUMNS)
    assert compiled.render(["{{ id }}", "", "", "42"]) == "{{ id }}"


def test_template_syntax_of_other_engines_is_plain_text():
    template = "{0.__class__} {% for x in y %} {{ id }} ${id}"
    compiled = prompts.compile_template(template, COLUMNS)
    assert compiled.render(["", "", "", "7"]) == "{0.__class__} {% for x in y %} 7 ${id}"


def test_compiling_an_unknown_placeholder_names_it():
    with pytest.raises(KeyError) as exc:
        prompts.compile_template("{{ missing }}", COLUMNS)
    assert exc.value.args[0] == "missing"


@pytest.mark.parametrize(
    "column",
    ["{{x}}", "}} tail", 'say "hi"', "back\\slash", " padded ", "{", "", "line\nbreak", "plain name"],
)
def test_every_header_has_a_placeholder_that_names_it_back(column):
    columns = ["other", column]
    template = f"Before {prompts.placeholder(column)} after"
    assert prompts.unknown_placeholders(template, columns) == []
    assert prompts.compile_template(template, columns).render(["o", "VALUE"]) == "Before VALUE after"


def test_plain_headers_keep_the_plain_form_and_braces_are_quoted():
    assert prompts.placeholder("Review Text") == "{{ Review Text }}"
    assert prompts.placeholder("{{x}}") == '{{ "{{x}}" }}'
