//! The documentation's generated parts match the code: `docs/reference/options.md` is what
//! `nats-sink describe` prints, defaults included. `just docs` rewrites it
//! (`NATS_SINK_WRITE_DOCS=1`).

use std::time::Duration;

use nats_sink_tests::options_doc::{parse_describe, render, OPTIONS_DOC};
use nats_sink_tests::*;

#[tokio::test(flavor = "multi_thread")]
async fn options_reference_is_what_describe_prints() {
    let out = cli(vec!["describe".into()], "", Duration::from_secs(60)).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let options = parse_describe(&String::from_utf8_lossy(&out.stdout)).unwrap();
    // Defaults are part of what is compared, not only names.
    let timeout = options.iter().find(|o| o.name == "connect_timeout_ms");
    assert_eq!(timeout.and_then(|o| o.default.as_deref()), Some("5000"));
    let expected = render(&options);
    let path = repo_file(OPTIONS_DOC);
    if std::env::var_os("NATS_SINK_WRITE_DOCS").is_some() {
        std::fs::write(&path, &expected).expect("write the options reference");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == expected,
        "{OPTIONS_DOC} differs from `nats-sink describe`; run `just docs` and commit it.\n\
         --- expected ---\n{expected}"
    );
}
