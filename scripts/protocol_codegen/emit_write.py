"""Emitting the writers: straight-line code appending one struct version to a writer's buffer
(consecutive fixed-width fields packed by one ``struct.Struct``, leaf structs encoded inside
their parent's loop, tagged fields written only when they differ from their default)."""

from __future__ import annotations

from .emit_base import EmitterBase, fixed_format
from .model import FIXED, FieldSpec, StructSpec, fixed_runs
from .values import codec_helper, default_expr, null_default


class WriteEmitter(EmitterBase):
    def write_body(self, st: StructSpec, v: int, flex: bool) -> str:
        lines = self.write_lines(st, v, flex, "o", "b", "w", "    ")
        if not lines:
            return "    pass\n"
        return "\n".join(["    b = w.buf", *lines]) + "\n"

    def write_lines(self, st: StructSpec, v: int, flex: bool, obj: str, b: str, w: str, ind: str) -> list[str]:
        """Statements appending ``obj`` (an ``st``) to bytearray ``b`` of writer ``w``."""
        out: list[str] = []
        regular, tagged = self.present(st, v)
        for run in fixed_runs(regular):
            f = run[0]
            if f.is_fixed():
                const = self.struct_const(fixed_format(run))
                vals = ", ".join(f"{obj}.{x.attr}.bytes" if x.type == "uuid" else f"{obj}.{x.attr}" for x in run)
                out.append(f"{ind}{b} += {const}.pack({vals})")
            else:
                self.write_field(f, v, self.field_flex(f, v, flex), f"{obj}.{f.attr}", b, w, out, ind)
        if flex:
            if not tagged:
                out.append(f"{ind}u = {obj}.unknown_tagged_fields")
                out.append(f"{ind}if u:")
                out.append(f"{ind}    {self.use('write_unknown_tags')}({b}, u)")
                out.append(f"{ind}else:")
                out.append(f"{ind}    {b}.append(0)")
            else:
                out.append(f"{ind}tags = []")
                for f in tagged:
                    self.write_tagged(f, v, obj, out, ind)
                out.append(f"{ind}u = {obj}.unknown_tagged_fields")
                out.append(f"{ind}if tags or u:")
                out.append(f"{ind}    {self.use('write_tags')}({b}, tags, u)")
                out.append(f"{ind}else:")
                out.append(f"{ind}    {b}.append(0)")
        return out

    def write_tagged(self, f: FieldSpec, v: int, obj: str, out: list[str], ind: str) -> None:
        """A known tagged field, encoded into a writer of its own and added to ``tags`` unless
        it holds its default."""
        out.append(f"{ind}v = {obj}.{f.attr}")
        if null_default(f):
            out.append(f"{ind}if v is not None:")
        elif f.struct is not None and not f.is_array:
            out.append(f"{ind}if v is None or not ({self.is_default_expr(f.struct, 'v')}):")
        else:
            out.append(f"{ind}if v != {default_expr(f)}:")
        i2 = ind + "    "
        out.append(f"{i2}t = {self.use('Writer')}()")
        field_out: list[str] = []
        self.write_field(f, v, True, "v", "tb", "t", field_out, i2)
        if any("tb" in line for line in field_out):
            out.append(f"{i2}tb = t.buf")
        out.extend(field_out)
        out.append(f"{i2}tags.append(({f.tag}, t.getvalue()))")

    def is_default_expr(self, st: StructSpec, var: str) -> str:
        """Expression: is every field of ``var`` (an ``st``) at its default?  Nested structs
        are checked by a generated ``_is_default_<Path>`` function."""
        conds = []
        for f in st.fields:
            if f.struct is not None and not f.is_array and not null_default(f):
                fn = self.is_default_fn(f.struct)
                conds.append(f"{var}.{f.attr} is not None and {fn}({var}.{f.attr})")
            elif f.is_array:
                conds.append(f"{var}.{f.attr} is None" if null_default(f) else f"{var}.{f.attr} == []")
            else:
                d = default_expr(f)
                conds.append(f"{var}.{f.attr} is None" if d == "None" else f"{var}.{f.attr} == {d}")
        conds.append(f"not {var}.unknown_tagged_fields")
        return " and ".join(conds)

    def is_default_fn(self, st: StructSpec) -> str:
        """Name of a generated ``_is_default_<Path>(v)``: is every field at its default?"""
        name = f"_is_default_{st.ident}"
        if name not in self.default_fns:
            self.default_fns.add(name)
            self.funcs.append(f"def {name}(v):\n    return {self.is_default_expr(st, 'v')}")
        return name

    def scalar_writer(self, t: str, flex: bool, nullable: bool, value: str, b: str, w: str) -> str:
        name = self.use(codec_helper("write", t, flex, nullable))
        return f"{name}({w}, {value}, {nullable})" if t == "records" else f"{name}({b}, {value})"

    def write_field(
        self, f: FieldSpec, v: int, flex: bool, value: str, b: str, w: str, out: list[str], ind: str
    ) -> None:
        nullable = v in f.nullable
        if f.is_array:
            self.write_array(f, v, flex, nullable, value, b, w, out, ind)
            return
        if f.struct is not None:
            fn = self.fn_name("write", f.struct, v)
            if nullable:
                out.append(f"{ind}s = {value}")
                out.append(f"{ind}if s is None:")
                # int8 -1, or for a tagged field the unsigned varint 0.
                out.append(f"{ind}    {b}.append({'0' if v in f.tagged else '0xFF'})")
                out.append(f"{ind}else:")
                out.append(f"{ind}    {b}.append(1)")
                out.append(f"{ind}    {fn}(s, {w})")
            else:
                out.append(f"{ind}{fn}({value}, {w})")
            return
        if f.type in FIXED:
            const = self.struct_const(fixed_format([f]))
            val = f"{value}.bytes" if f.type == "uuid" else value
            out.append(f"{ind}{b} += {const}.pack({val})")
            return
        out.append(f"{ind}{self.scalar_writer(f.type, flex, nullable, value, b, w)}")

    def write_array(
        self, f: FieldSpec, v: int, flex: bool, nullable: bool, value: str, b: str, w: str, out: list[str],
        ind: str
    ) -> None:
        local = "a"
        out.append(f"{ind}{local} = {value}")
        inner = ind
        if nullable:
            out.append(f"{ind}if {local} is None:")
            out.append(f"{ind}    {b}.append(0)" if flex else f"{ind}    {b} += b'\\xff\\xff\\xff\\xff'")
            out.append(f"{ind}else:")
            inner = ind + "    "
        if flex:
            out.append(f"{inner}{self.use('write_uvarint')}({b}, len({local}) + 1)")
        else:
            out.append(f"{inner}{b} += {self.struct_const('>i')}.pack(len({local}))")
        if f.type in FIXED and f.type != "uuid":
            code = FIXED[f.type][0]
            out.append(f"{inner}{b} += {self.use('pack_array')}({code!r}, {local})")
        elif f.type == "uuid":
            out.append(f"{inner}for item in {local}:")
            out.append(f"{inner}    {b} += item.bytes")
        elif f.struct is not None:
            fn = self.fn_name("write", f.struct, v)
            out.append(f"{inner}for item in {local}:")
            if self.is_leaf(f.struct, v):
                body = self.write_lines(f.struct, v, flex, "item", b, w, inner + "    ")
                out.extend(body or [f"{inner}    pass"])
            else:
                out.append(f"{inner}    {fn}(item, {w})")
        else:
            out.append(f"{inner}for item in {local}:")
            out.append(f"{inner}    {self.scalar_writer(f.type, flex, False, 'item', b, w)}")
