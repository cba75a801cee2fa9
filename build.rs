//! Dogfoods the generator on `proto/` the way a service's build script does: the examples and
//! tests include the result from OUT_DIR with `axion_runtime::include_contracts!()`.

fn main() {
    if let Err(e) = axion_gen::configure().compile_dir("proto") {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
