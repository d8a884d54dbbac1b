//! The implementation under test, started from the template: each instance in its own process
//! group with a fresh working directory, `HOME` and XDG directories; readiness by its ready line or
//! by the port accepting; refusals checked against the spec's exact message and exit code.

use std::process::Stdio;
use std::time::{Duration, Instant};

use gateway_harness::net::{accepts, http_get, loopback, Answer};
use gateway_harness::proc::{describe_status, shell_quoted, Launch, Proc};
use gateway_harness::scratch::{Instance, Scratch};
use gateway_harness::{human, spec};
use nix::sys::signal::Signal;

use crate::claims::{ReadyBy, Settings};
use crate::report::Check;

/// How to start the implementation, and where its instances live.
pub struct Subject {
    /// The command template.
    pub template: String,
    /// Replaces `{token}` (shell-quoted).
    pub token: Option<String>,
    /// The bound of the waits for an instance to be ready or to exit (`--start-deadline`).
    pub deadline: Duration,
    /// How readiness is seen.
    pub ready: ReadyBy,
    /// Print each command and each instance's output.
    pub verbose: bool,
    scratch: Scratch,
}

/// What to vary in one start beyond the port.
#[derive(Default, Clone)]
pub struct Start<'a> {
    /// `{host}` (default `127.0.0.1`).
    pub host: Option<&'a str>,
    /// Appended to the command (e.g. `--timer-args`).
    pub suffix: &'a str,
    /// Environment variables set for this instance.
    pub env: Vec<(&'a str, String)>,
    /// The template itself, when a scenario rewrote it (environment instead of a flag).
    pub template: Option<String>,
}

/// A started instance: its process and directories; killed (with its group) when dropped, its
/// output printed first under `--verbose`.
pub struct Running {
    /// The process.
    pub proc: Proc,
    /// Its directories.
    pub dirs: Instance,
    /// From exec to ready (the ready line, or the port accepting), once ready.
    pub took: Option<Duration>,
    /// With `--ready readyz`: from exec to `GET /readyz` answering 200.
    pub served: Option<Duration>,
    verbose: bool,
}

impl Running {
    /// Its pid (the implementation's own: `sh -c 'exec ...'`).
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Sends `sig` to its process group.
    pub fn signal(&self, sig: Signal) {
        let _ = self.proc.signal(sig);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.proc.kill();
        if self.verbose {
            let out = self.proc.stdout_rest(Duration::from_millis(100));
            let err = self.proc.stderr(Duration::from_millis(100));
            eprintln!("  [pid {}] stdout: {:?}\n  [pid {}] stderr: {:?}", self.proc.pid(), out, self.proc.pid(), err);
        }
    }
}

/// A refused start as observed: exit status in words, its code, stdout, stderr, time to exit.
pub struct Refusal {
    /// `Some(code)` for an exit, `None` for a signal death.
    pub code: Option<i32>,
    /// The status in words.
    pub status: String,
    /// All of stdout.
    pub stdout: String,
    /// All of stderr.
    pub stderr: String,
    /// From exec to exit.
    pub took: Duration,
    /// Files the instance wrote in its directories.
    pub written: Vec<String>,
}

impl Subject {
    /// A subject from the settings, with a fresh scratch directory.
    pub fn new(settings: &Settings) -> std::io::Result<Subject> {
        Ok(Subject {
            template: settings.template.clone(),
            token: settings.claims.token.clone(),
            deadline: settings.start_deadline(),
            ready: settings.ready,
            verbose: settings.verbose,
            scratch: Scratch::new("gateway-conformance")?,
        })
    }

    /// A path in the run's scratch directory (removed with it).
    pub fn scratch_path(&self, name: &str) -> std::path::PathBuf {
        self.scratch.path().join(name)
    }

    /// Whether the template takes a host (`{host}`).
    pub fn takes_host(&self) -> bool {
        self.template.contains("{host}")
    }

    /// The command line for `port` and `start`.
    pub fn command_line(&self, port: &str, start: &Start) -> String {
        let template = start.template.as_deref().unwrap_or(&self.template);
        let mut line = template.replace("{port}", port).replace("{host}", start.host.unwrap_or("127.0.0.1"));
        if let Some(token) = &self.token {
            line = line.replace("{token}", &shell_quoted(token));
        }
        if !start.suffix.is_empty() {
            line = format!("{line} {}", start.suffix);
        }
        line
    }

    /// Spawns an instance (not waiting for anything).
    pub fn spawn(&self, port: &str, start: &Start) -> Result<Running, String> {
        let line = self.command_line(port, start);
        let dirs = self.scratch.instance().map_err(|e| format!("cannot create the instance's directories: {e}"))?;
        let mut cmd = Launch::Shell(line.clone()).command();
        dirs.apply(&mut cmd);
        for (key, value) in &start.env {
            cmd.env(key, value);
        }
        let env: Vec<String> = start.env.iter().map(|(k, v)| format!("{k}={} ", shell_quoted(v))).collect();
        if self.verbose {
            eprintln!("$ {}{line}", env.concat());
        }
        let proc = Proc::spawn(cmd, Stdio::null(), true).map_err(|e| format!("cannot run sh: {e}"))?;
        Ok(Running { proc, dirs, took: None, served: None, verbose: self.verbose })
    }

    /// Starts a holder on `port` and waits until it is ready (CLI-1's ready line, or the port accepting).
    pub fn start(&self, port: u16, start: &Start) -> Result<Running, String> {
        let mut run = self.spawn(&port.to_string(), start)?;
        let ready = match self.ready {
            ReadyBy::Line => self.ready_line(&mut run, port, start.host.unwrap_or("127.0.0.1")),
            ReadyBy::Port | ReadyBy::Readyz => self.port_accepts(&mut run, port),
        }?;
        run.took = Some(ready);
        if self.ready == ReadyBy::Readyz {
            run.served = Some(self.readyz(&mut run, port)?);
        }
        Ok(run)
    }

    /// Reads the ready line; checks it names `host:port` (for `localhost`: 127.0.0.1).
    fn ready_line(&self, run: &mut Running, port: u16, host: &str) -> Result<Duration, String> {
        let line = run.proc.read_line(self.deadline).map_err(|e| self.exited_or(run, e.to_string()))?;
        let want = spec::ready_line(if host == "localhost" { "127.0.0.1" } else { host }, port);
        if line.trim_end_matches('\n') == want && line.ends_with('\n') {
            return Ok(run.proc.started().elapsed());
        }
        let why = format!("ready line {line:?}, want {:?}", format!("{want}\n"));
        Err(self.exited_or(run, why))
    }

    /// Waits (bounded) until the port accepts a connection, or the instance exits.
    fn port_accepts(&self, run: &mut Running, port: u16) -> Result<Duration, String> {
        let end = Instant::now() + self.deadline;
        while Instant::now() < end {
            if accepts(loopback(port), Duration::from_millis(200)) {
                return Ok(run.proc.started().elapsed());
            }
            if run.proc.exited().is_some() {
                return Err(self.exited_or(run, "exited before the port accepted".to_string()));
            }
            // Polling the port of an implementation without a ready line; the deadline bounds it.
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(format!("timed out: the port did not accept within {}", human(self.deadline)))
    }

    /// Waits (bounded) until `GET /readyz` answers 200, or the instance exits.
    fn readyz(&self, run: &mut Running, port: u16) -> Result<Duration, String> {
        let end = Instant::now() + self.deadline;
        let mut last = String::from("no answer");
        while Instant::now() < end {
            match http_get(loopback(port), "/readyz", self.deadline) {
                Ok(text) if Answer::parse(&text).is_some_and(|a| a.status == 200) => return Ok(run.proc.started().elapsed()),
                Ok(text) => last = format!("{:?}", clipped(first_line(&text))),
                Err(e) => last = e.to_string(),
            }
            if run.proc.exited().is_some() {
                return Err(self.exited_or(run, format!("exited before GET /readyz answered 200 (last: {last})")));
            }
            // Polling the readiness probe of a peer that binds before it serves; the deadline bounds it.
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("timed out: GET /readyz did not answer 200 within {} (last: {last})", human(self.deadline)))
    }

    /// `why`, with the exit status and first stderr line if the instance has exited.
    fn exited_or(&self, run: &mut Running, why: String) -> String {
        match run.proc.wait(Duration::from_millis(200)) {
            Ok(status) => {
                let err = run.proc.stderr(Duration::from_millis(200));
                let hint = if err.contains("No such file") || err.contains("not found") {
                    " (hint: each instance runs in a fresh, empty working directory: give absolute paths in the template)"
                } else {
                    ""
                };
                format!("{why} ({}; stderr {:?}){hint}", describe_status(status), first_line(&err))
            }
            Err(_) => why,
        }
    }

    /// Runs an instance to its exit (bounded) and collects what it did.
    pub fn run_to_exit(&self, port: &str, start: &Start) -> Result<Refusal, String> {
        let mut run = self.spawn(port, start)?;
        let status = run.proc.wait(self.deadline).map_err(|e| e.to_string())?;
        let took = run.proc.started().elapsed();
        let stdout = run.proc.stdout_rest(self.deadline);
        let stderr = run.proc.stderr(self.deadline);
        Ok(Refusal { code: status.code(), status: describe_status(status), stdout, stderr, took, written: run.dirs.written() })
    }

    /// Starts an instance that must be refused with ERR-1 (exit 3, or 5 when `allow_healthy`).
    pub fn refused(&self, port: u16, allow_healthy: bool) -> Check {
        let refusal = self.run_to_exit(&port.to_string(), &Start::default())?;
        check_refusal(&refusal, port, allow_healthy)
    }
}

/// Checks a refusal against ERR-1: nothing on stdout, the exact first stderr line, exit 3 (or 5).
/// Every difference is named (a peer may differ in all three), its output abbreviated.
pub fn check_refusal(r: &Refusal, port: u16, allow_healthy: bool) -> Check {
    let want = spec::held_message(&spec::url("127.0.0.1", port));
    let mut problems = Vec::new();
    if !r.stdout.is_empty() {
        problems.push(format!("stdout not empty although the port was held ({})", abbreviated(&r.stdout)));
    }
    if first_line(&r.stderr) != want {
        problems.push(format!("first stderr line {:?}, want {want:?}", clipped(first_line(&r.stderr))));
    }
    let ok = r.code == Some(spec::exit::HELD) || (allow_healthy && r.code == Some(spec::exit::HELD_BY_GATEWAY));
    if !ok {
        problems.push(format!("{}, want exit 3{}", r.status, if allow_healthy { " (or 5)" } else { "" }));
    }
    if problems.is_empty() {
        return Ok(format!("refused: {}, exact message, empty stdout, in {}", r.status, human(r.took)));
    }
    Err(format!("refused start ({}, {} after exec): {}", r.status, human(r.took), problems.join("; ")))
}

/// Output in a failure message: its line count and first line, clipped.
pub fn abbreviated(text: &str) -> String {
    let lines = text.lines().count();
    format!("{lines} line{}, the first {:?}", if lines == 1 { "" } else { "s" }, clipped(first_line(text)))
}

/// `text` cut to 160 characters (`...` marks a cut), for a table row.
pub fn clipped(text: &str) -> String {
    const MAX: usize = 160;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}

/// The first line of `text` (empty if none).
pub fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// The template without the flag `flag` and its placeholder (`--port {port}` or `--port={port}`),
/// for a start that passes the value through the environment instead; `None` if it has no such flag.
pub fn without_flag(template: &str, flag: &str, placeholder: &str) -> Option<String> {
    [format!(" {flag} {placeholder}"), format!(" {flag}={placeholder}")]
        .iter()
        .find(|pattern| template.contains(pattern.as_str()))
        .map(|pattern| template.replacen(pattern.as_str(), "", 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(code: i32, stdout: &str, stderr: &str) -> Refusal {
        let status = format!("exit {code}");
        Refusal {
            code: Some(code),
            status,
            stdout: stdout.into(),
            stderr: stderr.into(),
            took: Duration::from_secs(20),
            written: Vec::new(),
        }
    }

    /// ERR-1: a peer that logs on stdout, words the error its own way and exits 1 gets all three named.
    #[test]
    fn err1_every_difference_of_a_refusal_is_named() {
        let logs = format!("{}\n", "x".repeat(500)).repeat(9);
        let why = check_refusal(&refusal(1, &logs, "12:00 Gateway failed to start: held\n"), 7, true).unwrap_err();
        assert!(why.contains("stdout not empty although the port was held (9 lines, the first \"xxx"), "{why}");
        assert!(why.contains(&format!("{}...", "x".repeat(160))) && !why.contains(&"x".repeat(161)), "{why}");
        assert!(why.contains("first stderr line \"12:00 Gateway failed to start: held\""), "{why}");
        assert!(why.contains("exit 1, want exit 3 (or 5)") && why.starts_with("refused start (exit 1, 20.00 s after exec)"), "{why}");
        let exact = format!("{}\n", spec::held_message(&spec::url("127.0.0.1", 7)));
        assert!(check_refusal(&refusal(3, "", &exact), 7, false).is_ok());
        assert!(check_refusal(&refusal(5, "", &exact), 7, false).unwrap_err().contains("exit 5, want exit 3"));
    }
}
