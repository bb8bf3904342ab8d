"""How ``params.yaml`` is checked and handed to a stage.

Every key is declared once, as a field of a frozen dataclass in the module of its section
(``seqmia/params/<section>.py``). Names that select code (models, datasets, metrics, attack
architectures, baselines) are ``OneOf`` a core registry, so an unknown name fails with the
registry's names. Rules beyond the type sit beside their section (``register_rules``).

Every params document (params.yaml, a preset, params.yaml at a git revision, a ``-S`` value) is
parsed by one reader, ``parse_document`` (``read_document`` for a file): bounded in size, UTF-8,
YAML 1.2 as DVC reads it, refusing anchors, aliases, deep nesting and duplicate keys before any
Python object is built, each refusal in one line. Error messages echo values through ``shown``.

Two uses, two scopes:
- ``validate_file`` checks the WHOLE file (``validate_document`` an already parsed one), every
  section and the rules that span sections, when a stage starts: a typo in ``attack:`` stops
  ``train`` before hours of training. It imports the full schema by name
  (``seqmia.params.whole``), so that validation is not in a stage's import graph: it decides only
  whether the stage runs, never what it writes, so a rule added for one stage does not make DVC
  rerun the others.
- ``StageParams`` is what a stage reads: section ``key`` is built, on first access, by the schema
  module registered for it, which the stage's code must import (else a clear error), so that
  module is in the stage's import graph and in its dvc.yaml deps.

With ``$SEQMIA_RECORD_PARAMS`` naming a file, every key a stage reads through ``StageParams`` is
appended to it as ``<stage> <dotted key>`` (tests/test_pipeline.py compares those reads with the
stage's ``params:`` in dvc.yaml). Whole-file validation reads the raw document and records nothing.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import os
import reprlib
import threading
import types
import typing
from collections.abc import Callable, Iterable
from itertools import islice
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from ruamel.yaml import YAML, YAMLError
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.events import AliasEvent, MappingStartEvent, SequenceStartEvent

from seqmia.base.errors import UserError

RECORD_ENV = "SEQMIA_RECORD_PARAMS"

# Every top-level key of params.yaml and the module that declares it. Names, not imports: only
# ``validate_file`` (and the assembled ``Params``) need all of them.
SECTION_MODULES = {
    "seed": "seqmia.params.run",
    "device": "seqmia.params.run",
    "data": "seqmia.params.data",
    "partition": "seqmia.params.partition",
    "target": "seqmia.params.target",
    "train": "seqmia.params.train",
    "dp": "seqmia.params.dp",
    "reference": "seqmia.params.reference",
    "rmia": "seqmia.params.rmia",
    "quantile": "seqmia.params.quantile",
    "distill": "seqmia.params.distill",
    "sequences": "seqmia.params.sequences",
    "attack": "seqmia.params.attack",
    "baselines": "seqmia.params.baselines",
    "evaluate": "seqmia.params.evaluate",
}
WHOLE_MODULE = "seqmia.params.whole"

# Bounds on a params document, checked before it is parsed (size) or while it is composed, before
# any Python object is built (nesting, anchors). params.yaml is about 5 KB, 4 levels deep, with no
# anchors; a 1.5 KB alias bomb once took 64 s and 4.4 GiB, a 5 MB mapping 33 s.
MAX_PARAMS_BYTES = 1024 * 1024
MAX_DEPTH = 20
# How much of a value a params error message echoes.
SHOWN_CHARS = 100
_UTF8_BOM = b"\xef\xbb\xbf"


class ParamsError(UserError, ValueError):
    """A params.yaml value that the pipeline cannot run with."""


class _ShortRepr(reprlib.Repr):
    """``repr`` that looks at a bounded part of a value: a few items of each container, a few
    levels deep, the head of each string. Its cost does not grow with the value's size."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = self.maxdeque = 10
        self.maxdict = 6
        # Strings longer than this are cut in the middle by reprlib; ``shown`` then keeps the
        # head of it, which is the head of the true repr.
        self.maxstring = 2 * SHOWN_CHARS
        self.maxlong = self.maxother = 2 * SHOWN_CHARS

    def repr_int(self, x: int, level: int) -> str:
        # repr of an int of more than 4300 digits raises (and costs quadratic time before that)
        if x.bit_length() > 4 * SHOWN_CHARS:
            return f"<an integer of {x.bit_length()} bits>"
        return super().repr_int(x, level)

    def repr_dict(self, x: dict, level: int) -> str:
        # reprlib sorts keys; keep the file's order, as repr does
        if not x:
            return "{}"
        if level <= 0:
            return "{" + self.fillvalue + "}"
        items = [
            f"{self.repr1(k, level - 1)}: {self.repr1(v, level - 1)}"
            for k, v in islice(x.items(), self.maxdict)
        ]
        if len(x) > self.maxdict:
            items.append(self.fillvalue)
        return "{" + ", ".join(items) + "}"


_SHORT_REPR = _ShortRepr()


def clip(text: str, limit: int = SHOWN_CHARS) -> str:
    """``text`` cut to ``limit`` characters, the cut marked with "…"."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shown(value: Any) -> str:
    """``repr(value)`` for an error message, at most ``SHOWN_CHARS`` characters: enough to spot
    the mistake, never the whole of a huge value (nor the cost of building its full repr)."""
    return clip(_SHORT_REPR.repr(value))


@dataclasses.dataclass(frozen=True)
class OneOf:
    """``Annotated[str, OneOf(registry)]``: a name that must be a key of ``registry`` (a core
    dict name -> builder/spec, or a sequence of names)."""

    registry: Iterable[str]

    @property
    def names(self) -> list[str]:
        return list(self.registry)


# A rule beyond the type: (predicate, description of what is allowed).
Rule = tuple[Callable[[Any], bool], str]
_RULES: dict[type, dict[str, Rule]] = {}
# Top-level key -> (annotation, rule or None) of the sections whose module is imported.
_SECTIONS: dict[str, tuple[Any, Rule | None]] = {}


def register_rules(cls: type, rules: dict[str, Rule]) -> None:
    """Rules for fields of ``cls``; subclasses inherit them (e.g. every ``Recipe`` section)."""
    _RULES.setdefault(cls, {}).update(rules)


def register_section(key: str, annotation: Any, rule: Rule | None = None) -> None:
    """Declare top-level key ``key`` of params.yaml: a section dataclass or a plain value."""
    _SECTIONS[key] = (annotation, rule)


def rules_of(cls: type) -> dict[str, Rule]:
    """Rules of ``cls``'s fields, its base classes' first."""
    merged: dict[str, Rule] = {}
    for klass in reversed(cls.__mro__):
        merged.update(_RULES.get(klass, {}))
    return merged


AT_LEAST_1: Rule = (lambda v: v >= 1, "an integer >= 1")
NON_NEGATIVE: Rule = (lambda v: v >= 0, "a number >= 0")
POSITIVE: Rule = (lambda v: v > 0, "a number > 0")
FRACTION: Rule = (lambda v: 0 < v < 1, "a number strictly between 0 and 1")


def describe(tp: Any) -> str:
    """Human-readable description of an annotation, for error messages."""
    origin = get_origin(tp)
    if origin is typing.Annotated:
        choice = next((m for m in tp.__metadata__ if isinstance(m, OneOf)), None)
        return f"one of {choice.names}" if choice else describe(get_args(tp)[0])
    if origin is Literal:
        return f"one of {list(get_args(tp))}"
    if origin is tuple:
        return f"a list of {describe(get_args(tp)[0])}"
    if tp is bool:
        return "true or false"
    if tp is float:
        return "a number"
    if tp is int:
        return "an integer"
    if tp is str:
        return "a string"
    if dataclasses.is_dataclass(tp):
        return f"a section with keys {[f.name for f in dataclasses.fields(tp)]}"
    return str(tp)


def convert(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against annotation ``tp``; return it in the dataclass's form."""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key)
    if origin is typing.Annotated:
        choice = next((m for m in tp.__metadata__ if isinstance(m, OneOf)), None)
        if choice is not None and (not isinstance(value, str) or value not in choice.names):
            raise ParamsError(f"params key '{key}' must be {describe(tp)}, got {shown(value)}")
        return convert(value, get_args(tp)[0], key)
    if origin is Literal:
        if value not in get_args(tp) or isinstance(value, bool):
            raise ParamsError(f"params key '{key}' must be {describe(tp)}, got {shown(value)}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise ParamsError(f"params key '{key}' must be {describe(tp)}, got {shown(value)}")
        return tuple(convert(v, get_args(tp)[0], f"{key}[{i}]") for i, v in enumerate(value))
    if origin in (Union, types.UnionType):
        raise TypeError(f"unsupported annotation at {key}")
    ok = {
        bool: lambda v: isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        str: lambda v: isinstance(v, str),
    }[tp](value)
    if not ok:
        raise ParamsError(f"params key '{key}' must be {describe(tp)}, got {shown(value)}")
    if tp is float and not math.isfinite(value):  # YAML's .inf / .nan would fail deep in a run
        raise ParamsError(f"params key '{key}' must be a finite number, got {shown(value)}")
    return float(value) if tp is float else value


def check_rule(key: str, value: Any, raw: Any, rule: Rule | None) -> None:
    """Raise ``ParamsError`` if ``value`` (given as ``raw``) breaks ``rule``."""
    if rule is not None and not rule[0](value):
        raise ParamsError(f"params key '{key}' must be {rule[1]}, got {shown(raw)}")


def unknown_keys(raw: dict, allowed: Iterable[str]) -> str | None:
    """The first (in sorted order) key of ``raw`` not in ``allowed``, shortened for a message;
    None if there is none. YAML keys need not be strings (``1: x``), so they sort as text."""
    unknown = set(raw) - set(allowed)
    return clip(str(min(unknown, key=str))) if unknown else None


def build(cls: type, raw: Any, prefix: str) -> Any:
    """Build dataclass ``cls`` from mapping ``raw``, reporting keys with dotted ``prefix``."""
    where = f"section '{prefix}'" if prefix else "params.yaml"
    if not isinstance(raw, dict):
        raise ParamsError(f"{where} must be a mapping of keys, got {shown(raw)}")
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = unknown_keys(raw, fields)
    if unknown is not None:
        key = f"{prefix}.{unknown}" if prefix else unknown
        raise ParamsError(f"unknown params key '{key}'; {where} allows {fields}")
    rules = rules_of(cls)
    values = {}
    for name in fields:
        key = f"{prefix}.{name}" if prefix else name
        if name not in raw:
            what = "section" if dataclasses.is_dataclass(hints[name]) else "params key"
            raise ParamsError(f"missing {what} '{key}' (expected {describe(hints[name])})")
        values[name] = convert(raw[name], hints[name], key)
        check_rule(key, values[name], raw[name], rules.get(name))
    return cls(**values)


def build_section(key: str, raw: dict) -> Any:
    """Top-level key ``key`` of the parsed document ``raw``, checked by its registered schema."""
    if key not in _SECTIONS:
        module = SECTION_MODULES.get(key)
        if module is None:
            raise AttributeError(f"params.yaml has no section {key!r}")
        raise RuntimeError(
            f"params section {key!r} is read, but its schema {module} is not imported by this "
            "stage's code; import what it reads from there (dvc.yaml then lists it as a dep)"
        )
    annotation, rule = _SECTIONS[key]
    if not isinstance(raw, dict):
        raise ParamsError(f"params.yaml must be a mapping of keys, got {shown(raw)}")
    if key not in raw:
        what = "section" if dataclasses.is_dataclass(annotation) else "params key"
        raise ParamsError(f"missing {what} '{key}' (expected {describe(annotation)})")
    value = convert(raw[key], annotation, key)
    check_rule(key, value, raw[key], rule)
    return value


class _Refused(Exception):
    """A node of a params document refused while it is read: what is wrong, and its line."""

    def __init__(self, what: str, mark: Any) -> None:
        super().__init__(what)
        self.what, self.line = what, mark.line + 1


class _GuardedComposer(Composer):
    """ruamel's composer, refusing anchors, aliases and deep nesting at each node's first event,
    before that node is composed: the document is refused before any Python object is built, so
    an alias bomb costs milliseconds, and nesting cannot reach Python's recursion limit."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        if isinstance(event, AliasEvent):
            raise _Refused(
                f"alias *{clip(event.anchor, 40)}: a params file may hold no anchors or aliases",
                event.start_mark,
            )
        if event.anchor is not None:
            raise _Refused(
                f"anchor &{clip(event.anchor, 40)}: a params file may hold no anchors or aliases",
                event.start_mark,
            )
        # ``depth`` counts the collections around this node (every composed parent is one)
        if isinstance(event, (MappingStartEvent, SequenceStartEvent)) and self.depth >= MAX_DEPTH:
            raise _Refused(f"nesting deeper than {MAX_DEPTH} levels", event.start_mark)
        return super().compose_node(parent, index)


class _UniqueKeyConstructor(SafeConstructor):
    """ruamel's safe constructor with a duplicate key refused as ``_Refused`` (it raises a
    many-line ``DuplicateKeyError`` that echoes both values in full)."""

    def check_mapping_key(
        self, node: Any, key_node: Any, mapping: Any, key: Any, value: Any
    ) -> bool:
        if key in mapping:
            raise _Refused(f"duplicate key {shown(key)}", key_node.start_mark)
        return True

    def check_set_key(self, node: Any, key_node: Any, setting: Any, key: Any) -> None:
        if key in setting:
            raise _Refused(f"duplicate set member {shown(key)}", key_node.start_mark)


def _too_big(source: str, size: int) -> ParamsError:
    return ParamsError(
        f"{source} is {size} bytes, over the {MAX_PARAMS_BYTES}-byte limit of a params file"
    )


def _decode(data: bytes, source: str) -> str:
    """``data`` as UTF-8 text (after an optional UTF-8 byte-order mark)."""
    start = len(_UTF8_BOM) if data.startswith(_UTF8_BOM) else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as err:
        offset = start + err.start
        raise ParamsError(
            f"{source} is not UTF-8 text: byte 0x{data[offset]:02x} at offset {offset} "
            f"({err.reason})"
        ) from None


def _yaml_problem(err: YAMLError) -> str:
    """One line for a ruamel error: what is wrong and where (its own text spans lines and
    quotes the offending line)."""
    if isinstance(err, MarkedYAMLError) and err.problem:
        what = ", ".join(clip(" ".join(str(t).split())) for t in (err.context, err.problem) if t)
        mark = err.problem_mark
        return f"line {mark.line + 1}, column {mark.column + 1}: {what}" if mark else what
    return clip(" ".join(str(err).split()).replace(' in "<unicode string>",', " at"), 200)


def _yaml_12_reader() -> YAML:
    """ruamel's pure-Python safe loader: YAML 1.2 as DVC reads params.yaml (``dvc exp run -S``
    values and ruamel's round-trip writes are read alike), guarded as above. Pure, so that the
    guards apply (the C loader composes nodes in C) and the values do not depend on whether
    ruamel.yaml.clib happens to be installed."""
    reader = YAML(typ="safe", pure=True)
    reader.Composer = _GuardedComposer
    reader.Constructor = _UniqueKeyConstructor
    return reader


def parse_document(data: bytes, source: str) -> Any:
    """The parsed params document in ``data`` (read from ``source``, named in errors).

    Refused with a one-line ``ParamsError``, each before the work it would cost: over
    ``MAX_PARAMS_BYTES``; not UTF-8; not YAML; an anchor or alias, nesting deeper than
    ``MAX_DEPTH``, or a duplicate key (at any level). Values are read as YAML 1.2, like DVC.
    """
    if len(data) > MAX_PARAMS_BYTES:
        raise _too_big(source, len(data))
    text = _decode(data, source)
    try:
        return _yaml_12_reader().load(text)
    except _Refused as err:
        raise ParamsError(f"{source}, line {err.line}: {err.what}") from None
    except YAMLError as err:
        raise ParamsError(f"{source} is not valid YAML: {_yaml_problem(err)}") from None
    except ValueError as err:  # e.g. an integer of more than 4300 digits (Python's limit)
        raise ParamsError(f"{source} holds a value that cannot be read: {clip(str(err))}") from None


def read_document(path: str | Path) -> Any:
    """The parsed YAML of the params file ``path`` (see ``parse_document``); ``ParamsError`` if
    it is missing, unreadable, too large (checked before reading it) or refused."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"no params file at {path.resolve()}")
    try:
        size = path.stat().st_size
        if size > MAX_PARAMS_BYTES:
            raise _too_big(str(path), size)
        with path.open("rb") as fh:
            data = fh.read(MAX_PARAMS_BYTES + 1)  # bounded even if the file grew meanwhile
    except OSError as err:
        raise ParamsError(f"cannot read params file {path}: {err.strerror or err}") from None
    return parse_document(data, str(path))


def validate_document(raw: Any) -> Any:
    """Check the whole of an already parsed params document (``read_document``): every section,
    cross-section rules; return the full, plain ``Params``. Imported by name, like
    ``validate_file``."""
    return importlib.import_module(WHOLE_MODULE).params_from_dict(raw)


def validate_file(path: str | Path) -> Any:
    """Check the whole of ``path`` (every section, cross-section rules); return the full, plain
    ``Params``. Imported by name: see the module docstring for why it is not a dependency."""
    return validate_document(read_document(path))


class _Recorder:
    """Appends ``<stage> <key>`` lines to ``$SEQMIA_RECORD_PARAMS``, each key once a process."""

    def __init__(self, path: str, stage: str) -> None:
        self.path, self.stage = path, stage
        self.seen: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, key: str) -> None:
        with self.lock:
            if key in self.seen:
                return
            self.seen.add(key)
            with open(self.path, "a") as fh:  # one short append per key: whole lines
                fh.write(f"{self.stage} {key}\n")


class Recording:
    """A read-only view of a section dataclass that reports each field it hands out.

    Deliberately not a dataclass itself: Prefect walks dataclass task arguments field by field,
    which would count as reads. Nested sections come back as ``Recording`` views too.
    """

    __slots__ = ("_inner", "_prefix", "_record")

    def __init__(self, inner: Any, prefix: str, record: Callable[[str], None]) -> None:
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_prefix", prefix)
        object.__setattr__(self, "_record", record)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name in self._inner.__dataclass_fields__:
            key = f"{self._prefix}.{name}"
            if dataclasses.is_dataclass(value):
                return Recording(value, key, self._record)
            self._record(key)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    @property
    def __class__(self) -> type:  # isinstance(view, TrainParams) holds
        return type(self._inner)

    def __repr__(self) -> str:
        return f"Recording({self._prefix})"

    def __reduce__(self) -> tuple:  # to another process (Dask): the plain section, unrecorded
        inner = self._inner
        return type(inner), tuple(getattr(inner, f.name) for f in dataclasses.fields(inner))


class StageParams:
    """The params one stage reads, section by section (see the module docstring).

    ``params.train`` is a ``TrainParams`` (or a ``Recording`` view of one), ``params.seed`` an
    int; each is built once from the parsed document, by the schema its module registered.
    """

    def __init__(self, raw: Any, stage: str = "") -> None:
        self._raw = raw
        self._built: dict[str, Any] = {}
        path = os.environ.get(RECORD_ENV)
        self._record = _Recorder(path, stage or "unknown") if path else None

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        if key not in self._built:
            self._built[key] = build_section(key, self._raw)
        value = self._built[key]
        if self._record is None:
            return value
        if dataclasses.is_dataclass(value):
            return Recording(value, key, self._record)
        self._record(key)
        return value

    def __getstate__(self) -> dict:  # Dask workers rebuild the recorder from their environment
        return {"raw": self._raw, "stage": self._record.stage if self._record else ""}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["raw"], state["stage"])


def stage_params(path: str | Path, stage: str = "") -> StageParams:
    """The sections of ``path`` for stage ``stage``, built as the stage reads them."""
    return StageParams(read_document(path), stage)


def plain(value: Any) -> Any:
    """Plain nested dicts and lists of a section, a ``Recording`` view (which records every
    field) or a tuple."""
    inner = getattr(value, "_inner", value)
    if dataclasses.is_dataclass(inner) and not isinstance(inner, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(inner)}
    if isinstance(value, tuple):
        return [plain(x) for x in value]
    if isinstance(value, dict):
        return {k: plain(x) for k, x in value.items()}
    return value
