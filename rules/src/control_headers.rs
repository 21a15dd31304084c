//! Headers NATS itself acts on, as a host lets a guest's message carry them. JetStream and KV
//! read these to delete, purge, expire or refuse messages: `Nats-Rollup: all` on one message
//! empties a whole stream, `Nats-TTL` expires it, `KV-Operation: DEL` turns a put into a
//! delete. The guest sets exactly three of them, so the host lets through only those, and only
//! where the guest would set them; a component that sets any other is refused before a byte
//! is sent. Names are matched in any case: some clients canonicalize it.

/// The message id JetStream deduplicates by: on any message (`dedupe = true`, or a user's own
/// id with `dedupe = false`).
pub const MESSAGE_ID_HEADER: &str = "Nats-Msg-Id";
/// What a KV reader makes of a message on a key's subject: a delete or a purge of the key.
pub const KV_OPERATION_HEADER: &str = "KV-Operation";
/// The `KV-Operation` of a delete (`kv.delete = 'delete'`): the key reads as deleted.
pub const KV_DELETE: &str = "DEL";
/// The `KV-Operation` of a purge (`kv.delete = 'purge'`), with [`KV_PURGE_ROLLUP`].
pub const KV_PURGE: &str = "PURGE";
/// The `KV-Operation` values an upsert sink writes.
pub const KV_OPERATIONS: [&str; 2] = [KV_DELETE, KV_PURGE];
/// JetStream's rollup: the one value allowed is `sub` ([`KV_PURGE_ROLLUP`]).
pub const ROLLUP_HEADER: &str = "Nats-Rollup";
/// The rollup a KV purge carries beside `KV-Operation: PURGE`: it removes the key's own
/// history, nothing else.
pub const KV_PURGE_ROLLUP: &str = "sub";
/// The prefix of the headers NATS reserves for itself.
pub const RESERVED_PREFIX: &str = "Nats-";

fn starts_with_ignoring_case(name: &str, prefix: &str) -> bool {
    name.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// Whether NATS acts on a header of this name (matched in any case): [`KV_OPERATION_HEADER`]
/// and every name under [`RESERVED_PREFIX`].
pub fn is_control_header(name: &str) -> bool {
    name.eq_ignore_ascii_case(KV_OPERATION_HEADER)
        || starts_with_ignoring_case(name, RESERVED_PREFIX)
}

/// The headers NATS acts on that one message carries, checked: `Nats-Msg-Id` anywhere, once;
/// `KV-Operation: DEL|PURGE` only on a key of the sink's bucket (`on_kv_key`), with no payload;
/// `Nats-Rollup: sub` only with `KV-Operation: PURGE`; no other `Nats-` header. Headers NATS
/// does not act on are not this rule's business (see `nats_names` for their form).
pub fn check_control_headers<'a>(
    on_kv_key: bool,
    payload_len: usize,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), String> {
    let (mut id, mut operation, mut rollup) = (false, None, None);
    for (name, value) in headers {
        if !is_control_header(name) {
            continue;
        }
        let seen = if name.eq_ignore_ascii_case(MESSAGE_ID_HEADER) {
            std::mem::replace(&mut id, true)
        } else if name.eq_ignore_ascii_case(KV_OPERATION_HEADER) {
            operation.replace(value).is_some()
        } else if name.eq_ignore_ascii_case(ROLLUP_HEADER) {
            rollup.replace(value).is_some()
        } else {
            return Err(format!(
                "header `{name}` is one JetStream acts on (it can delete, expire or refuse \
                 messages), and the sink never sets it"
            ));
        };
        if seen {
            return Err(format!("header `{name}` appears twice"));
        }
    }
    if let Some(op) = operation {
        if !on_kv_key {
            return Err(format!(
                "header `{KV_OPERATION_HEADER}` is only for a key of the sink's KV bucket"
            ));
        }
        if !KV_OPERATIONS.contains(&op) {
            return Err(format!(
                "header `{KV_OPERATION_HEADER}: {op}`; a sink writes only `{KV_DELETE}` or `{KV_PURGE}`"
            ));
        }
        if payload_len != 0 {
            return Err(format!(
                "header `{KV_OPERATION_HEADER}: {op}` on a message with a payload"
            ));
        }
    }
    if let Some(value) = rollup {
        if value != KV_PURGE_ROLLUP || operation != Some(KV_PURGE) {
            return Err(format!(
                "header `{ROLLUP_HEADER}: {value}`; only `{ROLLUP_HEADER}: {KV_PURGE_ROLLUP}` \
                 beside `{KV_OPERATION_HEADER}: {KV_PURGE}` is allowed"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(on_kv_key: bool, payload: usize, headers: &[(&str, &str)]) -> Result<(), String> {
        check_control_headers(on_kv_key, payload, headers.iter().copied())
    }

    #[test]
    fn what_the_guest_sets_passes() {
        assert!(check(false, 10, &[("Nats-Msg-Id", "7:1"), ("X-Source", "a")]).is_ok());
        assert!(check(true, 10, &[("Nats-Msg-Id", "7:1")]).is_ok());
        assert!(check(true, 0, &[("Nats-Msg-Id", "7:1"), ("KV-Operation", "DEL")]).is_ok());
        let purge = [
            ("Nats-Msg-Id", "7:1"),
            ("KV-Operation", "PURGE"),
            ("Nats-Rollup", "sub"),
        ];
        assert!(check(true, 0, &purge).is_ok());
        assert!(check(false, 3, &[]).is_ok());
    }

    #[test]
    fn what_would_delete_expire_or_refuse_data_is_refused() {
        for (name, value) in [
            ("Nats-Rollup", "all"),
            ("nats-rollup", "all"),
            ("NATS-TTL", "1s"),
            ("Nats-Expected-Last-Sequence", "0"),
            ("Nats-Marker-Reason", "Purge"),
            ("Nats-Rollup", "sub"),
        ] {
            assert!(check(true, 0, &[(name, value)]).is_err(), "{name}: {value}");
        }
        // KV operations off a key, with a payload, or of another kind.
        assert!(check(false, 0, &[("KV-Operation", "DEL")]).is_err());
        assert!(check(true, 2, &[("kv-operation", "DEL")]).is_err());
        assert!(check(true, 0, &[("KV-Operation", "ROLLUP")]).is_err());
        assert!(check(true, 0, &[("KV-Operation", "DEL"), ("Nats-Rollup", "sub")]).is_err());
        // A second id or operation could be read either way.
        assert!(check(false, 0, &[("Nats-Msg-Id", "a"), ("nats-msg-id", "b")]).is_err());
        assert!(check(
            true,
            0,
            &[("KV-Operation", "DEL"), ("KV-Operation", "PURGE")]
        )
        .is_err());
    }

    #[test]
    fn control_headers_are_matched_in_any_case() {
        for name in [
            "Nats-Msg-Id",
            "NATS-ROLLUP",
            "nats-x",
            "kv-operation",
            "KV-OPERATION",
        ] {
            assert!(is_control_header(name), "{name}");
        }
        for name in ["X-Nats-Id", "Nats", "KV-Op", "Natsy-Thing"] {
            assert!(!is_control_header(name), "{name}");
        }
    }
}
