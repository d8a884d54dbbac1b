//! Starting a subject and watching it from outside: a command from a shell template or an
//! executable, its own process group, the ready line read with a deadline (never to end of file
//! while the process lives), stderr drained in the background, signals, bounded waits, reaping.

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

/// How to start an implementation: a shell command (run as `sh -c 'exec <command>'`) or an
/// executable with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    /// A POSIX shell command line.
    Shell(String),
    /// An executable and its arguments, run without a shell.
    Exec(PathBuf, Vec<String>),
}

impl Launch {
    /// The command to spawn (no stdio or environment set yet).
    pub fn command(&self) -> Command {
        match self {
            Launch::Shell(line) => {
                let mut cmd = Command::new("sh");
                cmd.arg("-c").arg(format!("exec {line}"));
                cmd
            }
            Launch::Exec(program, args) => {
                let mut cmd = Command::new(program);
                cmd.args(args);
                cmd
            }
        }
    }

    /// The command as a person would type it (for `--verbose` and replay lines).
    pub fn display(&self) -> String {
        match self {
            Launch::Shell(line) => line.clone(),
            Launch::Exec(program, args) => {
                let words = std::iter::once(program.display().to_string()).chain(args.iter().cloned());
                words.map(|w| shell_quoted(&w)).collect::<Vec<_>>().join(" ")
            }
        }
    }
}

/// `word` quoted for `sh` (as is when it needs no quoting; a NUL, which no argument can carry, dropped).
pub fn shell_quoted(word: &str) -> String {
    let word = word.replace('\0', "");
    shlex::try_quote(&word).map(|q| q.into_owned()).unwrap_or(word)
}

/// A wait that reached its deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOut {
    /// What was waited for.
    pub what: String,
    /// How long.
    pub after: Duration,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timed out: {} within {}", self.what, crate::human(self.after))
    }
}

impl std::error::Error for TimedOut {}

/// Reads one line (with its newline), or what came before end of file (empty at once at end of
/// file). Waits with `poll(2)` on the pipe, so a process that never writes cannot hang the reader.
fn read_line_with_deadline<R: Read + AsFd>(reader: &mut BufReader<R>, deadline: Duration) -> Result<String, TimedOut> {
    let end = Instant::now() + deadline;
    let mut line = Vec::new();
    loop {
        let buffered = reader.buffer();
        if let Some(at) = buffered.iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&buffered[..=at]);
            reader.consume(at + 1);
            break;
        }
        line.extend_from_slice(buffered);
        let taken = buffered.len();
        reader.consume(taken);
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let so_far = String::from_utf8_lossy(&line);
            return Err(TimedOut { what: format!("a line on stdout (so far {so_far:?})"), after: deadline });
        }
        let mut fds = [PollFd::new(reader.get_ref().as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(_) => break,
        }
        // Readable (or hung up): one read, which does not block; empty at end of file.
        match reader.fill_buf() {
            Ok([]) | Err(_) => break,
            Ok(_) => {}
        }
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// A process descriptor of `pid` (Linux 5.3 and later): readable once the process has exited, so
/// that an exit is seen the moment it happens. `None` where the kernel has none.
fn pidfd(pid: u32) -> Option<OwnedFd> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if let Ok(fd) = i32::try_from(fd) {
            if fd >= 0 {
                // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
                return Some(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    let _ = pid;
    None
}

/// Waits (bounded) until `exited()` says so, asking again whenever process `pid` may have exited
/// (its process descriptor became readable), so an exit is seen the moment it happens. True once
/// `exited()` said so.
fn until_exit(pid: u32, deadline: Duration, mut exited: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    let descriptor = pidfd(pid);
    loop {
        if exited() {
            return true;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        match &descriptor {
            Some(fd) => {
                let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
                let _ = poll(&mut fds, PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX));
            }
            // Polling an exit without a process descriptor; the deadline bounds it.
            None => std::thread::sleep(left.min(Duration::from_millis(2))),
        }
    }
}

/// Waits for `child` to exit, or `None` at the deadline. The exit is seen at once (see
/// [`until_exit`]), so timings taken around it are exact.
fn wait_with_deadline(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let mut status = None;
    until_exit(child.id(), deadline, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    status
}

/// Continues and kills a child (and its process group if it leads one), then reaps it.
fn kill_and_reap(child: &mut Child, group: bool) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let pid = Pid::from_raw(child.id() as i32);
    if group {
        let _ = killpg(pid, Signal::SIGCONT);
        let _ = killpg(pid, Signal::SIGKILL);
    }
    let _ = kill(pid, Signal::SIGCONT);
    let _ = child.kill();
    let _ = child.wait();
}

/// An exit status in words: `exit 3`, `killed by SIGKILL`.
pub fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(sig)) => match Signal::try_from(sig) {
            Ok(sig) => format!("killed by {sig}"),
            Err(_) => format!("killed by signal {sig}"),
        },
        (None, None) => "no exit status".to_string(),
    }
}

/// A pipe drained by a thread into memory, so that a chatty process never blocks on a full pipe
/// and a reader never waits for end of file while a process (or its child) keeps the pipe open.
/// The default is a pipe that was never there: empty and at end of file at once.
#[derive(Clone)]
struct Drain {
    state: Arc<(Mutex<Drained>, Condvar)>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain { state: Arc::new((Mutex::new((Vec::new(), true)), Condvar::new())) }
    }
}

/// The bytes read so far, and whether the pipe reached end of file.
type Drained = (Vec<u8>, bool);

impl Drain {
    /// Starts draining `pipe`.
    fn start(mut pipe: impl Read + Send + 'static) -> Drain {
        let drain = Drain { state: Arc::new((Mutex::new((Vec::new(), false)), Condvar::new())) };
        let state = Arc::clone(&drain.state);
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                let n = pipe.read(&mut buf).unwrap_or(0);
                let (lock, cvar) = &*state;
                let mut guard = lock.lock().unwrap_or_else(|e| e.into_inner());
                if n == 0 {
                    guard.1 = true;
                    cvar.notify_all();
                    return;
                }
                guard.0.extend_from_slice(&buf[..n]);
                cvar.notify_all();
            }
        });
        drain
    }

    /// Everything read so far.
    fn so_far(&self) -> String {
        let guard = self.state.0.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&guard.0).into_owned()
    }

    /// The first line (without its newline) as soon as it is complete, or what came before end of
    /// file; `None` if neither happened within `deadline`.
    fn first_line(&self, deadline: Duration) -> Option<String> {
        let (lock, cvar) = &*self.state;
        let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        let waiting = |d: &mut Drained| !d.1 && !d.0.contains(&b'\n');
        let (guard, _) = cvar.wait_timeout_while(guard, deadline, waiting).unwrap_or_else(|e| e.into_inner());
        let line = guard.0.split(|&b| b == b'\n').next().unwrap_or_default();
        (guard.1 || guard.0.contains(&b'\n')).then(|| String::from_utf8_lossy(line).into_owned())
    }

    /// Everything, once the pipe reached end of file, or what came within `deadline` (a process
    /// that left the pipe to a child of its own).
    fn until_eof(&self, deadline: Duration) -> String {
        let (lock, cvar) = &*self.state;
        let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = cvar.wait_timeout_while(guard, deadline, |(_, eof)| !*eof).unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&guard.0).into_owned()
    }
}

/// The standard streams of a process to spawn. The default: stdin from `/dev/null`, stdout and
/// stderr piped.
#[derive(Debug)]
pub struct Streams {
    /// Its stdin.
    pub stdin: Stdio,
    /// Its stdout (read line by line when piped).
    pub stdout: Stdio,
    /// Its stderr (drained in the background when piped).
    pub stderr: Stdio,
}

impl Default for Streams {
    fn default() -> Self {
        Streams { stdin: Stdio::null(), stdout: Stdio::piped(), stderr: Stdio::piped() }
    }
}

/// What a process run to completion left: its exit status, all of its stdout (when piped) and stderr.
#[derive(Debug, Clone)]
pub struct Finished {
    /// How it exited.
    pub status: ExitStatus,
    /// Its stdout (empty when not piped).
    pub stdout: String,
    /// Its stderr (empty when not piped).
    pub stderr: String,
}

/// Runs `cmd` with `streams` to completion within `deadline`, draining its pipes while it runs (a
/// chatty process never blocks on a full pipe); at the deadline it is killed and reaped. The rest
/// of its output is awaited for `deadline` more at most (a child of its own may keep a pipe).
/// A failed spawn is the error; so is the deadline (kind `TimedOut`, carrying a [`TimedOut`]).
pub fn run(cmd: Command, streams: Streams, deadline: Duration) -> std::io::Result<Finished> {
    let mut proc = Proc::spawn_with(cmd, streams, false)?;
    let stdout = proc.take_stdout().map(|out| Drain::start(out.into_inner())).unwrap_or_default();
    let status = proc.wait(deadline).map_err(|e| std::io::Error::new(std::io::ErrorKind::TimedOut, e))?;
    Ok(Finished { status, stdout: stdout.until_eof(deadline), stderr: proc.stderr(deadline) })
}

/// Waits (bounded) until the kernel reports process `pid` stopped (`stopped`) or running again: a
/// `SIGSTOP` takes effect when the target next runs, after `kill(2)` has returned.
pub fn await_stopped(pid: u32, stopped: bool, deadline: Duration) -> Result<(), TimedOut> {
    let end = Instant::now() + deadline;
    while crate::sockets::is_stopped(pid) != stopped {
        if Instant::now() >= end {
            let what = format!("pid {pid} {}", if stopped { "stopped" } else { "running again" });
            return Err(TimedOut { what, after: deadline });
        }
        // Polling the kernel's process state; the deadline bounds it.
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// A process stopped by `SIGSTOP` for as long as this lives: dropped, it sends `SIGCONT` (on every
/// path, panics included), so that whoever ends the process next finds it able to die.
#[derive(Debug)]
pub struct Stopped {
    pid: u32,
}

impl Stopped {
    /// Stops `pid` and waits (bounded) until the kernel reports it stopped.
    pub fn stop(pid: u32, deadline: Duration) -> Result<Stopped, TimedOut> {
        // Guard first: continued again if the wait fails.
        let stopped = Stopped { pid };
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGSTOP);
        await_stopped(pid, true, deadline)?;
        Ok(stopped)
    }

    /// The stopped process.
    pub fn pid(&self) -> u32 {
        self.pid
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGCONT);
    }
}

/// A started process: piped stdout read line by line with deadlines, stderr drained in the
/// background, optionally the leader of its own process group (signals go to the group). It is
/// continued, killed (with its group) and reaped when dropped.
pub struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<BufReader<ChildStdout>>,
    stderr: Drain,
    group: bool,
    started: Instant,
}

impl Proc {
    /// Spawns `cmd` with stdin `stdin`, stdout and stderr piped; in a process group of its own when
    /// `group`.
    pub fn spawn(cmd: Command, stdin: Stdio, group: bool) -> std::io::Result<Proc> {
        Proc::spawn_with(cmd, Streams { stdin, ..Streams::default() }, group)
    }

    /// Spawns `cmd` with `streams`; in a process group of its own when `group`. A stdout or stderr
    /// that is not piped reads as empty and at end of file.
    pub fn spawn_with(mut cmd: Command, streams: Streams, group: bool) -> std::io::Result<Proc> {
        cmd.stdin(streams.stdin).stdout(streams.stdout).stderr(streams.stderr);
        if group {
            cmd.process_group(0);
        }
        let started = Instant::now();
        let mut child = cmd.spawn()?;
        let stdout = child.stdout.take().map(BufReader::new);
        let stderr = child.stderr.take().map(Drain::start).unwrap_or_default();
        Ok(Proc { stdin: child.stdin.take(), child, stdout, stderr, group, started })
    }

    /// The process id (with `sh -c 'exec ...'`, the implementation's own).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// When it was spawned.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Its stdin, if piped and not taken yet.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.stdin.take()
    }

    /// Its stdin to write to, if piped and not taken.
    pub fn stdin(&mut self) -> Option<&mut ChildStdin> {
        self.stdin.as_mut()
    }

    /// Its stdout, if piped and not taken yet (to be read by another thread, say); [`Proc::read_line`]
    /// reads end of file once it is taken.
    pub fn take_stdout(&mut self) -> Option<BufReader<ChildStdout>> {
        self.stdout.take()
    }

    /// Sends `sig` to the process group (or the process, without a group of its own).
    pub fn signal(&self, sig: Signal) -> nix::Result<()> {
        let pid = Pid::from_raw(self.child.id() as i32);
        if self.group {
            killpg(pid, sig)
        } else {
            kill(pid, sig)
        }
    }

    /// The next stdout line (with its newline), empty at end of file, bounded by `deadline`.
    pub fn read_line(&mut self, deadline: Duration) -> Result<String, TimedOut> {
        match self.stdout.as_mut() {
            Some(stdout) => read_line_with_deadline(stdout, deadline),
            None => Ok(String::new()),
        }
    }

    /// Whether it has exited (reaped if so).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits (bounded) for the exit.
    pub fn wait(&mut self, deadline: Duration) -> Result<ExitStatus, TimedOut> {
        wait_with_deadline(&mut self.child, deadline).ok_or(TimedOut { what: format!("exit of pid {}", self.pid()), after: deadline })
    }

    /// Waits (bounded) until it has exited, without reaping it: what `/proc/<pid>` says about it
    /// (its CPU time, say) can still be read. True once it has exited.
    pub fn await_exit_unreaped(&self, deadline: Duration) -> bool {
        use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
        let pid = Pid::from_raw(self.pid() as i32);
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT | WaitPidFlag::WNOHANG;
        until_exit(self.pid(), deadline, || !matches!(waitid(Id::Pid(pid), flags), Ok(WaitStatus::StillAlive)))
    }

    /// The rest of stdout after an exit: until end of file or `deadline` (a child may keep it).
    pub fn stdout_rest(&mut self, deadline: Duration) -> String {
        let end = Instant::now() + deadline;
        let mut out = String::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.read_line(left) {
                Ok(line) if line.is_empty() => break,
                Ok(line) => out.push_str(&line),
                Err(_) => break,
            }
        }
        out
    }

    /// All of stderr after an exit: until end of file or `deadline`.
    pub fn stderr(&self, deadline: Duration) -> String {
        self.stderr.until_eof(deadline)
    }

    /// The first line of stderr as soon as it is complete (see [`Drain::first_line`]).
    pub fn stderr_first_line(&self, deadline: Duration) -> Option<String> {
        self.stderr.first_line(deadline)
    }

    /// What stderr said so far.
    pub fn stderr_so_far(&self) -> String {
        self.stderr.so_far()
    }

    /// Continues and kills it (with its group), and reaps it.
    pub fn kill(&mut self) {
        kill_and_reap(&mut self.child, self.group);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_pipe_is_at_end_of_file_at_once() {
        let start = Instant::now();
        assert_eq!(Drain::default().until_eof(Duration::from_secs(10)), "");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn an_exit_and_a_first_stderr_line_are_seen_without_waiting_for_the_rest() {
        let line = "echo first >&2; echo second >&2; exit 3";
        let mut proc = Proc::spawn(Launch::Shell(format!("sh -c '{line}'")).command(), Stdio::null(), true).unwrap();
        assert_eq!(proc.stderr_first_line(Duration::from_secs(10)).as_deref(), Some("first"));
        assert!(proc.await_exit_unreaped(Duration::from_secs(10)));
        assert!(std::path::Path::new(&format!("/proc/{}/stat", proc.pid())).exists(), "not reaped yet");
        assert_eq!(proc.wait(Duration::from_secs(10)).unwrap().code(), Some(3));
        let silent = Proc::spawn(Launch::Shell("sleep 30".into()).command(), Stdio::null(), true).unwrap();
        assert_eq!(silent.stderr_first_line(Duration::from_millis(50)), None);
    }

    #[test]
    fn a_silent_process_times_out_and_is_killed() {
        let mut proc = Proc::spawn(Launch::Shell("sleep 30".into()).command(), Stdio::null(), true).unwrap();
        let err = proc.read_line(Duration::from_millis(50)).unwrap_err();
        assert!(err.to_string().contains("timed out"), "{err}");
        proc.kill();
        assert!(proc.exited().is_some());
    }

    #[test]
    fn lines_and_stderr_are_read_without_waiting_for_eof_of_a_child() {
        let line = "echo oops >&2; echo ready; sleep 30 & wait";
        let mut proc = Proc::spawn(Launch::Shell(format!("sh -c '{line}'")).command(), Stdio::null(), true).unwrap();
        assert_eq!(proc.read_line(Duration::from_secs(10)).unwrap(), "ready\n");
        proc.signal(Signal::SIGKILL).unwrap();
        let status = proc.wait(Duration::from_secs(10)).unwrap();
        assert_eq!(describe_status(status), "killed by SIGKILL");
        assert!(proc.stderr(Duration::from_secs(10)).contains("oops"));
    }
}
