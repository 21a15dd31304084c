//! The wording of an option problem, which the guest reports and every host prints.

use std::fmt;

/// A problem with one option: `name` is the key as the user wrote it (or the missing key);
/// `message` never contains a secret's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionProblem {
    /// The option's key.
    pub name: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for OptionProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "option `{}`: {}", self.name, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::OptionProblem;

    #[test]
    fn names_the_option() {
        let problem = OptionProblem {
            name: "subject".into(),
            message: "must not be empty".into(),
        };
        assert_eq!(problem.to_string(), "option `subject`: must not be empty");
    }
}
