//! Options whose values came from a secret (`SECRET name`, `--with-env`): whatever the option,
//! a problem with one never shows its value. The component quotes a value it refuses
//! (``got `hunter2` ``) unless the option's name is a secret's; only the CLI knows where a
//! value came from, so it words those problems itself.

use nats_sink::wit::{OptionProblem, SinkError};
use nats_sink::HostError;

/// The options given from a secret, and where each came from (`SECRET pw`, `--with-env`).
#[derive(Debug, Default, Clone)]
pub(crate) struct SecretValues {
    sources: Vec<(String, String)>,
}

impl SecretValues {
    /// Option `key`'s value came from `source`.
    pub(crate) fn add(&mut self, key: &str, source: String) {
        self.sources.push((key.to_string(), source));
    }

    fn source_of(&self, key: &str) -> Option<&str> {
        self.sources
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, source)| source.as_str())
    }

    /// `message` about option `key`, or, for a value from a secret, a wording without it.
    fn message(&self, key: &str, message: String) -> String {
        match self.source_of(key) {
            None => message,
            Some(source) => format!(
                "its value, from {source}, is refused; the reason is not shown, as it may quote \
                 the value, which is a secret (`nats-sink describe` says what the option takes)"
            ),
        }
    }

    /// `problem`, worded without a secret's value.
    pub(crate) fn option_problem(&self, problem: OptionProblem) -> OptionProblem {
        OptionProblem {
            message: self.message(&problem.name, problem.message),
            name: problem.name,
        }
    }

    /// `problem` (a file or key the options name), worded without a secret's value.
    pub(crate) fn preflight_problem(
        &self,
        problem: nats_sink::preflight::Problem,
    ) -> nats_sink::preflight::Problem {
        nats_sink::preflight::Problem {
            message: self.message(&problem.option, problem.message),
            option: problem.option,
        }
    }

    /// `error`, its option problems worded without a secret's value.
    pub(crate) fn host_error(&self, error: HostError) -> HostError {
        match error {
            HostError::Sink(SinkError::InvalidOptions(problems)) => {
                HostError::Sink(SinkError::InvalidOptions(
                    problems
                        .into_iter()
                        .map(|p| self.option_problem(p))
                        .collect(),
                ))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_with_a_secret_value_does_not_quote_it() {
        let mut secret = SecretValues::default();
        secret.add("max_in_flight", "SECRET pw".into());
        let problem = |name: &str| OptionProblem {
            name: name.into(),
            message: "must be a whole number of messages from 1 to 65535, got `hunter2zzz`".into(),
        };
        let masked = secret.option_problem(problem("max_in_flight"));
        assert_eq!(masked.name, "max_in_flight");
        assert!(!masked.message.contains("hunter2"), "{}", masked.message);
        assert!(
            masked.message.contains("from SECRET pw"),
            "{}",
            masked.message
        );
        // Another option's problem is the component's own words.
        let kept = secret.option_problem(problem("batch"));
        assert_eq!(kept.message, problem("batch").message);
        let error = secret.host_error(HostError::Sink(SinkError::InvalidOptions(vec![problem(
            "max_in_flight",
        )])));
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}
