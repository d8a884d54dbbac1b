//! The tool's outputs end to end, on the mini port with one defect (SRV-3): JUnit names the failed
//! row, and the expectations file turns a known departure into a pass and any change into a failure.

use std::path::PathBuf;
use std::process::Command;

use gateway_harness::scratch::Scratch;

/// Runs the runner on the mini port with the `no-400` defect, `--only SRV-3`, and `extra` flags.
fn run(extra: &[&str]) -> (i32, String) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mutants/mini_port.py");
    let template = format!("python3 '{}' --defect no-400 --port {{port}}", script.display());
    let out = Command::new(env!("CARGO_BIN_EXE_gateway-conformance"))
        .args([template.as_str(), "--only", "SRV-3"])
        .args(extra)
        .output()
        .expect("run gateway-conformance");
    (out.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn junit_and_the_expectations_file() {
    let scratch = Scratch::new("conformance-outputs").expect("scratch");
    let junit = scratch.path().join("result.xml");
    let (code, text) = run(&["--junit", junit.to_str().unwrap()]);
    assert_eq!(code, 1, "{text}");
    let xml = std::fs::read_to_string(&junit).expect("the JUnit file");
    assert!(
        xml.contains("<testcase classname=\"conformance\" name=\"SRV-3\"><failure message=\"malformed head answered 200, want 400"),
        "{xml}"
    );

    let known = scratch.path().join("known.txt");
    std::fs::write(&known, "# the mini port's known departure\nSRV-3 fail answers 200 to garbage\n").unwrap();
    let (code, text) = run(&["--expect", known.to_str().unwrap()]);
    assert_eq!(code, 0, "a known departure is as expected: {text}");

    std::fs::write(&known, "SRV-3 pass\n").unwrap();
    let (code, text) = run(&["--expect", known.to_str().unwrap()]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("SRV-3: expected pass"), "{text}");
}
