"""Emitting the readers: straight-line code decoding one struct version from ``buf`` at ``pos``
(consecutive fixed-width fields through one ``struct.Struct``, array counts checked against the
bytes left, records as zero-copy slices, leaf structs decoded inside their parent's loop)."""

from __future__ import annotations

from .emit_base import EmitterBase, fixed_format
from .model import FIXED, FieldSpec, StructSpec, fixed_runs
from .values import class_ref, codec_helper, default_expr, is_lazy


class ReadEmitter(EmitterBase):
    def read_body(self, st: StructSpec, v: int, flex: bool) -> str:
        out = self.read_lines(st, v, flex, "o", "    ")
        out.append("    return o, pos")
        return "\n".join(out) + "\n"

    def read_lines(self, st: StructSpec, v: int, flex: bool, obj: str, ind: str) -> list[str]:
        """Statements decoding one ``st`` into the new object ``obj``, advancing ``pos``."""
        out: list[str] = []
        out.append(f"{ind}{obj} = _new({class_ref(st)})")
        regular, tagged = self.present(st, v)
        for run in fixed_runs(regular):
            f = run[0]
            if f.is_fixed():
                self.read_fixed_run(run, obj, out, ind)
            else:
                self.read_field(f, v, self.field_flex(f, v, flex), f"{obj}.{f.attr}", out, ind)
        present = {id(f) for f in regular}
        for f in st.fields:
            if id(f) not in present and not is_lazy(f):
                out.append(f"{ind}{obj}.{f.attr} = {default_expr(f)}")
        if not flex:
            out.append(f"{ind}{obj}.unknown_tagged_fields = []")
        elif not tagged:
            out.append(f"{ind}if buf[pos] == 0:")
            out.append(f"{ind}    pos += 1")
            out.append(f"{ind}    {obj}.unknown_tagged_fields = []")
            out.append(f"{ind}else:")
            out.append(f"{ind}    {obj}.unknown_tagged_fields, pos = {self.use('read_unknown_tags')}(buf, pos)")
        else:
            out.append(f"{ind}unknown = []")
            out.append(f"{ind}{obj}.unknown_tagged_fields = unknown")
            out.append(f"{ind}if buf[pos] == 0:")
            out.append(f"{ind}    pos += 1")
            out.append(f"{ind}else:")
            i2 = ind + "    "
            out.append(f"{i2}count, pos = {self.use('read_uvarint')}(buf, pos)")
            out.append(f"{i2}{self.use('check_tag_count')}(buf, pos, count)")
            out.append(f"{i2}for _ in range(count):")
            i3 = i2 + "    "
            out.append(f"{i3}tag, end, pos = {self.use('read_tag_header')}(buf, pos)")
            kw = "if"
            for f in tagged:
                out.append(f"{i3}{kw} tag == {f.tag}:")
                self.read_field(f, v, True, f"{obj}.{f.attr}", out, i3 + "    ")
                out.append(f"{i3}    if pos > end:")
                out.append(f"{i3}        raise {self.use('tag_overrun')}(tag)")
                kw = "elif"
            out.append(f"{i3}else:")
            out.append(f"{i3}    unknown.append((tag, bytes(buf[pos:end])))")
            out.append(f"{i3}pos = end")
        return out

    def read_fixed_run(self, run: list[FieldSpec], obj: str, out: list[str], ind: str) -> None:
        size = sum(FIXED[f.type][1] for f in run)
        const = self.struct_const(fixed_format(run))
        if not any(f.type == "uuid" for f in run):
            if len(run) == 1:
                out.append(f"{ind}{obj}.{run[0].attr} = {const}.unpack_from(buf, pos)[0]")
            else:
                targets = ", ".join(f"{obj}.{f.attr}" for f in run)
                out.append(f"{ind}{targets} = {const}.unpack_from(buf, pos)")
        else:
            uuid_of = self.use("uuid_from_bytes")
            if len(run) == 1:
                out.append(f"{ind}{obj}.{run[0].attr} = {uuid_of}({const}.unpack_from(buf, pos)[0])")
            else:
                out.append(f"{ind}t = {const}.unpack_from(buf, pos)")
                for k, f in enumerate(run):
                    val = f"t[{k}]" if f.type != "uuid" else f"{uuid_of}(t[{k}])"
                    out.append(f"{ind}{obj}.{f.attr} = {val}")
        out.append(f"{ind}pos += {size}")

    def scalar_reader(self, t: str, flex: bool, nullable: bool) -> str:
        if t == "uuid":
            return f"{self.use('read_uuid')}(buf, pos)"
        name = self.use(codec_helper("read", t, flex, nullable))
        return f"{name}(buf, pos, {nullable})" if t == "records" else f"{name}(buf, pos)"

    def min_element_size(self, f: FieldSpec, v: int, flex: bool) -> int:
        """Fewest bytes one array element can take: a count larger than the bytes left divided
        by this is rejected before anything is allocated."""
        if f.struct is not None:
            return max(1, self.min_struct_size(f.struct, v, flex))
        return self.min_value_size(f.type, False, flex)

    @staticmethod
    def min_value_size(t: str, is_array: bool, flex: bool) -> int:
        if flex:
            return FIXED[t][1] if t in FIXED and not is_array else 1
        if is_array:
            return 4
        if t in FIXED:
            return FIXED[t][1]
        return 2 if t == "string" else 4  # bytes, records

    def min_struct_size(self, st: StructSpec, v: int, flex: bool) -> int:
        regular, _tagged = self.present(st, v)
        size = 1 if flex else 0  # the tagged-field count
        for f in regular:
            field_flex = self.field_flex(f, v, flex)
            if f.struct is not None and not f.is_array:
                size += 1 if v in f.nullable else self.min_struct_size(f.struct, v, flex)
            else:
                size += self.min_value_size(f.type, f.is_array, field_flex)
        return size

    def read_field(self, f: FieldSpec, v: int, flex: bool, target: str, out: list[str], ind: str) -> None:
        nullable = v in f.nullable
        if f.is_array:
            self.read_array(f, v, flex, nullable, target, out, ind)
            return
        if f.struct is not None:
            call = f"{self.fn_name('read', f.struct, v)}(buf, pos)"
            if nullable and v in f.tagged:
                # Kafka marks presence of a tagged nullable struct with an unsigned varint.
                out.append(f"{ind}marker, pos = {self.use('read_uvarint')}(buf, pos)")
                out.append(f"{ind}if marker == 0:")
                out.append(f"{ind}    {target} = None")
                out.append(f"{ind}else:")
                out.append(f"{ind}    {target}, pos = {call}")
            elif nullable:
                # A non-tagged nullable struct is preceded by an int8: negative means null.
                out.append(f"{ind}if buf[pos] >= 0x80:")
                out.append(f"{ind}    pos += 1")
                out.append(f"{ind}    {target} = None")
                out.append(f"{ind}else:")
                out.append(f"{ind}    {target}, pos = {call.replace('(buf, pos)', '(buf, pos + 1)')}")
            else:
                out.append(f"{ind}{target}, pos = {call}")
            return
        if f.type in FIXED:
            const = self.struct_const(fixed_format([f]))
            if f.type == "uuid":
                out.append(f"{ind}{target} = {self.use('uuid_from_bytes')}({const}.unpack_from(buf, pos)[0])")
            else:
                out.append(f"{ind}{target} = {const}.unpack_from(buf, pos)[0]")
            out.append(f"{ind}pos += {FIXED[f.type][1]}")
            return
        if f.type == "records":
            self.read_records_inline(flex, nullable, target, out, ind)
            return
        out.append(f"{ind}{target}, pos = {self.scalar_reader(f.type, flex, nullable)}")

    def read_array(self, f: FieldSpec, v: int, flex: bool, nullable: bool, target: str, out: list[str],
                   ind: str) -> None:
        min_size = self.min_element_size(f, v, flex)
        self.read_count(flex, nullable, min_size, out, ind)
        inner = ind
        if nullable:
            out.append(f"{ind}if n < 0:")
            out.append(f"{ind}    {target} = None")
            out.append(f"{ind}else:")
            inner = ind + "    "
        if f.type in FIXED and f.type != "uuid":
            code = FIXED[f.type][0]
            out.append(f"{inner}{target}, pos = {self.use('read_fixed_array')}(buf, pos, n, {code!r})")
        elif f.type == "uuid":
            out.append(f"{inner}{target}, pos = {self.use('read_uuid_array')}(buf, pos, n)")
        else:
            if f.struct is not None:
                call = f"{self.fn_name('read', f.struct, v)}(buf, pos)"
            else:
                call = self.scalar_reader(f.type, flex, False)
            out.append(f"{inner}items = []")
            out.append(f"{inner}append = items.append")
            out.append(f"{inner}for _ in range(n):")
            if f.struct is not None and self.is_leaf(f.struct, v):
                # Small leaf structs are decoded in the loop itself (no call per element).
                out.extend(self.read_lines(f.struct, v, flex, "item", inner + "    "))
            else:
                out.append(f"{inner}    item, pos = {call}")
            out.append(f"{inner}    append(item)")
            out.append(f"{inner}{target} = items")

    def read_len(self, flex: bool, out: list[str], ind: str) -> None:
        """``n`` = the raw length: int32, or compact uvarint minus one."""
        if flex:
            out.append(f"{ind}n = buf[pos]")
            out.append(f"{ind}if n < 0x80:")
            out.append(f"{ind}    pos += 1")
            out.append(f"{ind}else:")
            out.append(f"{ind}    n, pos = {self.use('read_uvarint')}(buf, pos)")
            out.append(f"{ind}n -= 1")
        else:
            out.append(f"{ind}n = {self.struct_const('>i')}.unpack_from(buf, pos)[0]")
            out.append(f"{ind}pos += 4")

    def read_null_check(self, nullable: bool, out: list[str], ind: str) -> None:
        out.append(f"{ind}if n < 0:")
        if nullable:
            out.append(f"{ind}    if n != -1:")
            out.append(f"{ind}        raise {self.use('bad_length')}(n)")
        else:
            out.append(f"{ind}    raise {self.use('bad_length')}(n)")

    def read_count(self, flex: bool, nullable: bool, min_size: int, out: list[str], ind: str) -> None:
        """Array count into ``n`` (-1 = null), checked against the bytes left."""
        self.read_len(flex, out, ind)
        self.read_null_check(nullable, out, ind)
        cond = "n > len(buf) - pos" if min_size == 1 else f"n * {min_size} > len(buf) - pos"
        out.append(f"{ind}elif {cond}:")
        out.append(f"{ind}    raise {self.use('array_too_long')}(n, len(buf) - pos)")

    def read_records_inline(self, flex: bool, nullable: bool, target: str, out: list[str], ind: str) -> None:
        """Records: a zero-copy slice of ``buf``."""
        self.read_len(flex, out, ind)
        self.read_null_check(nullable, out, ind)
        inner = ind
        if nullable:
            out.append(f"{ind}    {target} = None")
            out.append(f"{ind}else:")
            inner = ind + "    "
        out.append(f"{inner}end = pos + n")
        out.append(f"{inner}if end > len(buf):")
        out.append(f"{inner}    raise {self.use('short')}()")
        out.append(f"{inner}{target} = buf[pos:end]")
        out.append(f"{inner}pos = end")
