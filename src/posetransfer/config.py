"""Config and subject sheet: load, fill defaults, validate; every problem is one line naming the key.

The JSON Schemas in ``workflow/schemas/`` are the single definition of every key; this module
is what the Snakefile and ``posetransfer check-config`` both call.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from posetransfer.errors import ConfigError

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
SYNTHETIC_PREFIX = "synthetic:"


def _load_schema(name: str) -> dict[str, Any]:
    with open(SCHEMA_DIR / name, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _with_defaults(validator_class: type) -> type:
    """Extend a jsonschema validator so that it fills in each property's ``default``."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):  # a jsonschema validator hook
        if isinstance(instance, dict):
            for key, subschema in properties.items():
                if "default" in subschema and key not in instance:
                    instance[key] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_DefaultingValidator = _with_defaults(jsonschema.Draft202012Validator)


def _describe(error: jsonschema.ValidationError, prefix: str) -> str:
    """One line: which key, what is wrong with it."""
    key = ".".join(str(part) for part in error.absolute_path)
    where = f"{prefix}{key}" if key else prefix.rstrip(".") or "config"
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        names = ", ".join(f"{prefix}{key + '.' if key else ''}{name}" for name in unknown)
        return f"unknown config key {names} (allowed here: {allowed})"
    if error.validator == "enum":
        choices = ", ".join(map(str, error.validator_value))
        return f"config key {where}: {error.instance!r} is not one of: {choices}"
    if error.validator == "multipleOf":
        return f"config key {where}: {error.instance} is not a multiple of {error.validator_value}"
    if error.validator in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        relation = {
            "minimum": "below the minimum",
            "exclusiveMinimum": "not above",
            "maximum": "above the maximum",
            "exclusiveMaximum": "not below",
        }[error.validator]
        return f"config key {where}: {error.instance} is {relation} {error.validator_value}"
    return f"config key {where}: {error.message}"


def _validate(instance: dict[str, Any], schema: Mapping[str, Any], prefix: str) -> None:
    validator = _DefaultingValidator(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        problem = ConfigError(_describe(errors[0], prefix))
        problem.key_paths = _key_paths(errors[0])  # which keys, so a caller can name the file that set them
        raise problem


def _key_paths(error: jsonschema.ValidationError) -> list[tuple]:
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties":
        unknown = set(error.instance) - set(error.schema.get("properties", {}))
        return [(*path, name) for name in sorted(unknown)]
    return [path]


def validate_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return a validated copy of ``config`` with every default filled in."""
    filled = copy.deepcopy(dict(config or {}))
    schema = _load_schema("config.schema.yaml")
    _validate(filled, schema, prefix="")
    return _exact_integers(filled, schema)


def _exact_integers(instance: Any, schema: Mapping[str, Any]) -> Any:
    """``128.0`` where the schema says integer becomes ``128``: JSON Schema counts it an integer,
    so it validates, but OpenCV, range() and shapes downstream need a Python int."""
    kinds = schema.get("type", [])
    if isinstance(instance, float) and instance.is_integer() and "integer" in kinds:
        return int(instance)
    if isinstance(instance, dict):
        for key, subschema in schema.get("properties", {}).items():
            if key in instance:
                instance[key] = _exact_integers(instance[key], subschema)
    if isinstance(instance, list) and isinstance(schema.get("items"), dict):
        instance[:] = [_exact_integers(item, schema["items"]) for item in instance]
    return instance


def read_config_file(path: str | Path) -> dict[str, Any]:
    """One config file (YAML or JSON) as a mapping, not yet validated."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("config file not found", path)
    try:
        with open(path, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML ({exc.__class__.__name__})", path) from exc
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError("the config must be a mapping of keys to values", path)
    return raw or {}


def load_config(path: str | Path) -> dict[str, Any]:
    return load_configs([path])


def load_configs(paths: Sequence[str | Path]) -> dict[str, Any]:
    """Config files overlaid as ``snakemake --configfile A B`` does (later files win, mappings merged
    key by key with Snakemake's own ``update_config``), validated; an error names the file."""
    from snakemake.utils import update_config

    merged: dict[str, Any] = {}
    for path in paths:
        update_config(merged, read_config_file(path))
    return validate_config_files(merged, paths)


def validate_config_files(config: Mapping[str, Any] | None, files: Sequence[str | Path]) -> dict[str, Any]:
    """:func:`validate_config` of a config overlaid from ``files`` (in overlay order): an error names
    the last file that sets the key at fault, and says so when that file is no config at all
    (``snakemake --configfile mine.yaml results/x.json`` reads the target as a second config file)."""
    try:
        return validate_config(config)
    except ConfigError as problem:
        holder = _holder(getattr(problem, "key_paths", []), files)
        if holder is None:
            raise
        message = str(problem)
        if not _has_config_keys(_read_quietly(holder)):
            message += (
                f"; {holder} holds no config key at all: a target written after --configfile is read"
                " as one more config file (put targets before --configfile)"
            )
        raise ConfigError(message, holder) from None


def _read_quietly(path: str | Path) -> Any:
    try:
        return read_config_file(path)
    except ConfigError:
        return None


def _holder(key_paths: Sequence[tuple], files: Sequence[str | Path]) -> Path | None:
    """The last of ``files`` that sets any of ``key_paths``."""
    for path in reversed(files):
        data = _read_quietly(path)
        for key_path in key_paths:
            node = data
            for part in key_path:
                in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
                if not (in_list or (isinstance(node, Mapping) and part in node)):
                    break
                node = node[part]
            else:
                return Path(path)
    return None


def _has_config_keys(data: Any) -> bool:
    known = _load_schema("config.schema.yaml").get("properties", {})
    return isinstance(data, Mapping) and (not data or any(key in known for key in data))


def section_hash(section: Any) -> str:
    """Stable hash of a config section: what a cache records to say what produced it."""
    canonical = json.dumps(section, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Subject:
    """One row of the subject sheet."""

    name: str
    video: str  # a file path, or "synthetic:SEED"
    notes: str = ""

    @property
    def synthetic_seed(self) -> int | None:
        if not self.video.startswith(SYNTHETIC_PREFIX):
            return None
        return int(self.video[len(SYNTHETIC_PREFIX) :])


def load_subjects(path: str | Path) -> list[Subject]:
    """Read and validate the subject sheet; relative video paths are relative to the sheet."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("subject sheet not found", path)
    # utf-8-sig: a byte-order mark (Excel, Notepad) is not part of the first column's name.
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        rows = [(reader.line_num, row) for row in reader if row and not row[0].startswith("#")]
    if not rows:
        raise ConfigError("subject sheet is empty (expected a header: name, video, notes)", path)
    header = [column.strip() for column in rows[0][1]]
    if header[:2] != ["name", "video"] or not set(header) <= {"name", "video", "notes"}:
        raise ConfigError(
            f"subject sheet header is {header}; expected tab-separated columns name, video[, notes]",
            path,
        )
    schema = _load_schema("subjects.schema.yaml")
    subjects: list[Subject] = []
    for line_number, row in rows[1:]:
        where = f"{path}, line {line_number}"
        extra = [value for value in row[len(header) :] if value.strip()]
        if extra:
            raise ConfigError(
                f"{len(row)} tab-separated fields, the header has {len(header)} ({', '.join(header)});"
                f" extra: {extra[0]!r} (a tab inside the notes?)",
                where,
            )
        record = {key: value.strip() for key, value in zip(header, row, strict=False)}
        try:
            _validate(record, schema, prefix="")
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("config key", "column"), where) from None
        subjects.append(_check_row(Subject(**record), path.parent, where))
    names = [subject.name for subject in subjects]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"subject name(s) used twice: {', '.join(duplicates)}", path)
    if not subjects:
        raise ConfigError("subject sheet lists no subjects", path)
    return subjects


def _check_row(subject: Subject, base: Path, where: str) -> Subject:
    if subject.video.startswith(SYNTHETIC_PREFIX):
        if not re.fullmatch(r"synthetic:\d+", subject.video):
            raise ConfigError(f"video {subject.video!r}: expected synthetic:SEED, SEED >= 0", where)
        return subject
    video = Path(subject.video).expanduser()
    if not video.is_absolute():
        video = base / video
    if not video.is_file():
        raise ConfigError(f"subject {subject.name}: video file not found: {video}", where)
    return Subject(name=subject.name, video=str(video), notes=subject.notes)


def load_driving(
    section: Mapping[str, str], subjects: list[Subject], base: str | Path = "."
) -> list[Subject]:
    """The driving-only videos of ``transfer.driving``: checked like sheet rows, names unique."""
    taken = {subject.name for subject in subjects}
    driving = []
    for name, video in section.items():
        where = f"transfer.driving.{name}"
        if name in taken:
            raise ConfigError(f"{where}: {name} is already a subject in the sheet; use another name")
        driving.append(_check_row(Subject(name=name, video=video, notes="driving video"), Path(base), where))
    return driving


def transfer_pairs(
    pairs: list[str], subjects: list[Subject], driving: list[Subject]
) -> list[tuple[str, str]]:
    """``transfer.pairs`` as (driving, target) names; ``*`` as target means every sheet subject."""
    targets = [subject.name for subject in subjects]
    sources = set(targets) | {video.name for video in driving}
    result: list[tuple[str, str]] = []
    for index, pair in enumerate(pairs):
        source, target = (part.strip() for part in pair.split("->"))
        where = f"config key transfer.pairs.{index}"
        if source not in sources:
            raise ConfigError(f"{where}: driving {source!r} is neither in transfer.driving nor in the sheet")
        if target != "*" and target not in targets:
            raise ConfigError(f"{where}: target {target!r} is not a subject in the sheet")
        for name in targets if target == "*" else [target]:
            if name != source and (source, name) not in result:
                result.append((source, name))
    return result


def check_hardware(config: Mapping[str, Any], cuda: bool | None = None) -> None:
    """GPU-only choices against this machine, before any job runs: one line naming the key.

    ``cuda``: whether a CUDA GPU is usable here (default: ask torch).
    """
    if cuda is None:
        import torch  # deferred: only where a config is checked for running

        cuda = torch.cuda.is_available()
    if cuda:
        return
    if config["device"] == "cuda":
        raise ConfigError(
            "config key device: cuda, but this machine has no CUDA GPU (torch finds none);"
            " use device: auto (the GPU where there is one) or cpu"
        )
    if config["train"].get("compile"):
        raise ConfigError(
            "config key train.compile: true needs a CUDA GPU (torch.compile of the generators),"
            " and this machine has none; set it to false"
        )


def jobs_run_here(argv: list[str], in_job: bool) -> bool:
    """Whether a Snakemake started with ``argv`` runs its jobs on this machine.

    Not inside a job (``in_job``), and not with a cluster executor, from ``--executor``/``-e`` or
    a ``--profile`` folder's config.yaml (Snakemake picks the executor after reading the
    Snakefile, so the workflow cannot ask it): a login node need not have the cluster's GPUs.
    """
    if in_job:
        return False
    executor = None
    for flag, value in zip(argv, [*argv[1:], ""], strict=True):
        if flag in ("--executor", "-e") or flag.startswith("--executor="):
            executor = flag.partition("=")[2] or value
        elif flag == "--profile" or flag.startswith("--profile="):
            profile = Path(flag.partition("=")[2] or value) / "config.yaml"
            if profile.is_file():
                executor = (yaml.safe_load(profile.read_text()) or {}).get("executor", executor)
    return executor in (None, "local", "dryrun", "touch")
