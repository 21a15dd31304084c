//! Whether this run agrees with the one before it: every ratio of the two reports (keys with
//! `_to_`, in the sections both hold) is compared by its min–max range. Two ranges that share a
//! value agree within their spreads; those that do not are listed.

use serde_json::Value;

const SECTIONS: [&str; 3] = ["throughput", "without_ids", "encode"];

/// `dataset route batch`, from whichever of those fields an entry has.
fn label(entry: &Value) -> String {
    ["dataset", "route", "batch"]
        .iter()
        .filter_map(|k| entry.get(*k))
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn range(spread: &Value) -> Option<(f64, f64, f64)> {
    Some((
        spread.get("median")?.as_f64()?,
        spread.get("min")?.as_f64()?,
        spread.get("max")?.as_f64()?,
    ))
}

/// Print how many ratios of `now` agree with `before` within their spreads.
pub fn print(before: &Value, now: &Value) {
    let (mut compared, mut disagreeing) = (0, Vec::new());
    for section in SECTIONS {
        let (Some(old), Some(new)) = (
            before.get(section).and_then(Value::as_array),
            now.get(section).and_then(Value::as_array),
        ) else {
            continue;
        };
        for entry in new {
            let name = label(entry);
            let Some(old_entry) = old.iter().find(|e| label(e) == name) else {
                continue;
            };
            let (Some(spreads), Some(old_spreads)) = (
                entry.get("spreads").and_then(Value::as_object),
                old_entry.get("spreads").and_then(Value::as_object),
            ) else {
                continue;
            };
            for (key, spread) in spreads.iter().filter(|(k, _)| k.contains("_to_")) {
                let (Some(a), Some(b)) = (range(spread), old_spreads.get(key).and_then(range))
                else {
                    continue;
                };
                compared += 1;
                if a.1 > b.2 || b.1 > a.2 {
                    disagreeing.push(format!(
                        "  {name} {key}: {:.2} ({:.2}–{:.2}) now, {:.2} ({:.2}–{:.2}) before",
                        a.0, a.1, a.2, b.0, b.1, b.2
                    ));
                }
            }
        }
    }
    if compared == 0 {
        println!("\nthe earlier target/bench.json has no paired spreads to compare with");
        return;
    }
    println!(
        "\nagainst the previous run (target/bench.json, {} rows, {} rounds): {} of {compared} ratios agree within their spreads (min–max ranges overlap)",
        before["rows_per_run"],
        before["runs"],
        compared - disagreeing.len(),
    );
    for line in disagreeing {
        println!("{line}");
    }
}
