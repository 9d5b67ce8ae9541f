//! The fuzz body over every fixture and simple mutations of it (every truncation, byte flips,
//! line breaks and separators dropped in anywhere), so the normal test run exercises it.

use std::path::Path;

use sipx_sdp::fuzz;

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if let Ok(bytes) = std::fs::read(&path) {
            all.push((path.display().to_string(), bytes));
        }
    }
    assert!(all.len() >= 12, "fixtures missing");
    all
}

#[test]
fn fixtures_and_truncations() {
    for (_, bytes) in fixtures() {
        for end in 0..=bytes.len() {
            fuzz::sdp(&bytes[..end]);
        }
    }
}

#[test]
fn byte_mutations() {
    // Flips that turn text into other text, control bytes and non-UTF-8, plus the bytes the
    // grammar cares about.
    const FLIPS: [u8; 3] = [0x01, 0x20, 0x80];
    const PUT: [u8; 5] = [b'\n', b' ', b'=', b':', b'/'];
    for (_, bytes) in fixtures() {
        let mut mutated = bytes.clone();
        for i in 0..bytes.len() {
            for flip in FLIPS {
                mutated[i] = bytes[i] ^ flip;
                fuzz::sdp(&mutated);
            }
            for put in PUT {
                mutated[i] = put;
                fuzz::sdp(&mutated);
            }
            mutated[i] = bytes[i];
        }
    }
}
