"""The two SQS wire protocols: parse a request into (action, members), render the answer.

AWS JSON 1.0 members are used as they come. Query (form) requests are unflattened into
the same shape: `Attribute.1.Name=X&Attribute.1.Value=Y` becomes `{"Attributes": {X: Y}}`,
`SendMessageBatchRequestEntry.2.Id=b` becomes `{"Entries": [..., {"Id": "b"}]}`. The legacy
element names are what old SDKs send; the member names are accepted too. XML answers use
the legacy names, as SQS itself does.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from xml.sax.saxutils import escape

import orjson

from conveyor.digits import integer
from conveyor.sqs.errors import INVALID_ACTION, SqsError, invalid

Protocol = Literal["json", "query"]

JSON_CONTENT_TYPE = "application/x-amz-json-1.0"
XML_CONTENT_TYPE = "text/xml"
XMLNS = "http://queue.amazonaws.com/doc/2012-11-05/"
TARGET_PREFIX = "AmazonSQS."

# Query element name -> request member name, for flattened lists and maps.
_QUERY_LISTS = {
    "AttributeName": "AttributeNames",
    "MessageAttributeName": "MessageAttributeNames",
    "MessageSystemAttributeName": "MessageSystemAttributeNames",
    "TagKey": "TagKeys",
    "SendMessageBatchRequestEntry": "Entries",
    "DeleteMessageBatchRequestEntry": "Entries",
    "ChangeMessageVisibilityBatchRequestEntry": "Entries",
    "AWSAccountId": "AWSAccountIds",
    "ActionName": "Actions",
    "StringListValue": "StringListValues",
    "BinaryListValue": "BinaryListValues",
}
_QUERY_MAPS = {
    "Attribute": "Attributes",
    "MessageAttribute": "MessageAttributes",
    "MessageSystemAttribute": "MessageSystemAttributes",
    "Tag": "Tags",
}
_MAP_MEMBERS = frozenset({*_QUERY_MAPS.values(), "tags"})
_LIST_MEMBERS = frozenset(_QUERY_LISTS.values())
_MAP_KEYS = ("Name", "Key", "key")
_MAP_VALUES = ("Value", "value")
_MAX_NAME_PARTS = 16

# Response member -> XML element (flattened lists) or (element, key, value) (flattened maps).
_XML_LISTS = {
    "QueueUrls": "QueueUrl",
    "queueUrls": "QueueUrl",
    "Messages": "Message",
    "Failed": "BatchResultErrorEntry",
    "Results": "ListMessageMoveTasksResultEntry",
}
_XML_MAPS = {
    "Attributes": ("Attribute", "Name", "Value"),
    "MessageAttributes": ("MessageAttribute", "Name", "Value"),
    "Tags": ("Tag", "Key", "Value"),
}


@dataclass(frozen=True, slots=True)
class WireRequest:
    """One parsed request: which protocol, which action, and its members."""

    protocol: Protocol
    action: str
    members: dict[str, Any]


@dataclass(frozen=True, slots=True)
class WireResponse:
    """What to send back."""

    status: int
    headers: dict[str, str]
    body: bytes


def is_json(content_type: str) -> bool:
    """True for the AWS JSON protocol (`application/x-amz-json-1.0`)."""
    return content_type.lower().startswith("application/x-amz-json")


def parse_json(target: str, body: bytes) -> WireRequest:
    """An AWS JSON 1.0 request: the action from `X-Amz-Target`, members from the body."""
    if not target.startswith(TARGET_PREFIX):
        raise SqsError(INVALID_ACTION, f"The X-Amz-Target {target[:100]!r} is not valid.")
    try:
        members = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError:
        raise invalid("The request body is not valid JSON.") from None
    if not isinstance(members, dict):
        raise invalid("The request body must be a JSON object.")
    return WireRequest("json", target[len(TARGET_PREFIX):], members)


def parse_query(items: Iterable[tuple[str, str]]) -> WireRequest:
    """A query request from its form (or URL) parameters."""
    tree: dict[str, Any] = {}
    for key, value in items:
        node = tree
        parts = key.split(".")
        if len(parts) > _MAX_NAME_PARTS:  # the deepest real name has 7; deeper would recurse
            raise invalid(f"The parameter name {key[:100]!r} is not valid.")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        if not isinstance(node.get(parts[-1]), dict):
            node[parts[-1]] = value
    members = _unflatten(tree)
    action = members.pop("Action", None)
    members.pop("Version", None)
    if not isinstance(action, str) or not action:
        raise SqsError(INVALID_ACTION, "The request must contain the parameter Action.")
    return WireRequest("query", action, members)


def _indexed(node: Mapping[str, Any]) -> list[Any] | None:
    if "member" in node and isinstance(node["member"], dict) and len(node) == 1:
        node = node["member"]  # non-flattened spelling: Name.member.1
    numbers = {k: integer(k) for k in node}
    if node and all(n is not None and k == k.strip() for k, n in numbers.items()):
        return [node[k] for k in sorted(node, key=lambda k: numbers[k] or 0)]
    return None


def _unflatten(node: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, child in node.items():
        name = _QUERY_LISTS.get(key) or _QUERY_MAPS.get(key) or key
        items = _indexed(child) if isinstance(child, dict) else None
        if items is not None and name in _MAP_MEMBERS:
            out[name] = _to_map(name, items)
        elif items is not None:
            out[name] = [_unflatten(i) if isinstance(i, dict) else i for i in items]
        elif isinstance(child, dict):
            out[name] = _unflatten(child)
        elif child == "" and (key in _QUERY_LISTS or key in _LIST_MEMBERS):
            out[name] = []  # how botocore's query serializer sends an empty list
        else:
            out[name] = child
    return out


def _to_map(name: str, entries: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise invalid(f"Entries of {name} need a name and a value.")
        key = next((entry[k] for k in _MAP_KEYS if k in entry), None)
        value = next((entry[k] for k in _MAP_VALUES if k in entry), None)
        if not isinstance(key, str):
            raise invalid(f"An entry of {name} has no name.")
        out[key] = _unflatten(value) if isinstance(value, dict) else value
    return out


# rendering ---------------------------------------------------------------------------
def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError


def render_json(output: Mapping[str, Any], request_id: str) -> WireResponse:
    """A JSON 1.0 success: the output members, `{}` when there are none."""
    body = orjson.dumps({k: v for k, v in output.items() if v is not None},
                        default=_json_default)
    return WireResponse(200, {"content-type": JSON_CONTENT_TYPE,
                              "x-amzn-requestid": request_id}, body)


def render_xml(action: str, output: Mapping[str, Any] | None, request_id: str) -> WireResponse:
    """A query success: `<{Action}Response><{Action}Result>…` with legacy element names."""
    parts = ['<?xml version="1.0"?>', f'<{action}Response xmlns="{XMLNS}">']
    if output is not None:
        parts.append(f"<{action}Result>")
        _xml_members(parts, output, action)
        parts.append(f"</{action}Result>")
    parts.append(f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>")
    parts.append(f"</{action}Response>")
    return WireResponse(200, {"content-type": XML_CONTENT_TYPE,
                              "x-amzn-requestid": request_id}, "".join(parts).encode())


def _xml_members(parts: list[str], data: Mapping[str, Any], action: str) -> None:
    for name, value in data.items():
        if value is None:
            continue
        if name in _XML_MAPS and isinstance(value, Mapping):
            element, key_name, value_name = _XML_MAPS[name]
            for key, item in value.items():
                parts.append(f"<{element}><{key_name}>{_text(key)}</{key_name}>")
                _xml_value(parts, value_name, item, action)
                parts.append(f"</{element}>")
        elif isinstance(value, list):
            element = f"{action}ResultEntry" if name == "Successful" else \
                _XML_LISTS.get(name, name)
            for item in value:
                _xml_value(parts, element, item, action)
        else:
            _xml_value(parts, name, value, action)


def _xml_value(parts: list[str], name: str, value: Any, action: str) -> None:
    if isinstance(value, Mapping):
        parts.append(f"<{name}>")
        _xml_members(parts, value, action)
        parts.append(f"</{name}>")
    else:
        parts.append(f"<{name}>{_text(value)}</{name}>")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    # \r would be read back as \n by an XML parser; AWS writes it as a reference.
    return escape(str(value)).replace("\r", "&#xD;")


def render_error(protocol: Protocol, error: SqsError, request_id: str) -> WireResponse:
    """An error in the shape the request's protocol uses."""
    kind = error.kind
    fault = "Sender" if kind.sender else "Receiver"
    # A message may quote input that was not UTF-8 (lone surrogates): never fail on it.
    text = error.message if protocol == "json" else error.query_message
    message = text.encode("utf-8", "replace").decode("utf-8")
    if protocol == "json":
        body = orjson.dumps({"__type": f"com.amazonaws.sqs#{kind.shape}",
                             "message": message})
        return WireResponse(kind.status, {
            "content-type": JSON_CONTENT_TYPE, "x-amzn-requestid": request_id,
            "x-amzn-query-error": f"{kind.code};{fault}"}, body)
    xml = (f'<?xml version="1.0"?><ErrorResponse xmlns="{XMLNS}"><Error><Type>{fault}</Type>'
           f"<Code>{_text(kind.code)}</Code><Message>{_text(message)}</Message>"
           f"<Detail/></Error><RequestId>{request_id}</RequestId></ErrorResponse>")
    return WireResponse(kind.status, {"content-type": XML_CONTENT_TYPE,
                                      "x-amzn-requestid": request_id}, xml.encode())
