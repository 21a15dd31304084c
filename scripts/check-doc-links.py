#!/usr/bin/env python3
"""Check the documentation's links and paths (`just lint` runs it).

In README.md, CONTRIBUTING.md, CHANGELOG.md and docs/**/*.md:
- every relative Markdown link must name a file or directory that exists, and its #anchor,
  if any, a heading of that page;
- every repository path written in backticks (`host/src/policy.rs`, `tests/tests/faults.rs:42`,
  `host/src/{policy,stream}.rs`) must exist. A path counts as the repository's when its first
  part is a tracked top-level entry (so `target/...`, `/etc/passwd` and `nats:sink/transport`
  are not checked).
Exits 1 listing every problem as file:line.
"""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["README.md", "CONTRIBUTING.md", "CHANGELOG.md"]

LINK = re.compile(r"(?<!\!)\[[^\]]*\]\(([^)\s]+)\)")
CODE = re.compile(r"`([^`\n]+)`")
BRACES = re.compile(r"\{([^{}]*)\}")


def tracked_top_level():
    """Top-level names git tracks, plus the ones this change adds before they are committed."""
    out = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    names = {line.split("/", 1)[0] for line in out.splitlines() if line}
    return names | {p.name for p in ROOT.iterdir() if p.name not in ("target", ".git")}


def pages():
    found = [ROOT / p for p in PAGES if (ROOT / p).exists()]
    found += sorted((ROOT / "docs").rglob("*.md"))
    return found


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as dashes."""
    text = re.sub(r"`|\*|_(?=\W)|(?<=\W)_", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path):
    seen = {}
    result = set()
    in_fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        if in_fence or not line.startswith("#"):
            continue
        base = slug(line.lstrip("#"))
        n = seen.get(base, 0)
        seen[base] = n + 1
        result.add(base if n == 0 else f"{base}-{n}")
    return result


def expand(path):
    """`a/{b,c}.rs` as `a/b.rs` and `a/c.rs`."""
    m = BRACES.search(path)
    if not m:
        return [path]
    out = []
    for choice in m.group(1).split(","):
        out += expand(path[: m.start()] + choice.strip() + path[m.end() :])
    return out


def repo_paths(code, top):
    """The repository paths a backticked span names, if it names any."""
    for word in code.split():
        word = word.strip("'\"(),;")
        word = re.sub(r":\d+(-\d+)?$", "", word)  # a line citation
        if "/" not in word and word not in top:
            continue
        first = word.split("/", 1)[0]
        if first not in top or any(c in word for c in "*<>=$"):
            continue
        yield from expand(word)


def check(page, top):
    problems = []
    in_fence = False
    text = page.read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            in_fence = not in_fence
            continue
        where = f"{page.relative_to(ROOT)}:{number}"
        for target in LINK.findall(line) if not in_fence else []:
            if re.match(r"^[a-z]+:", target):
                continue  # https:, mailto:
            file_part, _, anchor = target.partition("#")
            linked = (page.parent / file_part).resolve() if file_part else page
            if not linked.exists():
                problems.append(f"{where}: link to missing {target}")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                problems.append(f"{where}: no heading #{anchor} in {file_part or page.name}")
        if in_fence:
            continue
        for code in CODE.findall(line):
            for path in repo_paths(code, top):
                if not (ROOT / path).exists():
                    problems.append(f"{where}: no such path {path}")
    return problems


def main():
    top = tracked_top_level()
    problems = [p for page in pages() for p in check(page, top)]
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} broken link(s) or path(s) in the documentation")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
