//! Sink options and schema columns from pairs.

use crate::servers::NatsServer;

/// Sink options from pairs.
pub fn options(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Schema columns from `(name, type)` pairs.
pub fn columns(spec: &[(&str, &str)]) -> Vec<nats_sink::Column> {
    spec.iter()
        .map(|(name, data_type)| nats_sink::Column {
            name: name.to_string(),
            data_type: data_type.to_string(),
        })
        .collect()
}

/// The columns of a `--schema` file (`{"columns": [{"name", "type"}, ...]}`).
pub fn columns_of_schema_file(path: &std::path::Path) -> Vec<nats_sink::Column> {
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    file["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| nats_sink::Column {
            name: c["name"].as_str().unwrap().into(),
            data_type: c["type"].as_str().unwrap().into(),
        })
        .collect()
}

/// Plain options for a subject on `server`.
pub fn plain_options(server: &NatsServer, subject: &str) -> Vec<(String, String)> {
    let url = server.url();
    options(&[
        ("connector", "nats"),
        ("server_url", &url),
        ("subject", subject),
        ("connect_mode", "plain"),
    ])
}
