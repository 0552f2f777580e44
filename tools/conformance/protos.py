"""Message classes of a generated ``*_pb2.py`` module, from the file descriptor it embeds.

Such a module builds its classes at import time from a serialized ``FileDescriptorProto``
(``serialized_pb=...``); that descriptor is decoded here with ``protobuf``'s own
``descriptor_pb2`` and turned into class summaries (:mod:`.summary`) whose members are the
message's fields, nested messages and enums, the values of its nested enums and the methods
every protobuf message has. ``fields`` says what each field holds, so that code such as
``config.graph_options.rewrite_options.custom_optimizers.add().parameter_map["x"].b`` can be
followed field by field.
"""
import ast

#: Methods and attributes of every protobuf message (``google.protobuf.message.Message``).
MESSAGE_API = ("ByteSize", "Clear", "ClearExtension", "ClearField", "CopyFrom", "DESCRIPTOR",
               "DiscardUnknownFields", "Extensions", "FindInitializationErrors", "FromString",
               "HasExtension", "HasField", "IsInitialized", "ListFields", "MergeFrom",
               "MergeFromString", "ParseFromString", "RegisterExtension", "SerializePartialToString",
               "SerializeToString", "SetInParent", "UnknownFields", "WhichOneof")

_LABEL_REPEATED = 3
_TYPE_MESSAGE = 11
_TYPE_ENUM = 14


def serialized_descriptor(tree):
    """The bytes of ``serialized_pb=_b('...')`` / ``AddSerializedFile(b'...')`` in a module, or ``None``."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        values = [k.value for k in node.keywords if k.arg == "serialized_pb"]
        if getattr(node.func, "attr", None) == "AddSerializedFile":
            values = node.args[:1]
        for value in values:
            if isinstance(value, ast.Call) and value.args:
                value = value.args[0]
            if isinstance(value, ast.Constant):
                text = value.value
                return text if isinstance(text, bytes) else text.encode("latin1")
    return None


def add_messages(summary, tree, module):
    """Add the message classes of a ``_pb2`` module's ``tree`` to its ``summary`` (in place)."""
    data = serialized_descriptor(tree)
    if data is None:
        return summary
    from google.protobuf import descriptor_pb2

    proto = descriptor_pb2.FileDescriptorProto.FromString(data)
    package = "." + proto.package if proto.package else ""
    summary["proto_names"] = {}
    summary["proto_dependencies"] = [path[:-len(".proto")].replace("/", ".") + "_pb2"
                                     for path in proto.dependency]
    for enum in proto.enum_type:
        summary["bindings"][enum.name] = ["value"]
        for value in enum.value:
            summary["bindings"][value.name] = ["value"]
    for message in proto.message_type:
        summary["bindings"][message.name] = ["class", message.name]
        _message(summary, message, message.name, package + "." + message.name)
    return summary


def _message(summary, message, qualname, full_name):
    members = dict((name, ["attr"]) for name in MESSAGE_API)
    fields = {}
    info = {"name": message.name, "bases": [], "members": members, "open": False, "fields": fields}
    summary["classes"][qualname] = info
    summary["proto_names"][full_name] = qualname
    entries = dict((nested.name, nested) for nested in message.nested_type if nested.options.map_entry)
    for nested in message.nested_type:
        members[nested.name] = ["class", qualname + "." + nested.name]
        _message(summary, nested, qualname + "." + nested.name, full_name + "." + nested.name)
    for enum in message.enum_type:
        members[enum.name] = ["attr"]
        for value in enum.value:
            members[value.name] = ["attr"]
    for field in message.field:
        members[field.name] = ["attr"]
        fields[field.name] = _field(field, entries)


def _field(field, entries):
    """``{"kind": "message" | "enum" | "scalar", "type": full name, "repeated": bool, "map": bool}``;
    for a map field, kind and type are those of its values."""
    entry_name = field.type_name.split(".")[-1]
    if field.type == _TYPE_MESSAGE and entry_name in entries:
        value = [f for f in entries[entry_name].field if f.name == "value"][0]
        described = _field(value, {})
        described.update({"repeated": False, "map": True})
        return described
    kind = {_TYPE_MESSAGE: "message", _TYPE_ENUM: "enum"}.get(field.type, "scalar")
    return {"kind": kind, "type": field.type_name or None, "repeated": field.label == _LABEL_REPEATED,
            "map": False}
