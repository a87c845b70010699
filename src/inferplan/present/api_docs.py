"""The web API's documentation page (``/api/docs``): the OpenAPI schema rendered as one
self-contained HTML page. Nothing is fetched when it is opened (Swagger UI would load its
scripts from a CDN, which fails offline and leaks the visit); the schema itself stays at
``/api/openapi.json``."""

from __future__ import annotations

from html import escape
from typing import Any

__all__ = ["api_docs_html"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 980px; padding: 1rem 1.5rem; color: #222; }
h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; } code { background: #f5f5f5; padding: 0 .2rem; }
table { border-collapse: collapse; margin: .5rem 0; font-size: .9rem; }
th, td { border: 1px solid #ddd; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f5f5f5; } .method { font-weight: bold; text-transform: uppercase; }
"""


def _type(schema: dict[str, Any]) -> str:
    """A field's type as a short phrase: 'integer', 'list of string', 'PlanRequest', 'a or b'."""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " or ".join(_type(s) for s in schema["anyOf"])
    kind = str(schema.get("type", "any"))
    if kind == "array":
        return f"list of {_type(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema:
        extra = schema["additionalProperties"]
        return f"object of {_type(extra) if isinstance(extra, dict) else 'any'}"
    return kind


def _limits(schema: dict[str, Any]) -> str:
    words = {
        "minimum": ">=",
        "exclusiveMinimum": ">",
        "maximum": "<=",
        "exclusiveMaximum": "<",
        "minLength": "length >=",
        "maxLength": "length <=",
        "maxItems": "items <=",
        "pattern": "matches",
    }
    found = [f"{word} {schema[key]}" for key, word in words.items() if key in schema]
    for option in schema.get("anyOf", []):
        found += [f"{word} {option[key]}" for key, word in words.items() if key in option]
    if "enum" in schema:
        found.append("one of " + ", ".join(str(v) for v in schema["enum"]))
    return "; ".join(found)


def _fields_table(model: dict[str, Any]) -> str:
    required = set(model.get("required", []))
    rows = []
    for name, field in model.get("properties", {}).items():
        default = "required" if name in required else escape(str(field.get("default", "")))
        rows.append(
            f"<tr><td><code>{escape(name)}</code></td><td>{escape(_type(field))}</td><td>{default}</td>"
            f"<td>{escape(_limits(field))}</td><td>{escape(str(field.get('description', '')))}</td></tr>"
        )
    head = "<tr><th>field</th><th>type</th><th>default</th><th>limits</th><th>meaning</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    parts = [f'<h3><span class="method">{escape(method)}</span> <code>{escape(path)}</code></h3>']
    text = op.get("description") or op.get("summary") or ""
    if text:
        parts.append(f"<p>{escape(str(text))}</p>")
    params = op.get("parameters", [])
    if params:
        rows = "".join(
            f"<tr><td><code>{escape(str(p.get('name')))}</code></td><td>{escape(str(p.get('in')))}</td>"
            f"<td>{escape(_type(p.get('schema', {})))}</td><td>{escape(_limits(p.get('schema', {})))}</td></tr>"
            for p in params
        )
        parts.append(f"<table><tr><th>parameter</th><th>in</th><th>type</th><th>limits</th></tr>{rows}</table>")
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if body:
        parts.append(f"<p>Body: JSON <code>{escape(_type(body))}</code> (below).</p>")
    answers = "".join(
        f"<tr><td>{escape(str(status))}</td><td>{escape(str(r.get('description', '')))}</td></tr>"
        for status, r in op.get("responses", {}).items()
    )
    parts.append(f"<table><tr><th>status</th><th>answer</th></tr>{answers}</table>")
    return "\n".join(parts)


def api_docs_html(openapi: dict[str, Any]) -> str:
    """The page for an OpenAPI document (FastAPI's ``app.openapi()``)."""
    info = openapi.get("info", {})
    title = f"{info.get('title', 'API')} {info.get('version', '')} API"
    ops = [
        _operation(path, method, op)
        for path, methods in openapi.get("paths", {}).items()
        for method, op in methods.items()
    ]
    schemas = openapi.get("components", {}).get("schemas", {})
    models = [
        f'<h3 id="{escape(name)}">{escape(name)}</h3><p>{escape(str(s.get("description", "")))}</p>{_fields_table(s)}'
        for name, s in schemas.items()
        if s.get("properties")
    ]
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1><p>{escape(str(info.get('description', '')))} The machine-readable schema is "
        '<a href="/api/openapi.json">/api/openapi.json</a>. Every error is JSON: '
        '<code>{"error": one line, "kind": error class}</code>.</p>'
        "<h2>Endpoints</h2>" + "\n".join(ops) + "<h2>Schemas</h2>" + "\n".join(models) + "</body></html>\n"
    )
