//! The host conformance suite's Rust driver (`tests/conformance/`), and the policy description
//! the other hosts read.

mod policy_file;
