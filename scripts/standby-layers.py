#!/usr/bin/env python3
"""Import cycles between the modules of daemon/src/standby.

Every file under daemon/src/standby is one module (`mod.rs` is its folder's module). An edge
A -> B means a path in A's code (a `use` or an inline path: `super::...`, `crate::standby::...`,
`self::...`, or a child module's name in a `mod.rs`) names an item of B. A name a `mod.rs`
re-exports (`pub use record::PairRecord;`) counts as the file that defines it, so importing
through a folder's `mod.rs` is no dependency on the folder as a whole. Test code (`#[cfg(test)]`
items, `tests.rs` and `*_tests.rs` files) is left out: tests may reach anywhere.

Prints each strongly connected group of modules with one cycle through it and exits 1 when
there is any; exits 0 and prints the module count when there is none. Edges listed in
`scripts/standby-layers.allow` (`from -> to  # why`) are known debts and left out (said so).

    scripts/standby-layers.py [--root daemon/src/standby] [--allow FILE] [--edges] [--count]
"""

import argparse
import os
import re
import sys

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip_code(text):
    """Drops comments, string and char literals (keeps line structure)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    if text[i] == "\n":
                        out.append("\n")
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not re.match(r"[A-Za-z0-9_]", text[i - 1])):
            m = re.match(r'r(#*)"', text[i:])
            end = '"' + m.group(1)
            j = text.find(end, i + len(m.group(0)))
            j = n if j < 0 else j + len(end)
            out.append('""')
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""')
            i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]) or (c == "'" and re.match(r"'\\u\{[0-9a-fA-F]+\}'", text[i:])):
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", text[i:])
            out.append("' '")
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def skip_item(code, start):
    """End of the item starting at `start`: its `;` or its balanced `{...}`."""
    depth, i = 0, start
    while i < len(code):
        ch = code[i]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        elif ch == ";" and depth == 0:
            return i + 1
        i += 1
    return len(code)


def drop_tests(code):
    """Removes `#[cfg(test)]` items."""
    while True:
        m = re.search(r"#\[cfg\(test\)\]", code)
        if not m:
            return code
        end = skip_item(code, m.end())
        code = code[:m.start()] + "\n" * code[m.start():end].count("\n") + code[end:]


def parse_use_tree(s):
    """Paths of a use tree (`a::{b, c::d as e, f::*}`) as lists of segments."""
    s = re.sub(r"\s+as\s+" + IDENT, "", s)
    s = re.sub(r"\s+", "", s)
    paths = []

    def walk(prefix, text):
        # split `text` at top-level commas
        parts, depth, cur = [], 0, ""
        for ch in text:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        if cur:
            parts.append(cur)
        for p in parts:
            if "{" in p:
                head, rest = p.split("{", 1)
                segs = [x for x in head.split("::") if x]
                walk(prefix + segs, rest[:-1])
            else:
                segs = [x for x in p.split("::") if x]
                paths.append(prefix + segs)

    walk([], s)
    return paths


class Module:
    def __init__(self, path, file, is_dir):
        self.path = path  # tuple of segments below standby
        self.file = file
        self.is_dir = is_dir
        self.children = set()
        self.reexports = {}  # name -> absolute path (tuple) it names
        self.code = ""

    @property
    def name(self):
        return "::".join(self.path) if self.path else "(standby)"


def load(root):
    mods = {}
    for dirpath, _dirs, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        base = () if rel == "." else tuple(rel.split(os.sep))
        for f in sorted(files):
            if not f.endswith(".rs"):
                continue
            stem = f[:-3]
            if stem == "tests" or stem.endswith("_tests") or "tests" in base:
                continue
            if stem == "mod":
                path, is_dir = base, True
            else:
                path, is_dir = base + (stem,), False
            m = Module(path, os.path.join(dirpath, f), is_dir)
            with open(m.file, encoding="utf-8") as fh:
                m.code = drop_tests(strip_code(fh.read()))
            mods[path] = m
    for path in mods:
        if path and path[:-1] in mods:
            mods[path[:-1]].children.add(path[-1])
    return mods


def absolute(mod, segs):
    """`segs` as seen from `mod`, as a path below standby (None: outside it)."""
    here = mod.path
    if segs[0] == "crate":
        if len(segs) > 1 and segs[1] == "standby":
            return tuple(segs[2:])
        return None
    if segs[0] == "self":
        return here + tuple(segs[1:])
    if segs[0] == "super":
        up = here
        while segs and segs[0] == "super":
            if not up:
                return None
            up, segs = up[:-1], segs[1:]
        return up + tuple(segs)
    if segs[0] in mod.children and mod.is_dir:
        return here + tuple(segs)
    return None


def collect_reexports(mods):
    for m in mods.values():
        for u in re.finditer(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]+);", m.code):
            for segs in parse_use_tree(u.group(1)):
                if not segs or segs[-1] in ("*", "self"):
                    continue
                target = absolute(m, segs)
                if target is not None:
                    m.reexports[segs[-1]] = target


def resolve(mods, target, depth=0):
    """The module that defines what `target` names."""
    cur = ()
    segs = list(target)
    while segs:
        s = segs[0]
        if s in ("self",):
            segs = segs[1:]
            continue
        if cur + (s,) in mods:
            cur, segs = cur + (s,), segs[1:]
            continue
        m = mods.get(cur)
        if m and s in m.reexports and depth < 20:
            return resolve(mods, m.reexports[s] + tuple(segs[1:]), depth + 1)
        break
    return cur


def edges_of(mods, m):
    out = set()
    code = m.code
    # Re-exports of a mod.rs are how names are found, not dependencies of the folder itself.
    code_wo_pub_use = re.sub(r"\bpub(?:\([^)]*\))?\s+use\s+[^;]+;", "", code)
    paths = []
    for u in re.finditer(r"(?<![A-Za-z0-9_:])use\s+([^;]+);", code_wo_pub_use):
        paths.extend(parse_use_tree(u.group(1)))
    # Inline paths: in the code outside `use` items (those were parsed whole above).
    body = re.sub(r"(?<![A-Za-z0-9_:])use\s+[^;]+;", "", code_wo_pub_use)
    inline = r"(?<![A-Za-z0-9_:])((?:crate::standby|self|super(?:::super)*)(?:::" + IDENT + ")+)"
    for p in re.finditer(inline, body):
        paths.append(p.group(1).split("::"))
    if m.is_dir:
        for c in m.children:
            for p in re.finditer(r"(?<![A-Za-z0-9_:])(" + c + r"(?:::" + IDENT + ")+)", body):
                paths.append(p.group(1).split("::"))
    # A module brought in by `use` (`use crate::standby::dump;`, `use super::loader::{self, ..}`)
    # and then named in the code (`dump::on_marked`) counts as the file that defines the item.
    for segs in list(paths):
        if not segs:
            continue
        if segs[-1] == "self":
            segs = segs[:-1]
        target = absolute(m, segs) if segs else None
        if target is not None and target in mods and segs[-1] not in m.children:
            alias = segs[-1]
            for p in re.finditer(r"(?<![A-Za-z0-9_:])" + alias + r"((?:::" + IDENT + ")+)", body):
                paths.append(list(target) and ["crate", "standby"] + list(target) + p.group(1).split("::")[1:])
    for segs in paths:
        if not segs:
            continue
        target = absolute(m, segs)
        if target is None:
            continue
        dest = resolve(mods, target)
        if dest != m.path and dest in mods:
            out.add(dest)
    return out


def sccs(graph):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return [c for c in out if len(c) > 1]


def one_cycle(graph, comp):
    """A shortest cycle through the group's first module."""
    comp = set(comp)
    start = min(comp)
    prev, queue, seen = {}, [start], {start}
    while queue:
        v = queue.pop(0)
        for w in sorted(graph.get(v, ())):
            if w not in comp:
                continue
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(prev[path[-1]])
                return list(reversed(path)) + [start]
            if w not in seen:
                seen.add(w)
                prev[w] = v
                queue.append(w)
    return [start]


def count_cycles(graph, limit=100000):
    """Elementary cycles (Johnson's idea, simple search over ordered start nodes), capped."""
    nodes = sorted(graph)
    order = {v: i for i, v in enumerate(nodes)}
    total = 0
    for s in nodes:
        stack = [(s, iter(sorted(w for w in graph[s] if order[w] >= order[s])))]
        on_path = {s}
        while stack:
            v, it = stack[-1]
            w = next(it, None)
            if w is None:
                stack.pop()
                on_path.discard(v)
                continue
            if w == s:
                total += 1
                if total >= limit:
                    return total
            elif w not in on_path:
                on_path.add(w)
                stack.append((w, iter(sorted(x for x in graph[w] if order[x] >= order[s]))))
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--root", default=os.path.join(here, "..", "daemon", "src", "standby"))
    ap.add_argument("--allow", default=os.path.join(here, "standby-layers.allow"), help="known edges to leave out")
    ap.add_argument("--edges", action="store_true", help="print every edge")
    ap.add_argument("--count", action="store_true", help="also count elementary cycles (may be slow)")
    args = ap.parse_args()
    mods = load(args.root)
    collect_reexports(mods)
    name = lambda p: mods[p].name
    graph = {p: edges_of(mods, m) for p, m in mods.items()}
    allowed = []
    if args.allow and os.path.exists(args.allow):
        by_name = {m.name: p for p, m in mods.items()}
        with open(args.allow, encoding="utf-8") as fh:
            for line in fh:
                edge = line.split("#", 1)[0].strip()
                if not edge:
                    continue
                a, b = (x.strip() for x in edge.split("->"))
                if by_name.get(a) in graph and by_name.get(b) in graph[by_name[a]]:
                    graph[by_name[a]].discard(by_name[b])
                    allowed.append(edge)
    if args.edges:
        for p in sorted(graph):
            for q in sorted(graph[p]):
                print(f"{name(p)} -> {name(q)}")
    groups = sccs(graph)
    if args.count:
        print(f"elementary cycles: {count_cycles(graph)}")
    for edge in allowed:
        print(f"known edge left out (see {os.path.basename(args.allow)}): {edge}")
    if not groups:
        print(f"standby layers: {len(mods)} modules, no import cycle")
        return 0
    print(f"standby layers: {len(mods)} modules, {len(groups)} group(s) of modules import each other in a cycle")
    for comp in groups:
        cyc = one_cycle(graph, comp)
        print(f"- {len(comp)} modules: {', '.join(sorted(name(p) for p in comp))}")
        print(f"  cycle: {' -> '.join(name(p) for p in cyc)}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
