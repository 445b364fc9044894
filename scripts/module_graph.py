#!/usr/bin/env python3
"""Prints the import edges between the top-level modules of a crate and fails on a cycle.

Usage: scripts/module_graph.py crates/lmsoftmax-loss/src

An edge `a -> b` is any `crate::b` path in the code of module `a` (a file `a.rs` or a folder
`a/`), including `crate::{b, ..}` groups and names that lib.rs re-exports from `b`
(`pub use b::Name`). Comments and doc comments are skipped: an intra-doc link is not an import.
"""

import os
import re
import sys


def module_edges(src):
    reexport = {}
    lib = open(os.path.join(src, "lib.rs")).read()
    for m in re.finditer(r"pub use ([a-z_][a-z0-9_]*)::(\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)\s*;", lib):
        for item in m.group(2).strip("{}").split(","):
            if item.strip():
                reexport[item.strip()] = m.group(1)

    def is_module(name):
        return os.path.isfile(os.path.join(src, name + ".rs")) or os.path.isdir(os.path.join(src, name))

    edges = set()
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(root, f), src)
            module = rel[:-3].split(os.sep)[0]
            if module in ("lib", "main"):
                continue
            code = "\n".join(
                line for line in open(os.path.join(root, f)).read().splitlines()
                if not line.lstrip().startswith("//")
            )
            names = [n for g in re.findall(r"crate::\{([^}]*)\}", code) for n in g.split(",")]
            names += re.findall(r"crate::([A-Za-z_][A-Za-z0-9_]*)", code)
            for name in names:
                name = name.strip().split("::")[0].strip()
                target = reexport.get(name, name)
                if target and target != module and is_module(target):
                    edges.add((module, target))
    return edges


def cycles(edges):
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    state, stack, found = {}, [], []

    def visit(u):
        state[u] = "open"
        stack.append(u)
        for v in sorted(graph.get(u, ())):
            if state.get(v) == "open":
                found.append(stack[stack.index(v):] + [v])
            elif v not in state:
                visit(v)
        stack.pop()
        state[u] = "done"

    for u in sorted(graph):
        if u not in state:
            visit(u)
    return found


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    edges = module_edges(sys.argv[1])
    for a, b in sorted(edges):
        print(f"{a} -> {b}")
    found = cycles(edges)
    for c in found:
        print("cycle: " + " -> ".join(c))
    if found:
        sys.exit(1)
    print("no cycle")


if __name__ == "__main__":
    main()
