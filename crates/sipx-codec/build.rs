//! Links the system's bcg729 only when the `g729` feature is on, so the default build neither
//! needs the library nor becomes GPL.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_G729").is_some() {
        println!("cargo:rustc-link-lib=bcg729");
    }
}
