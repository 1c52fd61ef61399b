//! Compresses the static files in `assets/` once, at build, so that the server
//! never compresses anything per request: for each file, a gzip and a brotli
//! copy (at their best, slowest settings) go to `OUT_DIR`, where `src/assets.rs`
//! includes them into the binary next to the file itself.

use std::io::Write;
use std::path::Path;
use std::{env, fs};

/// The files `src/assets.rs` serves; each must be listed in both places.
const ASSETS: [&str; 3] = ["style.css", "chat.js", "favicon.svg"];

/// Brotli's largest window (2^22 bytes is more than any of our files).
const BROTLI_WINDOW_BITS: u32 = 22;

fn main() {
    let out = env::var_os("OUT_DIR").expect("cargo sets OUT_DIR for build scripts");
    let out = Path::new(&out);
    for name in ASSETS {
        let source = Path::new("assets").join(name);
        println!("cargo::rerun-if-changed={}", source.display());
        let body = fs::read(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
        fs::write(out.join(format!("{name}.gz")), gzip(&body)).expect("write a gzip copy");
        fs::write(out.join(format!("{name}.br")), brotli(&body)).expect("write a brotli copy");
    }
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(body).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

fn brotli(body: &[u8]) -> Vec<u8> {
    let mut compressed = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        lgwin: BROTLI_WINDOW_BITS as i32,
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &body[..], &mut compressed, &params).expect("brotli into memory");
    compressed
}
