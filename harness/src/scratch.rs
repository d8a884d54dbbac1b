//! Scratch directories: one per run, removed when dropped, with a fresh working directory, `HOME`,
//! XDG directories and `TMPDIR` for every instance started, so that nothing an implementation writes lands
//! in the user's home or a shared folder, and a refused start can be checked to have written nothing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The XDG variables (and `TMPDIR`) every instance gets, each pointing into its own directory.
const XDG: [(&str, &str); 6] = [
    ("XDG_CONFIG_HOME", "config"),
    ("XDG_STATE_HOME", "state"),
    ("XDG_DATA_HOME", "data"),
    ("XDG_CACHE_HOME", "cache"),
    ("XDG_RUNTIME_DIR", "runtime"),
    ("TMPDIR", "tmp"),
];

/// A scratch directory (`<tmp>/<prefix>-<pid>-<n>`), created at once and removed when dropped.
pub struct Scratch {
    root: PathBuf,
    next: AtomicUsize,
}

impl Scratch {
    /// Creates a fresh scratch directory under the system's temporary directory.
    pub fn new(prefix: &str) -> std::io::Result<Scratch> {
        static RUN: AtomicUsize = AtomicUsize::new(0);
        let n = RUN.fetch_add(1, Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!("{prefix}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root)?;
        Ok(Scratch { root, next: AtomicUsize::new(0) })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// A fresh instance home: `cwd/`, `home/`, the XDG directories (mode 0700) and `tmp/`, all empty.
    pub fn instance(&self) -> std::io::Result<Instance> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let dir = self.root.join(format!("i{n}"));
        for sub in ["cwd", "home"].into_iter().chain(XDG.iter().map(|(_, d)| *d)) {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("runtime"), std::fs::Permissions::from_mode(0o700))?;
        Ok(Instance { dir })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// One instance's directories.
#[derive(Debug, Clone)]
pub struct Instance {
    dir: PathBuf,
}

impl Instance {
    /// The working directory.
    pub fn cwd(&self) -> PathBuf {
        self.dir.join("cwd")
    }

    /// `HOME`.
    pub fn home(&self) -> PathBuf {
        self.dir.join("home")
    }

    /// The directory an XDG variable or `TMPDIR` points to (`XDG_STATE_HOME` -> `.../state`).
    pub fn xdg(&self, var: &str) -> Option<PathBuf> {
        XDG.iter().find(|(v, _)| *v == var).map(|(_, d)| self.dir.join(d))
    }

    /// Sets the working directory, `HOME`, the XDG variables and `TMPDIR` of `cmd` to this instance's.
    pub fn apply(&self, cmd: &mut Command) {
        cmd.current_dir(self.cwd()).env("HOME", self.home());
        for (var, sub) in XDG {
            cmd.env(var, self.dir.join(sub));
        }
    }

    /// Removes the instance's directories and whatever it wrote there (a run that starts thousands
    /// of instances keeps only those still running).
    pub fn remove(&self) -> std::io::Result<()> {
        std::fs::remove_dir_all(&self.dir)
    }

    /// Every file or directory written below the instance's directories, relative to them (empty
    /// for an instance that wrote nothing).
    pub fn written(&self) -> Vec<String> {
        let mut out = Vec::new();
        let tops = ["cwd", "home"].into_iter().chain(XDG.iter().map(|(_, d)| *d));
        for top in tops {
            walk(&self.dir.join(top), top, &mut out);
        }
        out
    }
}

/// Every file and directory below `dir`, appended to `out` as `name/<relative path>` (a
/// directory after what it holds).
pub fn walk(dir: &Path, name: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let rel = format!("{name}/{}", entry.file_name().to_string_lossy());
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&entry.path(), &rel, out);
        }
        out.push(rel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_start_empty_and_the_scratch_is_removed() {
        let scratch = Scratch::new("harness-scratch-test").unwrap();
        let root = scratch.path().to_path_buf();
        let one = scratch.instance().unwrap();
        assert!(one.written().is_empty());
        // TMPDIR is the instance's own too, and what is written there counts.
        std::fs::write(one.xdg("TMPDIR").unwrap().join("cache"), "").unwrap();
        assert_eq!(one.written(), ["tmp/cache"]);
        std::fs::remove_file(one.xdg("TMPDIR").unwrap().join("cache")).unwrap();
        std::fs::write(one.cwd().join("state.json"), "{}").unwrap();
        assert_eq!(one.written(), ["cwd/state.json"]);
        one.remove().unwrap();
        assert!(!one.cwd().exists() && root.exists());
        drop(scratch);
        assert!(!root.exists());
    }
}
