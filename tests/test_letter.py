"""Letters: golden output per decision, reproducible, escaped, self-contained."""
from __future__ import annotations

import os
import re
from pathlib import Path

import jinja2
import pytest

from audit_support import GOLDEN, NOW, batch_candidate
from screener.audit.letter import build_letter, environment, markdown_escape, render_letter
from screener.audit.trace import file_sha256
from screener.audit.chain import read_trace

UPDATE = os.environ.get("SCREENER_UPDATE_GOLDEN") == "1"


def letter_text(tmp_path: Path, kind: str, fmt: str, candidate_id: str = "P-001") -> str:
    return batch_candidate(tmp_path, kind, candidate_id).letters[fmt].read_text(encoding="utf-8")


@pytest.mark.parametrize("fmt", ["md", "html"])
@pytest.mark.parametrize("kind", ["eligible", "ineligible", "undetermined"])
def test_letter_matches_reviewed_golden_file(tmp_path: Path, kind: str, fmt: str):
    text = letter_text(tmp_path, kind, fmt)
    golden = GOLDEN / f"letter_{kind}.{fmt}"
    if UPDATE:
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_same_trace_gives_the_same_letter_byte_for_byte(tmp_path: Path, fmt: str):
    trace_path = batch_candidate(tmp_path, "ineligible").trace
    trace = read_trace(trace_path)
    first = render_letter(build_letter(trace, file_sha256(trace_path), NOW), fmt)
    second = render_letter(build_letter(read_trace(trace_path), file_sha256(trace_path), NOW), fmt)
    assert first == second


def test_letter_names_the_trace_by_the_hash_of_its_file(tmp_path: Path):
    written = batch_candidate(tmp_path, "eligible")
    assert f"sha256 {file_sha256(written.trace)}" in written.letters["md"].read_text()


def test_undetermined_letter_lists_what_is_missing(tmp_path: Path):
    text = letter_text(tmp_path, "undetermined", "md")
    assert "## Missing information\n\n- Currently pregnant \\| \\*or\\* not\n" in text
    assert "unknown (information missing)<br>missing: Currently pregnant \\| \\*or\\* not" in text


HOSTILE = '<script>alert("x")</script>|*_`[a](b)&amp;\n../../etc/passwd'


def test_hostile_candidate_id_is_escaped_in_html(tmp_path: Path):
    html = letter_text(tmp_path, "eligible", "html", HOSTILE)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;|*_`[a](b)&amp;amp;" in html


def test_hostile_candidate_id_is_escaped_in_markdown(tmp_path: Path):
    md = letter_text(tmp_path, "eligible", "md", HOSTILE)
    assert ("- **Candidate:** \\<script\\>alert(\"x\")\\</script\\>\\|\\*\\_\\`\\[a\\](b)"
            "\\&amp;<br>../../etc/passwd\n") in md


def test_html_letter_needs_no_network(tmp_path: Path):
    html = letter_text(tmp_path, "eligible", "html")
    assert not re.search(r"https?:|//|src=|<link|@import|url\(", html.replace("</", "<"))
    assert "<style>" in html


@pytest.mark.parametrize(("text", "escaped"), [
    ("plain words 18-75", "plain words 18-75"),
    ("a|b", "a\\|b"),
    ("*bold* _it_ `code`", "\\*bold\\* \\_it\\_ \\`code\\`"),
    ("<b>&", "\\<b\\>\\&"),
    ("[link](x)", "\\[link\\](x)"),
    ("back\\slash", "back\\\\slash"),
    ("one\ntwo\r\nthree\rfour", "one<br>two<br>three<br>four"),
    ("tab\there", "tab here"),
    ("# not a heading ~strike~", "\\# not a heading \\~strike\\~"),
], ids=["plain", "pipe", "emphasis", "html", "link", "backslash", "newlines", "tab", "heading"])
def test_markdown_escape(text: str, escaped: str):
    assert markdown_escape(text) == escaped


def test_templates_refuse_undefined_values():
    with pytest.raises(jinja2.UndefinedError):
        environment().get_template("letter.md.j2").render()


def test_html_template_is_autoescaped_despite_its_double_suffix():
    env = environment()
    assert env.autoescape("letter.html.j2") if callable(env.autoescape) else env.autoescape
    assert not env.autoescape("letter.md.j2")


def test_unknown_format_is_refused(tmp_path: Path):
    trace_path = batch_candidate(tmp_path, "eligible").trace
    letter = build_letter(read_trace(trace_path), "0" * 64, NOW)
    with pytest.raises(ValueError, match="unknown letter format 'pdf'"):
        render_letter(letter, "pdf")


@pytest.mark.parametrize("kind", ["eligible", "ineligible", "undetermined"])
def test_html_letter_tags_are_balanced(tmp_path: Path, kind: str):
    from html.parser import HTMLParser

    void = {"meta", "br", "col"}
    problems: list[str] = []
    open_tags: list[str] = []

    class Checker(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag not in void:
                open_tags.append(tag)

        def handle_endtag(self, tag):
            if not open_tags or open_tags.pop() != tag:
                problems.append(f"{self.getpos()}: </{tag}>")

    Checker().feed(letter_text(tmp_path, kind, "html", HOSTILE))
    assert (problems, open_tags) == ([], [])
