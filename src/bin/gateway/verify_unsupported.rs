//! `gateway verify` where it is not built: it drives real processes with Linux's process control
//! (`waitid` with `WNOWAIT`) and has been tested on Linux only (README.md, Platforms).

use crate::cli::VerifyArgs;

/// Why a verification could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// `gateway verify` is built on Linux only.
    #[error("gateway verify is built on Linux only")]
    Unsupported,
}

/// Refuses to run (exit 3).
pub fn run(_args: &VerifyArgs) -> Result<bool, VerifyError> {
    Err(VerifyError::Unsupported)
}
