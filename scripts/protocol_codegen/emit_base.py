"""What the reading and writing emitters share: the module's generated functions and constants
so far, the helpers it imports, and per struct and version one reader and one writer function
(versions whose code is identical share one)."""

from __future__ import annotations

import re
from typing import cast

from .model import FIXED, FieldSpec, StructSpec, Versions

STRUCT_NAME_CODE = {"b": "b", "h": "h", "H": "H", "i": "i", "I": "I", "q": "q", "d": "d", "?": "o", "16s": "u"}


def fixed_format(run: list[FieldSpec]) -> str:
    """The big-endian ``struct`` format of a run of fixed-width fields."""
    return ">" + "".join(FIXED[f.type][0] for f in run)


class EmitterBase:
    def __init__(self) -> None:
        self.structs_fmt: dict[str, str] = {}  # format -> constant name
        self.funcs: list[str] = []
        self.canon: dict[tuple[str, str, int], str] = {}  # (kind, ident, v) -> function name
        self.imports: set[str] = set()
        self.common_flexible: dict[str, Versions] = {}
        self.generated: set[str] = set()
        self.default_fns: set[str] = set()

    # -- helpers -------------------------------------------------------------------------
    def use(self, name: str) -> str:
        self.imports.add(name)
        return "_" + name

    def struct_const(self, fmt: str) -> str:
        if fmt not in self.structs_fmt:
            codes = re.findall(r"16s|.", fmt[1:])
            self.structs_fmt[fmt] = "_S_" + "".join(STRUCT_NAME_CODE[c] for c in codes)
        return self.structs_fmt[fmt]

    # -- per struct ---------------------------------------------------------------------
    def fn_name(self, kind: str, st: StructSpec, v: int) -> str:
        if st.common and st.ident not in self.generated:
            self.gen_struct(st, self.common_flexible[st.name])
        return self.canon[(kind, st.ident, v)]

    def gen_struct(self, st: StructSpec, flexible: Versions) -> None:
        """Emit reader and writer functions for ``st`` (children first)."""
        if st.ident in self.generated:
            return
        self.generated.add(st.ident)
        for child in st.children:
            self.gen_struct(child, flexible)
        for kind in ("read", "write"):
            seen: dict[str, str] = {}
            for v in sorted(st.versions):
                flex = v in flexible
                body = self.read_body(st, v, flex) if kind == "read" else self.write_body(st, v, flex)
                name = f"_{kind}_{st.ident}_v{v}"
                if body in seen:
                    self.canon[(kind, st.ident, v)] = seen[body]
                    alias = f"{name} = {seen[body]}"
                    if self.funcs and self.funcs[-1].startswith("_"):
                        self.funcs[-1] += "\n" + alias
                    else:
                        self.funcs.append(alias)
                    continue
                seen[body] = name
                self.canon[(kind, st.ident, v)] = name
                args = "(buf, pos)" if kind == "read" else "(o, w)"
                self.funcs.append(f"def {name}{args}:\n{body.rstrip()}")

    def version_table(self, kind: str, st: StructSpec) -> str:
        """The tuple of ``st``'s ``kind`` functions indexed by version (None where absent)."""
        hi = max(st.versions) if st.versions else -1
        names = [self.canon[(kind, st.ident, v)] if v in st.versions else "None" for v in range(hi + 1)]
        return f"({''.join(n + ', ' for n in names)})"

    def read_body(self, st: StructSpec, v: int, flex: bool) -> str:
        raise NotImplementedError

    def write_body(self, st: StructSpec, v: int, flex: bool) -> str:
        raise NotImplementedError

    @staticmethod
    def present(st: StructSpec, v: int) -> tuple[list[FieldSpec], list[FieldSpec]]:
        """The fields ``v`` sends: the regular ones in order, the tagged ones by tag."""
        regular = [f for f in st.fields if v in f.versions and v not in f.tagged]
        tagged = [f for f in st.fields if v in f.versions and v in f.tagged]
        tagged.sort(key=lambda f: cast(int, f.tag))  # a tagged field has a tag
        return regular, tagged

    @staticmethod
    def field_flex(f: FieldSpec, v: int, flex: bool) -> bool:
        if f.flexible_override is not None:
            return flex and v in f.flexible_override
        return flex

    def is_leaf(self, st: StructSpec, v: int) -> bool:
        """No arrays, structs or known tagged fields in ``v``: simple enough to inline."""
        regular, tagged = self.present(st, v)
        return not tagged and all(not f.is_array and f.struct is None for f in regular)
