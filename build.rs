//! Compiles proto/stock.proto, the legacy proto/kv.proto and the google.rpc
//! rich-error messages (proto/google/rpc) with protox (pure Rust: no system protoc needed),
//! generates the tonic/prost code, and writes the descriptor set that the
//! runner uses to parse proto3 JSON and that the reference serves by reflection.
use prost::Message;
use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/stock.proto");
    println!("cargo:rerun-if-changed=proto/kv.proto");
    println!("cargo:rerun-if-changed=proto/google");
    // The descriptor set holds the rich-error messages too (to print and
    // judge details); code is generated for the services only (tonic-types
    // has the google.rpc types).
    let all = protox::compile(
        [
            "stock.proto",
            "kv.proto",
            "google/rpc/status.proto",
            "google/rpc/error_details.proto",
        ],
        ["proto"],
    )?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("stock_descriptor.bin"), all.encode_to_vec())?;
    tonic_prost_build::configure().compile_fds(protox::compile(["stock.proto", "kv.proto"], ["proto"])?)?;
    // Inventory.stack names the tonic version actually linked.
    println!("cargo:rerun-if-changed=Cargo.lock");
    let lock = fs::read_to_string("Cargo.lock").unwrap_or_default();
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"tonic\"\n"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=STOCK_TONIC_VERSION={version}");
    Ok(())
}
