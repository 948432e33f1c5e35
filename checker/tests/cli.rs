//! The `checker` binary: exit codes and messages, run as a real process.

use std::path::PathBuf;
use std::process::Command;

fn write_temp(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("checker-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn run(path: &PathBuf, model: &str) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_checker"))
        .arg(path)
        .args(["--model", model])
        .output()
        .expect("the checker binary runs");
    (
        out.status.code().expect("exited normally"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const VALID: &str = r#"{"process":0,"type":"invoke","f":"write","key":"a","value":1,"time_ns":1}
{"process":0,"type":"ok","f":"write","key":"a","value":1,"time_ns":2}
{"process":1,"type":"invoke","f":"read","key":"a","value":null,"time_ns":3}
{"process":1,"type":"ok","f":"read","key":"a","value":1,"time_ns":4}
"#;

#[test]
fn valid_history_exits_0() {
    let (code, stdout, _) = run(&write_temp("valid.jsonl", VALID), "register");
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("VALID"), "{stdout}");
}

#[test]
fn invalid_history_exits_1_and_names_key_and_failing_op() {
    let text = VALID.replace(r#""value":1,"time_ns":4"#, r#""value":2,"time_ns":4"#);
    let (code, stdout, _) = run(&write_temp("invalid.jsonl", &text), "register");
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("INVALID"), "{stdout}");
    assert!(stdout.contains("key \"a\""), "{stdout}");
    assert!(stdout.contains("read -> 2"), "{stdout}");
    assert!(
        stdout.contains("longest linearizable prefix: 1"),
        "{stdout}"
    );
}

#[test]
fn malformed_line_exits_2_with_the_line_number() {
    let text = format!("{VALID}{{\"process\": 7, \"type\":\n");
    let (code, _, stderr) = run(&write_temp("malformed.jsonl", &text), "register");
    assert_eq!(code, 2);
    assert!(stderr.contains("line 5"), "{stderr}");
}

#[test]
fn ok_without_invoke_exits_2_with_the_line_number() {
    let text = r#"{"process":3,"type":"ok","f":"read","key":"a","value":null,"time_ns":4}"#;
    let (code, _, stderr) = run(&write_temp("orphan.jsonl", text), "register");
    assert_eq!(code, 2);
    assert!(stderr.contains("line 1"), "{stderr}");
}

#[test]
fn missing_file_exits_2() {
    let (code, _, stderr) = run(&PathBuf::from("/nonexistent/history.jsonl"), "register");
    assert_eq!(code, 2);
    assert!(!stderr.is_empty());
}

#[test]
fn set_and_counter_models() {
    let set = r#"{"process":0,"type":"invoke","f":"add","key":"s","value":1,"time_ns":1}
{"process":0,"type":"ok","f":"add","key":"s","value":1,"time_ns":2}
{"process":1,"type":"invoke","f":"read","key":"s","value":null,"time_ns":3}
{"process":1,"type":"ok","f":"read","key":"s","value":[1],"time_ns":4}
"#;
    assert_eq!(run(&write_temp("set.jsonl", set), "set").0, 0);
    let lost = set.replace("[1]", "[]");
    assert_eq!(run(&write_temp("set-lost.jsonl", &lost), "set").0, 1);
    let counter = r#"{"process":0,"type":"invoke","f":"incr","key":"c","value":1,"time_ns":1}
{"process":0,"type":"ok","f":"incr","key":"c","value":1,"time_ns":2}
{"process":1,"type":"invoke","f":"read","key":"c","value":null,"time_ns":3}
{"process":1,"type":"ok","f":"read","key":"c","value":1,"time_ns":4}
"#;
    assert_eq!(run(&write_temp("counter.jsonl", counter), "counter").0, 0);
    let bad = counter.replace(r#""value":1,"time_ns":4"#, r#""value":5,"time_ns":4"#);
    assert_eq!(run(&write_temp("counter-bad.jsonl", &bad), "counter").0, 1);
}
