//! RisingWave's own vectors, byte for byte, against the real component; the CLI's JSON Lines
//! path against a real `nats-server`. Reference: RisingWave commit 448c6570b1 (its serde_json
//! 1.0.145, jsonbb 0.2.3). Each vector names the file and test it comes from.

use std::time::Duration;

use ::nats_sink::Datum;
use nats_sink_tests::memory::*;
use nats_sink_tests::*;

const WAIT: Duration = Duration::from_secs(10);
const CLI_LIMIT: Duration = Duration::from_secs(60);

/// The payloads the real component publishes for `rows` of `columns`, with `extra` options.
async fn payloads(
    columns: &[(&str, &str)],
    extra: &[(&str, &str)],
    rows: &[Vec<Datum>],
) -> Vec<String> {
    written(columns, extra, rows).await.unwrap()
}

/// The payloads, or the error the component's `write` returned.
async fn written(
    columns: &[(&str, &str)],
    extra: &[(&str, &str)],
    rows: &[Vec<Datum>],
) -> Result<Vec<String>, SinkError> {
    // Compiled once for every case: each instance is fresh, the compiled code is shared.
    static HOST: std::sync::OnceLock<MemoryHost> = std::sync::OnceLock::new();
    let host =
        HOST.get_or_init(|| MemoryHost::load(&component_path()).expect("load the component"));
    let mut instance = host.instance().await.unwrap();
    let mut pairs = vec![
        ("server_url", "127.0.0.1:4222"),
        ("subject", "vectors"),
        ("connect_mode", "plain"),
    ];
    pairs.extend_from_slice(extra);
    let columns: Vec<Column> = columns
        .iter()
        .map(|(name, ty)| Column {
            name: name.to_string(),
            data_type: ty.to_string(),
        })
        .collect();
    let sink = instance
        .open(&options(&pairs), &columns)
        .await
        .unwrap()
        .unwrap();
    instance.write(sink, &pack(rows)).await.unwrap()?;
    Ok(instance
        .recorder
        .published()
        .into_iter()
        .map(|m| String::from_utf8(m.payload).unwrap())
        .collect())
}

/// The payload of one value `datum` of type `ty`, in column `v`.
async fn one(ty: &str, extra: &[(&str, &str)], datum: Datum) -> String {
    let got = payloads(&[("v", ty)], extra, &[vec![datum]]).await;
    let payload = &got[0];
    payload
        .strip_prefix("{\"v\":")
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or_else(|| panic!("{payload}"))
        .to_string()
}

/// `src/connector/src/sink/encoder/json.rs`, `test_to_json_basic_type`: every case that the
/// NATS sink's encoder (CustomJsonType::None) can produce, under the handling modes it names.
#[tokio::test]
async fn json_rs_test_to_json_basic_type() {
    let tstz = 1_516_991_409_453_000; // "2018-01-26T18:30:09.453Z"
                                      // (type, options, value, the JSON RisingWave's test expects)
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        Datum,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        ("boolean", &[], Datum::Boolean(false), "false"),
        ("smallint", &[], Datum::Smallint(16), "16"),
        (
            "bigint",
            &[],
            Datum::Bigint(i64::MAX),
            "9223372036854775807",
        ),
        (
            "serial",
            &[],
            Datum::Serial(i64::MAX),
            "\"0x7fffffffffffffff\"",
        ),
        (
            "timestamptz",
            &[("timestamptz.handling.mode", "utc_string")],
            Datum::Timestamptz(tstz),
            "\"2018-01-26T18:30:09.453000Z\"",
        ),
        (
            "timestamptz",
            &[("timestamptz.handling.mode", "utc_without_suffix")],
            Datum::Timestamptz(tstz),
            "\"2018-01-26 18:30:09.453000\"",
        ),
        (
            "timestamp",
            &[("timestamp.handling.mode", "milli")],
            Datum::Timestamp(1_000_000_000),
            "1000000",
        ),
        (
            "timestamp",
            &[("timestamp.handling.mode", "string")],
            Datum::Timestamp(1_000_000_000),
            "\"1970-01-01 00:16:40.000000\"",
        ),
        ("time", &[], Datum::Time(1_000_000_000), "1000000"),
        (
            "interval",
            &[],
            Datum::Interval {
                months: 13,
                days: 2,
                micros: 1_000_000,
            },
            "\"P1Y1M2DT0H0M1S\"",
        ),
        ("date", &[], Datum::Date(0), "719163"),
        (
            "date",
            &[("date.handling.mode", "from_epoch")],
            Datum::Date(0),
            "0",
        ),
        (
            "jsonb",
            &[("jsonb.handling.mode", "dynamic")],
            Datum::Jsonb("[1, 2, 3]".into()),
            "[1,2,3]",
        ),
    ];
    for (ty, extra, datum, expected) in cases {
        assert_eq!(
            one(ty, extra, datum.clone()).await,
            expected,
            "{ty} {datum:?}"
        );
    }
}

/// `e2e_test/sink/kafka/create_sink.slt`'s `t_kafka`, as the append-only sink writes it
/// (`append_only1.result`, `without_snapshot.result`: the same JSON encoder settings as NATS).
const T_KAFKA: &[(&str, &str)] = &[
    ("id", "integer"),
    ("v_varchar", "varchar"),
    ("v_smallint", "smallint"),
    ("v_integer", "integer"),
    ("v_bigint", "bigint"),
    ("v_float", "real"),
    ("v_double", "double precision"),
    ("v_timestamp", "timestamp"),
    ("v_bytea", "bytea"),
    ("v_interval", "interval"),
    ("v_date", "date"),
    ("v_time", "time"),
    ("v_timestamptz", "timestamptz"),
    ("v_jsonb", "jsonb"),
];

/// The `insert into t_kafka values` rows of `create_sink.slt`, as JSON Lines. Row 10 differs
/// in two values, given here as the values RisingWave holds for them:
/// - its interval `05:01:00.1234567` has seven fractional digits, which RisingWave rounds to
///   microseconds; we refuse what we cannot hold exactly (see the test below);
/// - its double is the SQL literal `9042.404483827515`, which RisingWave reads as a decimal and
///   converts to the double `9042.404483827513` (rust_decimal's conversion is not correctly
///   rounded); a JSON number is the double it names, so the row gives that double.
const T_KAFKA_LINES: &str = r#"{"id":1,"v_varchar":"8DfUFencLe","v_smallint":31031,"v_integer":1872,"v_bigint":1872,"v_float":26261.416,"v_double":23956.39329760601,"v_timestamp":"2023-04-14 06:27:14.104742","v_bytea":"\\x00","v_interval":"0 second","v_date":"0001-01-01","v_time":"00:00:01.123456","v_timestamptz":"0001-01-01 00:00:00.123456Z","v_jsonb":{}}
{"id":2,"v_varchar":"sIo1XXVeHZ","v_smallint":22690,"v_integer":4598,"v_bigint":4598,"v_float":27031.225,"v_double":31923.077305746086,"v_timestamp":"2023-04-13 23:44:04.869742","v_bytea":"\\x00","v_interval":"4 hour","v_date":"1970-01-01","v_time":"00:00:01.123456","v_timestamptz":"0001-01-01 00:00:00.123456Z","v_jsonb":{}}
{"id":3,"v_varchar":"LVLAhd1pQv","v_smallint":5985,"v_integer":5894,"v_bigint":14894,"v_float":2660.2903,"v_double":9742.475509566086,"v_timestamp":"2023-04-13 23:36:51.269742","v_bytea":"\\x000000","v_interval":"3 day","v_date":"2000-01-01","v_time":"00:00:01.123456","v_timestamptz":"0001-01-01 00:00:00.123456Z","v_jsonb":{}}
{"id":4,"v_varchar":"ORjwy3oMNb","v_smallint":6306,"v_integer":7406,"v_bigint":24962,"v_float":21217.777,"v_double":3119.719721891862,"v_timestamp":"2023-04-14 01:12:07.993742","v_bytea":"\\xDEADBEEF","v_interval":"04:00:00.1234","v_date":"1999-12-01","v_time":"00:00:01.123456","v_timestamptz":"0001-01-01 00:00:00.123456Z","v_jsonb":{}}
{"id":5,"v_varchar":"sSkKswxrYd","v_smallint":22765,"v_integer":9253,"v_bigint":9253,"v_float":22749.5,"v_double":17464.91553421121,"v_timestamp":"2023-04-14 03:57:22.324742","v_bytea":"\\xFEEDBEEF","v_interval":"0 second","v_date":"0001-01-01","v_time":"00:01:01.123456","v_timestamptz":"1970-01-01 01:01:01.123456Z","v_jsonb":{}}
{"id":6,"v_varchar":"V4y71v4Gip","v_smallint":4014,"v_integer":10844,"v_bigint":28842,"v_float":5885.368,"v_double":11210.458724794062,"v_timestamp":"2023-04-13 10:42:02.137742","v_bytea":"\\xCAFEBABE","v_interval":"4 hour","v_date":"0001-01-01","v_time":"00:00:01.123456","v_timestamptz":"0001-01-01 00:00:00.123456Z","v_jsonb":{}}
{"id":7,"v_varchar":"YIVLnWxHyf","v_smallint":10324,"v_integer":12652,"v_bigint":15914,"v_float":3946.7434,"v_double":10967.182297153104,"v_timestamp":"2023-04-14 04:41:03.083742","v_bytea":"\\xBABEC0DE","v_interval":"3 day","v_date":"0001-01-01","v_time":"01:00:01.123456","v_timestamptz":"0001-01-01 00:00:00.123456Z","v_jsonb":{}}
{"id":8,"v_varchar":"lv7Eq3g8hx","v_smallint":194,"v_integer":19036,"v_bigint":28641,"v_float":13652.073,"v_double":993.408963466774,"v_timestamp":"2023-04-13 13:52:09.356742","v_bytea":"\\xDEADBABE","v_interval":"04:00:00.1234","v_date":"1970-01-01","v_time":"00:00:01.123456","v_timestamptz":"0001-01-01 00:00:00.123456Z","v_jsonb":{}}
{"id":9,"v_varchar":"nwRq4zejSQ","v_smallint":10028,"v_integer":20090,"v_bigint":24837,"v_float":20699.559,"v_double":11615.276406159757,"v_timestamp":"2023-04-13 12:40:42.487742","v_bytea":"\\xDEADBABE","v_interval":"05:01:00.123456","v_date":"1970-01-01","v_time":"00:00:01.123456","v_timestamptz":"0001-01-01 00:00:00.123456Z","v_jsonb":{}}
{"id":10,"v_varchar":"0oVqRIHqkb","v_smallint":26951,"v_integer":20674,"v_bigint":20674,"v_float":19387.238,"v_double":9042.404483827513,"v_timestamp":"2023-04-13 16:40:58.888742","v_bytea":"\\x00","v_interval":"05:01:00.123457","v_date":"1970-01-01","v_time":"00:00:01.123456","v_timestamptz":"1970-01-01 00:00:00.123456Z","v_jsonb":{}}
"#;

/// `e2e_test/sink/kafka/append_only1.result`, as committed (sorted as text).
const APPEND_ONLY1_RESULT: &str = r#"{"id":1,"v_bigint":1872,"v_bytea":"AA==","v_date":1,"v_double":23956.39329760601,"v_float":26261.416015625,"v_integer":1872,"v_interval":"P0Y0M0DT0H0M0S","v_jsonb":"{}","v_smallint":31031,"v_time":1000,"v_timestamp":1681453634104,"v_timestamptz":"0001-01-01 00:00:00.123456","v_varchar":"8DfUFencLe"}
{"id":10,"v_bigint":20674,"v_bytea":"AA==","v_date":719163,"v_double":9042.404483827513,"v_float":19387.23828125,"v_integer":20674,"v_interval":"P0Y0M0DT5H1M0.123457S","v_jsonb":"{}","v_smallint":26951,"v_time":1000,"v_timestamp":1681404058888,"v_timestamptz":"1970-01-01 00:00:00.123456","v_varchar":"0oVqRIHqkb"}
{"id":2,"v_bigint":4598,"v_bytea":"AA==","v_date":719163,"v_double":31923.077305746086,"v_float":27031.224609375,"v_integer":4598,"v_interval":"P0Y0M0DT4H0M0S","v_jsonb":"{}","v_smallint":22690,"v_time":1000,"v_timestamp":1681429444869,"v_timestamptz":"0001-01-01 00:00:00.123456","v_varchar":"sIo1XXVeHZ"}
{"id":3,"v_bigint":14894,"v_bytea":"AAAA","v_date":730120,"v_double":9742.475509566086,"v_float":2660.290283203125,"v_integer":5894,"v_interval":"P0Y0M3DT0H0M0S","v_jsonb":"{}","v_smallint":5985,"v_time":1000,"v_timestamp":1681429011269,"v_timestamptz":"0001-01-01 00:00:00.123456","v_varchar":"LVLAhd1pQv"}
{"id":4,"v_bigint":24962,"v_bytea":"3q2+7w==","v_date":730089,"v_double":3119.719721891862,"v_float":21217.77734375,"v_integer":7406,"v_interval":"P0Y0M0DT4H0M0.1234S","v_jsonb":"{}","v_smallint":6306,"v_time":1000,"v_timestamp":1681434727993,"v_timestamptz":"0001-01-01 00:00:00.123456","v_varchar":"ORjwy3oMNb"}
{"id":5,"v_bigint":9253,"v_bytea":"/u2+7w==","v_date":1,"v_double":17464.91553421121,"v_float":22749.5,"v_integer":9253,"v_interval":"P0Y0M0DT0H0M0S","v_jsonb":"{}","v_smallint":22765,"v_time":61000,"v_timestamp":1681444642324,"v_timestamptz":"1970-01-01 01:01:01.123456","v_varchar":"sSkKswxrYd"}
{"id":6,"v_bigint":28842,"v_bytea":"yv66vg==","v_date":1,"v_double":11210.458724794062,"v_float":5885.3681640625,"v_integer":10844,"v_interval":"P0Y0M0DT4H0M0S","v_jsonb":"{}","v_smallint":4014,"v_time":1000,"v_timestamp":1681382522137,"v_timestamptz":"0001-01-01 00:00:00.123456","v_varchar":"V4y71v4Gip"}
{"id":7,"v_bigint":15914,"v_bytea":"ur7A3g==","v_date":1,"v_double":10967.182297153104,"v_float":3946.743408203125,"v_integer":12652,"v_interval":"P0Y0M3DT0H0M0S","v_jsonb":"{}","v_smallint":10324,"v_time":3601000,"v_timestamp":1681447263083,"v_timestamptz":"0001-01-01 00:00:00.123456","v_varchar":"YIVLnWxHyf"}
{"id":8,"v_bigint":28641,"v_bytea":"3q26vg==","v_date":719163,"v_double":993.408963466774,"v_float":13652.0732421875,"v_integer":19036,"v_interval":"P0Y0M0DT4H0M0.1234S","v_jsonb":"{}","v_smallint":194,"v_time":1000,"v_timestamp":1681393929356,"v_timestamptz":"0001-01-01 00:00:00.123456","v_varchar":"lv7Eq3g8hx"}
{"id":9,"v_bigint":24837,"v_bytea":"3q26vg==","v_date":719163,"v_double":11615.276406159757,"v_float":20699.55859375,"v_integer":20090,"v_interval":"P0Y0M0DT5H1M0.123456S","v_jsonb":"{}","v_smallint":10028,"v_time":1000,"v_timestamp":1681389642487,"v_timestamptz":"0001-01-01 00:00:00.123456","v_varchar":"nwRq4zejSQ"}
"#;

/// `e2e_test/sink/kafka/without_snapshot.result`: rows 8 to 10, inserted after the sink.
const WITHOUT_SNAPSHOT_RESULT: &str = r#"{"id":10,"v_bigint":20674,"v_bytea":"AA==","v_date":719163,"v_double":9042.404483827513,"v_float":19387.23828125,"v_integer":20674,"v_interval":"P0Y0M0DT5H1M0.123457S","v_jsonb":"{}","v_smallint":26951,"v_time":1000,"v_timestamp":1681404058888,"v_timestamptz":"1970-01-01 00:00:00.123456","v_varchar":"0oVqRIHqkb"}
{"id":8,"v_bigint":28641,"v_bytea":"3q26vg==","v_date":719163,"v_double":993.408963466774,"v_float":13652.0732421875,"v_integer":19036,"v_interval":"P0Y0M0DT4H0M0.1234S","v_jsonb":"{}","v_smallint":194,"v_time":1000,"v_timestamp":1681393929356,"v_timestamptz":"0001-01-01 00:00:00.123456","v_varchar":"lv7Eq3g8hx"}
{"id":9,"v_bigint":24837,"v_bytea":"3q26vg==","v_date":719163,"v_double":11615.276406159757,"v_float":20699.55859375,"v_integer":20090,"v_interval":"P0Y0M0DT5H1M0.123456S","v_jsonb":"{}","v_smallint":10028,"v_time":1000,"v_timestamp":1681389642487,"v_timestamptz":"0001-01-01 00:00:00.123456","v_varchar":"nwRq4zejSQ"}
"#;

/// Run the CLI on `lines` for `columns` against a real server; the payloads a subscriber saw.
async fn sink_through_nats(
    columns: &[(&str, &str)],
    extra: &[(&str, &str)],
    lines: &str,
    expected: usize,
) -> (std::process::Output, Vec<String>) {
    let server = NatsServer::start();
    let client = server.client().await;
    let mut sub = client.subscribe("vectors").await.unwrap();
    client.flush().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path(), columns);
    let mut options = plain_options(&server, "vectors");
    options.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let mut args = vec![
        "run".to_string(),
        "--schema".into(),
        schema.display().to_string(),
    ];
    args.extend(with_args(&options));
    let out = cli(args, lines, CLI_LIMIT).await;
    let mut got = collect(&mut sub, expected, WAIT).await;
    // The run has ended, its rows confirmed: anything more would already be on its way.
    got.extend(collect(&mut sub, 1, Duration::from_millis(300)).await);
    let payloads = got
        .iter()
        .map(|m| String::from_utf8(m.payload.to_vec()).unwrap())
        .collect();
    (out, payloads)
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// The whole path, JSON Lines to a subscriber: `append_only1.result` and
/// `without_snapshot.result` byte for byte, including row 9's `11615.276406159757` and row
/// 10's `9042.404483827513`, which a parser that is not correctly rounded turns into `…755`
/// and `…511`.
#[tokio::test(flavor = "multi_thread")]
async fn kafka_append_only_results_byte_for_byte() {
    let (out, mut got) = sink_through_nats(T_KAFKA, &[], T_KAFKA_LINES, 10).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    got.sort();
    assert_eq!(got, sorted_lines(APPEND_ONLY1_RESULT));
    let late: Vec<String> = got
        .iter()
        .filter(|p| {
            ["{\"id\":8,", "{\"id\":9,", "{\"id\":10,"]
                .iter()
                .any(|id| p.starts_with(id))
        })
        .cloned()
        .collect();
    assert_eq!(late, sorted_lines(WITHOUT_SNAPSHOT_RESULT));
}

/// `create_sink.slt` row 10's interval as given (`05:01:00.1234567`): RisingWave rounds it to
/// microseconds; we refuse it with its line and column rather than change it.
#[tokio::test(flavor = "multi_thread")]
async fn an_interval_finer_than_microseconds_is_refused_not_rounded() {
    let line = T_KAFKA_LINES
        .lines()
        .last()
        .unwrap()
        .replace("05:01:00.123457", "05:01:00.1234567");
    let (out, got) = sink_through_nats(T_KAFKA, &[], &format!("{line}\n"), 1).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 1, column `v_interval`"), "{stderr}");
    assert!(got.is_empty());
}

/// jsonb text as RisingWave prints it (jsonbb's `Display` through `ToTextFormatter`).
#[tokio::test]
async fn jsonb_text_slt_cases() {
    let cases = [
        // e2e_test/batch/types/jsonb.slt.part, first `query T rowsort`.
        (r#"{"a":[2, true, "", {}]}"#, r#"{"a": [2, true, "", {}]}"#),
        ("1", "1"),
        ("true", "true"),
        ("null", "null"),
        ("[1, true]", "[1, true]"),
        // e2e_test/batch/types/jsonb.slt.part, the multi-line object (keys sorted).
        (
            "{\n\t\t\"one\": 1,\n\t\t\"two\":\"two\",\n\t\t\"three\":\n\t\ttrue}",
            r#"{"one": 1, "three": true, "two": "two"}"#,
        ),
        // e2e_test/batch/types/jsonb_issue_23376.slt.part: integers past u64 become doubles.
        (
            r#"{"":114514191981011451419198101145141919810}"#,
            r#"{"": 1.1451419198101145e38}"#,
        ),
        (
            r#"{"":1926081719260817192608171926081719260817}"#,
            r#"{"": 1.9260817192608173e39}"#,
        ),
        (
            r#"{"":555555155555572055555781056}"#,
            r#"{"": 5.5555515555557204e26}"#,
        ),
        // e2e_test/batch/basic/to_jsonb.slt.part: `to_jsonb('2e16'::float8)`.
        ("2e16", "2e16"),
        // The issue's case: a jsonb double parsed twice used to lose its last digit.
        ("1.1451419198101145e38", "1.1451419198101145e38"),
    ];
    for (input, expected) in cases {
        let got = one("jsonb", &[], Datum::Jsonb(input.into())).await;
        let text: String = serde_json::from_str(&got).unwrap();
        assert_eq!(text, expected, "{input}");
    }
}

/// Doubles that need correct rounding, subnormals, the extremes, -0.0 and the boundaries
/// where the number form changes (1e15 / 1e16, 1e20 / 1e21), through the component.
#[tokio::test]
async fn hard_doubles_in_risingwaves_number_form() {
    let cases = [
        (11615.276406159757, "11615.276406159757"),
        (9042.404483827513, "9042.404483827513"),
        (f64::MAX, "1.7976931348623157e308"),
        (f64::MIN, "-1.7976931348623157e308"),
        (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
        (5e-324, "5e-324"),
        (-5e-324, "-5e-324"),
        (2.225073858507201e-308, "2.225073858507201e-308"),
        (-0.0, "-0.0"),
        (0.0, "0.0"),
        (1e15, "1000000000000000.0"),
        (9.999999999999998e15, "9999999999999998.0"),
        (1e16, "1e16"),
        (1e20, "1e20"),
        (2.5e20, "2.5e20"),
        (1e21, "1e21"),
        (1e-5, "0.00001"),
        (1e-6, "1e-6"),
        (0.0001, "0.0001"),
        (0.1, "0.1"),
    ];
    for (value, expected) in cases {
        assert_eq!(
            one("double precision", &[], Datum::Double(value)).await,
            expected,
            "{value:e}"
        );
    }
    // A real is widened to a double, as RisingWave's `json!(f32)` does.
    assert_eq!(
        one("real", &[], Datum::Real(f32::MAX)).await,
        "3.4028234663852886e38"
    );
    assert_eq!(
        one("real", &[], Datum::Real(1e-45)).await,
        "1.401298464324817e-45"
    );
    assert_eq!(one("real", &[], Datum::Real(f32::NAN)).await, "null");
}

/// Numerics of 28 and more digits keep every digit; past RisingWave's numeric they are refused.
#[tokio::test]
async fn long_numerics_keep_every_digit() {
    for text in [
        "1234567890123456789012345678",
        "-79228162514264337593543950335",
        "0.0000000000000000000000000001",
        "1.0000000000000000000000000001",
        "12345678901234567890123",
        "-12.340",
    ] {
        assert_eq!(
            one("numeric", &[], Datum::Numeric(text.into())).await,
            format!("\"{text}\"")
        );
    }
    for beyond in [
        "79228162514264337593543950336",
        "0.00000000000000000000000000001",
    ] {
        let err = written(
            &[("v", "numeric")],
            &[],
            &[vec![Datum::Numeric(beyond.into())]],
        )
        .await
        .unwrap_err();
        let SinkError::InvalidRow(problem) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(problem.column, "v", "{err:?}");
    }
}

/// jsonb numbers as jsonbb holds them: integers exact within 64 bits (also past 2^53), other
/// numbers as correctly rounded doubles; keys sorted, the last of a repeated key kept.
#[tokio::test]
async fn jsonb_numbers_and_keys_in_both_modes() {
    let input = r#"{"b":9007199254740993,"a":[18446744073709551615,-9223372036854775808,1.1451419198101145e38,11615.276406159757,1e20,-0],"B":1,"b":9007199254740993}"#;
    let text = one("jsonb", &[], Datum::Jsonb(input.into())).await;
    assert_eq!(
        serde_json::from_str::<String>(&text).unwrap(),
        r#"{"B": 1, "a": [18446744073709551615, -9223372036854775808, 1.1451419198101145e38, 11615.276406159757, 1e20, -0.0], "b": 9007199254740993}"#
    );
    let dynamic = one(
        "jsonb",
        &[("jsonb.handling.mode", "dynamic")],
        Datum::Jsonb(input.into()),
    )
    .await;
    assert_eq!(
        dynamic,
        r#"{"B":1,"a":[18446744073709551615,-9223372036854775808,1.1451419198101145e38,11615.276406159757,1e20,-0.0],"b":9007199254740993}"#
    );
}

/// Keys sorted bytewise at the top level and inside structs (also structs in lists), as
/// RisingWave's `serde_json::Map` orders them; `json.key_order = schema` keeps schema order.
#[tokio::test]
async fn keys_sorted_bytewise_and_schema_order_on_request() {
    let columns = [
        ("zeta", "integer"),
        ("Alpha", "integer"),
        ("s", "struct<v3 integer, v2 integer, v1 integer>"),
        ("l", "struct<b varchar, a varchar>[]"),
        ("alpha", "integer"),
    ];
    let row = vec![
        Datum::Integer(1),
        Datum::Integer(2),
        Datum::Struct(vec![
            Datum::Integer(3),
            Datum::Integer(2),
            Datum::Integer(1),
        ]),
        Datum::List(vec![Datum::Struct(vec![
            Datum::Varchar("b".into()),
            Datum::Varchar("a".into()),
        ])]),
        Datum::Integer(5),
    ];
    assert_eq!(
        payloads(&columns, &[], std::slice::from_ref(&row)).await,
        [r#"{"Alpha":2,"alpha":5,"l":[{"a":"a","b":"b"}],"s":{"v1":1,"v2":2,"v3":3},"zeta":1}"#]
    );
    assert_eq!(
        payloads(&columns, &[("json.key_order", "schema")], &[row]).await,
        [r#"{"zeta":1,"Alpha":2,"s":{"v3":3,"v2":2,"v1":1},"l":[{"b":"b","a":"a"}],"alpha":5}"#]
    );
}

/// From JSON Lines to a subscriber: hard doubles, long numerics and big jsonb integers arrive
/// exactly; out-of-range values and repeated keys stop the run with exit 2, naming the line
/// and column, after the rows before them were delivered.
#[tokio::test(flavor = "multi_thread")]
async fn json_lines_values_arrive_exactly_or_are_refused() {
    let columns = [("d", "double precision"), ("n", "numeric"), ("j", "jsonb")];
    let lines = concat!(
        r#"{"d":11615.276406159757,"n":12345678901234567890123,"j":{"x":9007199254740993}}"#,
        "\n",
        r#"{"d":9042.404483827513,"n":1.0000000000000000000000000001,"j":1.1451419198101145e38}"#,
        "\n",
        r#"{"d":1e20,"n":-1.50e1,"j":[2.5e20,-0]}"#,
        "\n",
    );
    let (out, got) = sink_through_nats(&columns, &[], lines, 3).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        got,
        [
            r#"{"d":11615.276406159757,"j":"{\"x\": 9007199254740993}","n":"12345678901234567890123"}"#,
            r#"{"d":9042.404483827513,"j":"1.1451419198101145e38","n":"1.0000000000000000000000000001"}"#,
            r#"{"d":1e20,"j":"[2.5e20, -0.0]","n":"-15.0"}"#,
        ]
    );

    for (bad, column) in [
        (r#"{"r":1e39}"#, "r"),
        (r#"{"r":3.5e38}"#, "r"),
        (r#"{"i":"2562047789 hours"}"#, "i"),
        (r#"{"i":"PT2562047789H"}"#, "i"),
        (r#"{"i":"P9223372036854775807Y"}"#, "i"),
        (r#"{"i":"2562047789:00:00"}"#, "i"),
        (r#"{"i":"9223372036854.775808 seconds"}"#, "i"),
        (r#"{"n":79228162514264337593543950336}"#, "n"),
        (r#"{"r":1,"r":2}"#, "r"),
    ] {
        let columns = [("r", "real"), ("i", "interval"), ("n", "numeric")];
        let lines = format!("{{\"r\":1.5}}\n{bad}\n{{\"r\":2.5}}\n");
        // The row before the bad one arrives; none after it.
        let (out, got) = sink_through_nats(&columns, &[], &lines, 1).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert!(
            stderr.contains(&format!("line 2, column `{column}`")),
            "{bad}: {stderr}"
        );
        assert_eq!(got, [r#"{"i":null,"n":null,"r":1.5}"#], "{bad}");
    }
}
