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


def test_a_block_rendered_at_once_is_each_row_rendered_alone_and_so_is_each_variant():
    columns = ["a", "b", "c"]
    rows = [["{0}", "{b}", "}{"], ["", "line\nbreak", "🙂"], ["%s", "{{ a }}", "x"], ["has\x00nul", "y", "z"]]
    for template in ("Say {{ a }} then {{ b }}{{ c }}!", "{{ c }}", "no cells", "{ {{ a }} }"):
        compiled = prompts.compile_template(template, columns)
        variant = tuple(part.upper() + "·" for part in compiled.parts)
        shorter = prompts.CompiledTemplate(variant, compiled.columns)
        joined, other = compiled.render_joined(rows[:3], "\x00", variant)
        assert joined.split("\x00") == [compiled.render(row) for row in rows[:3]]
        assert other.split("\x00") == [shorter.render(row) for row in rows[:3]]
        # A cell holding the joining character: the texts come as a list, each whole.
        texts = compiled.render_joined(rows, "\x00", variant)
        for got, template_of in zip(texts, (compiled, shorter), strict=True):
            expected = [template_of.render(row) for row in rows]
            nul = any("\x00" in text for text in expected)
            assert got == (expected if nul else "\x00".join(expected))
        assert compiled.render_joined([], "\x00") == [[]]
