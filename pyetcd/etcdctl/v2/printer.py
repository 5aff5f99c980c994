"""etcdctl v2's output formats (simple, extended, json) of a keys response."""
from __future__ import annotations

import json
import sys

from pyetcd.etcdctl.v2.client import Answer

_NODE_FIELDS = ("key", "dir", "value", "nodes", "createdIndex", "modifiedIndex", "expiration", "ttl")
_OMIT_EMPTY = ("dir", "expiration", "ttl")


def go_node(node: dict | None) -> dict | None:
    """A node as the Go client's Node struct marshals it: its field order, null nodes, omitempty fields."""
    if node is None:
        return None
    out: dict = {}
    for name in _NODE_FIELDS:
        value = node.get(name)
        if name in _OMIT_EMPTY and not value:
            continue
        if name == "nodes":
            value = [go_node(n) for n in value] if value else None
        elif name == "value":
            value = value or ""
        elif name in ("createdIndex", "modifiedIndex"):
            value = value or 0
        out[name] = value
    return out


def go_json(value: object) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def print_response(answer: Answer, output: str) -> None:
    body = answer.body
    node, prev = body.get("node") or {}, body.get("prevNode")
    if output == "simple":
        if body.get("action") != "delete":
            print(node.get("value", ""))
        elif prev is not None:
            print("PrevNode.Value:", prev.get("value", ""))
    elif output == "extended":
        lines = [f"Key: {node.get('key', '')}", f"Created-Index: {node.get('createdIndex', 0)}",
                 f"Modified-Index: {node.get('modifiedIndex', 0)}"]
        if prev is not None:
            lines.append(f"PrevNode.Value: {prev.get('value', '')}")
        lines += [f"TTL: {node.get('ttl', 0)}", f"Index: {answer.index}", "", node.get("value", "")]
        print("\n".join(lines))
    elif output == "json":
        print(go_json({"action": body.get("action", ""), "node": go_node(node), "prevNode": go_node(prev)}))
    else:
        sys.stderr.write(f"Error:  unsupported output format {output}\n")
