//! Where a generated gateway token lives (`spec/protocol.md`, DOOR-5 and DOOR-6): one file per
//! profile, reused across restarts and ports, so nothing piles up.
//!
//! - with `--profile NAME`: `<the profile's state directory>/token`;
//! - without: `$XDG_STATE_HOME/gateway-lock/token` (when `XDG_STATE_HOME` is an absolute path),
//!   else `$HOME/.local/state/gateway-lock/token`; with neither, no token is generated (the
//!   gateway never writes into a shared temporary directory).
//!
//! An existing file is reused (opened without following a symlink, tightened to 0600); a new
//! one is written to a private temporary file beside it and linked into place only if the name
//! is still free, so two gateways starting at once end up with the same token.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Name of the directory, under the state directory, that holds the gateway's files.
pub(crate) const STATE_DIR_NAME: &str = "gateway-lock";
/// Name of the token file (in the profile's state directory, or in [`STATE_DIR_NAME`]).
pub(crate) const TOKEN_FILE_NAME: &str = "token";

/// Where the generated token is kept: `profile_dir/token`, else `<state home>/gateway-lock/token`
/// from `XDG_STATE_HOME` (absolute) or `HOME`; `None` when neither is set.
pub(crate) fn token_path_from(profile_dir: Option<&Path>, xdg_state_home: Option<&str>, home: Option<&str>) -> Option<PathBuf> {
    if let Some(dir) = profile_dir {
        return Some(dir.join(TOKEN_FILE_NAME));
    }
    let base = match xdg_state_home.filter(|x| Path::new(x).is_absolute()) {
        Some(xdg) => PathBuf::from(xdg),
        None => Path::new(home.filter(|h| !h.is_empty())?).join(".local").join("state"),
    };
    Some(base.join(STATE_DIR_NAME).join(TOKEN_FILE_NAME))
}

/// [`token_path_from`] with this process's environment.
pub(crate) fn token_path(profile_dir: Option<&Path>) -> Option<PathBuf> {
    let xdg = std::env::var("XDG_STATE_HOME").ok();
    let home = std::env::var("HOME").ok();
    token_path_from(profile_dir, xdg.as_deref(), home.as_deref())
}

/// What [`load_or_create`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stored {
    /// The file existed: its (trimmed) contents.
    Reused(String),
    /// The file was created with this fresh value.
    Created(String),
}

/// Reads the token stored at `path`, or stores `fresh()` there (directory 0700, file 0600) if
/// there is none. A stored file holding only whitespace is an error ([`io::ErrorKind::InvalidData`]).
pub(crate) fn load_or_create(path: &Path, fresh: impl FnOnce() -> io::Result<String>) -> io::Result<Stored> {
    if let Some(value) = read_existing(path)? {
        return Ok(Stored::Reused(value));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    let value = fresh()?;
    // tempfile creates the file 0600 with O_EXCL; `persist_noclobber` links it into place only
    // if the name is free, so a reader never sees a half-written token.
    let mut file = tempfile::Builder::new().prefix(".token-").tempfile_in(dir)?;
    file.write_all(format!("{value}\n").as_bytes())?;
    file.as_file().sync_all()?;
    match file.persist_noclobber(path) {
        Ok(_) => Ok(Stored::Created(value)),
        // Another gateway stored one first: use it.
        Err(err) if err.error.kind() == io::ErrorKind::AlreadyExists => {
            read_existing(path)?.map(Stored::Reused).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
        }
        Err(err) => Err(err.error),
    }
}

/// The trimmed contents of an existing token file (`None` if there is none), opened without
/// following a symlink; its mode is tightened to 0600.
fn read_existing(path: &Path) -> io::Result<Option<String>> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW);
    }
    let file = match options.open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    let mut text = String::new();
    (&file).take(64 * 1024).read_to_string(&mut text)?;
    let value = text.trim();
    if value.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "the stored token is empty"));
    }
    Ok(Some(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DOOR-6: one place per profile, never a temporary directory.
    #[test]
    fn door6_one_token_file_per_profile() {
        assert_eq!(token_path_from(None, Some("/x"), Some("/h")), Some(PathBuf::from("/x/gateway-lock/token")));
        assert_eq!(token_path_from(None, Some("rel"), Some("/h")), Some(PathBuf::from("/h/.local/state/gateway-lock/token")));
        assert_eq!(token_path_from(None, None, None), None);
        assert_eq!(token_path_from(None, None, Some("")), None);
        let profile = Path::new("/x/gateway-lock/work");
        assert_eq!(token_path_from(Some(profile), None, None), Some(profile.join("token")));
    }

    /// DOOR-6: a stored token is reused; a new one is created once, private, and nothing else is left.
    #[test]
    fn door6_token_is_created_once_then_reused() {
        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().join("gateway-lock").join("token");
        assert_eq!(load_or_create(&path, || Ok("first".into())).unwrap(), Stored::Created("first".into()));
        assert_eq!(load_or_create(&path, || panic!("must not generate again")).unwrap(), Stored::Reused("first".into()));
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("token")], "no temporary file left beside the token");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            load_or_create(&path, || panic!("reused")).unwrap();
            assert_eq!(mode(&path), 0o600, "an existing file is tightened");
            let link = scratch.path().join("link");
            std::os::unix::fs::symlink(&path, &link).unwrap();
            assert!(load_or_create(&link, || Ok("x".into())).is_err(), "a symlink is not followed");
        }
        std::fs::write(&path, " \n").unwrap();
        assert_eq!(load_or_create(&path, || Ok("x".into())).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
