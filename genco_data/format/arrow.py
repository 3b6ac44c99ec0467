"""Derive the Arrow schema, the Hugging Face ``Features`` and a JSON Schema from the pydantic records.

Nothing here names a column: everything comes from :mod:`genco_data.format.records`. ``write_schema_files``
regenerates ``schema/v1/``; a test fails when the checked-in files drift from the code.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import BaseModel

from genco_data.format.components import CLICK_NAMES
from genco_data.format.records import FORMAT_MAJOR, ImpressionRow, Manifest, PredictionRow, Submission

_PA_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "date32": pa.date32(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int64": pa.int64(),
    "float32": pa.float32(),
    "list<int64>": pa.list_(pa.int64()),
    "list<float32>": pa.list_(pa.float32()),
}
#: Fields stored as a ClassLabel in the HF Features (name -> class names).
_CLASS_LABELS: dict[str, tuple[str, ...]] = {"click": CLICK_NAMES}


def _arrow_name(field: Any) -> str:
    extra = field.json_schema_extra or {}
    return extra["arrow"]


def _nullable(field: Any) -> bool:
    # Optional[...] annotations admit None; lists are never null (an absent pool is an empty list).
    return not field.is_required() or type(None) in getattr(field.annotation, "__args__", ())


def arrow_schema_of(model: type[BaseModel]) -> pa.Schema:
    """``pa.Schema`` of a records model, field order preserved, nullability from ``Optional``."""
    fields = []
    for name, f in model.model_fields.items():
        fields.append(pa.field(name, _PA_TYPES[_arrow_name(f)], nullable=_nullable(f)))
    return pa.schema(fields)


def impressions_schema() -> pa.Schema:
    """Arrow schema of a row of config ``impressions`` / ``sample`` as stored in Parquet."""
    return arrow_schema_of(ImpressionRow)


def predictions_schema(with_scores: bool = True) -> pa.Schema:
    """Arrow schema of a predictions file (scores columns optional)."""
    schema = arrow_schema_of(PredictionRow)
    if with_scores:
        return schema
    return pa.schema([f for f in schema if not f.name.endswith("_scores")])


def impressions_features():  # -> datasets.Features (imported lazily: building must not need datasets)
    """``datasets.Features`` of the ``impressions`` config: Arrow types, with ``click`` a ClassLabel."""
    from datasets import ClassLabel, Features, List, Value

    feats: dict[str, Any] = {}
    for name, f in ImpressionRow.model_fields.items():
        arrow = _arrow_name(f)
        if name in _CLASS_LABELS:
            feats[name] = ClassLabel(names=list(_CLASS_LABELS[name]))
        elif arrow.startswith("list<"):
            feats[name] = List(Value(arrow[5:-1]))
        else:
            feats[name] = Value(arrow)
    return Features(feats)


def json_schema_of(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def schema_documents() -> dict[str, str]:
    """The generated files of ``schema/v<major>/``: file name -> exact text."""
    features = impressions_features()
    docs = {
        "impression.schema.json": json.dumps(json_schema_of(ImpressionRow), indent=2, sort_keys=True) + "\n",
        "predictions.schema.json": json.dumps(json_schema_of(PredictionRow), indent=2, sort_keys=True) + "\n",
        "manifest.schema.json": json.dumps(json_schema_of(Manifest), indent=2, sort_keys=True) + "\n",
        "submission.schema.json": json.dumps(json_schema_of(Submission), indent=2, sort_keys=True) + "\n",
        "impressions.arrow.txt": impressions_schema().to_string(show_schema_metadata=False) + "\n",
        "predictions.arrow.txt": predictions_schema().to_string(show_schema_metadata=False) + "\n",
        "impressions.features.yaml": _features_yaml(features),
    }
    return docs


def _features_yaml(features: Any) -> str:
    # The exact list ``dataset_info.features`` takes in a card's YAML front matter.
    lines = []
    for item in features._to_yaml_list():
        lines.append(json.dumps(item, sort_keys=True))
    return "# dataset_info.features, one JSON object per feature (YAML flow style)\n" + "\n".join(
        f"- {line}" for line in lines
    ) + "\n"


def schema_dir(root: Path) -> Path:
    return Path(root) / "schema" / f"v{FORMAT_MAJOR}"


def write_schema_files(root: Path) -> list[Path]:
    """(Re)generate ``schema/v<major>/`` under the project ``root``; returns the written paths."""
    out = schema_dir(root)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in schema_documents().items():
        p = out / name
        p.write_text(text, encoding="utf-8")
        written.append(p)
    return written


__all__ = [
    "arrow_schema_of",
    "impressions_schema",
    "predictions_schema",
    "impressions_features",
    "json_schema_of",
    "schema_documents",
    "write_schema_files",
]


if __name__ == "__main__":  # regenerate schema/v1 from the records: python -m genco_data.format.arrow [ROOT]
    import sys

    for p in write_schema_files(Path(sys.argv[1] if len(sys.argv) > 1 else ".")):
        print(p)
