//! The gRPC API's messages (no services) for the `client_messages` target, compiled from the
//! same proto/ as the daemon with a vendored protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    println!("cargo:rerun-if-changed=../proto/vaak/v1/vaak.proto");
    prost_build::compile_protos(&["../proto/vaak/v1/vaak.proto"], &["../proto"])?;
    Ok(())
}
