"""The AsyncAPI document of the events we publish, generated from the event catalogue.

Agency teams build subscribers from this document alone: each event type is a channel named
by its routing key, bound to its producer's topic exchange (``<producer>.events``); each
registered version is a message whose payload is the common envelope with ``data`` in that
version's schema. The schemas come from the catalogue's marshmallow classes (through apispec),
so the document cannot drift from what publishers validate against.
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from portal_common.contracts import CATALOGUE, Catalogue
from portal_common.contracts.fields import EnvelopeSchema

ASYNCAPI_VERSION = "2.6.0"


def message_name(event_type: str, version: int) -> str:
    return f"{event_type}.v{version}"


def schema_name(event_type: str, version: int) -> str:
    return f"{event_type}V{version}"


def _json_schemas(catalogue: Catalogue) -> dict[str, Any]:
    """JSON Schemas of the envelope and of every registered payload, by component name."""
    spec = APISpec(title="events", version="1", openapi_version="3.0.3", plugins=[MarshmallowPlugin()])
    spec.components.schema("Envelope", schema=EnvelopeSchema)
    for contract in catalogue:
        spec.components.schema(schema_name(contract.event_type, contract.version), schema=contract.schema)
    return spec.to_dict()["components"]["schemas"]


def build_asyncapi(catalogue: Catalogue = CATALOGUE, version: str = "1.0.0") -> dict[str, Any]:
    """The whole document: one channel per event type, one message per version."""
    schemas = _json_schemas(catalogue)
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    for contract in catalogue:
        name = message_name(contract.event_type, contract.version)
        messages[name] = {
            "name": contract.event_type,
            "title": f"{contract.event_type} (version {contract.version})",
            "summary": contract.summary,
            "contentType": "application/json",
            "x-schema-version": contract.version,
            "x-producer": contract.producer,
            "headers": {"$ref": "#/components/schemas/MessageHeaders"},
            "payload": {"allOf": [
                {"$ref": "#/components/schemas/Envelope"},
                {"type": "object", "properties": {
                    "event_type": {"type": "string", "enum": [contract.event_type]},
                    "schema_version": {"type": "integer", "enum": [contract.version]},
                    "data": {"$ref": f"#/components/schemas/{schema_name(contract.event_type, contract.version)}"},
                }},
            ]},
            "bindings": {"amqp": {"deliveryMode": 2, "messageType": contract.event_type,
                                  "bindingVersion": "0.2.0"}},
        }
        channel = channels.setdefault(contract.routing_key, {
            "description": contract.summary,
            "x-producer": contract.producer,
            "x-versions": [],
            "bindings": {"amqp": {
                "is": "routingKey",
                "exchange": {"name": contract.exchange, "type": "topic", "durable": True, "autoDelete": False,
                             "vhost": "/"},
                "bindingVersion": "0.2.0",
            }},
            "subscribe": {
                "operationId": f"receive{contract.event_type}",
                "summary": f"{contract.producer} publishes {contract.event_type} on exchange {contract.exchange}",
                "message": {"oneOf": []},
            },
        })
        channel["x-versions"].append(contract.version)
        channel["subscribe"]["message"]["oneOf"].append({"$ref": f"#/components/messages/{name}"})
    schemas["MessageHeaders"] = {
        "type": "object",
        "description": "AMQP headers of every event message (the body's envelope repeats them)",
        "properties": {
            "event_type": {"type": "string"},
            "schema_version": {"type": "integer"},
            "stream_id": {"type": "string"},
            "position": {"type": "integer"},
            "nameko.correlation_id": {"type": "string", "description": "the gateway request id"},
            "dossier_status": {"type": "string", "description": "dossier events: the status after the event"},
            "national_status_code": {"type": "integer",
                                     "description": "dossier events: the national portal's code of that status"},
        },
    }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Public-service portal events",
            "version": version,
            "description": (
                "Every event the portal publishes. Bind a durable queue to the producer's topic exchange with "
                "the event type as routing key. Messages are persistent JSON in UTF-8, delivered at least once: "
                "deduplicate on the envelope's `event_id`. A changed meaning is a new `schema_version`; old "
                "versions stay listed. Dossier events also carry, in the envelope's `attributes` and as AMQP "
                "headers, `dossier_status` (the dossier's status after the event) and `national_status_code` "
                "(the national portal's code of it: 1 new, 2 accepted, 3 not accepted, 4 processing, "
                "5 supplement requested, 6 financial obligation requested, 7 withdrawn, 8 stopped, 9 finished, "
                "10 result returned), for consumers that filter or sync on them."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {"rabbitmq": {"url": "{host}:{port}", "protocol": "amqp", "protocolVersion": "0.9.1",
                                 "variables": {"host": {"default": "localhost"}, "port": {"default": "5672"}}}},
        "channels": dict(sorted(channels.items())),
        "components": {"messages": messages, "schemas": schemas},
    }


def render_markdown(doc: dict[str, Any]) -> str:
    """A human page of the same document (docs/events.md)."""
    lines = [f"# {doc['info']['title']}", "", doc["info"]["description"], "",
             "Generated from `portal_common/contracts` by `python -m gateway.http.asyncapi`; do not edit.", "",
             "| routing key | exchange | versions | summary |", "|---|---|---|---|"]
    for key, channel in doc["channels"].items():
        exchange = channel["bindings"]["amqp"]["exchange"]["name"]
        versions = ", ".join(str(v) for v in channel["x-versions"])
        lines.append(f"| `{key}` | `{exchange}` | {versions} | {channel['description']} |")
    lines.append("")
    schemas = doc["components"]["schemas"]
    for name, message in doc["components"]["messages"].items():
        data_ref = message["payload"]["allOf"][1]["properties"]["data"]["$ref"].rsplit("/", 1)[-1]
        props = schemas.get(data_ref, {}).get("properties", {})
        required = set(schemas.get(data_ref, {}).get("required", []))
        lines += [f"## {name}", "", message["summary"], "", "| field | type | required |", "|---|---|---|"]
        for field, prop in props.items():
            kind = prop.get("type") or ("object" if "$ref" in prop or "allOf" in prop else "any")
            lines.append(f"| `{field}` | {kind} | {'yes' if field in required else ''} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Write the events page (default docs/events.md), or the AsyncAPI JSON with ``--json``."""
    import argparse
    import json
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m gateway.http.asyncapi",
                                     description="Write the events catalogue as a Markdown page or AsyncAPI JSON.")
    parser.add_argument("output", nargs="?", default="docs/events.md", help="file to write (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="write the AsyncAPI document instead of the page")
    args = parser.parse_args(argv)
    doc = build_asyncapi()
    text = json.dumps(doc, indent=2, ensure_ascii=False) if args.json else render_markdown(doc)
    target = Path(args.output)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
