//! Compiles the gRPC API in proto/ with a vendored protoc (no system protoc needed), and writes
//! the file descriptor set that server reflection serves. Messages also serialize as JSON
//! (serde): a server event is `{"type": "<its oneof field>", …its fields}`, which is what a
//! browser call's data channel carries (`transport::events`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=proto/vaak/v1/vaak.proto");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .type_attribute(".vaak.v1", "#[derive(serde::Serialize)]")
        .type_attribute(
            ".vaak.v1.ServerEvent.event",
            "#[serde(tag = \"type\", rename_all = \"snake_case\")]",
        )
        .build_client(true)
        .build_server(true)
        .file_descriptor_set_path(out.join("vaak_descriptor.bin"))
        .compile_protos(&["proto/vaak/v1/vaak.proto"], &["proto"])?;
    Ok(())
}
