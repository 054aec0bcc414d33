//! The error of connecting to and reading from a catalog, shared by
//! `connect` and `pull`.

/// Why a pull failed. The message never contains the connection password.
#[derive(Debug)]
pub struct PullError(pub String);

impl std::fmt::Display for PullError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PullError {}
