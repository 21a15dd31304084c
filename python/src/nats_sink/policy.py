"""What a sink's component may make the host reach, and which messages the host publishes.

The rules are the Rust host's, read from `policy.json` (generated from the rules crate and
`host/src/policy.rs` by `tests/tests/conformance/policy_file.rs`), not a copy written by hand.
The component is untrusted: every `connect-config` it returns is checked against the user's own
options before the host connects or reads a file, and every subject and header it publishes is
checked before it is sent.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any, Optional, Sequence

POLICY: dict[str, Any] = json.loads(resources.files(__package__).joinpath("policy.json").read_text("utf-8"))


def _char_class(runs: Sequence[Sequence[int]], negate: bool = False) -> "re.Pattern[str]":
    """Runs of code points (sorted, inclusive) as one compiled character class, so a subject or
    header is searched at the regex engine's speed rather than one Python call per character."""
    ranges = "".join(f"\\U{start:08x}-\\U{end:08x}" for start, end in runs)
    return re.compile(f"[{'^' if negate else ''}{ranges}]")


def _first(pattern: "re.Pattern[str]", text: str) -> Optional[str]:
    found = pattern.search(text)
    return None if found is None else found.group()


_M = POLICY["messages"]
_WHITESPACE = _char_class(_M["whitespace"])
_CONTROL = _char_class(_M["control"])
_HEADER_SPACE = _char_class(_M["header_space"])
_NOT_HEADER_NAME = _char_class([(c, c) for c in _M["header_name_ascii"]], negate=True)
# Subjects repeat from row to row (a fixed subject, or a template over few values): the
# answer for one is remembered, within a bound.
_SUBJECTS_REMEMBERED = 4096

_AUTH_KIND = {"none": "no", "user-password": "user and password", "credential": "JWT and NKey",
              "token": "token", "credentials-file": "credentials file", "nkey": "NKey"}


def parse_entry(text: str) -> Optional[tuple[Optional[str], str, bool]]:
    """One `server_url` entry as `(userinfo, host:port with the host lower-cased, tls)`, or None."""
    reach = POLICY["reach"]
    rest, tls = text.strip(), False
    scheme, sep, after = rest.partition("://")
    if sep:
        if scheme.lower() in reach["tls_schemes"]:
            tls = True
        elif scheme.lower() not in reach["plain_schemes"]:
            return None
        rest = after
    info, at, hostport = rest.rpartition("@")
    userinfo = info if at else None
    if userinfo == "" or any(c in hostport for c in "/?#"):
        return None
    host, colon, port = hostport.rpartition(":")
    if not colon or not host or not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        return None
    return userinfo, f"{host.lower()}:{int(port)}", tls


def _parse_servers(raw: str) -> Optional[list[tuple[Optional[str], str, bool]]]:
    entries = [parse_entry(e) for e in raw.split(",")]
    return None if any(e is None for e in entries) else entries  # type: ignore[return-value]


def _redact(entry: str) -> str:
    scheme, sep, rest = entry.rpartition("://")
    info, at, host = rest.rpartition("@")
    if not at:
        return entry
    return f"{scheme}{sep}{info.partition(':')[0] + ':***' if ':' in info else '***'}@{host}"


def _refused(what: str) -> str:
    return f"the host's policy refused the component's {what}; nothing was connected or read"


def _allowed(kind: str, allowed: list[str]) -> str:
    return f"the options allow only {', '.join(allowed)}" if allowed else f"the options name no {kind} it may use"


def _auth_fields(auth: Any) -> list[Any]:
    tag, val = auth.tag, getattr(auth, "payload", None)
    if tag == "none":
        return ["none"]
    if tag == "user-password":
        return [tag, val.username, val.password]
    if tag == "credential":
        return [tag, val.jwt, getattr(val, "nkey-seed")]
    return [tag, val]


class Reach:
    """The servers, files, TLS and credentials one sink's options allow."""

    def __init__(self, options: Sequence[tuple[str, str]]) -> None:
        r = POLICY["reach"]
        given: dict[str, str] = {}
        for key, value in options:
            given.setdefault(key, value)  # the first of a repeated key, as the Rust host reads it
        named = _parse_servers(given.get(r["server_option"], "")) or []
        self.servers = [address for _, address, _ in named]
        self.entries = [(info, address) for info, address, _ in named]
        self.paths = [given[k] for k in r["file_options"] if k in given]
        is_true = lambda key: given.get(key, "").strip().lower() == "true"  # noqa: E731
        self.create_stream = is_true(r["create_stream_option"])
        kv = r["kv"]
        upsert = given.get(kv["type_option"]) == kv["upsert_type"]
        # The one bucket whose `$KV.<bucket>.` subjects the guest may publish to, as the Rust host reads it.
        self.kv_bucket: Optional[str] = given.get(kv["bucket_option"]) if upsert else None
        self.tls_required = (any(tls for _, _, tls in named) or is_true(r["tls_required_option"])
                             or any(k in given for k in r["tls_file_options"]))
        mode = given.get(r["connect_mode_option"], r["default_connect_mode"])
        row = next((m for m in r["auth_modes"] if m["mode"] == mode), None)
        self.auth = [row["auth"], *(given.get(k, "") for k in row["options"])] if row else None

    def refusal(self, config: Any) -> Optional[str]:
        """Why `config` (a WIT connect-config) is refused, or None when it is within reach."""
        kv = getattr(config, "kv", None)
        asked = kv.name if kv is not None else None
        if asked != self.kv_bucket:
            if asked is not None and self.kv_bucket is not None:
                why = f"KV bucket `{asked}`: the options name `kv.bucket = '{self.kv_bucket}'`, and only that one may be used"
            elif asked is not None:
                why = f"KV bucket `{asked}`: the options do not say `type = 'upsert'` with a `kv.bucket`"
            else:
                why = "connection without its KV bucket: the options say `type = 'upsert'`, which keeps each key in order"
            return _refused(why)
        creates_bucket = kv is not None and getattr(kv, "create-with-history") is not None
        if (getattr(config, "create-stream", None) is not None or creates_bucket) and not self.create_stream:
            return _refused(f"request to create a stream: the options do not say `{POLICY['reach']['create_stream_option']} = true`")
        for entry in config.servers:
            parsed = _parse_servers(entry)
            if parsed is None or len(parsed) != 1:
                return _refused(f"server entry `{_redact(entry)}`, which is not `host:port`")
            info, address, _ = parsed[0]
            if address not in self.servers:
                return _refused(f"server `{address}`: {_allowed('servers', self.servers)}")
            if (info, address) not in self.entries:
                return _refused(f"user info for server `{address}`, which is not what `server_url` gives it")
        files: list[tuple[str, str]] = []
        tls = config.tls
        if tls is not None:
            for option, field in (("tls.ca", "ca-file"), ("tls.cert", "cert-file"), ("tls.key", "key-file")):
                path = getattr(tls, field)
                if path is not None:
                    files.append((option, path))
        if config.auth.tag == "credentials-file":
            files.append(("credentials_file", config.auth.payload))
        for option, path in files:
            if path not in self.paths:
                return _refused(f"reading `{path}` for `{option}`: {_allowed('files', self.paths)}")
        if self.tls_required and tls is None:
            return _refused("connection without TLS: the options require TLS (a `tls://` server, "
                            "`tls.required = true` or a `tls.*` file)")
        if self.auth is None or _auth_fields(config.auth) != self.auth:
            given = (f"{_AUTH_KIND[self.auth[0]]} credentials, and only those may be used" if self.auth
                     else "no credentials this host knows")
            return _refused(f"{_AUTH_KIND.get(config.auth.tag, 'unknown')} authentication: the options give {given}")
        return None


@functools.lru_cache(maxsize=_SUBJECTS_REMEMBERED)
def _literal_subject_refusal(subject: str) -> Optional[str]:
    """Why `subject` is not a literal NATS subject (empty, too long, whitespace, control, wildcard, empty token)."""
    if not subject:
        return "must not be empty"
    size = len(subject.encode("utf-8", "surrogatepass"))
    if size > _M["max_subject_bytes"]:
        return f"is {size} bytes long; NATS's control line leaves room for at most {_M['max_subject_bytes']}"
    found = _first(_WHITESPACE, subject)
    if found is not None:
        return f"must not contain whitespace (found {found!r})"
    found = _first(_CONTROL, subject)
    if found is not None:
        return f"must not contain a control character (found U+{ord(found):04X})"
    if any(w in subject for w in _M["subject_wildcards"]):
        return f"`{subject}` contains a wildcard (`*` or `>`); publish subjects must be literal"
    if any(not t for t in subject.split(_M["subject_token_separator"])):
        return f"`{subject}` has an empty token (leading, trailing or double `.`)"
    return None


def subject_refusal(subject: str) -> Optional[str]:
    """Why NATS or this sink refuses `subject` for publishing, or None."""
    why = _literal_subject_refusal(subject)
    if why:
        return why
    for reserved in _M["reserved_subject_prefixes"]:
        if subject.startswith(reserved["prefix"]):
            return f"is under `{reserved['prefix']}`, where {reserved['why']}"
    return None


_KV_KEY = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" + POLICY["reach"]["kv"]["kv_key_punctuation"])


def kv_key_prefix(bucket: str) -> str:
    """The subject prefix of `bucket`'s keys: `$KV.<bucket>.`."""
    return f"{POLICY['reach']['kv']['subject_prefix']}{bucket}."


def kv_keys_filter(bucket: str) -> str:
    """The subject filter of every key of `bucket`: `$KV.<bucket>.>`."""
    return f"{kv_key_prefix(bucket)}>"


def kv_subject_refusal(subject: str, bucket: str) -> Optional[str]:
    """As `subject_refusal`, but a key of `bucket` (`$KV.<bucket>.<key>`) is allowed: a literal
    subject whose key holds only what a NATS KV key may."""
    prefix = kv_key_prefix(bucket)
    if not subject.startswith(prefix):
        return subject_refusal(subject)
    why = _literal_subject_refusal(subject)
    if why:
        return why
    key = subject[len(prefix):]
    bad = next((c for c in key if c not in _KV_KEY), None)
    return None if bad is None else f"has the key `{key}`, and a KV key cannot hold {bad!r}"


def header_name_refusal(name: str) -> Optional[str]:
    """Why a header name is refused, or None."""
    if not name:
        return "is empty"
    bad = _first(_NOT_HEADER_NAME, name)
    return None if bad is None else f"`{name}` contains {bad!r}; use visible ASCII without `:`"


# Printable ASCII meets the header value rules but for a space at either end, if the policy
# says so (checked here, not assumed): most values (message ids, keys) then take one C call.
_PRINTABLE_ASCII = "".join(chr(c) for c in range(0x20, 0x7F))
_ASCII_VALUES_PASS = (
    _first(_CONTROL, _PRINTABLE_ASCII) is None
    and not any(b in _PRINTABLE_ASCII for b in _M["header_value_line_breaks"])
    and [c for c in _PRINTABLE_ASCII if _HEADER_SPACE.fullmatch(c)] == [" "]
)


def header_value_refusal(value: str) -> Optional[str]:
    """Why a header value is refused, or None: no space NATS clients trim at either end, no line
    break, no control character."""
    if _ASCII_VALUES_PASS and value.isascii() and value.isprintable() and value[:1] != " " and value[-1:] != " ":
        return None
    if value and (_HEADER_SPACE.fullmatch(value[0]) or _HEADER_SPACE.fullmatch(value[-1])):
        return "must not start or end with whitespace: NATS clients trim it"
    if any(b in value for b in _M["header_value_line_breaks"]):
        return "must not contain a line break"
    found = _first(_CONTROL, value)
    return None if found is None else f"must not contain a control character (found U+{ord(found):04X})"


_C = _M["control_headers"]
_CONTROL_PREFIX = _C["reserved_prefix"].lower()
_MESSAGE_ID, _KV_OPERATION, _ROLLUP = (_C[k].lower() for k in ("message_id", "kv_operation", "rollup"))


def control_headers_refusal(on_kv_key: bool, payload_len: int, headers: dict[str, str]) -> Optional[str]:
    """Why the headers NATS acts on that one message carries are refused, or None (the rules
    crate's `check_control_headers`): the message id anywhere, once; `KV-Operation: DEL|PURGE`
    only on a key of the sink's bucket, with no payload; `Nats-Rollup: sub` only beside
    `KV-Operation: PURGE`; no other `Nats-` header. Names are matched in any case."""
    seen: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        if not (lower.startswith(_CONTROL_PREFIX) or lower == _KV_OPERATION):
            continue
        if lower not in (_MESSAGE_ID, _KV_OPERATION, _ROLLUP):
            return (f"header `{name}` is one JetStream acts on (it can delete, expire or refuse messages), "
                    "and the sink never sets it")
        if lower in seen:
            return f"header `{name}` appears twice"
        seen[lower] = value
    operation, rollup = seen.get(_KV_OPERATION), seen.get(_ROLLUP)
    if operation is not None:
        if not on_kv_key:
            return f"header `{_C['kv_operation']}` is only for a key of the sink's KV bucket"
        if operation not in _C["kv_operations"]:
            return f"header `{_C['kv_operation']}: {operation}`; a sink writes only {' or '.join(_C['kv_operations'])}"
        if payload_len:
            return f"header `{_C['kv_operation']}: {operation}` on a message with a payload"
    if rollup is not None and (rollup != _C["kv_purge_rollup"] or operation != _C["kv_purge"]):
        return (f"header `{_C['rollup']}: {rollup}`; only `{_C['rollup']}: {_C['kv_purge_rollup']}` "
                f"beside `{_C['kv_operation']}: {_C['kv_purge']}` is allowed")
    return None
