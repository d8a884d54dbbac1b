//! Profiles: several gateways side by side, each with its own default port and its own state
//! directory (`OPS-6`).
//!
//! - A profile name is 1–64 characters of `A-Z a-z 0-9 . _ -`, not starting with `.`.
//! - Its default port is `PROFILE_PORT_BASE + fnv1a32(name) % PROFILE_PORT_SPAN`
//!   (18800–19799), stable across versions and machines; `--port` overrides it. Two profiles
//!   may hash to one port: they then exclude each other, because the port is the lock.
//! - Its state directory is `$XDG_STATE_HOME/gateway-lock/<name>` (when `XDG_STATE_HOME` is an
//!   absolute path), else `$HOME/.local/state/gateway-lock/<name>`.
//! - The directory is created and locked only *after* the port is held (`LOCK-3`), and stays
//!   locked for the gateway's lifetime by `flock(LOCK_EX)` on the directory's own descriptor:
//!   no lock file, and the kernel drops the lock on any exit. A second gateway on the same state
//!   directory (necessarily on another port) is refused with [`StateDirError::Locked`], exit 6.

use std::fs::File;
use std::path::{Path, PathBuf};

/// First port of the range profile ports are hashed into.
pub(crate) const PROFILE_PORT_BASE: u16 = 18800;
/// Size of that range.
pub(crate) const PROFILE_PORT_SPAN: u16 = 1000;

/// Why a profile name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileNameError {
    /// Empty, too long, or with characters outside `A-Z a-z 0-9 . _ -`, or starting with `.`.
    #[error("profile name must be 1-64 characters of A-Z a-z 0-9 . _ - and not start with '.' nor be `token`, not `{0}`")]
    Invalid(String),
}

/// Checks a profile name (it becomes a directory name, so nothing that walks paths).
pub fn parse_profile_name(name: &str) -> Result<String, ProfileNameError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        // `gateway-lock/token` is the token file of gateways without a profile (DOOR-6).
        && name != crate::token_store::TOKEN_FILE_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(name.to_string())
    } else {
        Err(ProfileNameError::Invalid(name.to_string()))
    }
}

/// 32-bit FNV-1a of `bytes`.
pub(crate) fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193))
}

/// The default port of a profile (see the module documentation for the rule).
pub fn default_port(profile: &str) -> u16 {
    PROFILE_PORT_BASE + (fnv1a32(profile.as_bytes()) % u32::from(PROFILE_PORT_SPAN)) as u16
}

/// The state directory of `profile`, given the values of `XDG_STATE_HOME` and `HOME`.
pub(crate) fn state_dir_from(profile: &str, xdg_state_home: Option<&str>, home: Option<&str>) -> Option<PathBuf> {
    let base = match xdg_state_home.filter(|x| Path::new(x).is_absolute()) {
        Some(xdg) => PathBuf::from(xdg),
        None => Path::new(home.filter(|h| !h.is_empty())?).join(".local").join("state"),
    };
    Some(base.join("gateway-lock").join(profile))
}

/// The state directory of `profile` from this process's environment.
pub(crate) fn state_dir(profile: &str) -> Option<PathBuf> {
    let xdg = std::env::var("XDG_STATE_HOME").ok();
    let home = std::env::var("HOME").ok();
    state_dir_from(profile, xdg.as_deref(), home.as_deref())
}

/// Why the state directory could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    /// Another gateway holds the directory's lock (exit 6).
    #[error("state directory {} is already in use by another gateway", .dir.display())]
    Locked {
        /// The directory.
        dir: PathBuf,
    },
    /// Neither `XDG_STATE_HOME` nor `HOME` is set.
    #[error("cannot place the state directory of profile {profile}: neither XDG_STATE_HOME nor HOME is set")]
    NoHome {
        /// The profile.
        profile: String,
    },
    /// Creating, opening or locking the directory failed otherwise.
    #[error("cannot use state directory {}: {source}", .dir.display())]
    Io {
        /// The directory.
        dir: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// A state directory held for as long as this value lives (the lock is the open descriptor).
#[derive(Debug)]
pub struct StateDir {
    /// The directory.
    pub path: PathBuf,
    #[cfg(unix)]
    _lock: nix::fcntl::Flock<File>,
    #[cfg(not(unix))]
    _lock: File,
}

/// Creates (mode 0700) and locks the state directory of `profile`. Call only once the port is held.
pub(crate) fn take_state_dir(profile: &str) -> Result<StateDir, StateDirError> {
    let path = state_dir(profile).ok_or_else(|| StateDirError::NoHome { profile: profile.to_string() })?;
    lock_dir(&path)
}

/// Creates (mode 0700) and locks `path` with `flock` on its own descriptor.
pub fn lock_dir(path: &Path) -> Result<StateDir, StateDirError> {
    let io_err = |source| StateDirError::Io { dir: path.to_path_buf(), source };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path).map_err(io_err)?;
    let dir = File::open(path).map_err(io_err)?;
    #[cfg(unix)]
    {
        use nix::fcntl::{Flock, FlockArg};
        match Flock::lock(dir, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(StateDir { path: path.to_path_buf(), _lock: lock }),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(StateDirError::Locked { dir: path.to_path_buf() }),
            Err((_, errno)) => Err(io_err(std::io::Error::from(errno))),
        }
    }
    #[cfg(not(unix))]
    Ok(StateDir { path: path.to_path_buf(), _lock: dir })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// OPS-6: the documented rule and the documented layout.
    #[test]
    fn ops6_profile_ports_and_dirs_follow_the_documented_rule() {
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(default_port("work"), PROFILE_PORT_BASE + (fnv1a32(b"work") % 1000) as u16);
        assert_eq!(state_dir_from("w", Some("/x"), Some("/h")), Some(PathBuf::from("/x/gateway-lock/w")));
        assert_eq!(state_dir_from("w", Some("rel"), Some("/h")), Some(PathBuf::from("/h/.local/state/gateway-lock/w")));
        assert_eq!(state_dir_from("w", None, None), None);
        for bad in ["", ".", "..", "token", "a/b", ".hidden", "x y", &"a".repeat(65)] {
            assert!(parse_profile_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_profile_name("work-2.test_x"), Ok("work-2.test_x".into()));
    }

    /// OPS-6: a second lock on one directory is refused while the first lives, and not after.
    #[test]
    fn ops6_state_dir_lock_is_exclusive_and_released() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("gateway-lock").join("p");
        let first = lock_dir(&dir).unwrap();
        assert!(matches!(lock_dir(&dir), Err(StateDirError::Locked { .. })));
        drop(first);
        lock_dir(&dir).unwrap();
    }

    proptest! {
        #[test]
        fn ops6_every_valid_name_has_a_port_in_range(name in "[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}") {
            prop_assume!(name != "token");
            prop_assert!(parse_profile_name(&name).is_ok());
            let port = default_port(&name);
            prop_assert!((PROFILE_PORT_BASE..PROFILE_PORT_BASE + PROFILE_PORT_SPAN).contains(&port));
        }
    }
}
