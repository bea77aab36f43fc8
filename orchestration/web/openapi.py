"""The HTTP API's OpenAPI 3.1 document, written by hand (api.py serves it at
``/v1/openapi.json``), and the readable page ``/v1/docs`` rendered from it on the server: no
script and nothing from a CDN (the app's Content-Security-Policy allows neither)."""

from __future__ import annotations

import html
import json

_ERROR = {"$ref": "#/components/schemas/Error"}
_EXACT = "an exact decimal as a string (never a float)"


def _answer(description: str, schema: dict | None = None) -> dict:
    body = {"description": description}
    if schema is not None:
        body["content"] = {"application/json": {"schema": schema}}
    return body


def _errors(*statuses: int) -> dict:
    what = {400: "a bad parameter or batch (the message names it)",
            401: "no valid key or token (the same body whatever the reason)",
            403: "a valid key of the other scope",
            404: "no such customer, or one this caller may not see (the same body)",
            405: "a method this path does not take",
            413: "the body is larger than 1 MiB",
            415: "the body is not application/json",
            503: "no data yet, or the batch could not be written (nothing of it is kept)"}
    return {str(s): _answer(what[s], _ERROR) for s in statuses}


_CUSTOMER = {"name": "customer_id", "in": "path", "required": True,
             "schema": {"type": "string", "maxLength": 256},
             "description": "A customer id of the price book (customers.csv)."}


def document() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Meterline HTTP API", "version": "1",
            "description": (
                "Post usage events into a Meterline home and read a customer's usage and "
                "invoices. Events posted are written durably to landing/api/ before the 202 "
                "answer and land at the next `meterline ingest` or landing-sensor tick, with "
                "every rule of docs/contract.md section 2. Money and quantities are exact "
                "decimal strings. See docs/operations.md section 14.")},
        "servers": [{"url": "http://127.0.0.1:8080"}],
        "security": [],
        "paths": {
            "/v1/events": {"post": {
                "operationId": "postEvents", "summary": "Post a batch of usage events",
                "description": (
                    "1 to 1,000 events in the contract's shape, at most 1 MiB. The batch is "
                    "written whole as one JSON Lines file named by the SHA-256 of its content "
                    "(fsync, atomic rename) before the answer: 202 means it is in landing/, "
                    "not yet validated or billed. Only the batch's structure is checked here; "
                    "every event rule is applied when it lands (bad rows are quarantined with "
                    "a reason). Retrying an identical batch writes nothing more; any other "
                    "copy of an event_id is a duplicate, counted once. Nothing is written on "
                    "any 4xx."),
                "security": [{"ingestKey": []}],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/EventBatch"}}}},
                "responses": {
                    "202": _answer("written to landing/ (or already there: a retry)",
                                   {"$ref": "#/components/schemas/Accepted"}),
                    **_errors(400, 401, 403, 405, 413, 415, 503)}}},
            "/v1/customers/{customer_id}/usage": {"get": {
                "operationId": "getUsage", "summary": "A customer's daily usage",
                "description": (
                    "Rows of marts.fct_usage_daily from the readers' snapshot: per UTC day, "
                    "meter and product item (null: usage no item prices). `from` is "
                    "inclusive, `to` exclusive; default this UTC month to date, today "
                    "included; at most 366 days."),
                "security": [{"operatorKey": []}, {"portalToken": []}],
                "parameters": [
                    _CUSTOMER,
                    {"name": "from", "in": "query", "required": False,
                     "schema": {"type": "string", "format": "date"},
                     "description": "First UTC day (inclusive); default the 1st of this month."},
                    {"name": "to", "in": "query", "required": False,
                     "schema": {"type": "string", "format": "date"},
                     "description": "UTC day after the last one (exclusive); default tomorrow."},
                    {"name": "granularity", "in": "query", "required": False,
                     "schema": {"type": "string", "enum": ["day"], "default": "day"}}],
                "responses": {
                    "200": _answer("the usage", {"$ref": "#/components/schemas/Usage"}),
                    **_errors(400, 401, 403, 404, 405, 503)}}},
            "/v1/customers/{customer_id}/invoices": {"get": {
                "operationId": "getInvoices", "summary": "A customer's invoices and lines",
                "description": (
                    "Published invoices and drafts (a month not yet published: its latest "
                    "draft, the estimate), newest period first, from marts.fct_invoices and "
                    "fct_invoice_lines."),
                "security": [{"operatorKey": []}, {"portalToken": []}],
                "parameters": [_CUSTOMER],
                "responses": {
                    "200": _answer("the invoices", {"$ref": "#/components/schemas/Invoices"}),
                    **_errors(400, 401, 403, 404, 405, 503)}}},
            "/v1/openapi.json": {"get": {
                "operationId": "getOpenApi", "summary": "This document", "security": [],
                "responses": {"200": _answer("the OpenAPI document", {"type": "object"})}}},
            "/v1/docs": {"get": {
                "operationId": "getDocs", "summary": "This document as a page", "security": [],
                "responses": {"200": {"description": "an HTML page",
                                      "content": {"text/html": {"schema": {"type": "string"}}}}}
            }},
        },
        "components": {
            "securitySchemes": {
                "ingestKey": {"type": "http", "scheme": "bearer",
                              "description": "An ingest key (mli_...): `meterline api-key "
                              "issue --scope ingest`. May only post events."},
                "operatorKey": {"type": "http", "scheme": "bearer",
                                "description": "An operator key (mlk_...): `meterline api-key "
                                "issue --scope operator`. May read any customer."},
                "portalToken": {"type": "http", "scheme": "bearer",
                                "description": "A customer's portal token: its own "
                                "/v1/customers/{its id}/... only."}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {
                    "error": {"type": "object", "required": ["code", "message"], "properties": {
                        "code": {"type": "string"}, "message": {"type": "string"}}}}},
                "Event": {"type": "object", "description": "docs/contract.md section 2",
                          "properties": {
                              "event_id": {"type": "string", "minLength": 1, "maxLength": 256},
                              "customer_id": {"type": "string"}, "meter": {"type": "string"},
                              "value": {"type": ["number", "string", "null"],
                                        "description": "exact: DECIMAL(38,12); missing is 1"},
                              "timestamp": {"type": ["string", "integer"],
                                            "description": "ISO 8601 with an offset, or "
                                            "epoch milliseconds"},
                              "dimensions": {"type": ["object", "null"],
                                             "additionalProperties": {"type": "string"}}},
                          "required": ["event_id", "customer_id", "meter", "timestamp"]},
                "EventBatch": {"type": "object", "required": ["events"],
                               "additionalProperties": False, "properties": {
                                   "events": {"type": "array", "minItems": 1, "maxItems": 1000,
                                              "items": {"$ref": "#/components/schemas/Event"}}}},
                "Accepted": {"type": "object", "required": ["accepted", "batch_id", "file"],
                             "properties": {
                                 "accepted": {"type": "integer",
                                              "description": "events written"},
                                 "batch_id": {"type": "string",
                                              "description": "SHA-256 of the file"},
                                 "file": {"type": "string",
                                          "description": "path under landing/"},
                                 "already_written": {"type": "boolean",
                                                     "description": "a retry: the same batch "
                                                     "was written before"}}},
                "UsageRow": {"type": "object", "properties": {
                    "date": {"type": "string", "format": "date"},
                    "meter_id": {"type": "string"},
                    "product_item_id": {"type": ["string", "null"]},
                    "aggregation": {"type": "string"}, "is_additive": {"type": "boolean"},
                    "event_count": {"type": "integer"},
                    "quantity": {"type": "string", "description": _EXACT}}},
                "Usage": {"type": "object", "properties": {
                    "customer_id": {"type": "string"},
                    "data_as_of": {"type": ["string", "null"], "format": "date-time"},
                    "from": {"type": "string", "format": "date"},
                    "to": {"type": "string", "format": "date"},
                    "granularity": {"type": "string"},
                    "usage": {"type": "array",
                              "items": {"$ref": "#/components/schemas/UsageRow"}}}},
                "InvoiceLine": {"type": "object", "properties": {
                    "line_number": {"type": "integer"}, "line_type": {"type": "string"},
                    "product_item_id": {"type": ["string", "null"]},
                    "meter_id": {"type": ["string", "null"]}, "description": {"type": "string"},
                    "usage_period_start": {"type": "string", "format": "date"},
                    "usage_period_end": {"type": "string", "format": "date"},
                    "quantity": {"type": ["string", "null"], "description": _EXACT},
                    "unit_price": {"type": ["string", "null"], "description": _EXACT},
                    "tier": {"type": ["integer", "null"]},
                    "amount": {"type": "string",
                               "description": "exact, at the currency's minor unit"}}},
                "Invoice": {"type": "object", "properties": {
                    "invoice_id": {"type": "string"},
                    "invoice_number": {"type": ["string", "null"]},
                    "status": {"type": "string", "enum": ["draft", "published"]},
                    "billing_period_start": {"type": "string", "format": "date"},
                    "billing_period_end": {"type": "string", "format": "date"},
                    "currency": {"type": "string"},
                    "subtotal": {"type": "string"}, "total": {"type": "string"},
                    "line_count": {"type": "integer"},
                    "issued_at": {"type": ["string", "null"], "format": "date-time"},
                    "usage_accrued_to": {"type": ["string", "null"], "format": "date-time"},
                    "lines": {"type": "array",
                              "items": {"$ref": "#/components/schemas/InvoiceLine"}}}},
                "Invoices": {"type": "object", "properties": {
                    "customer_id": {"type": "string"},
                    "data_as_of": {"type": ["string", "null"], "format": "date-time"},
                    "invoices": {"type": "array",
                                 "items": {"$ref": "#/components/schemas/Invoice"}}}},
            },
        },
    }


def render_html(doc: dict) -> str:
    """The document as one readable page (escaped; no script)."""
    e = html.escape
    out = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
           f"<title>{e(doc['info']['title'])}</title><style>",
           "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;"
           "padding:0 1rem;line-height:1.45}code,pre{background:#f4f4f4;padding:0 .2rem}"
           "pre{padding:.6rem;overflow:auto}table{border-collapse:collapse}"
           "td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}"
           "h2{border-top:1px solid #ddd;padding-top:1rem}</style></head><body>",
           f"<h1>{e(doc['info']['title'])} (version {e(doc['info']['version'])})</h1>",
           f"<p>{e(doc['info']['description'])}</p>",
           "<p>The machine-readable document: <a href='/v1/openapi.json'>/v1/openapi.json</a>"
           " (OpenAPI 3.1).</p>"]
    schemes = doc["components"]["securitySchemes"]
    out.append("<h2>Authentication</h2><table><tr><th>scheme</th><th>what</th></tr>")
    for name, scheme in schemes.items():
        out.append(f"<tr><td><code>{e(name)}</code> (Bearer)</td>"
                   f"<td>{e(scheme['description'])}</td></tr>")
    out.append("</table>")
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            out.append(f"<h2 id='{e(op['operationId'])}'><code>{e(method.upper())} "
                       f"{e(path)}</code></h2><p><b>{e(op['summary'])}</b></p>")
            if op.get("description"):
                out.append(f"<p>{e(op['description'])}</p>")
            security = [name for req in op.get("security", []) for name in req]
            out.append(f"<p>Authentication: {e(', '.join(security) or 'none')}</p>")
            if op.get("parameters"):
                out.append("<table><tr><th>parameter</th><th>in</th><th>schema</th>"
                           "<th>description</th></tr>")
                for p in op["parameters"]:
                    out.append(f"<tr><td><code>{e(p['name'])}</code></td><td>{e(p['in'])}</td>"
                               f"<td><code>{e(json.dumps(p['schema']))}</code></td>"
                               f"<td>{e(p.get('description', ''))}</td></tr>")
                out.append("</table>")
            out.append("<table><tr><th>status</th><th>meaning</th></tr>")
            for status, answer in op["responses"].items():
                out.append(f"<tr><td>{e(status)}</td><td>{e(answer['description'])}</td></tr>")
            out.append("</table>")
    out.append("<h2>Schemas</h2>")
    for name, schema in doc["components"]["schemas"].items():
        out.append(f"<h3 id='schema-{e(name)}'>{e(name)}</h3>"
                   f"<pre>{e(json.dumps(schema, indent=2))}</pre>")
    out.append("</body></html>")
    return "".join(out)
