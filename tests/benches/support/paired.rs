//! Paired rounds: every mode of a cell runs once per round, in an order rotated each round, and
//! a figure is the median over rounds with its min–max spread. A burst of load on the machine
//! then lands on every mode of one round rather than on all the runs of one mode, and the
//! per-round ratio cancels most of it.

use serde_json::json;

/// A spread past this share of the median, on either side, is flagged.
pub const WIDE: f64 = 0.15;

/// The legend printed under every table that uses [`Spread::ratio`] or [`Spread::rate`].
pub const LEGEND: &str =
    "median over paired rounds (min–max); ! = spread wider than ±15% of the median";

/// One figure measured once per round.
#[derive(Debug, Clone)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// In round order.
    pub samples: Vec<f64>,
}

impl Spread {
    /// The spread of per-round samples (at least one).
    pub fn of(samples: Vec<f64>) -> Spread {
        assert!(!samples.is_empty(), "a spread needs at least one round");
        let mut sorted = samples.clone();
        sorted.sort_by(f64::total_cmp);
        let middle = sorted.len() / 2;
        // An even count takes the mean of the two middle rounds, so no round is favoured.
        let median = if sorted.len().is_multiple_of(2) {
            (sorted[middle - 1] + sorted[middle]) / 2.0
        } else {
            sorted[middle]
        };
        Spread {
            median,
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            samples,
        }
    }

    /// Round by round, `numerator / denominator` of two figures measured in the same rounds.
    pub fn ratio_of(numerator: &[f64], denominator: &[f64]) -> Spread {
        assert_eq!(numerator.len(), denominator.len(), "paired figures");
        Spread::of(
            numerator
                .iter()
                .zip(denominator)
                .map(|(n, d)| n / d)
                .collect(),
        )
    }

    /// True when a round lies further than ±15% from the median.
    pub fn wide(&self) -> bool {
        self.max > self.median * (1.0 + WIDE) || self.min < self.median * (1.0 - WIDE)
    }

    fn flag(&self) -> &'static str {
        if self.wide() {
            "!"
        } else {
            ""
        }
    }

    /// `0.74 (0.70–0.79)`, with `!` when wide.
    pub fn ratio(&self) -> String {
        format!(
            "{:.2} ({:.2}–{:.2}){}",
            self.median,
            self.min,
            self.max,
            self.flag()
        )
    }

    /// `424k (398k–738k)` for rates, with `!` when wide.
    pub fn rate(&self) -> String {
        format!(
            "{} ({}–{}){}",
            short_rate(self.median),
            short_rate(self.min),
            short_rate(self.max),
            self.flag()
        )
    }

    /// `{median, min, max, wide, samples}`.
    pub fn json(&self) -> serde_json::Value {
        json!({
            "median": self.median, "min": self.min, "max": self.max,
            "wide": self.wide(), "samples": self.samples,
        })
    }
}

/// A rate in three significant figures: `1.36M`, `424k`, `98.5k`, `812`.
pub fn short_rate(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.2}M", value / 1e6)
    } else if value >= 1e5 {
        format!("{:.0}k", value / 1e3)
    } else if value >= 1e3 {
        format!("{:.1}k", value / 1e3)
    } else {
        format!("{value:.0}")
    }
}

/// The modes of one cell in round `round`'s order: rotated by one each round, so each mode goes
/// first, second, … equally often over as many rounds as there are modes.
pub fn rotated<T: Copy>(modes: &[T], round: usize) -> Vec<T> {
    let mut order = modes.to_vec();
    if !order.is_empty() {
        let by = round % order.len();
        order.rotate_left(by);
    }
    order
}
