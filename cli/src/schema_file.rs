//! The `--schema` file: `{"columns":[{"name":..,"type":..}]}`, read with a bound and parsed
//! with the type grammar the component uses.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::Context as _;
use nats_sink::Column;
use nats_sink_rules::schema::Schema;

use crate::Failure;

/// The largest schema file read: a 100,000-column schema is about 4 MB.
const MAX_SCHEMA_BYTES: u64 = 16 << 20;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaFile {
    columns: Vec<SchemaColumn>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaColumn {
    name: String,
    #[serde(rename = "type")]
    data_type: String,
}

pub(crate) fn read_schema(path: &PathBuf) -> Result<(Schema, Vec<Column>), Failure> {
    let read = || -> anyhow::Result<(Schema, Vec<Column>)> {
        // Bounded: `--schema /dev/zero` must not read forever.
        let mut bytes = Vec::new();
        std::fs::File::open(path)?
            .take(MAX_SCHEMA_BYTES + 1)
            .read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_SCHEMA_BYTES {
            anyhow::bail!("is larger than {} MiB", MAX_SCHEMA_BYTES >> 20);
        }
        let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
        if text.trim_ascii_start().first() != Some(&b'{') {
            anyhow::bail!(
                r#"must be a JSON object: {{"columns":[{{"name":"id","type":"integer"}}, ...]}}"#
            );
        }
        let file: SchemaFile = serde_json::from_slice(text)?;
        let schema = Schema::parse(
            file.columns
                .iter()
                .map(|c| (c.name.as_str(), c.data_type.as_str())),
        )?;
        let columns = file
            .columns
            .into_iter()
            .map(|c| Column {
                name: c.name,
                data_type: c.data_type,
            })
            .collect();
        Ok((schema, columns))
    };
    read()
        .with_context(|| format!("schema {}", path.display()))
        .map_err(Failure::Input)
}
