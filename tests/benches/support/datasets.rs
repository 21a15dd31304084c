//! The rows every mode publishes: realistic rows (every type) and small ones.

use super::*;

/// A fixed set of rows in the three shapes the modes need.
pub(crate) struct Dataset {
    pub(crate) name: &'static str,
    /// The name in tables.
    pub(crate) short: &'static str,
    pub(crate) columns: Vec<Column>,
    pub(crate) rows: Vec<Vec<Datum>>,
    /// Each row's JSON as the sink encodes it, for the raw mode.
    pub(crate) payloads: Vec<Vec<u8>>,
    pub(crate) bytes: usize,
}

/// About 12 columns of mixed types, about 300 bytes of JSON per row.
pub(crate) fn realistic(count: usize) -> Dataset {
    let columns = columns(&[
        ("order_id", "bigint"),
        ("customer", "varchar"),
        ("amount", "numeric"),
        ("quantity", "integer"),
        ("unit_price", "double precision"),
        ("created_at", "timestamptz"),
        ("ship_date", "date"),
        ("status", "varchar"),
        ("tags", "varchar[]"),
        ("gift", "boolean"),
        ("attributes", "jsonb"),
        ("ref", "uuid"),
    ]);
    let statuses = ["new", "paid", "shipped", "delivered", "returned"];
    let rows = (0..count as i64)
        .map(|i| {
            vec![
                Datum::Bigint(1_000_000 + i),
                Datum::Varchar(format!("customer-{:06}@example.com", i * 7919 % 1_000_000)),
                Datum::Numeric(format!("{}.{:02}", i % 10_000, i % 100)),
                Datum::Integer((i % 17) as i32 + 1),
                Datum::Double((i % 1000) as f64 * 0.25 + 0.99),
                Datum::Timestamptz(1_700_000_000_000_000 + i * 1_000_003),
                Datum::Date(19_700 + (i % 365) as i32),
                Datum::Varchar(statuses[i as usize % statuses.len()].to_string()),
                Datum::List(vec![
                    Datum::Varchar("priority".into()),
                    Datum::Varchar(format!("region-{}", i % 12)),
                ]),
                Datum::Boolean(i % 3 == 0),
                Datum::Jsonb(format!(
                    r#"{{"channel":"web","campaign":"c{}","score":{}}}"#,
                    i % 50,
                    i % 97
                )),
                Datum::Uuid(0x5f0e_1b2c_3d4e_4f50_8a9b_0c1d_2e3f_4a5b ^ i as u128),
            ]
        })
        .collect();
    Dataset::new("realistic (12 columns)", "realistic", columns, rows)
}

/// Three columns.
pub(crate) fn small(count: usize) -> Dataset {
    let columns = columns(&[("id", "bigint"), ("name", "varchar"), ("ok", "boolean")]);
    let rows = (0..count as i64)
        .map(|i| {
            vec![
                Datum::Bigint(i),
                Datum::Varchar(format!("row-{i}")),
                Datum::Boolean(i % 2 == 0),
            ]
        })
        .collect();
    Dataset::new("small (3 columns)", "small", columns, rows)
}

impl Dataset {
    pub(crate) fn new(
        name: &'static str,
        short: &'static str,
        columns: Vec<Column>,
        datums: Vec<Vec<Datum>>,
    ) -> Dataset {
        // Encode once with the guest's own sink, so raw publishes the very same bytes.
        let keep = Discard {
            keep: true,
            ..Discard::default()
        };
        let mut sink = native_sink(&columns, &[], keep);
        sink.write(&to_guest_rows(&pack(&datums)))
            .expect("the dataset encodes");
        let payloads = sink.transport().kept.clone();
        assert_eq!(payloads.len(), datums.len());
        let bytes = payloads.iter().map(Vec::len).sum();
        Dataset {
            name,
            short,
            columns,
            rows: datums,
            payloads,
            bytes,
        }
    }

    /// The rows as Arrow record batches (RisingWave's forms), before any clock starts: per
    /// checkpoint, batches of `batch` rows.
    pub(crate) fn arrow(&self, batch: usize) -> Vec<Vec<RecordBatch>> {
        self.rows
            .chunks(CHECKPOINT_ROWS)
            .map(|checkpoint| {
                checkpoint
                    .chunks(batch)
                    .map(|rows| record_batch(&self.columns, rows))
                    .collect()
            })
            .collect()
    }

    /// The rows packed as `write` takes them, before any clock starts: per checkpoint, batches
    /// of `batch` rows.
    pub(crate) fn packed(&self, batch: usize) -> Vec<Vec<Rows>> {
        self.rows
            .chunks(CHECKPOINT_ROWS)
            .map(|checkpoint| checkpoint.chunks(batch).map(pack).collect())
            .collect()
    }
}
