//! The CLI's text forms against the shared vectors (tests/vectors/text_forms.json), which the
//! Python host's test reads too: both readers give every text the same value or refusal.

use nats_sink_cli::input::{
    parse_bytea, parse_date, parse_interval, parse_time, parse_timestamp, parse_timestamptz,
    parse_uuid, IntervalError,
};
use serde_json::{json, Value};

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/vectors/text_forms.json"
    );
    let text = std::fs::read_to_string(path).expect("the shared vectors are readable");
    serde_json::from_str(&text).expect("the shared vectors are JSON")
}

/// What this reader gives a text, in the file's own terms.
fn read(kind: &str, text: &str) -> Value {
    let refused = || json!({ "refused": "malformed" });
    let value = |v: Value| json!({ "value": v });
    match kind {
        "interval" => match parse_interval(text) {
            Ok((months, days, micros)) => value(json!([months, days, micros])),
            Err(IntervalError::Malformed) => refused(),
            Err(IntervalError::OutOfRange) => json!({ "refused": "out_of_range" }),
        },
        "date" => parse_date(text).map_or_else(refused, |v| value(json!(v))),
        "time" => parse_time(text).map_or_else(refused, |v| value(json!(v))),
        "timestamp" => parse_timestamp(text).map_or_else(refused, |v| value(json!(v))),
        "timestamptz" => parse_timestamptz(text).map_or_else(refused, |v| value(json!(v))),
        "bytea" => parse_bytea(text).map_or_else(refused, |bytes| {
            value(json!(bytes
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()))
        }),
        "uuid" => parse_uuid(text).map_or_else(refused, |v| value(json!(format!("{v:032x}")))),
        other => panic!("the vectors name an unknown kind `{other}`"),
    }
}

#[test]
fn every_text_form_vector_reads_as_the_file_says() {
    let vectors = vectors();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (kind, cases) in vectors.as_object().expect("an object of kinds") {
        let Some(cases) = cases.as_array() else {
            continue; // the file's `about`
        };
        for case in cases {
            let text = case["text"].as_str().expect("each case has a text");
            let mut expected = case.as_object().expect("each case is an object").clone();
            expected.remove("text");
            let got = read(kind, text);
            if got != Value::Object(expected.clone()) {
                wrong.push(format!(
                    "{kind} {text:?}: the file says {expected:?}, the CLI gives {got}"
                ));
            }
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} vectors were read");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
