"""Every relative link and image in README.md and docs/*.md resolves, and the README stays short.

A link resolves when its file exists (relative to the linking file, inside the repository) and
its ``#fragment``, if any, is a heading anchor of the target Markdown file under GitHub's slug
rule. Links in fenced code blocks and inline code, and links with a scheme (http, https,
mailto, ...), are not checked.
"""

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README] + sorted(DOCS.glob("*.md"))
README_MAX_CHARS = 12_000

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_INLINE_CODE = re.compile(r"(`+)(.+?)\1")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
_HTML_ATTR = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']+)["']""", re.I)
_HTML_ANCHOR = re.compile(r"""<a\s[^>]*\b(?:name|id)\s*=\s*["']([^"']+)["']""", re.I)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")


def _prose_lines(text):
    """(line number, line) for every line outside fenced code blocks."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        match = _FENCE.match(line)
        if fence is None:
            if match:
                fence = match.group(1)
                continue
            yield number, line
        elif match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence) \
                and not line.strip()[len(match.group(1)):].strip():
            fence = None


def _plain(heading):
    """The text GitHub renders for a heading's inline Markdown."""
    text = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # image -> alt text
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # link -> link text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    text = _INLINE_CODE.sub(lambda m: m.group(2).strip(), text)
    text = re.sub(r"(?<!\w)_{1,2}(\S(?:.*?\S)?)_{1,2}(?!\w)", r"\1", text)  # _emphasis_
    return text.strip()


def slug(heading):
    """GitHub's anchor for a heading, before de-duplication."""
    kept = "".join(ch for ch in _plain(heading).lower()
                   if ch in " -_" or unicodedata.category(ch)[0] in "LMN")
    return kept.replace(" ", "-")


def anchors(text):
    """Every anchor GitHub generates for a Markdown text (duplicates get -1, -2, ...)."""
    seen, result = {}, set()
    previous = ""
    headings = []
    for _, line in _prose_lines(text):
        atx = _ATX.match(line)
        if atx:
            headings.append(atx.group(2) or "")
        elif _SETEXT.match(line) and previous.strip() and not _ATX.match(previous) \
                and not previous.lstrip().startswith(("|", "-", "*", "+", ">")):
            headings.append(previous.strip())
        result.update(_HTML_ANCHOR.findall(line))
        previous = line
    for heading in headings:  # github-slugger's de-duplication
        base = candidate = slug(heading)
        while candidate in seen:
            seen[base] += 1
            candidate = f"{base}-{seen[base]}"
        seen[candidate] = 0
        result.add(candidate)
    return result


def links(text):
    """(line number, target) for every link, image and link definition outside code."""
    for number, line in _prose_lines(text):
        line = _INLINE_CODE.sub(lambda m: "code", line)
        for target in _LINK.findall(line) + _REFERENCE.findall(line) + _HTML_ATTR.findall(line):
            yield number, target


def broken_links(page, root=ROOT):
    """Every relative link of a Markdown file that does not resolve, with the reason."""
    problems = []
    for number, target in links(page.read_text(encoding="utf-8")):
        if _SCHEME.match(target):
            continue  # http(s), mailto and other external links
        where = f"{page.relative_to(root)}:{number}: ({target})"
        path, _, fragment = target.partition("#")
        resolved = (page.parent / unquote(path)).resolve() if path else page
        if not path and not fragment:
            problems.append(f"{where}: empty link")
            continue
        if not resolved.is_relative_to(root):
            problems.append(f"{where}: points outside the repository")
            continue
        if not resolved.exists():
            problems.append(f"{where}: no such file {resolved.relative_to(root)}")
            continue
        if fragment and resolved.is_file() and resolved.suffix.lower() == ".md":
            if unquote(fragment) not in anchors(resolved.read_text(encoding="utf-8")):
                problems.append(f"{where}: no heading with anchor #{fragment} "
                                f"in {resolved.relative_to(root)}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_links_resolve(page):
    problems = broken_links(page)
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_readme_stays_short():
    size = len(README.read_text(encoding="utf-8"))
    assert size < README_MAX_CHARS, (
        f"README.md has {size} characters (limit {README_MAX_CHARS}): "
        "move details to a page under docs/ and link it from the README")


def test_readme_links_every_docs_page():
    linked = {(README.parent / unquote(t.partition("#")[0])).resolve()
              for _, t in links(README.read_text(encoding="utf-8")) if not _SCHEME.match(t)}
    pages = sorted(DOCS.glob("*.md"))
    assert pages, "no pages under docs/"
    assert [p.name for p in pages if p.resolve() not in linked] == []


def test_every_figure_is_shown():
    shown = {(page.parent / unquote(t.partition("#")[0])).resolve()
             for page in PAGES for _, t in links(page.read_text(encoding="utf-8"))
             if not _SCHEME.match(t)}
    figures = sorted((DOCS / "figures").glob("*.png"))
    assert [f.name for f in figures if f.resolve() not in shown] == []


# The checker itself, on known cases.

@pytest.mark.parametrize("heading, expected", [
    ("Why the paper's headline cell does not reproduce: the sensitivity study",
     "why-the-papers-headline-cell-does-not-reproduce-the-sensitivity-study"),
    ("Numbers you can trust: judge, KID, seeds, intervals, verdicts",
     "numbers-you-can-trust-judge-kid-seeds-intervals-verdicts"),
    ("Beyond one machine: SLURM, conda, GPUs", "beyond-one-machine-slurm-conda-gpus"),
    ("The `threads_per_job` key", "the-threads_per_job-key"),
    ("**Bold** and [a link](x.md) -- here", "bold-and-a-link----here"),
    ("Größe × Ä 2", "größe--ä-2"),
])
def test_slug(heading, expected):
    assert slug(heading) == expected


def test_anchors_number_duplicates_and_skip_code():
    text = "# Results\n## Results\n```\n# Not a heading\n```\nResults\n-------\n## Results-1\n"
    assert anchors(text) == {"results", "results-1", "results-2", "results-1-1"}


def test_checker_reports_broken_links(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("# Other page\n## A section\n")
    page = tmp_path / "README.md"
    page.write_text(
        "# Top\n"
        "[ok](docs/other.md#a-section) [ok](#top) [ok](https://example.com/x.md#nope)\n"
        "`[code](missing.md)` [`code text`](docs/other.md)\n"
        "```\n[fenced](missing.md)\n```\n"
        "[bad file](docs/missing.md) ![bad image](docs/figures/x.png)\n"
        "[bad anchor](docs/other.md#b-section) [bad local](#nowhere)\n")
    problems = broken_links(page, root=tmp_path)
    assert len(problems) == 4, problems
    assert all(p.startswith("README.md:") for p in problems)
    assert "README.md:7: (docs/missing.md): no such file docs/missing.md" in problems
    assert any("(docs/figures/x.png)" in p for p in problems)
    assert any("#b-section in docs/other.md" in p for p in problems)
    assert any("README.md:8: (#nowhere)" in p for p in problems)
