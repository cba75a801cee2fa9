//! `protoc-route OUT_DIR INCLUDE_DIR LIST_FILE`: generates prost messages and tonic services for
//! the protos named in LIST_FILE (one proto name per line, relative to INCLUDE_DIR) the
//! conventional way — `tonic_prost_build::configure().compile_protos(..)`, which runs `protoc`
//! (from `PROTOC` or `PATH`) and then prost-build and tonic-build on its descriptors.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out, include, list] = args.as_slice() else {
        eprintln!("usage: protoc-route OUT_DIR INCLUDE_DIR LIST_FILE");
        std::process::exit(2);
    };
    let list = std::fs::read_to_string(list).expect("read LIST_FILE");
    let protos: Vec<&str> = list.lines().filter(|l| !l.trim().is_empty()).collect();
    std::fs::create_dir_all(out).expect("create OUT_DIR");
    if let Err(e) = tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .out_dir(out)
        .compile_protos(&protos, &[include.as_str()])
    {
        eprintln!("protoc-route: {e}");
        std::process::exit(1);
    }
}
