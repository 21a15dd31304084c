"""The host's policy and message checks, read from the generated policy.json: the Rust host's
rules, applied to connect-configs and batches a component hands the Python host."""

from __future__ import annotations

from wasmtime.component import Record, Variant

from nats_sink.policy import Reach, control_headers_refusal, header_name_refusal, header_value_refusal, kv_subject_refusal, subject_refusal


def record(**fields: object) -> Record:
    r = Record()
    for k, v in fields.items():
        setattr(r, k.replace("_", "-"), v)
    return r


def config(servers: list[str], auth: Variant, tls: object = None, create_stream: object = None) -> Record:
    return record(servers=servers, auth=auth, tls=tls, create_stream=create_stream)


NONE = Variant("none", None)


def test_servers_and_files_the_options_do_not_name_are_refused() -> None:
    reach = Reach([("server_url", "nats://u:p@Nats.local:4222,b:1"), ("tls.ca", "/certs/ca.pem")])
    tls = record(ca_file="/certs/ca.pem", cert_file=None, key_file=None)
    assert reach.refusal(config(["u:p@nats.local:4222", "b:1"], NONE, tls)) is None
    why = reach.refusal(config(["evil.example:4222"], NONE, tls))
    assert why is not None and "policy" in why and "evil.example:4222" in why and ":p@" not in why
    why = reach.refusal(config(["b:1"], NONE, record(ca_file="/etc/passwd", cert_file=None, key_file=None)))
    assert why is not None and "`/etc/passwd`" in why
    assert reach.refusal(config(["b:1"], Variant("credentials-file", "/etc/shadow"), tls)) is not None
    assert reach.refusal(config(["admin:x@nats.local:4222"], NONE, tls)) is not None


def test_tls_the_options_require_cannot_be_dropped() -> None:
    with_tls = record(ca_file=None, cert_file=None, key_file=None)
    for options in ([("server_url", "tls://a:1")], [("server_url", "a:1"), ("tls.required", " TRUE")]):
        why = Reach(options).refusal(config(["a:1"], NONE))
        assert why is not None and "without TLS" in why, options
        assert Reach(options).refusal(config(["a:1"], NONE, with_tls)) is None
    assert Reach([("server_url", "a:1"), ("tls.required", "false")]).refusal(config(["a:1"], NONE)) is None


def test_only_the_credentials_the_options_give_are_used() -> None:
    reach = Reach([("server_url", "a:1"), ("connect_mode", "user_and_password"), ("username", "u"),
                   ("password", "secret-pw")])
    user = lambda name, pw: Variant("user-password", record(username=name, password=pw))  # noqa: E731
    assert reach.refusal(config(["a:1"], user("u", "secret-pw"))) is None
    for swapped in (user("admin", "secret-pw"), user("u", "other"), NONE, Variant("token", "secret-pw")):
        why = reach.refusal(config(["a:1"], swapped))
        assert why is not None and "authentication" in why and "secret-pw" not in why
    assert Reach([("server_url", "a:1"), ("connect_mode", "oauth")]).refusal(config(["a:1"], NONE)) is not None
    assert Reach([("server_url", "a:1")]).refusal(config(["a:1"], Variant("token", "baked-in"))) is not None


def test_a_stream_is_created_only_when_the_options_allow_it() -> None:
    asking = config(["a:1"], NONE, create_stream=record(name="s", subject="a"))
    assert Reach([("server_url", "a:1")]).refusal(asking) is not None
    assert Reach([("server_url", "a:1"), ("allow_create_stream", "true")]).refusal(asking) is None


def test_subjects_and_headers_are_checked_by_the_rust_rules() -> None:
    for subject, reason in [("$KV.bucket.key", "key-value bucket"), ("$JS.API.STREAM.PURGE.x", "command"),
                            ("$SYS.REQ.x", "command"), ("a.\x00b", "control"), ("a b", "whitespace"),
                            ("a.\u00a0", "whitespace"), ("orders.>", "wildcard"), ("a..b", "empty token"), ("", "empty"),
                            ("a.\x85", "whitespace"), ("x" * 4001, "4000")]:
        why = subject_refusal(subject)
        assert why is not None and reason in why, (subject, why)
    for subject in ["$KV", "KV.bucket.key", "a.$JS.API.b", "orders.eu"]:
        assert subject_refusal(subject) is None, subject
    assert header_name_refusal("X-Id") is None
    assert header_name_refusal("X Id") is not None and header_name_refusal("X:Id") is not None
    assert header_value_refusal("a\r\nPUB other 1") is not None
    assert header_value_refusal("a\x00b") is not None
    assert header_value_refusal(" a") is not None and header_value_refusal("a\u00a0") is not None
    assert header_value_refusal("a b") is None


def test_an_upsert_sink_reaches_the_bucket_its_options_name_and_no_other() -> None:
    # As host/src/policy.rs: the bucket comes from `type = 'upsert'` with `kv.bucket`.
    upsert = Reach([("server_url", "a:1"), ("type", "upsert"), ("kv.bucket", "B")])
    asking = config(["a:1"], NONE)
    asking.kv = record(name="B", create_with_history=None)
    assert upsert.refusal(asking) is None
    asking.kv = record(name="OTHER", create_with_history=None)
    assert "only that one may be used" in (upsert.refusal(asking) or "")
    asking.kv = record(name="B", create_with_history=1)  # creating it needs allow_create_stream
    assert "allow_create_stream" in (upsert.refusal(asking) or "")
    asking.kv = None
    assert "without its KV bucket" in (upsert.refusal(asking) or "")
    plain = Reach([("server_url", "a:1"), ("kv.bucket", "B")])
    asking.kv = record(name="B", create_with_history=None)
    assert "do not say `type = 'upsert'`" in (plain.refusal(asking) or "")
    assert kv_subject_refusal("$KV.B.k-1/x=.y", "B") is None
    assert "key-value bucket" in (kv_subject_refusal("$KV.OTHER.k", "B") or "")
    assert "cannot hold ':'" in (kv_subject_refusal("$KV.B.a:b", "B") or "")
    assert "empty token" in (kv_subject_refusal("$KV.B.a..b", "B") or "")
    assert "key-value bucket" in (subject_refusal("$KV.B.k") or "")


def test_headers_jetstream_acts_on_pass_only_as_the_guest_sets_them() -> None:
    purge = {"Nats-Msg-Id": "s:1:1", "KV-Operation": "PURGE", "Nats-Rollup": "sub"}
    assert control_headers_refusal(True, 0, purge) is None
    assert control_headers_refusal(True, 0, {"KV-Operation": "DEL"}) is None
    assert control_headers_refusal(False, 9, {"Nats-Msg-Id": "s:1:1", "X-Source": "a"}) is None
    for headers in [{"Nats-Rollup": "all"}, {"nats-ttl": "1s"}, {"NATS-EXPECTED-STREAM": "S"},
                    {"Nats-Rollup": "sub"}, {"KV-Operation": "ROLLUP"},
                    {"KV-Operation": "DEL", "Nats-Rollup": "sub"}, {"Nats-Msg-Id": "a", "nats-msg-id": "b"}]:
        assert control_headers_refusal(True, 0, headers) is not None, headers
    assert control_headers_refusal(False, 0, {"KV-Operation": "DEL"}) is not None
    assert control_headers_refusal(True, 2, {"kv-operation": "DEL"}) is not None
