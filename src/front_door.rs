//! The front door (`spec/protocol.md`, DOOR-*): who may come in on the held port.
//!
//! - the gateway token: given (`--token`, `GATEWAY_TOKEN`, `--token-file`) or, on loopback,
//!   generated at start and stored in a private file; compared in constant time;
//! - the refusal to bind a non-loopback address without a token ([`UnauthenticatedBind`]);
//! - the browser `Origin` allow-list for WebSocket upgrades;
//! - [`Admission`]: the I/O-free bookkeeping of connection limits (total and unauthenticated),
//!   which evicts the oldest unauthenticated connection rather than turn a newcomer away.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use subtle::ConstantTimeEq;

/// Default maximum of open connections (HTTP and WebSocket, authenticated or not).
pub(crate) const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Default maximum of connections that have not completed the `connect` handshake.
pub(crate) const DEFAULT_MAX_UNAUTHENTICATED: usize = 32;
/// Name of the directory, under the state directory, that holds generated token files.
pub(crate) const TOKEN_DIR_NAME: &str = "gateway-lock";

/// The gateway token. Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// Wraps a token value.
    pub fn new(value: impl Into<String>) -> Self {
        Token(value.into())
    }

    /// A fresh random token: 32 bytes from the OS, hex-encoded.
    pub fn generate() -> io::Result<Self> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(io::Error::other)?;
        Ok(Token(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// Whether `presented` equals this token, compared in constant time (for equal lengths).
    pub fn matches(&self, presented: &str) -> bool {
        bool::from(self.0.as_bytes().ct_eq(presented.as_bytes()))
    }

    /// The secret itself, for writing the token file.
    fn expose(&self) -> &str {
        &self.0
    }
}

/// Where the token was configured (from the command line or the environment), before the bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenConfig {
    /// `--token` or `GATEWAY_TOKEN`.
    Value(Token),
    /// `--token-file` or `GATEWAY_TOKEN_FILE`: read after the bind.
    File(PathBuf),
    /// Nothing: generate one (loopback only).
    None,
}

/// Where the token in force came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `--token` / `GATEWAY_TOKEN`.
    Value,
    /// Read from this file.
    File(PathBuf),
    /// Generated at start and written to this file (mode 0600).
    Generated(PathBuf),
}

impl TokenSource {
    /// A short name for `config.get`: `value`, `file` or `generated`.
    pub fn kind(&self) -> &'static str {
        match self {
            TokenSource::Value => "value",
            TokenSource::File(_) => "file",
            TokenSource::Generated(_) => "generated",
        }
    }
}

/// Binding a non-loopback address without any token configured: refused before the bind (exit 7).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Refusing to bind gateway to {host} without auth.")]
pub struct UnauthenticatedBind {
    /// The host that was asked for.
    pub host: IpAddr,
}

/// Why the token could not be put in force (after the bind; exit 1).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token file could not be read.
    #[error("cannot read token file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The token file holds only whitespace.
    #[error("token file {} is empty", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A generated token could not be stored.
    #[error("cannot store generated token in {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Whether `ip` is a loopback address (127.0.0.0/8, `::1`, or IPv4-mapped loopback).
pub(crate) fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// DOOR-2: a non-loopback bind needs a configured token. Decided from flags and environment
/// alone, so it touches nothing and may come before the bind.
pub(crate) fn check_bind(host: IpAddr, token: &TokenConfig) -> Result<(), UnauthenticatedBind> {
    if is_loopback(host) || *token != TokenConfig::None {
        Ok(())
    } else {
        Err(UnauthenticatedBind { host })
    }
}

/// The state directory for generated tokens: `$XDG_STATE_HOME`, else `$HOME/.local/state`,
/// else the system's temporary directory; with [`TOKEN_DIR_NAME`] appended.
pub(crate) fn state_dir() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".local").join("state")))
        .unwrap_or_else(std::env::temp_dir);
    base.join(TOKEN_DIR_NAME)
}

/// Where the generated token of the gateway on `port` is stored: `<state_dir>/token-<port>`.
pub(crate) fn generated_token_path(port: u16) -> PathBuf {
    state_dir().join(format!("token-{port}"))
}

/// Puts the configured token in force (after the bind): reads the file, or generates a token
/// and stores it in [`generated_token_path`] with mode 0600.
pub(crate) fn resolve_token(config: &TokenConfig, port: u16) -> Result<(Token, TokenSource), TokenError> {
    match config {
        TokenConfig::Value(token) => Ok((token.clone(), TokenSource::Value)),
        TokenConfig::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read { path: path.clone(), source })?;
            let token = text.trim();
            if token.is_empty() {
                return Err(TokenError::Empty { path: path.clone() });
            }
            Ok((Token::new(token), TokenSource::File(path.clone())))
        }
        TokenConfig::None => {
            let path = generated_token_path(port);
            let write_err = |source| TokenError::Write { path: path.clone(), source };
            let token = Token::generate().map_err(write_err)?;
            write_private(&path, token.expose()).map_err(write_err)?;
            Ok((token, TokenSource::Generated(path)))
        }
    }
}

/// Writes `contents` + newline to `path`, readable by the owner only (directory 0700, file 0600),
/// never following a symlink at the file itself.
fn write_private(path: &Path, contents: &str) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // An existing file keeps its old mode on open: tighten it.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(format!("{contents}\n").as_bytes())?;
    file.sync_all()
}

/// DOOR-3: may a WebSocket upgrade with this `Origin` header proceed? Without an `Origin`
/// (not a browser) yes; with one, only if it is in `allowed` (compared case-insensitively,
/// ignoring a trailing `/`).
pub(crate) fn origin_allowed(origin: Option<&str>, allowed: &[String]) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let norm = |s: &str| s.trim().trim_end_matches('/').to_ascii_lowercase();
    let origin = norm(origin);
    allowed.iter().any(|a| norm(a) == origin)
}

/// Connection limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most open connections (at least 1).
    pub max_connections: usize,
    /// Most connections not yet authenticated (at least 1).
    pub max_unauthenticated: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_connections: DEFAULT_MAX_CONNECTIONS, max_unauthenticated: DEFAULT_MAX_UNAUTHENTICATED }
    }
}

/// An admitted connection's id.
pub(crate) type ConnId = u64;

/// What [`Admission::admit`] decided.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admit<H> {
    /// Admitted as `id`; if `evicted` is set, that (oldest unauthenticated) connection must be
    /// dropped now to make room.
    Yes {
        /// The new connection's id.
        id: ConnId,
        /// The handle of the connection to drop.
        evicted: Option<H>,
    },
    /// Every slot is held by an authenticated client: refuse the newcomer.
    No,
}

/// The bookkeeping of connection limits, free of I/O. `H` is whatever lets the server drop
/// an evicted connection (a notifier).
///
/// DOOR-4: never more than `max_unauthenticated` unauthenticated nor `max_connections` open
/// connections; a newcomer evicts the oldest unauthenticated connection rather than be turned
/// away, so idle sockets cannot lock out real clients.
#[derive(Debug)]
pub(crate) struct Admission<H> {
    limits: Limits,
    next_id: ConnId,
    unauthenticated: BTreeMap<ConnId, H>,
    authenticated: BTreeSet<ConnId>,
}

impl<H> Admission<H> {
    /// Empty bookkeeping with these limits (each raised to at least 1).
    pub(crate) fn new(limits: Limits) -> Self {
        let limits = Limits { max_connections: limits.max_connections.max(1), max_unauthenticated: limits.max_unauthenticated.max(1) };
        Admission { limits, next_id: 0, unauthenticated: BTreeMap::new(), authenticated: BTreeSet::new() }
    }

    /// Connections counted as open (authenticated or not).
    pub(crate) fn open(&self) -> usize {
        self.unauthenticated.len() + self.authenticated.len()
    }

    /// Connections not yet authenticated.
    #[cfg(test)]
    pub(crate) fn unauthenticated(&self) -> usize {
        self.unauthenticated.len()
    }

    /// Admits a newly accepted (unauthenticated) connection, evicting the oldest
    /// unauthenticated one when a limit is reached.
    pub(crate) fn admit(&mut self, handle: H) -> Admit<H> {
        let full = self.unauthenticated.len() >= self.limits.max_unauthenticated || self.open() >= self.limits.max_connections;
        let evicted = if full {
            match self.unauthenticated.pop_first() {
                Some((_, evicted)) => Some(evicted),
                None => return Admit::No,
            }
        } else {
            None
        };
        let id = self.next_id;
        self.next_id += 1;
        self.unauthenticated.insert(id, handle);
        Admit::Yes { id, evicted }
    }

    /// Marks `id` authenticated; false if it is no longer counted (it was evicted).
    pub(crate) fn authenticate(&mut self, id: ConnId) -> bool {
        if self.unauthenticated.remove(&id).is_some() {
            self.authenticated.insert(id);
            true
        } else {
            false
        }
    }

    /// Forgets `id` (the connection ended); harmless if it was evicted.
    pub(crate) fn finish(&mut self, id: ConnId) {
        self.unauthenticated.remove(&id);
        self.authenticated.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// DOOR-1: constant-time comparison accepts only the exact token.
    #[test]
    fn door1_token_matches_exactly() {
        let t = Token::new("abc");
        assert!(t.matches("abc"));
        for other in ["", "ab", "abcd", "abd", "ABC"] {
            assert!(!t.matches(other), "{other}");
        }
        assert_eq!(format!("{t:?}"), "Token(<redacted>)");
        let g = Token::generate().unwrap();
        assert_eq!(g.expose().len(), 64);
        assert_ne!(g, Token::generate().unwrap());
    }

    /// DOOR-2: a non-loopback bind needs a token; loopback does not.
    #[test]
    fn door2_non_loopback_needs_a_token() {
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        assert_eq!(check_bind(any, &TokenConfig::None).unwrap_err().to_string(), "Refusing to bind gateway to 0.0.0.0 without auth.");
        assert!(check_bind(any, &TokenConfig::Value(Token::new("t"))).is_ok());
        assert!(check_bind(any, &TokenConfig::File("/x".into())).is_ok());
        for host in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            assert!(check_bind(host.parse().unwrap(), &TokenConfig::None).is_ok(), "{host}");
        }
        assert!(check_bind("::".parse().unwrap(), &TokenConfig::None).is_err());
    }

    /// DOOR-3: Origin allow-list.
    #[test]
    fn door3_origin_allow_list() {
        let allowed = vec!["https://app.example".to_string()];
        assert!(origin_allowed(None, &[]));
        assert!(!origin_allowed(Some("https://evil.example"), &allowed));
        assert!(!origin_allowed(Some("null"), &allowed));
        assert!(origin_allowed(Some("HTTPS://app.example/"), &allowed));
        assert!(!origin_allowed(Some("https://app.example"), &[]));
    }

    /// DOOR-5: token files: read and trimmed; generated ones are private.
    #[test]
    fn door5_token_files() {
        let dir = std::env::temp_dir().join(format!("gateway-lock-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("given");
        std::fs::write(&file, "  s3cret \n").unwrap();
        let (token, source) = resolve_token(&TokenConfig::File(file.clone()), 1).unwrap();
        assert!(token.matches("s3cret"));
        assert_eq!(source, TokenSource::File(file.clone()));
        std::fs::write(&file, "\n").unwrap();
        assert!(matches!(resolve_token(&TokenConfig::File(file.clone()), 1), Err(TokenError::Empty { .. })));
        assert!(matches!(resolve_token(&TokenConfig::File(dir.join("missing")), 1), Err(TokenError::Read { .. })));
        let private = dir.join("sub").join("token");
        std::fs::create_dir_all(private.parent().unwrap()).unwrap();
        std::fs::write(&private, "old").unwrap();
        write_private(&private, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&private).unwrap(), "new\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&private).unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[derive(Debug, Clone)]
    enum Op {
        Admit,
        Authenticate(usize),
        Finish(usize),
    }

    proptest! {
        /// DOOR-1: for any token and any presented string, only the exact token matches (a
        /// prefix, an extension or one changed byte never does).
        #[test]
        fn door1_only_the_exact_token_matches(token in ".{0,24}", presented in ".{0,24}", flip in any::<prop::sample::Index>()) {
            let t = Token::new(token.clone());
            prop_assert_eq!(t.matches(&presented), presented == token);
            prop_assert!(t.matches(&token));
            let longer = format!("{}x", token);
            prop_assert!(!t.matches(&longer));
            if !token.is_empty() {
                let mut bytes = token.clone().into_bytes();
                let at = flip.index(bytes.len());
                bytes[at] ^= 0x01;
                let changed = String::from_utf8_lossy(&bytes);
                if changed != token.as_str() {
                    prop_assert!(!t.matches(&changed));
                }
                prop_assert!(!t.matches(&token[..token.char_indices().last().unwrap().0]));
            }
        }

        /// DOOR-2: a bind needs a token exactly when the address is not loopback (127.0.0.0/8,
        /// `::1`, or IPv4-mapped 127.0.0.0/8), whatever the address.
        #[test]
        fn door2_a_token_is_needed_exactly_off_loopback(ip in any::<IpAddr>(), loopback_v4 in any::<[u8; 3]>(), configured in 0usize..3) {
            let token = match configured {
                0 => TokenConfig::None,
                1 => TokenConfig::Value(Token::new("t")),
                _ => TokenConfig::File("/t".into()),
            };
            let [a, b, c] = loopback_v4;
            let v4_loop = std::net::Ipv4Addr::new(127, a, b, c);
            for host in [ip, IpAddr::V4(v4_loop), IpAddr::V6(v4_loop.to_ipv6_mapped())] {
                let is_loop = match host {
                    IpAddr::V4(v4) => v4.octets()[0] == 127,
                    IpAddr::V6(v6) => v6 == std::net::Ipv6Addr::LOCALHOST || v6.to_ipv4_mapped().is_some_and(|v4| v4.octets()[0] == 127),
                };
                let refused = check_bind(host, &token).is_err();
                prop_assert_eq!(refused, !is_loop && token == TokenConfig::None, "{}", host);
            }
        }

        /// DOOR-5: a token file is read with surrounding whitespace ignored, whatever the token;
        /// one holding only whitespace is an error, never an empty token.
        #[test]
        fn door5_token_file_is_read_trimmed(token in "[!-~]{1,40}", before in "[ \t\n]{0,3}", after in "[ \t\n\r]{0,3}") {
            let file = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(file.path(), format!("{before}{token}{after}")).unwrap();
            let (read, source) = resolve_token(&TokenConfig::File(file.path().into()), 1).unwrap();
            prop_assert!(read.matches(&token));
            prop_assert_eq!(source, TokenSource::File(file.path().into()));
            std::fs::write(file.path(), format!("{before}{after}")).unwrap();
            let empty = matches!(resolve_token(&TokenConfig::File(file.path().into()), 1), Err(TokenError::Empty { .. }));
            prop_assert!(empty);
        }
        /// DOOR-4: limits hold under any sequence; a newcomer is refused only when every slot
        /// is authenticated; eviction takes the oldest unauthenticated connection.
        #[test]
        fn door4_admission_limits(
            max_connections in 1usize..6,
            max_unauthenticated in 1usize..6,
            ops in proptest::collection::vec(prop_oneof![3 => Just(Op::Admit), 1 => (0usize..16).prop_map(Op::Authenticate), 1 => (0usize..16).prop_map(Op::Finish)], 0..64),
        ) {
            let mut a = Admission::new(Limits { max_connections, max_unauthenticated });
            let mut ids: Vec<ConnId> = Vec::new();
            for op in ops {
                match op {
                    Op::Admit => {
                        let oldest = a.unauthenticated.keys().next().copied();
                        let authed = a.authenticated.len();
                        match a.admit(0u8) {
                            Admit::Yes { id, evicted } => {
                                if evicted.is_some() {
                                    prop_assert!(oldest.is_some());
                                    prop_assert!(!a.unauthenticated.contains_key(&oldest.unwrap()));
                                }
                                ids.push(id);
                            }
                            Admit::No => prop_assert!(authed >= max_connections),
                        }
                    }
                    Op::Authenticate(i) => if let Some(&id) = ids.get(i) { a.authenticate(id); },
                    Op::Finish(i) => if let Some(&id) = ids.get(i) { a.finish(id); },
                }
                prop_assert!(a.unauthenticated() <= max_unauthenticated);
                prop_assert!(a.open() <= max_connections);
            }
        }
    }
}
