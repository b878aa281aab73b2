"""Every relative link and image in README.md and docs/*.md resolves, and the README stays short.

A link resolves when its file exists (relative to the linking file, inside the repository) and
its ``#fragment``, if any, is a heading anchor of the target Markdown file under GitHub's slug
rule. Links in fenced code blocks and inline code, and links with a scheme (http, https,
mailto, ...), are not checked.

Also: no page, comment, string or config names a repository file that does not exist (see
``missing_mentions`` below).
"""

import io
import re
import tokenize
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


# No doc, comment or generated file names a file that is not in the repository.
#
# A mention is a token that starts with one of the repository's top-level directories
# (``docs/method.md``, ``configs/tiny.yaml``, ``gradcheck/stats.py``) or is the bare name of a
# top-level file (``config.yaml``, ``Snakefile``, or any ``NAME.md`` in capitals, such as a
# ``README.md`` or a design document cited by a name it no longer has). It must exist under the
# repository root. Skipped: outputs of a run (``results/...``), templated paths (with ``{``, ``<``,
# ``*`` or ``$``) and anything inside a URL. Python files are scanned in their comments and strings
# only (strings become messages and generated files such as findings.md); every other file whole.

MENTION_SOURCES = ["README.md", "docs/**/*.md", "gradcheck/**/*.py", "rules/**/*.smk", "rules/captions/*.rst",
                   "Snakefile", "configs/*.yaml", "config.yaml", "benchmarks/*", "envs/*"]
OUTPUTS = "results"  # a run's outputs: named by the docs, not files of the repository
NOT_TOP_LEVEL = {".git", ".pytest_cache", ".snakemake", ".venv", "__pycache__"}  # caches and tools' state

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S*")
_TEMPLATED = set("{<*$")
_PATH_CHAR = r"[\w.\-/{}<>*$]"
_NOT_AFTER = r"(?<![\w./\-])"  # a mention starts a token: not inside a longer path or word


def top_level_names(root=ROOT):
    """(directories, files) at the repository root that a mention may start with."""
    entries = [p for p in root.iterdir() if p.name not in NOT_TOP_LEVEL and not p.name.endswith(".egg-info")]
    dirs = {p.name for p in entries if p.is_dir()} | {OUTPUTS}
    files = {p.name for p in entries if p.is_file() and not p.name.startswith(".")}
    return sorted(dirs), sorted(files)


def mention_pattern(root=ROOT):
    """A regex whose group 1 is every repository-relative path mention in a line."""
    dirs, files = top_level_names(root)
    path = "(?:%s)/%s*" % ("|".join(map(re.escape, dirs)), _PATH_CHAR)
    bare = r"(?:%s|[A-Z][A-Z0-9_]*\.md)(?![\w/\-]|\.\w)" % "|".join(map(re.escape, files))
    return re.compile(rf"{_NOT_AFTER}(?:\./)?({path}|{bare})")


def scanned_lines(path):
    """(line number, text) of what a file says to a reader: comments and strings of Python, else every line."""
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".py":
        yield from enumerate(text.splitlines(), 1)
        return
    kinds = {tokenize.STRING, tokenize.COMMENT, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type in kinds:
            for offset, line in enumerate(token.string.splitlines()):
                yield token.start[0] + offset, line


def missing_mentions(path, root=ROOT, pattern=None):
    """'file:line: names PATH, which is not in the repository' for every mention of a missing file."""
    pattern = pattern or mention_pattern(root)
    problems = []
    for number, line in scanned_lines(path):
        for match in pattern.finditer(_URL.sub(" ", line)):
            name = match.group(1).rstrip(".")
            if name.split("/")[0] == OUTPUTS or _TEMPLATED & set(name):
                continue
            if not (root / name).exists():
                problems.append(f"{path.relative_to(root)}:{number}: names {name}, which is not in the repository")
    return problems


def mention_sources(root=ROOT):
    found = {p for pattern in MENTION_SOURCES for p in root.glob(pattern) if p.is_file()}
    return sorted(p for p in found if "__pycache__" not in p.parts)


_SOURCES = mention_sources()
_PATTERN = mention_pattern()


@pytest.mark.parametrize("source", _SOURCES, ids=[str(p.relative_to(ROOT)) for p in _SOURCES])
def test_files_named_exist(source):
    problems = missing_mentions(source, pattern=_PATTERN)
    assert not problems, "names of files that are not in the repository:\n" + "\n".join(problems)


def test_mention_sources_found():
    names = {str(p.relative_to(ROOT)) for p in _SOURCES}
    assert {"README.md", "config.yaml", "Snakefile", "gradcheck/guidance.py", "rules/common.smk"} <= names
    assert not {n for n in names if n.startswith("tests/")}


def test_checker_reports_missing_files(tmp_path):
    for name in ("docs/method.md", "configs/tiny.yaml", "gradcheck/stats.py", "README.md", "config.yaml"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "See docs/method.md, configs/tiny.yaml and `gradcheck/stats.py`. README.md and config.yaml.\n"
        "Outputs: results/table1.csv. Templates: docs/{page}.md, configs/<name>.yaml, rules/*.smk, $OUT/x.\n"
        "Links: docs/method.md#top, https://example.com/docs/none.md, ../docs/none.md, a/docs/none.md,\n"
        "./docs/gone.md.\n"
        "Stale: DESIGN.md, docs/missing.md. and configs/gone.yaml: here; DESIGN.md's settings.\n")
    code = tmp_path / "gradcheck" / "mod.py"
    code.write_text('"""Reads docs/method.md."""\n'
                    'PATH = docs / "none"  # see gradcheck/gone.py\n'
                    'MESSAGE = f"{x} as CHANGES.md says"\n')
    assert missing_mentions(page, root=tmp_path) == [
        "docs/page.md:4: names docs/gone.md, which is not in the repository",
        "docs/page.md:5: names DESIGN.md, which is not in the repository",
        "docs/page.md:5: names docs/missing.md, which is not in the repository",
        "docs/page.md:5: names configs/gone.yaml, which is not in the repository",
        "docs/page.md:5: names DESIGN.md, which is not in the repository",
    ]
    assert missing_mentions(code, root=tmp_path) == [
        "gradcheck/mod.py:2: names gradcheck/gone.py, which is not in the repository",
        "gradcheck/mod.py:3: names CHANGES.md, which is not in the repository",
    ]


def test_no_page_keeps_a_template_placeholder():
    """A draft's {RUNTIME}-style placeholder must not reach a reader (outside code blocks)."""
    left = [(page.name, number, m.group()) for page in PAGES
            for number, line in _prose_lines(page.read_text(encoding="utf-8"))
            for m in re.finditer(r"\{[A-Z][A-Z_]{3,}\}", line)]
    assert left == []
