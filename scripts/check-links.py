#!/usr/bin/env python3
"""Checks that every relative link in the README and docs/ resolves: the file
exists and, for `file.md#anchor` or `#anchor`, the target has a heading with
that anchor (GitHub's rule: lower case, punctuation dropped, spaces to
hyphens, repeats numbered -1, -2, ...). Web links are not fetched.

    python3 scripts/check-links.py        # exits 1 and lists the broken ones
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def documents():
    """The Markdown files users read: the README, docs/, the client's README."""
    yield os.path.join(ROOT, "README.md")
    for folder in ("docs", os.path.join("clients", "python")):
        base = os.path.join(ROOT, folder)
        for name in sorted(os.listdir(base)):
            if name.endswith(".md"):
                yield os.path.join(base, name)


def prose_lines(path):
    """The file's lines outside fenced code blocks, with their numbers."""
    inside = False
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if FENCE.match(line):
                inside = not inside
                continue
            if not inside:
                yield number, line


def slug(heading):
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"`|\*|_(?=\w)|(?<=\w)_", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path, cache={}):
    """Every heading anchor of a Markdown file."""
    if path not in cache:
        found, seen = set(), {}
        for _, line in prose_lines(path):
            m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
            if not m:
                continue
            base = slug(m.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
        cache[path] = found
    return cache[path]


def broken_links():
    for doc in documents():
        for number, line in prose_lines(doc):
            line = re.sub(r"`[^`]*`", "", line)  # code spans hold no links
            for m in LINK.finditer(line):
                target = m.group(1) or m.group(2)
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, mailto: ...
                    continue
                path, _, anchor = target.partition("#")
                resolved = os.path.normpath(os.path.join(os.path.dirname(doc), path)) if path else doc
                where = f"{os.path.relpath(doc, ROOT)}:{number}"
                if not os.path.exists(resolved):
                    yield f"{where}: {target}: no such file"
                elif anchor and resolved.endswith(".md") and anchor not in anchors(resolved):
                    yield f"{where}: {target}: no heading with anchor #{anchor}"


def main():
    broken = list(broken_links())
    for line in broken:
        print(line)
    checked = sum(1 for _ in documents())
    print(f"{checked} documents checked, {len(broken)} broken links")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
