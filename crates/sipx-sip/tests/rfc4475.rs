#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.
//! RFC 4475 torture tests: all 49 messages, through the real transaction layer and the UAS
//! checks, each answered as the RFC says (see tests/data/rfc4475/EXPECTED.tsv).

use std::path::Path;

mod torture;
use torture::{Outcome, run};

/// Whether `outcome` is one the RFC allows for `expectation`.
fn allowed(expectation: &str, outcome: &Outcome) -> bool {
    use Outcome::*;
    let uas = expectation
        .split(';')
        .find_map(|p| p.strip_prefix("uas="))
        .unwrap_or(expectation.split(';').next().unwrap_or(""));
    match uas {
        // Parsing is what these test; the application may then answer as it likes (mpart01 is
        // a MESSAGE, which SIPx answers 405).
        "parse-ok" => matches!(outcome, Answered(..) | ParsedResponse),
        "accept-rfc2543" => matches!(outcome, Answered(200, _)),
        "501-with-Allow" => matches!(outcome, Answered(501, Some(_))),
        "501" => matches!(outcome, Answered(501, _)),
        "400" | "400-at-registrar-or-proxy-forward" => {
            matches!(outcome, Refused(400) | Answered(400, _))
        }
        "400-or-accept" => matches!(outcome, Refused(400) | Answered(400 | 200, _)),
        "505" => matches!(outcome, Refused(505)),
        "501-or-400" => matches!(outcome, Refused(400) | Answered(501 | 400, _)),
        "discard" => matches!(outcome, Silent | ParsedResponse),
        "416" | "416-or-404" => matches!(outcome, Answered(416 | 404, _)),
        "420-with-Unsupported" => matches!(outcome, Answered(420, Some(u))
            if u.contains("nothingSupportsThis") && u.contains("nothingSupportsThisEither")),
        "415" => matches!(outcome, Answered(415, _)),
        "401-or-ignore-auth-or-405" => matches!(outcome, Answered(401 | 200 | 405, _)),
        "483-at-proxy-or-process-at-uas" => matches!(outcome, Answered(200, _)),
        "200-contact-param" | "200-uri-param" | "200-keep-escaped-header" => {
            matches!(outcome, Answered(200, _))
        }
        "406-or-400" => matches!(outcome, Answered(406 | 400, _) | Refused(400)),
        other => panic!("unknown expectation {other}"),
    }
}

#[test]
fn all_49_torture_messages_are_answered_as_the_rfc_says() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rfc4475");
    let table = std::fs::read_to_string(dir.join("EXPECTED.tsv")).unwrap();
    let mut failures = Vec::new();
    let mut count = 0;
    for line in table.lines().filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (name, expectation) = (cols[0], cols[3]);
        let bytes = std::fs::read(dir.join(format!("{name}.sip"))).unwrap();
        let outcome = run(&bytes);
        count += 1;
        if !allowed(expectation, &outcome) {
            failures.push(format!("{name}: expected {expectation}, got {outcome:?}"));
        }
    }
    assert_eq!(count, 49, "all 49 RFC 4475 messages are in the table");
    assert!(
        failures.is_empty(),
        "{} of 49 wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn no_torture_message_panics_when_truncated_or_mutated() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rfc4475");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sip") {
            let bytes = std::fs::read(&path).unwrap();
            for cut in (0..bytes.len()).step_by(7) {
                let _ = run(&bytes[..cut]);
                let mut flipped = bytes.clone();
                flipped[cut] ^= 0x20;
                let _ = run(&flipped);
            }
        }
    }
}

/// The fuzz bodies over the torture corpus and the committed fuzz seeds: the round-trip
/// invariant holds for every message there, in every CI run (the fuzzer explores further).
#[test]
fn fuzz_invariants_hold_on_the_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("tests/data/rfc4475")];
    dirs.push(root.join("../../fuzz/corpus/sip_message"));
    // Every crash the fuzzer found, kept so it can never come back.
    dirs.push(root.join("tests/data/fuzz-regressions"));
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            sipx_sip::fuzz::sip_message(&bytes);
            sipx_sip::fuzz::sip_framer(&bytes);
        }
    }
}
