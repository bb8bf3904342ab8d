"""How ``params.yaml`` is checked and handed to a stage.

Every key is declared once, as a field of a frozen dataclass in the module of its section
(``seqmia/params/<section>.py``). Names that select code (models, datasets, metrics, attack
architectures, baselines) are ``OneOf`` a core registry, so an unknown name fails with the
registry's names. Rules beyond the type sit beside their section (``register_rules``).

Two uses, two scopes:
- ``validate_file`` checks the WHOLE file, every section and the rules that span sections, when
  a stage starts: a typo in ``attack:`` stops ``train`` before hours of training. It imports the
  full schema by name (``seqmia.params.whole``), so that validation is not in a stage's import
  graph: it decides only whether the stage runs, never what it writes, so a rule added for one
  stage does not make DVC rerun the others.
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
import threading
import types
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from seqmia.errors import UserError

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
    "reference": "seqmia.params.reference",
    "rmia": "seqmia.params.rmia",
    "distill": "seqmia.params.distill",
    "sequences": "seqmia.params.sequences",
    "attack": "seqmia.params.attack",
    "baselines": "seqmia.params.baselines",
    "evaluate": "seqmia.params.evaluate",
}
WHOLE_MODULE = "seqmia.params.whole"


class ParamsError(UserError, ValueError):
    """A params.yaml value that the pipeline cannot run with."""


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
            raise ParamsError(f"params key '{key}' must be {describe(tp)}, got {value!r}")
        return convert(value, get_args(tp)[0], key)
    if origin is Literal:
        if value not in get_args(tp) or isinstance(value, bool):
            raise ParamsError(f"params key '{key}' must be {describe(tp)}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise ParamsError(f"params key '{key}' must be {describe(tp)}, got {value!r}")
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
        raise ParamsError(f"params key '{key}' must be {describe(tp)}, got {value!r}")
    if tp is float and not math.isfinite(value):  # YAML's .inf / .nan would fail deep in a run
        raise ParamsError(f"params key '{key}' must be a finite number, got {value!r}")
    return float(value) if tp is float else value


def check_rule(key: str, value: Any, raw: Any, rule: Rule | None) -> None:
    """Raise ``ParamsError`` if ``value`` (given as ``raw``) breaks ``rule``."""
    if rule is not None and not rule[0](value):
        raise ParamsError(f"params key '{key}' must be {rule[1]}, got {raw!r}")


def build(cls: type, raw: Any, prefix: str) -> Any:
    """Build dataclass ``cls`` from mapping ``raw``, reporting keys with dotted ``prefix``."""
    where = f"section '{prefix}'" if prefix else "params.yaml"
    if not isinstance(raw, dict):
        raise ParamsError(f"{where} must be a mapping of keys, got {raw!r}")
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
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
        raise ParamsError(f"params.yaml must be a mapping of keys, got {raw!r}")
    if key not in raw:
        what = "section" if dataclasses.is_dataclass(annotation) else "params key"
        raise ParamsError(f"missing {what} '{key}' (expected {describe(annotation)})")
    value = convert(raw[key], annotation, key)
    check_rule(key, value, raw[key], rule)
    return value


def read_document(path: str | Path) -> Any:
    """The parsed YAML of ``path``; ``ParamsError`` if it is missing or not YAML."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"no params file at {path.resolve()}")
    with path.open() as fh:
        try:
            return yaml.safe_load(fh)
        except yaml.YAMLError as err:
            raise ParamsError(f"{path} is not valid YAML: {err}") from err


def validate_file(path: str | Path) -> Any:
    """Check the whole of ``path`` (every section, cross-section rules); return the full, plain
    ``Params``. Imported by name: see the module docstring for why it is not a dependency."""
    return importlib.import_module(WHOLE_MODULE).load_params(path)


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
