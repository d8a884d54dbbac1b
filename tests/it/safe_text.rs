//! OPS-9: text taken from another process (its command line) is shown escaped and cut, in `gateway
//! run`'s refusal and in `gateway status` (text and JSON), against a real process whose argv holds
//! newlines and terminal escape sequences and which holds the port.

use std::process::Command;

use crate::support::*;

/// Arguments a hostile holder could carry: a fake line, a screen clear and colour, a bell, a
/// C1 control, a right-to-left override, and a very long argument.
fn hostile_args() -> Vec<String> {
    vec![
        "innocent\n  holder is a live gateway: profile fake, version 9.9.9".into(),
        "\u{1b}[2J\u{1b}[31mred\u{7}".into(),
        "c1\u{9b}31m rtl\u{202e}txt".into(),
        "y".repeat(2000),
    ]
}

/// No byte that a terminal would act on.
fn assert_printable(text: &str, what: &str) {
    let bad: Vec<char> = text.chars().filter(|&c| c != '\n' && (c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c))).collect();
    assert!(bad.is_empty(), "{what}: raw control characters {bad:?} in {text:?}");
}

/// What the holder's command line must look like once escaped (up to the cut).
fn escaped_prefix() -> String {
    format!(
        "{} 0 innocent\\n  holder is a live gateway: profile fake, version 9.9.9 \\x1b[2J\\x1b[31mred\\x07 c1\\u{{9b}}31m rtl\\u{{202e}}txt yyy",
        helper_bin().display()
    )
}

fn start_hostile_holder() -> Holder {
    let mut cmd = Command::new(helper_bin());
    cmd.arg("0").args(hostile_args());
    start_and_wait_ready(cmd)
}

/// OPS-9, OPS-1: the refusal's holder line shows the hostile command line escaped and cut, and the
/// refusal has exactly its own lines (no line forged by the holder's argv).
#[test]
fn ops9_refusal_escapes_a_hostile_holders_command_line() {
    let holder = start_hostile_holder();
    let port = holder.port().to_string();
    let (status, out, err) = run_refused(|| gateway_cmd(&["run", "--port", &port]), process_found);
    assert_eq!(status.code(), Some(3), "{err}");
    assert_eq!(out, "");
    assert_printable(&err, "refusal");
    let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("warning: ")).collect();
    assert_eq!(lines.len(), 3, "ERR-1, holder, answer: {lines:#?}");
    assert_eq!(lines[0], held_message(&holder.url()));
    let shown = lines[1].split_once("): ").map(|(_, c)| c).expect("holder line names the command");
    assert!(shown.starts_with(&escaped_prefix()), "{shown}");
    assert!(shown.ends_with(" more characters]"), "cut with a marker: {shown}");
    assert!(shown.chars().count() <= 512 + " [... 99999 more characters]".len(), "{} characters", shown.chars().count());
    // The helper never reads: "did not answer GET /healthz within 200 ms".
    assert!(lines[2].starts_with("  holder did not answer GET /healthz"), "{}", lines[2]);
}

/// OPS-9, OPS-2: `gateway status` shows the same escaped, cut command line, in its line and in
/// its JSON (`command`).
#[test]
fn ops9_status_escapes_a_hostile_holders_command_line() {
    let holder = start_hostile_holder();
    let port = holder.port().to_string();
    let (status, out, err) = run_cmd_to_exit(gateway_cmd(&["status", "--port", &port]));
    assert_eq!(status.code(), Some(5), "not answering: {err}");
    assert_printable(&out, "status line");
    assert_eq!(out.lines().count(), 1, "{out:?}");
    assert!(out.contains(&escaped_prefix()), "{out}");
    assert!(out.contains(" more characters]"), "{out}");

    let (status, out, err) = run_cmd_to_exit(gateway_cmd(&["status", "--port", &port, "--json"]));
    assert_eq!(status.code(), Some(5), "not answering: {err}");
    let json: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    let command = json["command"].as_str().expect("command");
    assert_printable(command, "JSON command");
    assert!(command.starts_with(&escaped_prefix()), "{command}");
    assert!(command.ends_with(" more characters]"), "{command}");
}
