"""The transport the guest imports, on nats-py.

The guest calls the transport synchronously while nats-py works asynchronously, so (as the jco
host does) the connection is made before the guest's `open`, `publish` only checks and buffers a
batch, and the messages are sent after the guest's `write` returns and confirmed after its
`flush` returns: a JetStream ack where a stream captures the subject, otherwise a server round
trip. Every wait is bounded by the connect-config's timeouts and delivery budget.
"""

from __future__ import annotations

import asyncio
import collections
import json
import operator
import random
import ssl
import time
from typing import Any, Optional

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js.api import DiscardPolicy, StreamConfig
from wasmtime.component import Record, Variant

from . import errors
from . import packed, policy
from .policy import Reach, control_headers_refusal, header_name_refusal, header_value_refusal, kv_subject_refusal, subject_refusal

Message = tuple[str, bytes, Optional[dict[str, str]]]


def _secrets(config: Record) -> list[str]:
    """Every secret the connect-config carries: passwords, tokens, JWTs, seeds, URL user info."""
    auth = config.auth
    payload = getattr(auth, "payload", None)
    found: list[str] = []
    if isinstance(payload, str):  # token, nkey seed, credentials-file path (harmless)
        found.append(payload)
    elif payload is not None:
        for field in ("password", "jwt", "nkey-seed"):
            value = getattr(payload, field, None)
            if isinstance(value, str):
                found.append(value)
    for entry in config.servers:
        info = entry.split("://")[-1].rpartition("@")[0]
        if info:
            found.append(info.partition(":")[2] or info)
    return found


def _masked(text: str, config: Record) -> str:
    """`text` with every secret of three characters or more as `***`: a hostile far end can
    echo our CONNECT line, credentials and all, in its error."""
    for secret in _secrets(config):
        if len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


def redact(servers: str) -> str:
    """Server entries with their user info masked (`user:***@host:port`, `***@host:port`)."""
    shown = []
    for entry in servers.split(","):
        scheme, sep, rest = entry.rpartition("://")
        prefix = scheme + sep
        info, at, host = rest.rpartition("@")
        if at:
            user, colon, _ = info.partition(":")
            info = f"{user}:***" if colon else "***"
            rest = f"{info}@{host}"
        shown.append(prefix + rest)
    return ",".join(shown)


def _run(data: bytes, start: int, length: int, what: str) -> bytes:
    if start + length > len(data):
        raise ValueError(f"{what} span {start}+{length} is outside the batch's {len(data)} bytes")
    return data[start : start + length]


# A WIT `message`'s and `header`'s fields, read in one call each.
_MESSAGE_RUNS = operator.attrgetter("subject-start", "subject-len", "payload-start", "payload-len", "headers-start", "headers-len")
_HEADER_RUN = operator.attrgetter("name", "value-start", "value-len")


def unpack(batch: Record, kv_bucket: Optional[str] = None) -> list[Message]:
    """A WIT `batch` as messages, every run and index checked (they come from the guest).
    With `kv_bucket`, that bucket's key subjects (`$KV.<bucket>.<key>`) are allowed too."""
    data: bytes = packed.unpack(batch.data)
    names: list[str] = getattr(batch, "header-names")
    all_headers = batch.headers
    for name in names:
        why = header_name_refusal(name)
        if why:
            raise ValueError(f"header name {name!r} {why}")
    out: list[Message] = []
    # Messages on one subject usually share its run: decoded and checked once.
    last_subject: tuple[Any, str] = (None, "")
    kv_prefix = policy.kv_key_prefix(kv_bucket) if kv_bucket is not None else None
    for m in batch.messages:
        subject_start, subject_len, payload_start, payload_len, headers_start, headers_len = _MESSAGE_RUNS(m)
        if last_subject[0] == (subject_start, subject_len):
            subject = last_subject[1]
        else:
            subject = _run(data, subject_start, subject_len, "subject").decode("utf-8")
            why = kv_subject_refusal(subject, kv_bucket) if kv_bucket is not None else subject_refusal(subject)
            if why:
                raise ValueError(f"subject {subject!r} {why}")
            last_subject = ((subject_start, subject_len), subject)
        payload = _run(data, payload_start, payload_len, "payload")
        headers: Optional[dict[str, str]] = None
        if headers_len:
            if headers_start + headers_len > len(all_headers):
                raise ValueError(f"header run {headers_start}+{headers_len} is outside the batch's headers")
            headers = {}
            for h in all_headers[headers_start : headers_start + headers_len]:
                index, value_start, value_len = _HEADER_RUN(h)
                if index >= len(names):
                    raise ValueError(f"header name index {index} is outside the batch's {len(names)} names")
                name = names[index]
                if name in headers:  # nats-py's headers are a dict: a second value would be lost
                    raise ValueError(f"header `{name}` appears twice on one message")
                value = _run(data, value_start, value_len, "header").decode("utf-8")
                why = header_value_refusal(value)
                if why:
                    raise ValueError(f"header {name}'s value {why}")
                headers[name] = value
            on_kv_key = kv_prefix is not None and subject.startswith(kv_prefix)
            why = control_headers_refusal(on_kv_key, len(payload), headers)
            if why:
                raise ValueError(f"on subject {subject!r}: {why}")
        out.append((subject, payload, headers))
    return out


def _tls_context(tls: Record) -> ssl.SSLContext:
    """System roots plus the configured CA; a client certificate where one is named."""
    ctx = ssl.create_default_context()
    ca, cert, key = getattr(tls, "ca-file"), getattr(tls, "cert-file"), getattr(tls, "key-file")
    if ca:
        ctx.load_verify_locations(cafile=ca)
    if cert or key:
        ctx.load_cert_chain(certfile=cert, keyfile=key)
    return ctx


def connect_options(config: Record) -> dict[str, Any]:
    """nats-py's connect arguments for a WIT `connect-config`."""
    tls = config.tls
    scheme = "tls" if tls is not None else "nats"
    opts: dict[str, Any] = {
        "servers": [f"{scheme}://{s}" for s in config.servers],
        "connect_timeout": getattr(config, "connect-timeout-ms") / 1000,
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,  # the delivery budget decides how long a flush waits
        "reconnect_time_wait": 0.1,
    }
    if tls is not None:
        opts["tls"] = _tls_context(tls)
    auth = config.auth
    if auth.tag == "user-password":
        opts["user"], opts["password"] = auth.payload.username, auth.payload.password
    elif auth.tag == "token":
        opts["token"] = auth.payload
    elif auth.tag == "credentials-file":
        opts["user_credentials"] = auth.payload
    elif auth.tag == "nkey":
        opts["nkeys_seed_str"] = auth.payload
    elif auth.tag == "credential":
        jwt, seed = auth.payload.jwt, getattr(auth.payload, "nkey-seed")
        opts["user_jwt_cb"] = lambda: jwt.encode()
        opts["signature_cb"] = lambda nonce: _sign(seed, nonce)
    return opts


def _sign(seed: str, nonce: str) -> bytes:
    import base64

    import nkeys

    kp = nkeys.from_seed(seed.encode())
    try:
        return base64.b64encode(kp.sign(nonce.encode()))
    finally:
        kp.wipe()


def as_sink_error(e: BaseException, context: str) -> errors.SinkError:
    """A nats-py or socket error as the sink's own: a timeout, a refusal, or a lost connection."""
    if isinstance(e, errors.SinkError):
        return e
    if isinstance(e, (nats.errors.TimeoutError, asyncio.TimeoutError)):
        return errors.TimeoutError(f"{context}: {e!r}")
    if isinstance(e, nats.errors.MaxPayloadError):
        return errors.PublishError(f"{context}: over the server's max_payload ({e})")
    if type(e) is nats.errors.Error or isinstance(e, (nats.js.errors.Error, nats.errors.BadSubjectError,
                                                      nats.errors.BadHeaderError, nats.errors.NoRespondersError)):
        return errors.PublishError(f"{context}: {e}")
    if isinstance(e, (nats.errors.Error, OSError)):
        return errors.ConnectionError(f"{context}: {e!r}")
    return errors.SinkError(f"{context}: {e!r}")  # none of the above: still the sink's own kind


def _config_key(config: Record) -> Any:
    """A connect-config as plain values, to tell whether two are the same."""
    if isinstance(config, (str, int, float, bool)) or config is None:
        return config
    if isinstance(config, (list, tuple)):
        return [_config_key(v) for v in config]
    if isinstance(config, Variant):
        return (config.tag, _config_key(getattr(config, "payload", None)))
    return sorted((k, _config_key(v)) for k, v in vars(config).items())


_INFO_LIMIT = 64 << 10  # bytes of a server's INFO line read before giving up on it


async def _offers_tls(entry: str, timeout: float) -> bool:
    """Whether the server at `entry` (`[userinfo@]host:port`) requires TLS, from its INFO line.
    nats-py upgrades to TLS only where the server requires it, and would otherwise send the
    CONNECT line (credentials and all) in plain text, whatever the TLS context says."""
    host, _, port = entry.rpartition("@")[2].rpartition(":")
    host = host.strip("[]")
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port), limit=_INFO_LIMIT), timeout)
    try:
        line = await asyncio.wait_for(reader.readline(), timeout)
    finally:
        writer.close()
    if not line.startswith(b"INFO "):
        return False
    try:
        info = json.loads(line[5:])
    except ValueError:
        return False
    return isinstance(info, dict) and info.get("tls_required") is True


def bucket_config(name: str, history: int) -> StreamConfig:
    """KV bucket `name`'s stream as NATS clients create it, and as the Rust host does
    (host/src/kv.rs): every key's subject, `history` values per key, rollups allowed, deletes
    through the API denied, new values refused when full, direct gets, one replica."""
    return StreamConfig(
        name=f"KV_{name}",
        subjects=[policy.kv_keys_filter(name)],
        max_msgs_per_subject=history,
        max_bytes=-1,
        max_msgs=-1,
        max_msg_size=-1,
        allow_rollup_hdrs=True,
        deny_delete=True,
        deny_purge=False,
        allow_direct=True,
        discard=DiscardPolicy.NEW,
        num_replicas=1,
    )


async def bucket_history(jsm: Any, bucket: Record) -> Optional[int]:
    """The history of KV bucket `bucket` (values kept per key), or None when it does not exist.
    A stream `KV_<bucket>` that does not capture `$KV.<bucket>.>` is refused: puts to it would
    be stored nowhere."""
    stream, keys = f"KV_{bucket.name}", policy.kv_keys_filter(bucket.name)
    try:
        info = await jsm.stream_info(stream)
    except nats.js.errors.NotFoundError:
        return None
    except nats.errors.NoRespondersError as e:
        raise errors.PublishError(
            f"KV bucket `{bucket.name}`: the server has no JetStream, and a KV bucket is a JetStream stream") from e
    except (nats.errors.Error, asyncio.TimeoutError, OSError) as e:
        raise errors.PublishError(f"could not tell whether KV bucket `{bucket.name}` exists: {e!r}") from e
    subjects = info.config.subjects or []
    if keys not in subjects:
        raise errors.PublishError(
            f"stream {stream} exists but does not capture `{keys}` (its subjects: {', '.join(subjects)}), "
            f"so it is not KV bucket `{bucket.name}`: nothing put would be stored")
    return info.config.max_msgs_per_subject


async def ensure_bucket(jsm: Any, bucket: Record) -> None:
    """The bucket, created when it is missing and the options allow it (`create-with-history`);
    otherwise a publish error that says how to get one. Before the guest opens."""
    if await bucket_history(jsm, bucket) is not None:
        return
    history = getattr(bucket, "create-with-history")
    if history is None:
        raise errors.PublishError(
            f"KV bucket `{bucket.name}` does not exist; create it (`nats kv add {bucket.name}`) "
            "or set allow_create_stream = true")
    try:
        await jsm.add_stream(bucket_config(bucket.name, history))
    except (nats.js.errors.Error, nats.errors.Error) as e:
        # Another sink may have created it between the lookup and now.
        if await bucket_history(jsm, bucket) is not None:
            return
        raise errors.PublishError(f"allow_create_stream: could not create KV bucket `{bucket.name}`: {e}") from e


class NatsTransport:
    """One NATS connection for one sink, within what `reach` (the user's options) allows."""

    def __init__(self, reach: Optional[Reach] = None) -> None:
        self.reach = reach
        self.nc: Optional[Client] = None
        self.config: Optional[Record] = None
        self.outbox: collections.deque[Message] = collections.deque()
        self.acks: list[asyncio.Task[None]] = []
        self.routes: dict[str, bool] = {}  # subject -> a stream captures it
        self.server_errors: list[str] = []  # what the server refused (-ERR), since the last flush
        self.connection_errors: list[str] = []  # a lost socket, EOF, a stale connection
        self.server_said: str = ""
        self.dropped_since_flush = False
        self.core_since_flush = False
        self.new_core_subject = False
        self.core_seen: set[str] = set()
        self.in_flight: Optional[asyncio.Semaphore] = None
        self.kv_bucket: Optional[str] = None  # an upsert sink's bucket, once it is found or created
        # An upsert sink's last unconfirmed send per key subject: the next on that subject waits for it.
        self.last_on_subject: dict[str, asyncio.Task[None]] = {}

    # -- before the guest's open -------------------------------------------------------------
    async def connect(self, config: Record) -> None:
        why = self.reach.refusal(config) if self.reach is not None else "no policy was given"
        if why:
            raise errors.ConnectionError(why)
        self.config = config
        total = getattr(config, "connect-timeout-ms") / 1000
        if config.tls is not None:
            await self._require_tls(config, total)

        refused = asyncio.get_running_loop().create_future()

        async def on_error(e: Exception) -> None:
            # A refusal from the server arrives as nats-py's plain Error ("nats: 'Permissions
            # Violation ...'"); a lost connection as EOF, a socket error, a stale connection.
            if type(e) is nats.errors.Error or isinstance(e, nats.errors.AuthorizationError):
                self.server_errors.append(str(e))
            else:
                self.connection_errors.append(str(e))
            if not isinstance(e, OSError):
                self.server_said = str(e)
            # A refused login repeats on every retry: fail at once, as the CLI does.
            if "authorization violation" in str(e).lower() and not refused.done():
                refused.set_result(str(e))

        async def on_disconnect() -> None:
            self.dropped_since_flush = True
            self.core_seen.clear()  # a new connection may carry other permissions

        async def on_reconnect() -> None:
            # A server found by discovery may not require TLS: then the link is plain, and closed.
            if config.tls is not None and self.nc is not None and not self.nc._server_info.get("tls_required"):
                self.connection_errors.append("reconnected to a server without TLS, which the options require")
                await self.nc.close()

        async def connect_unless_refused() -> Client:
            attempt = asyncio.ensure_future(
                nats.connect(**connect_options(config), error_cb=on_error, disconnected_cb=on_disconnect,
                             reconnected_cb=on_reconnect))
            await asyncio.wait({attempt, refused}, return_when=asyncio.FIRST_COMPLETED)
            if attempt.done():
                return attempt.result()
            attempt.cancel()
            raise errors.ConnectionError(
                f"cannot connect to {redact(','.join(config.servers))}: {_masked(refused.result(), config)}")

        try:
            self.nc = await asyncio.wait_for(connect_unless_refused(), timeout=total)
        except errors.ConnectionError:
            raise
        except (asyncio.TimeoutError, nats.errors.TimeoutError) as e:
            # nats-py keeps trying within the bound; what the server said (an authorization
            # error, say) is the cause, rather than the reset of the socket it closed after.
            seen = self.server_errors + self.connection_errors
            last = self.server_said or (seen[-1] if seen else "")
            cause = f": {_masked(last, config)}" if last else ""
            raise errors.ConnectionError(f"no connection to {redact(','.join(config.servers))} within {total:g} s{cause}") from e
        except (OSError, ssl.SSLError) as e:
            raise errors.ConnectionError(
                f"cannot connect to {redact(','.join(config.servers))}: {_masked(str(e), config)}") from e
        except Exception as e:  # nats-py's NoServersError, AuthorizationError, ...
            raise errors.ConnectionError(
                f"cannot connect to {redact(','.join(config.servers))}: {_masked(repr(e), config)}") from e
        self.server_errors.clear()
        self.connection_errors.clear()
        self.in_flight = asyncio.Semaphore(max(1, getattr(config.delivery, "max-in-flight")))
        request = getattr(config, "create-stream", None)
        if request is not None:
            await self._ensure_stream(request)
        if config.kv is not None:
            await ensure_bucket(self.nc.jsm(timeout=self._ack_timeout()), config.kv)
            self.kv_bucket = config.kv.name

    async def _require_tls(self, config: Record, timeout: float) -> None:
        """Refuse, before any credentials are sent, servers that would talk in plain text."""
        for entry in config.servers:
            shown = redact(entry)
            try:
                ok = await _offers_tls(entry, timeout)
            except (OSError, asyncio.TimeoutError, ValueError) as e:
                raise errors.ConnectionError(f"cannot connect to {shown}: {_masked(repr(e), config)}") from e
            if not ok:
                raise errors.ConnectionError(
                    f"cannot connect to {shown}: the server does not require TLS, which the options require; "
                    "nothing was sent to it")

    async def _ensure_stream(self, request: Record) -> None:
        """With allow_create_stream: create the requested stream, with its limits, unless a stream
        already captures its subject. Before the guest opens, so before the first publish."""
        assert self.nc is not None
        jsm = self.nc.jsm(timeout=self._ack_timeout())
        subject, name = request.subject, request.name
        try:
            await jsm.find_stream_name_by_subject(subject)
            return
        except nats.js.errors.NotFoundError:
            pass
        except nats.errors.NoRespondersError as e:
            raise errors.PublishError(
                f"allow_create_stream: could not tell whether a stream captures `{subject}`: the server has no JetStream"
            ) from e
        config = StreamConfig(
            name=name,
            subjects=[subject],
            max_bytes=getattr(request, "max-bytes"),
            max_msgs=getattr(request, "max-messages"),
            max_msgs_per_subject=getattr(request, "max-messages-per-subject"),
            max_consumers=getattr(request, "max-consumers"),
            max_msg_size=getattr(request, "max-message-size"),
        )
        try:
            await jsm.add_stream(config)
        except (nats.js.errors.Error, nats.errors.Error) as e:
            # Another sink may have created it since the lookup: then it captures the subject.
            try:
                await jsm.find_stream_name_by_subject(subject)
                return
            except nats.js.errors.NotFoundError:
                pass
            raise errors.PublishError(f"allow_create_stream: could not create stream {name} for `{subject}`: {e}") from e

    # -- the import, as the guest calls it (synchronously) -------------------------------------
    def open(self, config: Record) -> Optional[Variant]:
        why = self.reach.refusal(config) if self.reach is not None else "no policy was given"
        if why:
            return Variant("connection", errors.failure(why))
        if self.config is not None and _config_key(config) != _config_key(self.config):
            return Variant("connection", errors.failure(
                "the host's policy refused the component's connect-config: it differs from the one its "
                "`resolve` gave, which the host connected with"))
        if self.nc is None or not self.nc.is_connected:
            return Variant("connection", errors.failure(f"no connection to {redact(','.join(config.servers))}"))
        return None

    def publish(self, batch: Record) -> Optional[Variant]:
        try:
            self.outbox.extend(unpack(batch, self.kv_bucket))
        except (ValueError, UnicodeDecodeError) as e:
            return Variant("publish", errors.failure(f"the host refused the component's batch: {e}"))
        return None

    def flush(self) -> Optional[Variant]:
        return None  # confirmation follows in `confirm`, once the guest's flush has returned

    def max_payload(self) -> int:
        # What the server announced; the guest refuses a row whose message would not fit.
        return self.nc.max_payload if self.nc is not None else 0

    def dropped(self) -> None:
        pass

    # -- after the guest's calls return ----------------------------------------------------------
    async def _stream_captures(self, subject: str) -> bool:
        route = self.routes.get(subject)
        if route is None and self.kv_bucket is not None and subject.startswith(policy.kv_key_prefix(self.kv_bucket)):
            route = True  # the bucket's stream, found or created when the sink connected
        if route is None:
            assert self.nc is not None
            try:
                await self.nc.jsm(timeout=self._ack_timeout()).find_stream_name_by_subject(subject)
                route = True
            except (nats.js.errors.NotFoundError, nats.errors.NoRespondersError):
                route = False  # no stream captures it, or no JetStream at all
            except nats.js.errors.ServiceUnavailableError:
                route = False
            except (nats.errors.TimeoutError, asyncio.TimeoutError) as e:
                raise errors.TimeoutError(
                    f"{subject}: no answer within {self._ack_timeout():g} s (ack_timeout_ms) to the lookup of the "
                    "stream that captures it") from e
            except (nats.errors.Error, OSError) as e:
                raise as_sink_error(e, f"{subject}: the lookup of the stream that captures it failed") from e
            self.routes[subject] = route
        return route

    def _ack_timeout(self) -> float:
        assert self.config is not None
        return getattr(self.config.delivery, "ack-timeout-ms") / 1000

    async def send(self) -> None:
        """Send what the guest published: core messages at once, JetStream ones with their
        acks pipelined up to max-in-flight (a writer that outruns the server waits here)."""
        assert self.nc is not None and self.in_flight is not None
        # A message leaves the outbox only once it is handed on (to nats-py, or to its ack
        # task): whatever stops this loop, nothing is dropped unseen.
        while self.outbox:
            subject, payload, headers = self.outbox[0]
            try:
                if await self._stream_captures(subject):
                    await self.in_flight.acquire()
                    task = asyncio.create_task(self._acked(subject, payload, headers, self._earlier(subject)))
                    self.acks.append(task)
                    if self.kv_bucket is not None:
                        self.last_on_subject[subject] = task
                else:
                    await self.nc.publish(subject, payload, headers=headers)
                    self.core_since_flush = True
                    if subject not in self.core_seen:
                        self.core_seen.add(subject)
                        self.new_core_subject = True
            except nats.errors.MaxPayloadError as e:
                raise errors.PublishError(f"{subject}: {len(payload)} bytes exceed the server's max_payload ({e})") from e
            except (nats.errors.Error, OSError) as e:
                raise as_sink_error(e, f"{subject}: not sent") from e
            self.outbox.popleft()

    def _earlier(self, subject: str) -> Optional["asyncio.Task[None]"]:
        """For an upsert sink, the send on `subject` still unconfirmed, which the next must wait
        for: a key's messages are then stored in write order whatever is resent (docs/upsert.md)."""
        earlier = self.last_on_subject.get(subject) if self.kv_bucket is not None else None
        return earlier if earlier is not None and not earlier.done() else None

    async def _acked(self, subject: str, payload: bytes, headers: Optional[dict[str, str]],
                     earlier: Optional["asyncio.Task[None]"] = None) -> None:
        """One JetStream message until its ack, resent within the delivery budget; not sent at
        all before `earlier` (the previous message on its key) is confirmed."""
        assert self.nc is not None and self.config is not None and self.in_flight is not None
        if earlier is not None:
            try:
                await asyncio.shield(earlier)
            except BaseException as e:
                self.in_flight.release()
                if isinstance(e, asyncio.CancelledError) and not earlier.cancelled():
                    raise
                # Its key's earlier value was not confirmed: sending this one could let a resend
                # of that value land after it, so it is not sent (the flush reports the cause).
                raise errors.PublishError(f"{subject}: not sent, since an earlier message on its key was not confirmed") from None
        d = self.config.delivery
        max_attempts, max_elapsed = getattr(d, "max-attempts"), getattr(d, "max-elapsed-ms") / 1000
        backoff, max_backoff = getattr(d, "initial-backoff-ms") / 1000, getattr(d, "max-backoff-ms") / 1000
        js = self.nc.jetstream(timeout=self._ack_timeout())
        attempts, first_failure = 0, None
        try:
            while True:
                attempts += 1
                try:
                    await js.publish(subject, payload, timeout=self._ack_timeout(), headers=headers)
                    return
                except nats.js.errors.ServiceUnavailableError as e:
                    cause: Exception = e
                except nats.js.errors.APIError as e:
                    if e.code != 503:
                        raise errors.PublishError(f"{subject}: the stream refused the message: {e}") from e
                    cause = e
                except nats.errors.MaxPayloadError as e:
                    raise errors.PublishError(f"{subject}: {len(payload)} bytes exceed the server's max_payload") from e
                except (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.errors.ConnectionClosedError,
                        nats.errors.ConnectionReconnectingError, asyncio.TimeoutError) as e:
                    cause = e
                denied = [m for m in self.server_errors if "Permissions Violation" in m]
                if denied:
                    raise errors.PublishError(f"{subject}: {denied[0]}")
                now = time.monotonic()
                first_failure = first_failure or now
                if attempts >= max_attempts or now - first_failure >= max_elapsed:
                    kind = errors.TimeoutError if isinstance(cause, (nats.errors.TimeoutError, asyncio.TimeoutError)) else errors.ConnectionError
                    raise kind(f"{subject}: no ack after {attempts} sends over {now - first_failure:.1f} s "
                               f"(the retry budget); last cause: {cause!r}")
                await asyncio.sleep(random.uniform(backoff / 2, backoff))
                backoff = min(backoff * 2, max_backoff)
        finally:
            self.in_flight.release()

    async def confirm(self) -> None:
        """Every JetStream ack, then a server round trip; within the flush timeout."""
        assert self.nc is not None and self.config is not None
        limit = getattr(self.config, "flush-timeout-ms") / 1000
        # Core NATS acks nothing: a lost connection or a silent server leaves these in doubt.
        core_in_doubt = self.core_since_flush
        try:
            await asyncio.wait_for(self._confirm(), timeout=limit)
        except (errors.ConnectionError, errors.TimeoutError) as e:
            e.core_in_doubt = e.core_in_doubt or core_in_doubt
            raise  # ours already (errors.TimeoutError is an asyncio.TimeoutError too)
        except errors.SinkError:
            raise
        except asyncio.TimeoutError as e:
            raise errors.TimeoutError(f"flush not confirmed within {limit:g} s (flush_timeout_ms)",
                                      core_in_doubt) from e

    async def _confirm(self) -> None:
        assert self.nc is not None
        acks, self.acks = self.acks, []
        self.last_on_subject.clear()  # gathered below: every one is done when this returns
        results = await asyncio.gather(*acks, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise as_sink_error(failed[0], "a message was not confirmed")
        try:
            await self.nc.flush(timeout=max(self._ack_timeout(), 1))
        except (nats.errors.Error, OSError, asyncio.TimeoutError) as e:
            # A round trip begun on a socket that then broke goes unanswered: the broken
            # connection is the cause, not the server's silence.
            self._raise_if_dropped()
            if isinstance(e, (nats.errors.TimeoutError, asyncio.TimeoutError)):
                raise errors.TimeoutError("the server did not answer the flush round trip") from e
            raise as_sink_error(e, "the flush round trip failed") from e
        if self.new_core_subject:
            # A refusal (-ERR) travels apart from the round trip and can trail it.
            await asyncio.sleep(0.002)
            self.new_core_subject = False
        errs, self.server_errors = self.server_errors, []
        if errs:
            raise errors.PublishError(f"the server refused a message: {errs[0]}")
        self._raise_if_dropped()
        self.connection_errors.clear()
        self.core_since_flush = self.dropped_since_flush = False

    def _raise_if_dropped(self) -> None:
        """Core NATS has no acks: what was in the socket when it broke may be gone. Retryable by
        replay since the last flush, so a connection error rather than a refusal."""
        if self.core_since_flush and (self.dropped_since_flush or self.connection_errors):
            cause = f" ({self.connection_errors[0]})" if self.connection_errors else ""
            raise errors.ConnectionError(f"the connection dropped since the last flush{cause}; core messages may be lost")

    async def close(self) -> None:
        for task in self.acks:
            task.cancel()
        self.acks = []
        self.last_on_subject.clear()
        if self.nc is not None and not self.nc.is_closed:
            try:
                await asyncio.wait_for(self.nc.close(), timeout=5)
            except (asyncio.TimeoutError, nats.errors.Error, OSError):
                pass  # closing: the connection goes either way, and unflushed rows were never promised
