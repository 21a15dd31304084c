//! Which options hold secrets: their values are never shown, and the CLI warns when a file
//! that holds one is readable by others.

/// The options whose values are secrets.
pub const SECRET_OPTIONS: [&str; 4] = ["password", "jwt", "nkey", "token"];

/// True for an option whose value is a secret.
pub fn is_secret(option: &str) -> bool {
    SECRET_OPTIONS.contains(&option)
}
